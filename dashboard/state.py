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
PII_MODE = "loupe_pii"  # widget: Personal data: "off", "hide" (shown redacted) or "redact" (the model reads it so)
PII_STYLE = "loupe_pii_style"  # widget: how personal data is replaced: "placeholder", "mask" or "hash"
PII_CHECK = "loupe_pii_check"  # widget: show whether the decision depends on personal data
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
COMPARE_REQUEST = "loupe_cmp_request"  # (models, text, methods, pii mode, style) of the last comparison; redrawn
COMPARE_LINK_APPLIED = "loupe_cmp_qp"  # True once the opening permalink filled the page
COMPARE_LINK_NOTES = "loupe_cmp_notes"  # what the opening permalink asked for that was changed or left out
COMPARE_LINK_PENDING = "loupe_cmp_pending"  # why the opening permalink waits for the Compare button
COMPARE_AUTORUN = "loupe_cmp_run"  # True: the opening permalink may run at once (popped by that run)
COMPARE_PII_MODE = "loupe_cmp_pii"  # widget: Personal data mode (as PII_MODE)
COMPARE_PII_STYLE = "loupe_cmp_pii_style"  # widget: how personal data is replaced (as PII_STYLE)

# --- Fine-tune ----------------------------------------------------------------------------------------------
FT_SOURCE = "loupe_ft_source"  # widget: bundled Rotten Tomatoes or an uploaded CSV
FT_BASE = "loupe_ft_base"  # widget: the base model
FT_METHOD = "loupe_ft_method"  # widget: the fine-tuning method
FT_PANEL = "loupe_ft"  # prefix of the job panel's keys (see job_status below)
FT_PII_COLUMNS = "loupe_ft_pii_cols"  # widget: the columns of the upload to scan for personal data
FT_PII_SCAN = "loupe_ft_pii_scan"  # widget: the Scan for personal data button
FT_PII_REDACT = "loupe_ft_pii_redact"  # widget: redact personal data in the text column before training
FT_PII_STYLE = "loupe_ft_pii_style"  # widget: how it is replaced


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
ERR_SOURCE = "loupe_err_source"  # widget: analyse a bundled Rotten Tomatoes split or an uploaded CSV
ERR_UPLOAD = "loupe_err_upload"  # widget: the uploaded labelled CSV
ERR_TEXT_COLUMN = "loupe_err_text_col"  # widget: the uploaded file's text column
ERR_LABEL_COLUMN = "loupe_err_label_col"  # widget: the uploaded file's label column
ERR_GLOBAL_METHOD = "loupe_err_g_method"  # widget: the explainer of the global explanation ("" : the default)
ERR_GLOBAL_N = "loupe_err_g_n"  # widget: how many sentences the global explanation explains
ERR_GLOBAL_COMPARE = "loupe_err_g_compare"  # widget: a second model to compare with ("" : none)
ERR_GLOBAL_START = "loupe_err_g_start"  # widget: the button that starts the global-explanation job
ERR_GLOBAL_CLOSE = "loupe_err_g_close"  # widget: the button that closes the job shown (drops ?job=)
ERR_ENGINE = "loupe_err_engine"  # prefix of the engine picker's keys (engine, workers, ...)
ERR_PANEL = "loupe_err"  # prefix of the global-explanation job panel's keys


def err_word(model_index: int, cls: int) -> str:
    """Widget: the word whose example sentences are listed, for one model's report and one class."""
    return f"loupe_err_word_{model_index}_{cls}"


# --- Continual fine-tuning -----------------------------------------------------------------------------------
CL_PANEL = "loupe_cl"  # prefix of the job panel's keys
CL_BASE = "loupe_cl_base"  # widget: the model the run starts from
CL_METHOD = "loupe_cl_method"  # widget: full fine-tuning or LoRA
CL_SCENARIO = "loupe_cl_scenario"  # widget: class- or task-incremental
CL_SOURCE = "loupe_cl_source"  # widget: a bundled sequence or uploaded CSVs
CL_SEQUENCE = "loupe_cl_sequence"  # widget: the bundled sequence
CL_UPLOADS = "loupe_cl_uploads"  # widget: the uploaded CSV files (one task each, in order)
CL_STRATEGIES = "loupe_cl_strategies"  # widget: the strategies compared
CL_SETTINGS = "loupe_cl_run"  # prefix of the run's settings widgets (limit, replay, EWC...: ContinualConfig's)
CL_TRAIN = "loupe_cl_train"  # prefix of the per-task training settings widgets (epochs, learning rate...)
CL_DRIFT = "loupe_cl_drift"  # prefix of the explanation-drift settings widgets (DriftConfig's)
CL_NAME = "loupe_cl_name"  # widget: the name the final models are saved under by default
CL_VIEW_STRATEGY = "loupe_cl_view_strategy"  # widget: the strategy whose changed words and sentences are shown
CL_VIEW_STEP = "loupe_cl_view_step"  # widget: the step whose changed words are shown
CL_VIEW_SENTENCE = "loupe_cl_view_sentence"  # widget: the sentence shown before and after


