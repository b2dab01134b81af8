"""Every session-state key of the dashboard, in one place, each with what it holds.

A key belongs to one page (or component) and only that page writes it, except the documented hand-offs at
the end (:func:`use_model`, :func:`ask_compare`): a button on one page choosing what another page opens with.
Widget keys are session keys too (Streamlit keeps a keyed widget's value under its key), so they are here.
Cached calls live in :mod:`dashboard.services`; nothing here computes anything.
"""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

# --- the model in use (sidebar) -----------------------------------------------------------------------------
MODEL = "loupe_model"  # the id/path of the model in use (sidebar; hand-off target of use_model)
MODEL_OK = "loupe_model_ok"  # the last model that loaded; kept when a new choice fails
MODEL_ERROR = "loupe_model_error"  # message of the last failed load (the previous model stays)
MODEL_PATH = "loupe_model_path"  # widget: the folder typed under "Load a folder"
MODEL_FROM_LINK = "loupe_model_qp"  # the ?model= value already applied, so a later pick in the sidebar wins
OWNER = "loupe_owner"  # this session's owner token, when there is neither a login nor a browser cookie
LOGOUT = "loupe_logout"  # widget: the Log out button


def login_button(provider: str | None) -> str:
    """Widget: the sign-in button for ``provider`` (None: the one provider of ``[auth]``)."""
    return f"loupe_login_{provider or 'default'}"


# --- Explain ------------------------------------------------------------------------------------------------
TEXT = "loupe_text"  # widget: the text to explain (read by Compare as its first default text)
METHODS = "loupe_methods"  # widget: the chosen explainers (names)
TARGET = "loupe_target"  # widget: the class to explain (None: the predicted one)
LAYOUT = "loupe_layout"  # widget: "grid" or "stacked"
GRANULARITY = "loupe_granularity"  # widget: "words" or "subwords"
SANITY = "loupe_sanity"  # widget: run the model-randomisation check after the results
RESULTS = "loupe_results"  # the last explanation request (services.ExplainRequest); redrawn on every rerun
LINK_APPLIED = "loupe_qp_applied"  # True once this session's opening permalink filled the page
LINK_NOTES = "loupe_link_notes"  # what the opening permalink asked for that was changed or left out
LINK_PENDING = "loupe_link_pending"  # a permalink filled the page; why nothing runs until Explain is pressed
AUTORUN = "loupe_autorun"  # True: the opening permalink may run at once (popped by the run it starts)
PNG = "loupe_png"  # bytes of the last PNG report, offered for download
CONFIG_PREFIX = "loupe_cfg"  # explainer settings widgets: f"{CONFIG_PREFIX}.<explainer>.<field>"


def config_prefix(method: str) -> str:
    """The key prefix of one explainer's settings widgets (:func:`config_widgets`; a permalink fills them)."""
    return f"{CONFIG_PREFIX}.{method}"


def example_button(i: int) -> str:
    """Widget: the ``i``-th example sentence button."""
    return f"loupe_ex{i}"


def attention_token(method: str) -> str:
    """Widget: the token picked in an attention card's layer × head view."""
    return f"loupe_head_tok_{method}"


# --- Compare models -----------------------------------------------------------------------------------------
COMPARE_MODELS = "loupe_cmp_models"  # widget: the models to compare, reference first (hand-off: ask_compare)
COMPARE_TEXT = "loupe_cmp_text"  # widget: the text
COMPARE_METHODS = "loupe_cmp_methods"  # widget: the explainers
COMPARE_REQUEST = "loupe_cmp_request"  # (models, text, methods) of the last comparison; redrawn on reruns
COMPARE_LINK_APPLIED = "loupe_cmp_qp"  # True once the opening permalink filled the page
COMPARE_LINK_NOTES = "loupe_cmp_notes"  # what the opening permalink asked for that was changed or left out
COMPARE_LINK_PENDING = "loupe_cmp_pending"  # why the opening permalink waits for the Compare button
COMPARE_AUTORUN = "loupe_cmp_run"  # True: the opening permalink may run at once (popped by that run)

# --- Fine-tune ----------------------------------------------------------------------------------------------
FT_SOURCE = "loupe_ft_source"  # widget: bundled Rotten Tomatoes or an uploaded CSV
FT_BASE = "loupe_ft_base"  # widget: the base model
FT_METHOD = "loupe_ft_method"  # widget: the fine-tuning method
FT_PANEL = "loupe_ft"  # prefix of the job panel's keys (see job_status below)


def ft_method_prefix(method: str) -> str:
    """The key prefix of a fine-tuning method's settings widgets."""
    return f"loupe_ft_m.{method}"


def ft_train_prefix(method: str) -> str:
    """The key prefix of the training hyper-parameter widgets (per method: their defaults differ)."""
    return f"loupe_ft_t.{method}"


