"""``ModelHandle``: the one seam between Loupe and a sequence-classification model."""

from __future__ import annotations

import contextlib
import contextvars
import copy
import threading
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from model_zoo import onnx_forward
from model_zoo.concurrency import ModelGate, Notify, gate_for
from model_zoo.errors import EmptyTextError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass(frozen=True)
class PassShape:
    """The shape of one counted model pass: what it would cost to repeat it bare."""

    batch: int  # texts in the batch
    seq_len: int  # tokens per text, padding included
    grad: bool  # autograd was on (the caller may backpropagate through it)
    onnx: bool = False  # ran on ONNX Runtime (model_zoo.onnx_forward), not PyTorch


class Meter(list[int]):
    """What ``handle.meter()`` yields: ``m[0]`` is the pass count (a one-element list, as callers have always
    read it) and ``m.shapes`` the :class:`PassShape` of each pass, in order."""

    def __init__(self) -> None:
        super().__init__([0])
        self.shapes: list[PassShape] = []

    @property
    def total(self) -> int:
        return self[0]


# The open meters, innermost last; a ContextVar so concurrent sessions (threads) count apart. A pass counts
# in every open meter, so nested meters add up.
_METERS: contextvars.ContextVar[tuple[Meter, ...]] = contextvars.ContextVar("loupe_meters", default=())
# The predictions of the open ``remember()`` block: model object id -> text -> probabilities.
_MEMO: contextvars.ContextVar[dict[int, dict[str, np.ndarray]] | None] = contextvars.ContextVar("loupe_memo",
                                                                                                 default=None)


# Texts in one predict_proba call from which the ONNX Runtime forward pass is prepared (perturbation explainers,
# metrics, evaluations; not a page's single prediction or a training loop's model).
FAST_FORWARD_MIN_TEXTS = 16

