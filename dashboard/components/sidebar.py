"""The sidebar: login gate (st.login), model picker (store, bundled default, a folder: any locally, under the
operator's roots when hosted), device, model-card summary."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import streamlit as st

from dashboard import services, state
from model_zoo import DEFAULT_MODEL_ID, ModelHandle, ModelLoadError


def md(text: Any) -> str:
    """Escape a string for st.markdown (HTML and markdown syntax shown as typed)."""
    out = html.escape(str(text))
    for ch in "\\`*_{}[]()#+-.!|~>":
        out = out.replace(ch, "\\" + ch)
    return out


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _use_path() -> None:
    path = str(st.session_state.get(state.MODEL_PATH, "")).strip()
    if path:
        st.session_state[state.MODEL] = path


# --- who is using the app -----------------------------------------------------------------------------------
def _providers() -> list[str | None]:
    """The login buttons to offer: ``[None]`` for one provider in ``[auth]`` itself, else ``[auth.<name>]``s."""
    auth = st.secrets.get("auth") or {}
    named = [k for k, v in auth.items() if isinstance(v, Mapping)]
    return [None] if "client_id" in auth or not named else named


def require_login() -> None:
    """With ``st.login`` configured, every page shows only the sign-in screen until the person is signed in."""
    if not services.login_configured() or st.user.get("is_logged_in"):
        return
    st.title("🔎 Loupe")
    st.write("Sign in to use Loupe. Your fine-tuning, compression and evaluation jobs are kept under your "
             "account and are visible to no one else.")
    from streamlit.auth_util import is_authlib_installed

    if not is_authlib_installed():
        st.error("Login is configured, but this server lacks the package it needs (Authlib 1.3.2 or later). "
                 "Whoever runs the server can install it with `pip install Authlib`.")
        st.stop()
    for provider in _providers():
        st.button("Sign in" if provider is None else f"Sign in with {provider}", type="primary",
                  key=state.login_button(provider), on_click=st.login,
                  args=() if provider is None else (provider,))
    st.stop()


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
        rows.append(("data", data.get("source") or data.get("name")))
    privacy, federated = info.get("privacy"), info.get("federated")
    if isinstance(privacy, dict) and isinstance(privacy.get("epsilon"), (int, float)):
        rows.append(("private training", f"{privacy.get('mechanism')}: ε = {privacy['epsilon']:.2f} at δ = "
                                         f"{privacy.get('delta')} (explanations are not private)"))
    if isinstance(federated, dict):
        rows.append(("federated", f"{federated.get('clients')} clients, {federated.get('rounds')} rounds, "
                                  f"{(federated.get('partition') or {}).get('kind')} partition"))
    calibrated = info.get("calibration")
    if isinstance(calibrated, dict) and calibrated.get("temperature"):
        rows.append(("temperature", f"{calibrated['temperature']} (fitted on {calibrated.get('fitted_on', '?')})"))
    if info.get("created"):
        rows.append(("created", info["created"]))
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                    for k, v in rows if v not in (None, ""))
    st.markdown(f'<table class="loupe-card">{cells}</table>'
                "<style>.loupe-card{font-size:.8rem;border-collapse:collapse;width:100%}"
                ".loupe-card th{text-align:left;padding:2px 6px 2px 0;color:#555;font-weight:600;"
                "vertical-align:top;white-space:nowrap}.loupe-card td{padding:2px 0}"
                ".loupe-card th,.loupe-card td{border:none}</style>", unsafe_allow_html=True)


def _asked() -> str:
    """The model this run asks for: a new ``?model=`` link first, then this session's pick, then the default."""
    link = st.query_params.get("model")
    if link and link != st.session_state.get(state.MODEL_FROM_LINK):
        st.session_state[state.MODEL_FROM_LINK] = link
        return str(link)
    return str(st.session_state.get(state.MODEL) or link or services.default_model())


def _label(name: str) -> str:
    return name if len(name) < 40 else "…" + name[-38:]