def ft_name(job_id: str) -> str:
    """Widget: the name a finished job's model is saved under."""
    return f"loupe_ft_name_{job_id}"


def ft_save(job_id: str) -> str:
    """Widget: the Save to the store button of a finished job."""
    return f"loupe_ft_save_{job_id}"


def ft_saved(job_id: str) -> str:
    """The store id a finished job's model was saved as in this session."""
    return f"loupe_ft_saved_{job_id}"


def ft_explain(job_id: str) -> str:
    """Widget: the Explain it button of a saved model."""
    return f"loupe_ft_explain_{job_id}"


def ft_compare(job_id: str) -> str:
    """Widget: the Compare with its base button of a saved model."""
    return f"loupe_ft_cmp_{job_id}"


# --- Compress -----------------------------------------------------------------------------------------------
CX_MODEL = "loupe_cx_model"  # widget: the model to compress
CX_SENTENCE = "loupe_cx_sentence"  # widget: the sentence shown in the results viewer
CX_VARIANT = "loupe_cx_variant"  # widget: the variant shown in the results viewer
CX_METHOD = "loupe_cx_method"  # widget: the explainer shown in the results viewer
CX_SAVE_VARIANT = "loupe_cx_save_variant"  # widget: the variant to save to the store
CX_SAVED = "loupe_cx_saved"  # the store id of the last variant saved in this session
CX_PANEL = "loupe_cx"  # prefix of the job panel's keys
CX_SETTINGS = "loupe_cx_run"  # prefix of the comparison's own settings widgets (n_eval, n_drift)


def cx_kind_on(kind: str) -> str:
    """Widget: whether variants of ``kind`` are made."""
    return f"loupe_cx_on_{kind}"


def cx_setting(kind: str, name: str) -> str:
    """Widget: one setting of a kind of variant (for a swept setting, e.g. pruning's sparsity, its values)."""
    return f"loupe_cx_{kind}_{name}"


def cx_save_name(variant: str) -> str:
    """Widget: the store id a variant is saved under."""
    return f"loupe_cx_save_name_{variant}"


# --- Evaluate explainers and Models -------------------------------------------------------------------------
EVAL_PANEL = "loupe_eval"  # prefix of the job panel's keys
EVAL_ENGINE = "loupe_eval_engine"  # prefix of the engine picker's keys (engine, workers, ...)
CX_ENGINE = "loupe_cx_engine"  # the Compress page's engine picker


def eval_open(job_id: str) -> str:
    """Widget: the button that opens one of this person's recent evaluations."""
    return f"loupe_eval_{job_id}"


def models_use(model_id: str) -> str:
    """Widget: the Explain with this model button on the Models page."""
    return f"loupe_use_{model_id}"


# --- Error analysis -----------------------------------------------------------------------------------------
ERR_SPLIT = "loupe_err_split"  # widget: the Rotten Tomatoes split analysed ("test" or "validation")
ERR_KEYWORD = "loupe_err_keyword"  # widget: the keyword or regular expression that makes the keyword slice
ERR_REGEX = "loupe_err_regex"  # widget: True: the keyword is a regular expression
ERR_SLICE = "loupe_err_slice"  # widget: the slice whose examples are listed ("" : all texts)
ERR_TRUE = "loupe_err_true"  # widget: the true classes whose examples are listed
ERR_PRED = "loupe_err_pred"  # widget: the predicted classes whose examples are listed
ERR_SAVE = "loupe_err_save"  # widget: the Save temperature to the model card button
ERR_SAVED = "loupe_err_saved"  # (model id, temperature) last saved to a card in this session, to say so


# --- a job panel (components.jobs), one per page, keyed by the page's panel prefix ---------------------------
def job_status(panel: str) -> str:
    """The job's status as the panel last read it (a dict; the page reads it after the panel)."""
    return f"{panel}_status"


def job_seen_active(panel: str, job_id: str) -> str:
    """True while the panel has seen the job queued or running (it redraws the page once when it ends)."""
    return f"{panel}_seen_active_{job_id}"


def job_failed(panel: str, job_id: str) -> str:
    """Why the panel stopped following the job (its files could not be read); shown instead of polling."""
    return f"{panel}_failed_{job_id}"


def job_cancel(panel: str, job_id: str) -> str:
    """Widget: the Cancel button."""
    return f"{panel}_cancel_{job_id}"


def job_resume(panel: str, job_id: str) -> str:
    """Widget: the Resume button."""
    return f"{panel}_resume_{job_id}"


# --- hand-offs: a page choosing what another page opens with --------------------------------------------------
def use_model(model_id: str) -> None:
    """Make ``model_id`` the model in use (the sidebar loads it on the next page); "Explain it" buttons."""
    st.session_state[MODEL] = model_id


def ask_compare(models: Sequence[str]) -> None:
    """Open Compare with these models chosen (Fine-tune's "Compare with its base")."""
    st.session_state[COMPARE_MODELS] = list(models)