# Per model object: is_quantized(model), as ModelHandle.is_quantized last found it.
_QUANTIZED: weakref.WeakKeyDictionary[torch.nn.Module, bool] = weakref.WeakKeyDictionary()


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

    model: PreTrainedModel  # a peft PeftModel for prompt-tuned models (same calling interface)
    tokenizer: PreTrainedTokenizerBase
    labels: dict[int, str]
    device: torch.device
    dtype: torch.dtype
    max_length: int
    info: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 64
    # Temperature scaling saved on the model's card (model_zoo.calibration): every probability the handle gives
    # is softmax(logits / temperature). 1.0: the model's own.
    temperature: float = 1.0
    total_passes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # Held with exclusive use of the model (see use()): Captum's layer methods attach hooks to the shared model
    # for the length of an explanation. Code that copies the model holds it too, so no hook is copied along.
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    # A fast tokenizer is not safe to call from two threads at once (it changes its truncation and padding
    # settings in place; tokenizers issue 537): the handle's own calls take this lock, and an explainer that
    # hands the tokenizer to a library borrows a private copy (private_tokenizer()).
    _tokenizer_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _tokenizer_pool: list[Any] = field(default_factory=list, repr=False)

    @property
    def id(self) -> str:
        return str(self.info.get("id", "model"))

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    def label_name(self, index: int) -> str:
        return self.labels.get(int(index), str(index))

    @property
    def label_names(self) -> list[str]:
        """The class names in class-id order."""
        return [self.label_name(i) for i in range(self.num_labels)]

    # --- counting -----------------------------------------------------------------------------
    def count_pass(self, n: int = 1, shape: PassShape | None = None) -> None:
        """Record ``n`` forward (or forward+backward) passes, each of ``shape`` when given.

        Passes counted without a shape raise ``m[0]`` but add nothing to ``m.shapes``.
        """
        with self._lock:
            self.total_passes += n
        for meter in _METERS.get():
            meter[0] += n
            if shape is not None:
                meter.shapes.extend([shape] * n)

    def _count(self, input_shape: Sequence[int], onnx: bool = False) -> None:
        """Count one pass over a ``(batch, seq, ...)`` input; autograd state as the model will see it."""
        self.count_pass(shape=PassShape(int(input_shape[0]), int(input_shape[1]), torch.is_grad_enabled(), onnx))

    @contextlib.contextmanager
    def meter(self) -> Iterator[Meter]:
        """Count the passes made inside the block: ``with h.meter() as m: ...; m[0], m.shapes``."""
        meter = Meter()
        token = _METERS.set((*_METERS.get(), meter))
        try:
            yield meter
        finally:
            _METERS.reset(token)

    # --- sharing the model between sessions -----------------------------------------------------
    @property
    def gate(self) -> ModelGate:
        """The model's readers-writer gate (one per model object, shared by handles of the same model)."""
        return gate_for(self.model)

    @contextlib.contextmanager
    def use(self, exclusive: bool = False, label: str = "", on_wait: Notify | None = None) -> Iterator[None]:
        """Hold the model for the block: *shared* for plain forward passes (any number of sessions at once),
        *exclusive* to attach hooks to it (Captum's layer methods), which waits for the running passes and keeps
        everyone else out. Re-entrant; ``on_wait(message)`` is called while the block waits for its turn.
        """
        with self.gate.use(exclusive, label, on_wait):
            if not exclusive:
                yield
                return
            with self.lock:
                yield

    @contextlib.contextmanager
    def private_tokenizer(self) -> Iterator[Any]:
        """A copy of the tokenizer that no other thread uses while the block runs (borrowed from a pool)."""
        with self._tokenizer_lock:
            tokenizer = self._tokenizer_pool.pop() if self._tokenizer_pool else None
            if tokenizer is None:
                tokenizer = copy.deepcopy(self.tokenizer)
        try:
            yield tokenizer
        finally:
            with self._tokenizer_lock:
                self._tokenizer_pool.append(tokenizer)

    # --- tokenization -------------------------------------------------------------------------
    def encode(self, text: str, max_tokens: int | None = None) -> Encoded:
        """Tokenize one text (truncated to ``max_length``, or to ``max_tokens`` when smaller) with offsets and a
        ``truncated`` flag."""
        if not text or not text.strip():
            raise EmptyTextError("The text is empty. Type or paste some text to explain.")
        limit = self.max_length if max_tokens is None else max(2, min(self.max_length, int(max_tokens)))
        # Shared use too: a hook-based explainer reads the tokenizer (baseline ids) while it holds the model.
        with self.use(), self._tokenizer_lock:
            enc = self.tokenizer(
                text,
                truncation=True,
                max_length=limit,
                return_offsets_mapping=True,
                return_special_tokens_mask=True,
                return_overflowing_tokens=False,
            )
            # Fewer tokens than the limit: nothing was cut. Only a text that fills it is tokenized again, whole.
            n_full = (len(enc["input_ids"]) if len(enc["input_ids"]) < limit else
                      len(self.tokenizer(text, truncation=False, add_special_tokens=True)["input_ids"]))
            tokens = self.tokenizer.convert_ids_to_tokens(list(enc["input_ids"]))
        ids = list(enc["input_ids"])
        special = [bool(s) for s in enc["special_tokens_mask"]]
        offsets = [(int(a), int(b)) if not s else (0, 0) for (a, b), s in zip(enc["offset_mapping"], special)]
        if not any(not s for s in special):
            raise EmptyTextError("The text has no tokens the model can read.")
        explained = max(b for (_, b), s in zip(offsets, special) if not s)
        return Encoded(
            input_ids=torch.tensor([ids], device=self.device),
            attention_mask=torch.ones((1, len(ids)), dtype=torch.long, device=self.device),
            tokens=[tokens] if isinstance(tokens, str) else list(tokens),
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
        with self.use():
            return self._forward_probs(input_ids, attention_mask, inputs_embeds)

    def _forward_probs(self, input_ids: torch.Tensor | None, attention_mask: torch.Tensor | None,
                       inputs_embeds: torch.Tensor | None) -> torch.Tensor:
        inputs = inputs_embeds if inputs_embeds is not None else input_ids
        if inputs is None:
            raise ValueError("forward_probs needs input_ids or inputs_embeds.")
        # No gradient wanted (Feature Ablation's passes, IG's prediction pass): ONNX Runtime when it is ready.
        fast = onnx_forward.session_for(self.model) if inputs_embeds is None and not torch.is_grad_enabled() else None
        self._count(inputs.shape, onnx=fast is not None)
        if fast is not None and input_ids is not None:
            mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
            logits = fast.logits(input_ids, mask).to(self.device)
        elif inputs_embeds is not None:
            logits = self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask).logits
        else:
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        return torch.softmax(logits.float() / self.temperature, dim=-1)

    def predict_proba(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Class probabilities, shape ``(len(texts), num_labels)``, in input order.

        Distinct texts are sorted by length and batched with dynamic padding under ``torch.inference_mode``;
        each batch counts one pass; a text repeated in ``texts``, or already scored inside a :meth:`remember`
        block, costs nothing more. Empty strings are allowed here (masking explainers make them).
        """
        texts = [str(t) for t in texts]
        memo = _MEMO.get()
        known = memo.setdefault(id(self.model), {}) if memo is not None else {}
        todo = list(dict.fromkeys(t for t in texts if t not in known))  # each distinct text once
        if todo:
            for text, row in zip(todo, self._predict(todo, batch_size or self.batch_size)):
                known[text] = row
        out = np.zeros((len(texts), self.num_labels), dtype=np.float64)
        for i, text in enumerate(texts):
            out[i] = known[text]
        return out

    def _predict(self, texts: list[str], bs: int) -> np.ndarray:
        out = np.zeros((len(texts), self.num_labels), dtype=np.float64)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        if len(texts) >= FAST_FORWARD_MIN_TEXTS:  # perturbation-scale work: worth a faster forward pass
            self.prepare_fast_forward()
        # Shared use batch by batch: a hook-based explainer waiting for the model goes in between batches.
        with torch.inference_mode():
            for start in range(0, len(order), bs):
                idx = order[start:start + bs]
                fast = onnx_forward.session_for(self.model)  # asked per batch: a long run switches once it is ready
                with self.use():
                    with self._tokenizer_lock:
                        enc = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                             max_length=self.max_length, return_tensors="pt").to(self.device)
                    self._count(enc["input_ids"].shape, onnx=fast is not None)
                    if fast is not None:
                        logits = fast.logits(enc["input_ids"], enc["attention_mask"])
                    else:
                        logits = self.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
                out[idx] = torch.softmax(logits.float() / self.temperature, dim=-1).cpu().numpy()
        return out

    def prepare_fast_forward(self) -> None:
        """Start preparing the ONNX Runtime forward pass for this model's predictions, in the background
        (:mod:`model_zoo.onnx_forward`; once per model object; ``LOUPE_ONNX=off`` turns it off)."""
        onnx_forward.prepare_in_background(self.model, self.device)

    @property
    def forward_path(self) -> str:
        """How predictions run: ``onnxruntime``, ``preparing``, or ``pytorch: <why>``."""
        return onnx_forward.status(self.model)

    @contextlib.contextmanager
    def remember(self) -> Iterator[None]:
        """Within the block, :meth:`predict_proba` answers a text it already scored from memory, with no pass.

        One request (an explanation, its faithfulness metrics, the other explainers of the same panel) shares
        its predictions: the unperturbed text, LIME's and the metrics' word deletions are each scored once.
        Keyed by model object, so a randomised or compressed copy never reads another model's answers. A
        nested block shares the outermost memory; the memory ends with the block.
        """
        if _MEMO.get() is not None:
            yield
            return
        token = _MEMO.set({})
        try:
            yield
        finally:
            _MEMO.reset(token)

    def forward_attentions(self, input_ids: torch.Tensor,
                           attention_mask: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and attention weights ``(layers, batch, heads, seq, seq)`` in one pass.

        Needs a model loaded with ``attn_implementation="eager"``; SDPA returns no weights.
        """
        with self.use(), torch.inference_mode():
            self._count(input_ids.shape)
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_attentions=True)
        if not out.attentions or out.attentions[0] is None:
            from model_zoo.errors import LoupeError

            raise LoupeError("This model returned no attention weights; load it with eager attention.")
        probs = torch.softmax(out.logits.float() / self.temperature, dim=-1).cpu().numpy()
        return probs, np.stack([a.float().cpu().numpy() for a in out.attentions])

    @property
    def is_quantized(self) -> bool:
        """Whether the model holds dynamic int8 Linear layers (they pass no gradients).

        Asked on every explanation; the answer is kept per model object (a quantised variant is a new model,
        ``quantize_dynamic`` copies), which saves walking its modules each time (~0.5 ms for MiniLM)."""
        known = _QUANTIZED.get(self.model)
        if known is None:
            known = _QUANTIZED[self.model] = is_quantized(self.model)
        return known

    @property
    def attn_implementation(self) -> str:
        return str(getattr(self.model.config, "_attn_implementation", "eager"))