def cl_method_prefix(method: str) -> str:
    """The key prefix of a method's settings widgets on the Continual page."""
    return f"loupe_cl_m.{method}"


def cl_column(index: int, which: str) -> str:
    """Widget: the text or label column (``which``) of the ``index``-th uploaded task."""
    return f"loupe_cl_col_{which}_{index}"


def cl_save_name(job_id: str, strategy: str) -> str:
    """Widget: the store id a strategy's final model is saved under."""
    return f"loupe_cl_save_name_{job_id}_{strategy}"


def cl_save(job_id: str, strategy: str) -> str:
    """Widget: the Save to the store button of a strategy's final model."""
    return f"loupe_cl_save_{job_id}_{strategy}"


def cl_saved(job_id: str, strategy: str) -> str:
    """The store id a strategy's final model was saved as in this session."""
    return f"loupe_cl_saved_{job_id}_{strategy}"


def cl_explain(job_id: str, strategy: str) -> str:
    """Widget: the Explain it button of a saved final model."""
    return f"loupe_cl_explain_{job_id}_{strategy}"


# --- personal data: this session's memory (services.privacy, services.explaining) ----------------------------
PII_FOUND = "loupe_pii_found"  # fingerprint of a text -> its personal data (spans), the last 16 texts
PII_SALT = "loupe_pii_salt"  # the salt of this session's hash-style pseudonyms (random bytes)
PII_SCANS = "loupe_pii_scans"  # (file digest, columns) -> ScanResult (counts and masked examples only)
PRIVATE_RESULTS = "loupe_private_results"  # hide mode: explanations of original texts, kept out of shared caches


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


# --- Fine-tune: private training (components.private_training) ------------------------------------------------
FT_PRIVACY = "loupe_ft_privacy"  # widget: Privacy: "none", "dp" or "federated"
FT_DP = "loupe_ft_dp"  # prefix of the DP-SGD settings widgets: f"{FT_DP}.<setting>"
FT_FED = "loupe_ft_fed"  # prefix of the federated settings widgets: f"{FT_FED}.<setting>"
FT_FED_DP = "loupe_ft_fed_dp"  # widget: DP-SGD on every federated client


# --- Prompt playground (app_pages/prompts.py, services.prompting) ---------------------------------------------
PR_BASE = "loupe_pr_base"  # widget: the base language model (a bundled id, or OTHER_LM)
PR_BASE_PATH = "loupe_pr_base_path"  # widget: a folder or .gguf file, when the base is another language model
PR_INSTRUCTION = "loupe_pr_instruction"  # widget: the instruction
PR_PATTERN = "loupe_pr_pattern"  # widget: the pattern with {text} and {label}
PR_CHAT = "loupe_pr_chat"  # widget: put the prompt in the language model's chat template
PR_CALIBRATE = "loupe_pr_calibrate"  # widget: contextual calibration on
PR_WORDS = "loupe_pr_words"  # widget: the label words, one "label: word, word" line per label
PR_PICKED = "loupe_pr_picked"  # widget: demonstrations picked from the training split (their option strings)
PR_TYPED = "loupe_pr_typed"  # widget: typed demonstrations, one "label: text" line each
PR_FROM = "loupe_pr_from"  # the prompt classifier (sidebar model id) whose prompt last filled the form
PR_HANDLE = "loupe_pr_handle"  # (key, handle): this session's prompt classifier as edited (never in a shared cache)
PR_TEXT = "loupe_pr_text"  # widget: the text to try
PR_METHODS = "loupe_pr_methods"  # widget: the explainers to run
PR_WHOLE = "loupe_pr_whole"  # widget: attribute the whole prompt (instruction and demonstrations too)
PR_RESULTS = "loupe_pr_results"  # the last explanation: (handle key, text, whole, results...)
PR_N = "loupe_pr_n"  # widget: how many validation sentences to evaluate on
PR_SCORES = "loupe_pr_scores"  # (handle key, PromptScores) of the last evaluation
PR_NAME = "loupe_pr_name"  # widget: the store id to save the prompt classifier as
PR_SAVED = "loupe_pr_saved"  # the store id saved in this session
PR_USE = "loupe_pr_use"  # widget: the Explain with this model button of a saved prompt classifier
PR_CONFIG_PREFIX = "loupe_pr_cfg"  # explainer settings widgets: f"{PR_CONFIG_PREFIX}.<explainer>.<field>"
