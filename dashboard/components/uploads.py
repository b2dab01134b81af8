"""Uploaded CSV files, as the Fine-tune, Continual fine-tuning and Error analysis pages take them: one size limit
(``services.MAX_UPLOAD_MB``) and one message when a file is over it."""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from dashboard import services
from dashboard.components.highlight import esc_md


def short(name: object, n: int = 60) -> str:
    """A file, column or label name cut to ``n`` characters for a widget or a message."""
    text = str(name)
    return text if len(text) <= n else text[:n - 1] + "…"


def upload_bytes(upload: UploadedFile | None) -> tuple[bytes, str] | None:
    """An uploaded CSV's bytes and name, or None (no file, or too big: then it says so)."""
    if upload is None:
        return None
    raw = upload.getvalue()
    if len(raw) > services.MAX_UPLOAD_MB * 1_000_000:
        st.error(f"{esc_md(short(upload.name))}: the file is {len(raw) / 1e6:.1f} MB; the limit is "
                 f"{services.MAX_UPLOAD_MB} MB.")
        return None
    return raw, upload.name
