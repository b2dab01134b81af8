"""The default model ``rt-sentiment-minilm``: the bundled MiniLM encoder fine-tuned on Rotten Tomatoes.

It is built by the fine-tuning job (full fine-tuning of ``minilm-base``, :data:`DEFAULT_RECIPE`'s settings),
run in this process like ``python -m model_zoo finetune``; its card is the job's card. With these settings
it reached 0.849-0.86 test accuracy.
"""

from __future__ import annotations

from pathlib import Path

from model_zoo import DEFAULT_MODEL_ID, jobs, spec, store
from model_zoo.errors import LoupeError
from model_zoo.finetune import DataSpec, FinetuneConfig, run_here
from model_zoo.loading import BASE_ENCODER_ID
from model_zoo.training import TrainConfig

DEFAULT_RECIPE = TrainConfig()  # 1 epoch, batch 32, lr 1e-4, warm-up 6%, weight decay 0.01; no checkpoints


def prepare(model_id: str = DEFAULT_MODEL_ID, force: bool = False, cfg: TrainConfig | None = None,
            train_limit: int = 0, quiet: bool = False) -> Path:
    """Build the default model into the store unless it is already there (idempotent, atomic).

    Args:
        model_id: store id to write.
        force: rebuild even if it exists.
        cfg: training hyper-parameters (default: :data:`DEFAULT_RECIPE`).
        train_limit: train on a seeded sample of N training texts (0: all; for quick tests).
        quiet: no progress bar.

    Returns:
        The model's folder in the store.

    Raises:
        LoupeError: the build failed (the message says why; the job folder keeps its log).
    """
    existing = store.model_path(model_id)
    if existing is not None and (existing / store.CARD).exists() and not force:
        return existing
    run = FinetuneConfig(base=BASE_ENCODER_ID, method="full", name=model_id, data=DataSpec("rt", limit=train_limit),
                         train=spec.to_dict(cfg or DEFAULT_RECIPE), overwrite=True, progress_bar=not quiet)
    job_id, status = run_here(run)
    result = jobs.result(job_id) or {}
    if status.get("state") != "done" or not result.get("published"):
        raise LoupeError(f"Building {model_id} failed: {status.get('message') or result.get('note')} "
                         f"(log: {jobs.job_dir(job_id) / 'log.txt'}).")
    return Path(result["path"])
