"""The training loop: the fine-tuning job (which also builds the default model) and distillation use it.

It is transformers' ``Trainer`` with length bucketing (``group_by_length``), dynamic padding
(``DataCollatorWithPadding``), a linear schedule with warm-up, scikit-learn metrics, and callbacks for
progress, checkpointing and early stopping; transformers' own ``ProgressCallback`` draws the terminal
progress bar when one is asked for.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model_zoo.data import TextDataset
from model_zoo.spec import setting


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run (defaults: the ``rt-sentiment-minilm`` recipe)."""

    epochs: float = setting(1.0, "Passes over the training data", min=0.1, max=20.0)
    batch_size: int = setting(32, "Examples per step", min=1, max=256)
    learning_rate: float = setting(1e-4, "Peak learning rate", min=1e-6, max=1.0)
    warmup_ratio: float = setting(0.06, "Fraction of steps to warm up", min=0.0, max=0.5)
    weight_decay: float = setting(0.01, "AdamW weight decay", min=0.0, max=0.5)
    max_length: int = setting(128, "Tokens per text (longer texts are cut)", min=8, max=512)
    seed: int = setting(13, "Random seed", min=0, max=2**31 - 1)
    eval_steps: int = setting(0, "Evaluate every N steps (0: at the end only)", min=0, max=100000)
    early_stopping_patience: int = setting(0, "Stop after N evaluations without gain (0: off)", min=0, max=100)
    save_steps: int = setting(0, "Checkpoint every N steps (0: no checkpoints)", min=0, max=100000)

    def __post_init__(self) -> None:
        if self.early_stopping_patience and not self.eval_steps:
            raise ValueError("Early stopping needs evaluation every N steps (eval_steps > 0).")
        if self.epochs <= 0 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ValueError("epochs, batch_size and learning_rate must be positive.")


class _Encoded(torch.utils.data.Dataset):
    """Tokenized once up front, unpadded; the collator pads each batch to its longest text."""

    def __init__(self, ds: TextDataset, tokenizer: Any, max_length: int) -> None:
        enc = tokenizer(ds.texts, truncation=True, max_length=max_length)
        self.rows = [{"input_ids": ids, "attention_mask": am, "labels": y}
                     for ids, am, y in zip(enc["input_ids"], enc["attention_mask"], ds.labels)]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.rows[i]


def classification_metrics(labels: np.ndarray, preds: np.ndarray, n_classes: int | None = None) -> dict[str, Any]:
    """Accuracy, macro F1 and the confusion matrix (scikit-learn)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    classes = list(range(n_classes)) if n_classes else None
    return {
        "accuracy": float(accuracy_score(labels, preds)),
        "f1_macro": float(f1_score(labels, preds, average="macro", labels=classes, zero_division=0)),
        "confusion_matrix": confusion_matrix(labels, preds, labels=classes).tolist(),
    }


def _compute_metrics(pred: Any) -> dict[str, float]:
    logits = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
    m = classification_metrics(pred.label_ids, np.argmax(logits, axis=-1))
    return {"accuracy": m["accuracy"], "f1": m["f1_macro"]}


def make_trainer(model: Any, tokenizer: Any, train: TextDataset, validation: TextDataset | None,
                 cfg: TrainConfig, output_dir: Path, callbacks: list[Any] | None = None,
                 progress_bar: bool = False, trainer_cls: type | None = None, **trainer_kwargs: Any) -> Any:
    """A configured ``transformers.Trainer`` for sequence classification.

    With ``progress_bar``, transformers' ``ProgressCallback`` draws a terminal bar (log records written above
    it); without, nothing is printed (its ``PrinterCallback`` is removed). ``trainer_cls`` is a ``Trainer``
    subclass to use instead (e.g. one with its own ``compute_loss``), given ``trainer_kwargs`` as well.
    """
    from transformers import (
        DataCollatorWithPadding,
        EarlyStoppingCallback,
        PrinterCallback,
        Trainer,
        TrainingArguments,
    )

    cuda = torch.cuda.is_available()
    evaluating = validation is not None and cfg.eval_steps > 0
    args = TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=max(64, cfg.batch_size),
        learning_rate=cfg.learning_rate,
        warmup_steps=cfg.warmup_ratio,  # a float below 1 is a ratio of the total steps
        weight_decay=cfg.weight_decay,
        lr_scheduler_type="linear",
        train_sampling_strategy="group_by_length",
        seed=cfg.seed,
        data_seed=cfg.seed,
        eval_strategy="steps" if evaluating else "no",
        eval_steps=cfg.eval_steps or None,
        save_strategy="steps" if cfg.save_steps else "no",
        save_steps=cfg.save_steps or 500,
        save_total_limit=2,
        load_best_model_at_end=bool(cfg.early_stopping_patience),
        metric_for_best_model="accuracy" if cfg.early_stopping_patience else None,
        logging_steps=10,
        report_to=[],
        bf16=cuda and torch.cuda.is_bf16_supported(),
        fp16=cuda and not torch.cuda.is_bf16_supported(),
        use_cpu=not cuda,
        dataloader_num_workers=0,
        disable_tqdm=not progress_bar,
    )
    cbs = list(callbacks or [])
    if cfg.early_stopping_patience:
        cbs.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience))
    trainer = (trainer_cls or Trainer)(
        model=model,
        args=args,
        train_dataset=_Encoded(train, tokenizer, cfg.max_length),
        eval_dataset=_Encoded(validation, tokenizer, cfg.max_length) if validation is not None else None,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=_compute_metrics,
        callbacks=cbs,
        **trainer_kwargs,
    )
    if not progress_bar:
        trainer.remove_callback(PrinterCallback)  # progress goes to the callbacks, not raw dicts on stdout
    return trainer


def train(model: Any, tokenizer: Any, train_ds: TextDataset, validation: TextDataset | None, cfg: TrainConfig,
          output_dir: Path, callbacks: list[Any] | None = None) -> dict[str, Any]:
    """Train ``model`` in place. Returns ``{"seconds", "steps", "train_loss", "log_history"}``."""
    trainer = make_trainer(model, tokenizer, train_ds, validation, cfg, output_dir, callbacks)
    start = time.perf_counter()
    result = trainer.train()
    return {
        "seconds": round(time.perf_counter() - start, 1),
        "steps": int(result.global_step),
        "train_loss": float(result.training_loss),
        "log_history": trainer.state.log_history,
        "config": asdict(cfg),
    }
