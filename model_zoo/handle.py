"""``ModelHandle``: the one seam between Loupe and a sequence-classification model."""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from model_zoo.errors import EmptyTextError

# The open ``handle.meter()`` boxes, innermost last; a ContextVar so concurrent sessions (threads) count
# apart. A pass counts in every open meter, so nested meters add up.
_METERS: contextvars.ContextVar[tuple[list[int], ...]] = contextvars.ContextVar("loupe_meters", default=())


def is_quantized(model: torch.nn.Module) -> bool:
    """Whether ``model`` holds dynamic int8 Linear layers (they pass no gradients)."""
    return any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in model.modules())


@dataclass
class Encoded:
    """One text tokenized for the model, with the bookkeeping explainers need."""

    input_ids: torch.Tensor  # (1, seq)
    attention_mask: torch.Tensor  # (1, seq)
    tokens: list[str]
    offsets: list[tuple[int, int]]  # character spans into the original text; (0, 0) for specials
    special: list[bool]
    truncated: bool
    explained_chars: int  # the text up to here is what the model saw


@dataclass
class ModelHandle:
    """A loaded classifier in eval mode on its device, plus what explainers need to know.

    Build it with :func:`model_zoo.load`; never construct models elsewhere.
    """

    model: Any
    tokenizer: Any
    labels: dict[int, str]
    device: torch.device
    dtype: torch.dtype
    max_length: int
    info: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 64
    total_passes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # Held around every use of the model. The model is shared by all sessions, and Captum's layer methods
    # attach hooks to it for the length of an explanation: two at once would swap each other's inputs.
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def id(self) -> str:
        return str(self.info.get("id", "model"))

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    def label_name(self, index: int) -> str:
        return self.labels.get(int(index), str(index))

    # --- counting -----------------------------------------------------------------------------
    def count_pass(self, n: int = 1) -> None:
        """Record ``n`` forward (or forward+backward) passes."""
        with self._lock:
            self.total_passes += n
        for box in _METERS.get():
            box[0] += n

    @contextlib.contextmanager
    def meter(self) -> Iterator[list[int]]:
        """Count the passes made inside the block: ``with h.meter() as m: ...; m[0]``."""
        box = [0]
        token = _METERS.set((*_METERS.get(), box))
        try:
            yield box
        finally:
            _METERS.reset(token)

    # --- tokenization -------------------------------------------------------------------------
    def encode(self, text: str) -> Encoded:
        """Tokenize one text (truncated to ``max_length``) with offsets and a ``truncated`` flag."""
        if not text or not text.strip():
            raise EmptyTextError("The text is empty. Type or paste some text to explain.")
        enc = self.tokenizer(
            text,
            truncation=True,
            max_length=self.max_length,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
            return_overflowing_tokens=False,
        )
        ids = list(enc["input_ids"])
        special = [bool(s) for s in enc["special_tokens_mask"]]
        offsets = [(int(a), int(b)) if not s else (0, 0) for (a, b), s in zip(enc["offset_mapping"], special)]
        if not any(not s for s in special):
            raise EmptyTextError("The text has no tokens the model can read.")
        explained = max(b for (_, b), s in zip(offsets, special) if not s)
        n_full = len(self.tokenizer(text, truncation=False, add_special_tokens=True)["input_ids"])
        return Encoded(
            input_ids=torch.tensor([ids], device=self.device),
            attention_mask=torch.ones((1, len(ids)), dtype=torch.long, device=self.device),
            tokens=self.tokenizer.convert_ids_to_tokens(ids),
            offsets=offsets,
            special=special,
            truncated=n_full > len(ids),
            explained_chars=explained,
        )

    # --- the model --------------------------------------------------------------------------
    def forward_probs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                      inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """Softmax probabilities for a batch; keeps autograd so gradient explainers can use it.

        This is the batched gradient path; every call counts one pass.
        """
        with self.lock:
            return self._forward_probs(input_ids, attention_mask, inputs_embeds)

    def _forward_probs(self, input_ids: torch.Tensor | None, attention_mask: torch.Tensor | None,
                       inputs_embeds: torch.Tensor | None) -> torch.Tensor:
        self.count_pass()
        if inputs_embeds is not None:
            out = self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask)
        else:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        return torch.softmax(out.logits.float(), dim=-1)

    def predict_proba(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Class probabilities, shape ``(len(texts), num_labels)``, in input order.

        Texts are sorted by length and batched with dynamic padding under ``torch.inference_mode``;
        each batch counts one pass. Empty strings are allowed here (masking explainers make them).
        """
        texts = [str(t) for t in texts]
        out = np.zeros((len(texts), self.num_labels), dtype=np.float64)
        if not texts:
            return out
        bs = batch_size or self.batch_size
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with self.lock, torch.inference_mode():
            for start in range(0, len(order), bs):
                idx = order[start:start + bs]
                enc = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors="pt").to(self.device)
                self.count_pass()
                logits = self.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
                out[idx] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        return out

    def predict(self, text: str) -> np.ndarray:
        """Probabilities for one non-empty text."""
        if not text or not text.strip():
            raise EmptyTextError("The text is empty. Type or paste some text to explain.")
        return self.predict_proba([text])[0]

    def forward_attentions(self, input_ids: torch.Tensor,
                           attention_mask: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and attention weights ``(layers, batch, heads, seq, seq)`` in one pass.

        Needs a model loaded with ``attn_implementation="eager"``; SDPA returns no weights.
        """
        with self.lock, torch.inference_mode():
            self.count_pass()
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_attentions=True)
        if not out.attentions or out.attentions[0] is None:
            from model_zoo.errors import LoupeError

            raise LoupeError("This model returned no attention weights; load it with eager attention.")
        probs = torch.softmax(out.logits.float(), dim=-1).cpu().numpy()
        return probs, np.stack([a.float().cpu().numpy() for a in out.attentions])

    @property
    def is_quantized(self) -> bool:
        """Whether the model holds dynamic int8 Linear layers (they pass no gradients)."""
        return is_quantized(self.model)

    @property
    def attn_implementation(self) -> str:
        return str(getattr(self.model.config, "_attn_implementation", "eager"))
