"""Who is using the app: the login (``st.login``) and the owner of the jobs this session starts and may open."""

from __future__ import annotations

import binascii
import hashlib
import secrets

import streamlit as st

from dashboard import state

_XSRF_COOKIE = "_streamlit_xsrf"  # Streamlit's per-browser XSRF cookie (random, kept across reloads)


def login_configured() -> bool:
    """Whether Streamlit's built-in login (``st.login``, OIDC) is set up: an ``[auth]`` section in secrets."""
    try:
        return bool(st.secrets.load_if_toml_exists() and "auth" in st.secrets)
    except Exception:  # an unreadable secrets file: Streamlit reports it itself; no login then
        return False


def signed_in() -> bool:
    """Whether a login is configured and this person is signed in."""
    return login_configured() and bool(st.user.get("is_logged_in"))


def _browser_token() -> bytes | None:
    """The random token of Streamlit's XSRF cookie: the same for every tab and reload of one browser."""
    raw = str(st.context.cookies.get(_XSRF_COOKIE) or "").strip("\"'")
    try:
        if raw.startswith("2|"):  # "2|mask|masked token|timestamp" (Tornado's format, kept by Streamlit)
            _, mask_hex, masked_hex, _ = raw.split("|")
            mask, masked = binascii.a2b_hex(mask_hex), binascii.a2b_hex(masked_hex)
            token = bytes(b ^ mask[i % 4] for i, b in enumerate(masked))
        else:
            token = binascii.a2b_hex(raw)
    except (ValueError, binascii.Error, IndexError):
        return None
    return token if len(token) >= 16 else None


def owner() -> str:
    """Who owns the jobs this session starts and may open: the signed-in user (``st.login``: every session of
    that user), else this browser (its XSRF cookie: every tab and reload), else this session alone."""
    if signed_in():
        subject = st.user.get("sub") or st.user.get("email")
        if subject:
            ident = f"{st.user.get('iss') or ''}|{subject}".encode()
            return "user:" + hashlib.sha256(b"loupe-owner\0" + ident).hexdigest()[:32]
    token = _browser_token()
    if token is not None:
        return "browser:" + hashlib.sha256(b"loupe-owner\0" + token).hexdigest()[:32]
    if not st.session_state.get(state.OWNER):
        st.session_state[state.OWNER] = "session:" + secrets.token_urlsafe(16)
    return str(st.session_state[state.OWNER])
