"""Text highlighted by attribution score, with one colour scale and legend shared by all explainers, and the
escaping every page uses for text it did not write.

Every string (text, tokens, labels) is escaped before it is put into HTML or Markdown, and direction-control
and zero-width characters are shown as visible markers: a right-to-left override must never make "good" show
as "doog" while the model reads "good".
"""

from __future__ import annotations

import html
import re
import string

from explainers import Attribution

# Invisible characters that change how text shows (bidi controls) or hide where it differs (zero-width).
INVISIBLE = {
    "\u061c": "ALM", "\u200b": "ZWSP", "\u200c": "ZWNJ", "\u200d": "ZWJ", "\u200e": "LRM", "\u200f": "RLM",
    "\u202a": "LRE", "\u202b": "RLE", "\u202c": "PDF", "\u202d": "LRO", "\u202e": "RLO", "\u2060": "WJ",
    "\u2066": "LRI", "\u2067": "RLI", "\u2068": "FSI", "\u2069": "PDI", "\ufeff": "BOM",
}
_INVISIBLE_RE = re.compile("[" + "".join(INVISIBLE) + "]")
_MD_SPECIAL = re.compile("([" + re.escape(string.punctuation) + "])")


def visible(text: object) -> str:
    """``text`` with each direction-control or zero-width character replaced by a marker such as ``⟨RLO⟩``."""
    return _INVISIBLE_RE.sub(lambda m: f"⟨{INVISIBLE[m.group()]}⟩", str(text))


def esc_html(text: object) -> str:
    """Text for HTML: markers for invisible characters, then escaped (quotes too)."""
    return html.escape(visible(text), quote=True)


def esc_block(text: object) -> str:
    """Text for HTML inside ``st.markdown(..., unsafe_allow_html=True)``: as :func:`esc_html`, with line breaks
    as character references, so a blank line cannot end the HTML block and turn the rest into Markdown."""
    return esc_html(text).replace("\r", "&#13;").replace("\n", "&#10;")


def esc_md(text: object) -> str:
    """Text for Markdown (``st.markdown``, captions, warnings, labels): shown exactly as typed.

    Every ASCII punctuation character is backslash-escaped (CommonMark allows it for all of them), so no
    emphasis, link, image, autolink, HTML or heading can form; line breaks become spaces.
    """
    flat = " ".join(visible(text).splitlines())
    return _MD_SPECIAL.sub(r"\\\1", flat)


def _ctl_html(text: str) -> str:
    """Escaped text whose invisible characters are drawn as small red markers (the code point as a tip)."""
    out, pos = [], 0
    for m in _INVISIBLE_RE.finditer(text):
        out.append(html.escape(text[pos:m.start()]))
        name = INVISIBLE[m.group()]
        out.append(f'<span class="ctl" title="U+{ord(m.group()):04X} {name}">⟨{name}⟩</span>')
        pos = m.end()
    out.append(html.escape(text[pos:]))
    return "".join(out).replace("\r", "&#13;").replace("\n", "&#10;")


POSITIVE = (33, 102, 172)  # supports the target class (blue)
NEGATIVE = (214, 96, 77)  # speaks against it (orange-red)
UNSIGNED = (118, 42, 131)  # importance without a direction (purple)
MAX_ALPHA = 0.85

CSS = """
<style>
.loupe-text{font-size:1.02rem;line-height:2.0;white-space:pre-wrap;word-wrap:break-word}
.loupe-text span.u{border-radius:4px;padding:1px 1px}
.loupe-text .tail{color:#999}
.loupe-text .ctl{color:#b42318;font-size:.75em;border:1px dashed #b42318;border-radius:3px;padding:0 2px}
.loupe-legend{display:flex;align-items:center;gap:.5rem;font-size:.8rem;color:#555;margin:.2rem 0 .6rem}
.loupe-legend .bar{height:10px;width:180px;border-radius:3px;border:1px solid #ddd}
</style>
"""


def _rgba(rgb: tuple[int, int, int], alpha: float) -> str:
    return f"rgba({rgb[0]},{rgb[1]},{rgb[2]},{alpha:.3f})"


def colour(score: float, scale: float, signed: bool) -> str:
    """Background colour of a unit: its score divided by the explanation's largest magnitude."""
    if scale <= 0:
        return "transparent"
    x = max(-1.0, min(1.0, score / scale))
    if not signed:
        return _rgba(UNSIGNED, max(0.0, x) * MAX_ALPHA)
    return _rgba(POSITIVE if x >= 0 else NEGATIVE, abs(x) * MAX_ALPHA)


def units(a: Attribution, granularity: str = "words") -> list[tuple[int, int, float, str]]:
    """``(start, end, score, label)`` of each word, or of each word-piece when granularity is 'subwords'."""
    if granularity == "words":
        return [(w.start, w.end, w.score, w.text) for w in a.words]
    return [(s, e, sc, tok) for (s, e), sp, sc, tok in zip(a.offsets, a.special, a.scores, a.tokens)
            if not sp and e > s]


def scale_of(a: Attribution, granularity: str = "words") -> float:
    return max((abs(u[2]) for u in units(a, granularity)), default=0.0)


def highlight_html(a: Attribution, granularity: str = "words", scale: float | None = None) -> str:
    """The original text with each unit's background set by its score (escaped, self-contained).

    ``scale`` is the magnitude shown at full colour (default: this attribution's largest); pass one
    shared value to put several attributions on the same scale.
    """
    parts: list[str] = []
    pos = 0
    scale = scale if scale is not None else scale_of(a, granularity)
    for start, end, score, label in sorted(units(a, granularity)):
        if start < pos:  # overlapping pieces (rare tokenizers): skip rather than duplicate text
            continue
        parts.append(_ctl_html(a.text[pos:start]))
        tip = esc_block(f"{label}: {score:+.4f}")
        parts.append(f'<span class="u" style="background:{colour(score, scale, a.signed)}" title="{tip}">'
                     f"{_ctl_html(a.text[start:end])}</span>")
        pos = end
    explained_end = max((u[1] for u in units(a, "words")), default=0)
    if a.truncated and explained_end < len(a.text):
        parts.append(_ctl_html(a.text[pos:explained_end]))
        parts.append(f'<span class="tail" title="not seen by the model">{_ctl_html(a.text[explained_end:])}</span>')
    else:
        parts.append(_ctl_html(a.text[pos:]))
    return f'<div class="loupe-text">{"".join(parts)}</div>'


def legend_html(target_label: str, signed: bool = True) -> str:
    """The shared legend: scores are divided by each explanation's largest magnitude."""
    t = esc_block(target_label)
    if signed:
        bar = f"linear-gradient(to right,{_rgba(NEGATIVE, MAX_ALPHA)},transparent,{_rgba(POSITIVE, MAX_ALPHA)})"
        return (f'<div class="loupe-legend"><span>against <b>{t}</b></span><span class="bar" '
                f'style="background:{bar}"></span><span>for <b>{t}</b></span>'
                "<span>· signed scores: −1 … 0 … +1 of each method's largest magnitude</span></div>")
    bar = f"linear-gradient(to right,transparent,{_rgba(UNSIGNED, MAX_ALPHA)})"
    return (f'<div class="loupe-legend"><span>0</span><span class="bar" style="background:{bar}"></span>'
            "<span>1 · unsigned importance (no direction), relative to the method's largest score</span></div>")
