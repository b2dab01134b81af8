"""The Personal data widgets and views shared by Explain, Compare and Fine-tune: the setting, the text with
its personal data marked, the "Does the decision depend on personal data?" panel and a dataset scan's table."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from dashboard import services, state
from dashboard.components.highlight import esc_md
from dashboard.redaction import LARGE_SHARE, PII_CSS, Share, dependence_sentences, marked_html, phrase
from model_zoo import LoupeError
from model_zoo.privacy import MASK, STYLES, ScanResult

MODE_HELP = ("**off**: nothing is changed. **hide**: the model reads your text as typed, but everything shown, "
             "cached, logged, linked or exported holds the redacted text. **redact input**: the model reads the "
             "redacted text.")
STYLE_TITLES = {"placeholder": "<PERSON>", "mask": MASK, "hash": "<PERSON_3f9a…>"}


def pii_controls(mode_key: str, style_key: str, check_key: str | None = None) -> tuple[str, str, bool]:
    """The Personal data setting: mode, replacement style and (with ``check_key``) the dependence toggle."""
    st.session_state.setdefault(mode_key, services.pii_default_mode())
    cols = st.columns([2.5, 1.5])
    mode = cols[0].radio("Personal data", list(services.PII_MODES), format_func=services.PII_MODES.__getitem__,
                         horizontal=True, key=mode_key, help=MODE_HELP) or "off"
    style = cols[1].selectbox("Replace it by", list(STYLES), format_func=STYLE_TITLES.__getitem__, key=style_key,
                              help="The type (placeholder), a mask, or a pseudonym: stable within this session, the "
                                   "same name gives the same token.")
    check = False
    if check_key:
        st.session_state.setdefault(check_key, False)
        check = st.toggle("Does the decision depend on personal data?", key=check_key, disabled=mode == "redact",
                          help="Predict with and without the personal data, and measure how much of each "
                               "explanation falls on it. Always shown with redact input.") or mode == "redact"
    return mode, style or "placeholder", bool(check)


def pii_view_or_none(text: str, mode: str, style: str, needed: bool) -> services.PiiView | None:
    """The text under the setting when it is needed (a mode other than off, or the dependence panel); None when
    not. Shows why when personal data cannot be detected, and stops the page in the hide and redact modes (the
    text must not be explained as it is)."""
    if not needed or not text.strip():
        return None
    try:
        with st.spinner("Looking for personal data (the detector loads on first use)…"):
            return services.pii_view(text, mode, style)
    except LoupeError as err:
        st.error(esc_md(err))
        if mode != "off":
            st.stop()
        return None


def pii_found(view: services.PiiView) -> None:
    """What was found, marked in the text (this person's own view), and what the mode does with it."""
    counts = view.counts()
    ner = "" if view.ner else " Names, places and organisations are not detected: no NER model is installed."
    if not counts:
        st.caption(f"No personal data found.{ner}")
        return
    found = ", ".join(f"{n} × {esc_md(phrase(e))}" for e, n in counts.items())
    does = {"off": "Nothing is changed.",
            "hide": "The model reads it; everything shown, cached, linked or exported has it replaced.",
            "redact": "The model reads the text with it replaced."}[view.mode]
    with st.expander(f"Personal data found: {found}. {does}", expanded=view.mode != "off"):
        st.markdown(PII_CSS + marked_html(view.original, view.spans), unsafe_allow_html=True)
        if ner:
            st.caption(ner.strip())


DEPENDENCE_HELP = ("The prediction of the text as typed and of the text with its personal data replaced; and, per "
                   "explainer, the share of the attribution (by magnitude) on the words that are personal data.")


def dependence_panel(view: services.PiiView, labels: Sequence[str], with_pii: Sequence[float],
                     without: Sequence[float], shares: Sequence[Share], titles: dict[str, str],
                     heading: str = "#### Does the decision depend on personal data?") -> None:
    """Does the decision depend on personal data? The prediction with and without it, and each explanation's
    share on it (the sentence quotes the explainers that claim to be faithful), in plain sentences."""
    st.markdown(heading, help=DEPENDENCE_HELP)
    if not view.spans:
        st.caption("No personal data was found in this text.")
        return
    trusted = [s for s in shares if services.claims_faithfulness(s.method)] or list(shares)
    prediction, *attribution = dependence_sentences(labels, with_pii, without, trusted, titles,
                                                    placeholders=view.mode == "redact")
    st.markdown(esc_md(prediction))
    for sentence in attribution:
        if max(s.share for s in trusted) >= LARGE_SHARE:
            st.warning(esc_md(sentence), icon="🔎")
        else:
            st.markdown(esc_md(sentence))
    if shares:
        rows = [{"explainer": titles.get(s.method, s.method), "on personal data": f"{s.share:.0%}",
                 "words that are personal data": f"{s.words:.0%}",
                 **{e: f"{v:.0%}" for e, v in sorted(s.by_entity.items())}} for s in shares]
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


def scan_table(result: ScanResult) -> None:
    """A dataset scan: the sentence, counts per type and column, masked examples."""
    (st.warning if result.total else st.success)(esc_md(result.sentence()))
    if not result.total:
        return
    table = pd.DataFrame(result.table())
    table.insert(1, "what", [phrase(e) for e in table["personal data"]])
    st.dataframe(table, hide_index=True, width="stretch")
    st.caption("Masked examples (the first cells showing each kind):")
    st.dataframe(pd.DataFrame([{k: ex[k] for k in ("row", "column", "found", "masked")} for ex in result.examples]),
                 hide_index=True, width="stretch")


def progress_to(bar: DeltaGenerator, verb: str) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback that moves ``bar`` (an ``st.progress``) and says how far it is."""

    def show(done: int, total: int) -> None:
        bar.progress(done / max(1, total), text=f"{verb}: {done:,} of {total:,} texts")

    return show


_DETECTS = ("Names, places and organisations (spaCy NER) and e-mails, phones, card numbers, IBANs, IP addresses, "
            "URLs, dates and street addresses.")


def upload_scan(raw: bytes, column: str, key: str) -> None:
    """A *Scan for personal data* button for one column of an uploaded CSV, and the scan's table once made
    (remembered for the session, as on Fine-tune)."""
    result = services.scanned(raw, [column])
    if result is None and st.button(f"Scan the column “{esc_md(column)}” for personal data", key=key,
                                    help=_DETECTS):
        result = _scan(raw, [column])
    if result is not None:
        scan_table(result)


def _scan(raw: bytes, columns: Sequence[str]) -> ScanResult | None:
    """Scan ``columns`` of an uploaded CSV with a progress bar; None (and the message shown) when it fails."""
    bar = st.progress(0.0, text="Loading the detector…")
    try:
        return services.scan_upload(raw, columns, progress=progress_to(bar, "Scanning"))
    except LoupeError as err:
        st.error(esc_md(err))
        return None
    finally:
        bar.empty()


def dataset_pii(raw: bytes, columns: Sequence[str], text_column: str) -> str | None:
    """The Personal data part of an uploaded dataset: scan (with a progress bar), the table, and whether (and
    how) to redact the text column before training. Returns the style, or None to train on the texts as they
    are."""
    chosen = [c for c in st.session_state.get(state.FT_PII_COLUMNS, [text_column]) if c in columns]
    st.session_state[state.FT_PII_COLUMNS] = chosen or [text_column]
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    scan_columns = left.multiselect("Columns to scan", list(columns), key=state.FT_PII_COLUMNS, help=_DETECTS)
    result = services.scanned(raw, scan_columns)
    if right.button("Scan for personal data", key=state.FT_PII_SCAN, disabled=not scan_columns, width="stretch"):
        result = _scan(raw, scan_columns)
    if result is not None:
        scan_table(result)
    st.session_state.setdefault(state.FT_PII_REDACT, services.pii_default_mode() != "off")
    c1, c2 = st.columns([3, 1.4], vertical_alignment="bottom")
    redact = c1.checkbox(f"Redact personal data in the column “{esc_md(text_column)}” before training",
                         key=state.FT_PII_REDACT,
                         help="The run trains on a copy of the file with the personal data in the text column "
                              "replaced, holding only the text and label columns; the model card records how. "
                              "Detection runs over the whole file when the run starts.")
    style = c2.selectbox("Replace it by", list(STYLES), format_func=STYLE_TITLES.__getitem__,
                         key=state.FT_PII_STYLE, disabled=not redact)
    return (style or "placeholder") if redact else None