def _checked(name: str) -> tuple[str | None, str | None]:
    """``(name to load, None)`` for a model this person may load, else ``(None, why not)``."""
    try:
        return services.check_model(name), None
    except ModelLoadError as err:
        # Hosted, the message is the generic one and repeats nothing of the request.
        return None, str(err) if services.hosted() else f"{_label(name)}: {err}"


def _folder_picker() -> None:
    """*Load a folder*: any Hugging Face folder locally; hosted, only under the operator's roots (if any)."""
    if not services.folder_picker_allowed():
        return
    hosted = services.hosted()
    title = "Load a shared model folder" if hosted else "Load a local folder"
    hint = ("A model folder from the shared model folders, by its path inside them (e.g. team/sst2-bert)"
            if hosted else "Folder with a Hugging Face model (config.json, safetensors, tokenizer)")
    with st.expander(title):
        st.text_input(hint, key=state.MODEL_PATH, max_chars=services.max_name_chars(),
                      placeholder="team/model" if hosted else "/path/to/model")
        st.button("Load folder", on_click=_use_path, width="stretch")


def model_sidebar() -> ModelHandle | None:
    """Draw the model picker and return the model in use (None when none can be loaded)."""
    ids = [c["id"] for c in services.store_models()]
    refused: str | None = None
    wanted, refused = _checked(_asked())
    if wanted is None:  # fall back to the last model that loaded, else the default
        fallback = st.session_state.get(state.MODEL_OK) or services.default_model()
        wanted = fallback if _checked(fallback)[0] else (ids[0] if ids else None)
        st.session_state[state.MODEL] = wanted
    options = ids + [wanted] if wanted and wanted not in ids else list(ids)
    with st.sidebar:
        st.markdown("### 🔎 Loupe")
        if services.signed_in():
            who = st.user.get("email") or st.user.get("name") or "signed in"
            st.caption(f"Signed in as {md(who)}")
            st.button("Log out", on_click=st.logout, key=state.LOGOUT)
        if not options:
            st.info(f"No model yet. Build the default one with `python -m model_zoo prepare` "
                    f"({DEFAULT_MODEL_ID}, about 3 minutes on a 2-core CPU), or load a folder below.")
        choice = st.selectbox("Model", options, index=options.index(wanted) if wanted in options else 0,
                              help="Models in the store (LOUPE_HOME/models) and the default model.",
                              format_func=_label) if options else None
        _folder_picker()
        handle = None
        if choice:
            try:
                handle = services.get_handle(choice)
            except ModelLoadError as err:
                refused = f"{_label(choice)}: {services.shown_error(err)}"
                previous = st.session_state.get(state.MODEL_OK)
                if previous and previous != choice:
                    st.session_state[state.MODEL] = previous
                    try:
                        handle = services.get_handle(previous)
                    except ModelLoadError:  # it loaded before; its files changed since
                        st.session_state.pop(state.MODEL_OK, None)
            else:
                st.session_state[state.MODEL] = choice
                st.session_state[state.MODEL_OK] = choice
        if refused:
            st.session_state[state.MODEL_ERROR] = refused
        else:
            st.session_state.pop(state.MODEL_ERROR, None)
        if handle is not None:
            st.caption(f"Device: **{md(handle.device)}** · {md(str(handle.dtype).replace('torch.', ''))} · "
                       f"max {handle.max_length} tokens"
                       + (" · predictions on ONNX Runtime" if handle.forward_path == "onnxruntime" else ""))
            card_summary(handle)
    return handle


def page_setup(title: str) -> ModelHandle | None:
    """Every page starts here: the login gate, the sidebar, the title, and why the last chosen model failed."""
    require_login()
    handle = model_sidebar()
    st.title(title)
    error = st.session_state.get(state.MODEL_ERROR)
    if error:
        using = st.session_state.get(state.MODEL_OK) or "no model"
        st.error(f"Could not load the model. {md(error)}  \nStill using: {md(_label(str(using)))}.", icon="⚠️")
    return handle
