"""What pages call: every cached call and every call into explainers/model_zoo that does work or touches disk.

Split by job: :mod:`.models` (which model, loading it, the store), :mod:`.explaining` (explanations and their
quality checks, the work queue), :mod:`.links` (permalinks), :mod:`.session` (who is using the app),
:mod:`.jobs` (background jobs; imports the modules that register the job kinds), :mod:`.privacy` (the Personal
data setting, dataset scans), :mod:`.finetuning`,
:mod:`.compression` and :mod:`.errors` (error analysis, calibration). A page imports this package
(``from dashboard import services``) and calls the names below.
"""

from dashboard.services.compression import (
    device_type,
    save_variant,
    start_compression,
    variant_kinds,
    variant_settings,
)
from dashboard.services.errors import (
    ERROR_SPLITS,
    FIT_SPLIT,
    CalibrationView,
    analyse,
    calibration_view,
    error_examples,
    error_slices,
    explain_link,
    rt_labels_ok,
    save_temperature,
    split_title,
)
from dashboard.services.explaining import (
    WORK,
    ExplainRequest,
    Notify,
    all_methods,
    check_text,
    claims_faithfulness,
    config_class,
    default_methods,
    description,
    drift_between,
    example_sentences,
    faithfulness,
    method_choices,
    predict,
    report_png,
    run_one,
    sanity,
    supports,
    text_limit,
)
from dashboard.services.finetuning import (
    BASE_ENCODER_ID,
    MAX_UPLOAD_MB,
    Files,
    Splits,
    TrainConfig,
    has_settings,
    load_splits,
    method_config_class,
    method_summary,
    method_titles,
    preview,
    read_csv,
    save_model,
    start_finetune,
    thin_classes,
    train_defaults,
    trainable_parameters,
)
from dashboard.services.jobs import (
    ACTIVE,
    JobError,
    JobKindError,
    cancel,
    failure_message,
    job_config,
    job_log,
    job_metrics,
    job_result,
    job_status,
    open_job,
    recent_jobs,
    resumable,
    resume,
    start_evaluation,
)
from dashboard.services.links import Link, autorun_blocker, changed_configs, link_message, permalink, read_link
from dashboard.services.models import (
    check_model,
    default_model,
    device_name,
    folder_picker_allowed,
    get_handle,
    hosted,
    in_store,
    max_name_chars,
    model_key,
    read_card,
    shown_card,
    shown_error,
    store_folder,
    store_models,
)
from dashboard.services.privacy import MODES as PII_MODES
from dashboard.services.privacy import PiiView, pii_status, pii_view, scan_upload, scanned
from dashboard.services.privacy import default_mode as pii_default_mode
from dashboard.services.privacy import link_mode as pii_link_mode
from dashboard.services.session import login_configured, owner, signed_in

__all__ = [
    # models
    "check_model", "default_model", "device_name", "folder_picker_allowed", "get_handle", "hosted", "in_store",
    "max_name_chars", "model_key", "read_card", "shown_card", "shown_error", "store_folder",
    "store_models",
    # explaining
    "WORK", "ExplainRequest", "Notify", "all_methods", "check_text", "claims_faithfulness", "config_class",
    "default_methods", "description", "drift_between", "example_sentences", "faithfulness", "method_choices", "predict",
    "report_png", "run_one", "sanity", "supports", "text_limit",
    # error analysis
    "ERROR_SPLITS", "FIT_SPLIT", "CalibrationView", "analyse", "calibration_view", "error_examples", "error_slices",
    "explain_link", "rt_labels_ok", "save_temperature", "split_title",
    # links
    "Link", "autorun_blocker", "changed_configs", "link_message", "permalink", "read_link",
    # personal data
    "PII_MODES", "PiiView", "pii_default_mode", "pii_link_mode", "pii_status", "pii_view", "scan_upload", "scanned",
    # session
    "login_configured", "owner", "signed_in",
    # jobs
    "ACTIVE", "JobError", "JobKindError", "cancel", "failure_message", "job_config", "job_log", "job_metrics",
    "job_result", "job_status", "open_job", "recent_jobs", "resumable", "resume", "start_evaluation",
    # fine-tuning
    "BASE_ENCODER_ID", "Files", "Splits", "TrainConfig", "load_splits", "has_settings", "method_config_class",
    "method_summary", "MAX_UPLOAD_MB",
    "method_titles", "preview", "read_csv", "save_model", "start_finetune", "thin_classes", "train_defaults",
    "trainable_parameters",
    # compression
    "device_type", "save_variant", "start_compression", "variant_kinds", "variant_settings",
]
