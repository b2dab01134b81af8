"""The sidebar: model picker (store, bundled default, local folder), device, model-card summary."""

from __future__ import annotations

import html
from typing import Any

import streamlit as st

from dashboard import state
from model_zoo import DEFAULT_MODEL_ID, ModelHandle, ModelLoadError

_PATH = "loupe_model_path"


def md(text: Any) -> str:
    """Escape a string for st.markdown (HTML and markdown syntax shown as typed)."""
    out = html.escape(str(text))
    for ch in "\\`*_{}[]()#+-.!|~>":
        out = out.replace(ch, "\\" + ch)
    return out


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _use_path() -> None:
    path = st.session_state.get(_PATH, "").strip()
    if path:
        st.session_state[state.MODEL] = path


def card_summary(handle: ModelHandle) -> None:
    info = handle.info
    st.caption("Model card")
    rows = [("task", info.get("task", "text classification")),
            ("labels", ", ".join(handle.labels.values())),
            ("source", info.get("source")),
            ("method", info.get("method")),
            ("base", info.get("base_model"))]
    test = (info.get("metrics") or {}).get("test") or {}
    if test:
        rows.append(("test accuracy", _fmt(test.get("accuracy"))))
        rows.append(("test macro F1", _fmt(test.get("f1_macro"))))
    data = info.get("data")
    if isinstance(data, dict):
        rows.append(("data", data.get("name")))
    if info.get("created"):
        rows.append(("created", info["created"]))
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                    for k, v in rows if v not in (None, ""))
    st.markdown(f'<table class="loupe-card">{cells}</table>'
                "<style>.loupe-card{font-size:.8rem;border-collapse:collapse;width:100%}"
                ".loupe-card th{text-align:left;padding:2px 6px 2px 0;color:#555;font-weight:600;"
                "vertical-align:top;white-space:nowrap}.loupe-card td{padding:2px 0}"
                ".loupe-card th,.loupe-card td{border:none}</style>", unsafe_allow_html=True)


def model_sidebar() -> ModelHandle | None:
    """Draw the model picker and return the model in use (None when none can be loaded)."""
    ids = [c["id"] for c in state.store_models()]
    wanted = st.session_state.get(state.MODEL) or st.query_params.get("model") or state.default_model()
    options = ids + [wanted] if wanted not in ids else list(ids)
    with st.sidebar:
        st.markdown("### 🔎 Loupe")
        if not options:
            st.info(f"No model yet. Build the default one with `python -m model_zoo prepare` "
                    f"({DEFAULT_MODEL_ID}, about 3 minutes on a 2-core CPU), or load a folder below.")
        choice = st.selectbox("Model", options, index=options.index(wanted) if wanted in options else 0,
                              help="Models in the store (LOUPE_HOME/models) and the default model.",
                              format_func=lambda m: m if len(m) < 40 else "…" + m[-38:]) if options else None
        with st.expander("Load a local folder"):
            st.text_input("Folder with a Hugging Face model (config.json, safetensors, tokenizer)", key=_PATH,
                          placeholder="/path/to/model")
            st.button("Load folder", on_click=_use_path, width="stretch")
        handle = None
        if choice:
            try:
                handle = state.get_handle(choice)
            except ModelLoadError as err:
                st.session_state[state.MODEL_ERROR] = f"{choice}: {err}"
                previous = st.session_state.get(state.MODEL_OK)
                if previous and previous != choice:
                    st.session_state[state.MODEL] = previous
                    handle = state.get_handle(previous)
            else:
                st.session_state[state.MODEL] = choice
                st.session_state[state.MODEL_OK] = choice
                st.session_state.pop(state.MODEL_ERROR, None)
        if handle is not None:
            st.caption(f"Device: **{md(handle.device)}** · {md(str(handle.dtype).replace('torch.', ''))} · "
                       f"max {handle.max_length} tokens")
            card_summary(handle)
    return handle


def page_setup(title: str) -> ModelHandle | None:
    """Every page starts here: the sidebar, the title, and why the last chosen model failed, if it did."""
    handle = model_sidebar()
    st.title(title)
    error = st.session_state.get(state.MODEL_ERROR)
    if error:
        using = st.session_state.get(state.MODEL_OK) or "no model"
        st.error(f"Could not load the model. {error}  \nStill using: {using}.", icon="⚠️")
    return handle
