"""Personal data seen from the app: the *Personal data* setting of Explain and Compare, and dataset scans.

The setting has three modes:

- ``off``: nothing changes (detection runs only when the dependence panel is asked for);
- ``hide``: the model reads the original, and nothing stored, cached, logged, linked or exported holds it:
  explanations of the original stay in this session's memory (:mod:`.explaining` keys shared caches by a
  fingerprint, never the text), and every page, link and report shows the redacted text;
- ``redact``: the model reads the redacted text (so everything holds only that).

The detections of a text are kept in this session only, keyed by the text's fingerprint (an HMAC whose key
lives in this process); hash-style pseudonyms use one salt per session.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import streamlit as st

from dashboard import state
from dashboard.redaction import Range, redact_attribution
from explainers import Attribution
from model_zoo import privacy
from model_zoo.privacy import PiiSpan, Replacement, ScanResult
from model_zoo.privacy.detect import Progress
from model_zoo.privacy.logs import fingerprint, install_scrubber, watch

MODES = {"off": "off", "hide": "hide", "redact": "redact input"}
MODE_ENV = "LOUPE_PII"  # the mode pages open with (off, hide or redact); off when unset
_MEMO = 16


def default_mode() -> str:
    """The mode the pages open with: ``LOUPE_PII`` (off, hide, redact), else off."""
    value = os.environ.get(MODE_ENV, "").strip().lower()
    return value if value in MODES else "off"


def pii_status() -> privacy.Status:
    """What detection can do on this server (no engine is built)."""
    return privacy.status()


def link_mode(params: Mapping[str, object]) -> str | None:
    """The ``pii`` query parameter of a link, when it is a mode (else None)."""
    value = str(params.get("pii") or "")
    return value if value in MODES else None


@dataclass(frozen=True)
class PiiView:
    """One text under the Personal data setting: what the model reads, what is shown, and what was found.

    ``original`` and ``spans`` hold the personal data: they live in this session's memory only.
    """

    mode: str
    style: str
    original: str
    redacted: str
    spans: tuple[PiiSpan, ...]
    replacements: tuple[Replacement, ...]
    ner: bool

    @property
    def model_text(self) -> str:
        """What the model reads."""
        return self.redacted if self.mode == "redact" else self.original

    @property
    def shown_text(self) -> str:
        """What pages, links and reports show."""
        return self.original if self.mode == "off" else self.redacted

    @property
    def private(self) -> bool:
        """The model reads text that must stay out of shared caches (hide mode; even with nothing found, since a
        name the detector missed is still a name)."""
        return self.mode == "hide"

    def shown(self, a: Attribution) -> Attribution:
        """An explanation of :attr:`model_text` as pages show it (redacted in hide mode)."""
        if self.mode == "hide" and a.text == self.original:
            return redact_attribution(a, self.replacements, self.redacted)
        return a

    def ranges(self) -> list[Range]:
        """Where the personal data is in :attr:`model_text` (the tokens standing for it, in redact mode)."""
        if self.mode == "redact":
            return [(r.new_start, r.new_end, r.entity) for r in self.replacements]
        return [(s.start, s.end, s.entity) for s in self.spans]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.spans:
            out[s.entity] = out.get(s.entity, 0) + 1
        return out


def _salt() -> bytes:
    if not isinstance(st.session_state.get(state.PII_SALT), bytes):
        st.session_state[state.PII_SALT] = secrets.token_bytes(16)
    return bytes(st.session_state[state.PII_SALT])


def find_spans(text: str) -> tuple[PiiSpan, ...]:
    """The personal data in ``text``, remembered for this session (by fingerprint; the first call in the process
    builds the detector, a few seconds).

    Raises:
        LoupeError: Presidio is not installed.
    """
    memo = st.session_state.setdefault(state.PII_FOUND, OrderedDict())
    key = fingerprint(text)
    if key not in memo:
        memo[key] = tuple(privacy.find_pii(text))
        while len(memo) > _MEMO:
            memo.popitem(last=False)
    memo.move_to_end(key)
    return tuple(memo[key])


def pii_view(text: str, mode: str, style: str) -> PiiView:
    """``text`` under the setting (``mode`` one of :data:`MODES`, ``style`` one of ``privacy.STYLES``).

    In the hide and redact modes the text and its personal data are also watched by the hosted-mode log filter.

    Raises:
        LoupeError: a bad mode or style, or Presidio is not installed.
    """
    if mode not in MODES:
        raise privacy.RedactionStyleError(f"Unknown Personal data mode {mode!r}; use one of {', '.join(MODES)}.")
    spans = find_spans(text) if text.strip() else ()
    redacted, replacements = privacy.Redactor(privacy.check_style(style), _salt()).redact(text, spans)
    if mode != "off":
        watch(text, [s.value for s in spans])
        install_scrubber()
    return PiiView(mode, style, text, redacted, spans, tuple(replacements), privacy.engine().ner)


def scan_upload(raw: bytes, columns: Sequence[str], progress: Progress | None = None) -> ScanResult:
    """The personal data in ``columns`` of an uploaded CSV (counts per type and column, masked examples),
    remembered for this session by the file's digest and the columns.

    Raises:
        LoupeError: the file cannot be read, lacks a column, or Presidio is not installed.
    """
    key = (hashlib.sha256(raw).hexdigest(), tuple(columns))
    scans = st.session_state.setdefault(state.PII_SCANS, OrderedDict())
    if key not in scans:
        scans[key] = privacy.scan_csv(raw, list(columns), progress=progress)
        while len(scans) > 4:
            scans.popitem(last=False)
    found: ScanResult = scans[key]
    return found


def scanned(raw: bytes, columns: Sequence[str]) -> ScanResult | None:
    """The scan of this file and columns made earlier in this session, if any."""
    result = st.session_state.get(state.PII_SCANS, {}).get((hashlib.sha256(raw).hexdigest(), tuple(columns)))
    return result if isinstance(result, ScanResult) else None


__all__ = ["MODES", "MODE_ENV", "PiiView", "default_mode", "find_spans", "link_mode", "pii_status", "pii_view",
           "scan_upload", "scanned"]
