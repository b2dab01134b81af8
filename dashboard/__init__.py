"""Loupe's Streamlit dashboard."""

__version__ = "0.1.0"
