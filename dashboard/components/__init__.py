"""Renderers: they take Attributions (and plain data) and return HTML, figures or widgets."""
