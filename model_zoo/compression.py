"""Compressed variants of a classifier, and how they compare: accuracy, latency, size, sparsity, memory.

Variants (names in brackets):

- ``int8``: dynamic int8 quantisation of every ``nn.Linear`` (``torch.ao.quantization.quantize_dynamic``;
  measured on MiniLM with 2 threads at 0.41x fp32 latency at batch 1, where torchao's
  ``Int8DynamicActivationInt8WeightConfig`` took 1.62x). CPU only (the kernels are FBGEMM/QNNPACK).
- ``fp16`` / ``bf16``: half precision, GPU only; on a CPU they raise :class:`UnsupportedVariantError`.
- ``prune-50``: unstructured L1 magnitude pruning of the encoder's Linear weights, made permanent.
- ``layers-3``: structured pruning by dropping whole encoder layers (transformers 5 has no
  ``prune_heads``), optionally followed by a short recovery fine-tune.
- ``distill-3l``: a student with 3 of the teacher's layers, trained on the teacher's soft labels and the
  hard labels with the shared training loop.

Two things every number here says about itself:

- Sparsity has two named denominators: zeros over all parameters of the model, and zeros over the weights
  of the layers pruning targets (the encoder's Linear layers; pooler and head excluded). On
  ``rt-sentiment-minilm`` prune-50 is 0.50 of the pruned layers but 0.23 of all parameters (the word
  embeddings alone are about half the model).
- Dynamic int8 computes one activation scale per padded batch, so an int8 model's outputs depend on what
  else is in the batch. Accuracy and agreement are measured at each of :data:`EVAL_BATCH_SIZES` (batch 1:
  one text per pass, as a typed text is served; batch 32: length-sorted batches, as ``predict_proba``
  serves a list) and every key names its batch size.

Nothing here imports a higher layer; explanation drift is computed one layer up.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import re
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from model_zoo import loading, store
from model_zoo.data import TextDataset, rotten_tomatoes
from model_zoo.errors import LoupeError, ModelLoadError
from model_zoo.handle import ModelHandle, is_quantized
from model_zoo.training import TrainConfig, classification_metrics, train

KINDS = ("original", "int8", "fp16", "bf16", "prune", "layers", "distill")
INT8_BACKEND = "torch.ao.quantization.quantize_dynamic"
INT8_WHY = ("fastest measured on CPU: MiniLM, 2 threads, 0.41x fp32 latency at batch 1 and 0.37x at batch 32; "
            "torchao Int8DynamicActivationInt8WeightConfig took 1.62x and 0.67x")
EVAL_BATCH_SIZES = (1, 32)  # accuracy/agreement are measured at each; keys end in _b1, _b32
_NAME_RE = re.compile(r"^(int8|fp16|bf16|original|prune-(\d{1,2})|layers-(\d{1,2})|distill-(\d{1,2})l?)$")
Progress = Callable[[str], None]


class CompressionError(LoupeError):
    """A variant cannot be made, measured or saved."""


class UnsupportedVariantError(CompressionError):
    """The variant does not exist on this device (fp16/bf16 on a CPU) or for this architecture."""


@dataclass
class VariantSpec:
    """How to make one variant. ``name`` (``prune-50``, ``layers-3``...) is derived from the settings."""

    kind: str = field(default="int8", metadata={"help": "Kind of variant", "choices": list(KINDS)})
    sparsity: float = field(default=0.5, metadata={"help": "prune: fraction of encoder Linear weights set to 0",
                                                   "min": 0.01, "max": 0.99})
    scope: str = field(default="global", metadata={"help": "prune: rank weights over all layers or per layer",
                                                   "choices": ["global", "layer"]})
    layers: int = field(default=3, metadata={"help": "layers/distill: encoder layers kept", "min": 1, "max": 48})
    recovery_examples: int = field(default=0, metadata={"help": "layers: RT training texts for a recovery "
                                                         "fine-tune (0: none)", "min": 0, "max": 20000})
    train_examples: int = field(default=2000, metadata={"help": "distill: RT training texts", "min": 32,
                                                        "max": 20000})
    epochs: float = field(default=1.0, metadata={"help": "distill/recovery: passes over those texts",
                                                 "min": 0.1, "max": 10.0})
    temperature: float = field(default=2.0, metadata={"help": "distill: softmax temperature", "min": 0.5,
                                                      "max": 20.0})
    alpha: float = field(default=0.5, metadata={"help": "distill: weight of the soft-label loss", "min": 0.0,
                                                "max": 1.0})
    seed: int = field(default=13, metadata={"help": "Random seed", "min": 0, "max": 2**31 - 1})

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise CompressionError(f"Unknown variant kind {self.kind!r}; choose one of {', '.join(KINDS)}.")
        if not 0 < self.sparsity < 1:
            raise CompressionError(f"Sparsity must be between 0 and 1, got {self.sparsity}.")
        if self.scope not in ("global", "layer"):
            raise CompressionError(f"Pruning scope must be global or layer, got {self.scope!r}.")
        if self.layers < 1:
            raise CompressionError("Keep at least one layer.")

    @property
    def name(self) -> str:
        if self.kind == "prune":
            return f"prune-{round(self.sparsity * 100)}"
        if self.kind == "layers":
            return f"layers-{self.layers}"
        if self.kind == "distill":
            return f"distill-{self.layers}l"
        return self.kind

    @classmethod
    def parse(cls, spec: str | dict[str, Any] | VariantSpec) -> VariantSpec:
        """A spec from a name (``"prune-50"``), a dict (``{"name": "prune-50", "scope": "layer"}``) or a spec."""
        if isinstance(spec, VariantSpec):
            return spec
        settings: dict[str, Any] = dict(spec) if isinstance(spec, dict) else {"name": spec}
        name = str(settings.pop("name", "") or "").strip().lower()
        if name:
            m = _NAME_RE.match(name)
            if not m:
                raise CompressionError(f"Unknown variant {name!r}; use int8, fp16, bf16, prune-<percent>, "
                                       "layers-<n> or distill-<n>l.")
            if m.group(2):
                settings = {"kind": "prune", "sparsity": int(m.group(2)) / 100, **settings}
            elif m.group(3):
                settings = {"kind": "layers", "layers": int(m.group(3)), **settings}
            elif m.group(4):
                settings = {"kind": "distill", "layers": int(m.group(4)), **settings}
            else:
                settings = {"kind": name, **settings}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(settings) - known
        if unknown:
            raise CompressionError(f"Unknown variant setting(s): {', '.join(sorted(unknown))}.")
        return cls(**settings)


def parse_variants(specs: str | Sequence[str | dict[str, Any] | VariantSpec]) -> list[VariantSpec]:
    """Specs from ``"int8,prune-50,distill-3l"`` or a list of names/dicts; duplicates are an error."""
    items = [s for s in specs.split(",") if s.strip()] if isinstance(specs, str) else list(specs)
    out = [VariantSpec.parse(s) for s in items]
    names = [s.name for s in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise CompressionError(f"Variant(s) listed twice: {', '.join(dupes)}.")
    return out


def available_variants(device: str | torch.device = "cpu") -> list[str]:
    """Variant kinds that can be made on ``device`` (the page hides the others): no fp16/bf16 on a CPU,
    no int8 off the CPU (the dynamic int8 kernels are CPU kernels)."""
    dev = torch.device(device)
    kinds = ["prune", "layers", "distill"]
    if dev.type == "cpu":
        return ["int8", *kinds]
    out = ["fp16", *kinds]
    if dev.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        out.insert(1, "bf16")
    return out


@dataclass
class Variant:
    """A made variant: its name, spec, a handle to run it and a card saying how it was made."""

    name: str
    spec: VariantSpec
    handle: ModelHandle
    card: dict[str, Any]


# --- making variants ----------------------------------------------------------------------------------
def _with_model(source: ModelHandle, model: Any, info: dict[str, Any], dtype: torch.dtype | None = None) -> ModelHandle:
    model.eval()
    model.requires_grad_(False)
    return dataclasses.replace(source, model=model, info=info, dtype=dtype or source.dtype, total_passes=0,
                               _lock=threading.Lock())


def quantize_int8(model: nn.Module, granularity: str = "per-channel") -> nn.Module:
    """Dynamic int8 quantisation of every ``nn.Linear`` (weights int8, activations quantised per batch).

    Weights get one scale per output channel by default: on the RT test split per-tensor scales lost 1.7
    accuracy points of ``rt-sentiment-minilm``, per-channel 0.6, at the same speed.
    """
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig

    if granularity not in ("per-channel", "per-tensor"):
        raise UnsupportedVariantError(f"Unknown int8 weight granularity {granularity!r}.")
    qconfig = per_channel_dynamic_qconfig if granularity == "per-channel" else default_dynamic_qconfig
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the torch.ao deprecation notice; torchao was slower here
        return torch.ao.quantization.quantize_dynamic(model.float().cpu(), {nn.Linear: qconfig}, dtype=torch.qint8)


def apply_card_quantization(model: nn.Module, card: dict[str, Any], device: torch.device) -> nn.Module:
    """Re-apply the quantisation a ``loupe.json`` card records (the store keeps fp32 safetensors).

    Raises:
        ModelLoadError: an unknown method, or int8 asked for on a GPU (``load`` raises only these).
    """
    method = (card.get("quantization") or {}).get("method")
    if not method:
        return model
    if method != "dynamic-int8":
        raise ModelLoadError(f"Unknown quantisation method {method!r} in the model card.")
    if device.type != "cpu":
        raise ModelLoadError("This model is dynamically quantised to int8, which runs on the CPU only; "
                                      "load it with device='cpu'.")
    return quantize_int8(model, str(card["quantization"].get("weights", "per-channel")))


loading.FINISHERS.register("quantization", apply_card_quantization)


def _encoder_linears(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    """The Linear layers pruning targets: those of the base model (encoder) except the pooler; not the head."""
    base = getattr(model, "base_model", model)
    return [(n, m) for n, m in base.named_modules() if isinstance(m, nn.Linear) and "pooler" not in n]


def prune_magnitude(model: nn.Module, sparsity: float, scope: str = "global") -> nn.Module:
    """L1 unstructured pruning of the encoder's Linear weights (in place), then ``prune.remove``."""
    from torch.nn.utils import prune

    targets = [(m, "weight") for _, m in _encoder_linears(model)]
    if not targets:
        raise UnsupportedVariantError("This model has no Linear layers in its encoder to prune.")
    if scope == "global":
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=sparsity)
    else:
        for module, param in targets:
            prune.l1_unstructured(module, param, amount=sparsity)
    for module, param in targets:
        prune.remove(module, param)
    return model


def _layer_list(model: nn.Module) -> tuple[nn.Module, str, str]:
    """The module holding the encoder's layer ModuleList, that list's attribute and the config key."""
    base = getattr(model, "base_model", model)
    for owner_name, attr, key in (("encoder", "layer", "num_hidden_layers"), ("transformer", "layer", "n_layers")):
        owner = getattr(base, owner_name, None)
        if owner is not None and isinstance(getattr(owner, attr, None), nn.ModuleList):
            return owner, attr, key
    raise UnsupportedVariantError(f"Cannot find the encoder layers of {type(model).__name__} to drop or copy.")


def spread(n: int, k: int) -> list[int]:
    """``k`` of ``n`` layer indices spread evenly from the bottom (6 -> 3 keeps 0, 2, 4: every other layer)."""
    if not 1 <= k <= n:
        raise UnsupportedVariantError(f"Cannot keep {k} of {n} layers.")
    return sorted({int(i * n / k) for i in range(k)})


def keep_layers(model: nn.Module, k: int) -> list[int]:
    """Keep ``k`` evenly spread encoder layers of ``model`` (in place); returns the kept indices."""
    owner, attr, key = _layer_list(model)
    layers = getattr(owner, attr)
    kept = spread(len(layers), k)
    setattr(owner, attr, nn.ModuleList([layers[i] for i in kept]))
    for new_idx, layer in enumerate(getattr(owner, attr)):
        for sub in layer.modules():
            if hasattr(sub, "layer_idx"):
                sub.layer_idx = new_idx
    setattr(model.config, key, len(kept))
    return kept


def _train_subset(n: int, seed: int) -> TextDataset:
    ds = rotten_tomatoes("train")
    idx = np.random.default_rng(seed).permutation(len(ds))[:n]
    return TextDataset([ds.texts[i] for i in idx], [ds.labels[i] for i in idx], ds.label_names, f"{ds.name}[{n}]")


class _DistillationLoss(nn.Module):
    """Wraps the student so the shared ``Trainer`` loop optimises a distillation loss.

    loss = alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T)) + (1 - alpha) * CE(student, labels).
    The teacher is kept in a list so it is neither trained nor moved nor saved with the student.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, temperature: float, alpha: float) -> None:
        super().__init__()
        self.student = student
        self._teacher = [teacher]
        self.config = student.config
        self.temperature = temperature
        self.alpha = alpha

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> Any:
        from transformers.modeling_outputs import SequenceClassifierOutput

        kwargs = {"attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        logits = self.student(input_ids=input_ids, **kwargs).logits
        teacher = self._teacher[0]
        if next(teacher.parameters()).device != input_ids.device:
            teacher.to(input_ids.device)
        with torch.no_grad():
            t_logits = teacher(input_ids=input_ids, **kwargs).logits.float()
        temp = self.temperature
        soft = nn.functional.kl_div(nn.functional.log_softmax(logits.float() / temp, dim=-1),
                                    nn.functional.softmax(t_logits / temp, dim=-1),
                                    reduction="batchmean") * temp * temp
        loss = self.alpha * soft
        if labels is not None:
            loss = loss + (1 - self.alpha) * nn.functional.cross_entropy(logits.float(), labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


def _fit(model: nn.Module, source: ModelHandle, spec: VariantSpec, n: int, teacher: nn.Module | None,
         progress: Progress) -> dict[str, Any]:
    """Train ``model`` in place on ``n`` RT training texts with the shared loop (distilling if a teacher)."""
    data = _train_subset(n, spec.seed)
    cfg = TrainConfig(epochs=spec.epochs, batch_size=32, learning_rate=1e-4 if teacher is not None else 5e-5,
                      max_length=min(128, source.max_length), seed=spec.seed)
    torch.manual_seed(spec.seed)
    model.requires_grad_(True)
    trainee: nn.Module = model if teacher is None else _DistillationLoss(model, teacher, spec.temperature, spec.alpha)
    progress(f"{spec.name}: training on {len(data)} texts for {spec.epochs:g} epoch(s)")
    with tempfile.TemporaryDirectory(prefix="loupe-compress-") as out:
        result = train(trainee, source.tokenizer, data, None, cfg, Path(out))
    model.to(source.device)
    return {"examples": len(data), "epochs": spec.epochs, "steps": result["steps"], "seconds": result["seconds"],
            "train_loss": round(result["train_loss"], 4), "learning_rate": cfg.learning_rate,
            "data": f"Rotten Tomatoes train split, random subset (seed {spec.seed})"}


def make_variant(source: ModelHandle, spec: str | dict[str, Any] | VariantSpec,
                 progress: Progress | None = None) -> Variant:
    """Make one variant of ``source`` (which is left untouched).

    Raises:
        UnsupportedVariantError: fp16/bf16 on a CPU, int8 off the CPU, or an architecture without layers.
    """
    spec = VariantSpec.parse(spec)
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    dev = source.device
    card: dict[str, Any] = {"variant": spec.name, "kind": spec.kind, "source_model": source.id,
                            "settings": dataclasses.asdict(spec)}
    dtype = None
    if spec.kind == "original":
        return Variant("original", spec, source, {"variant": "original", "kind": "original",
                                                  "source_model": source.id})
    if spec.kind in ("fp16", "bf16"):
        if dev.type != "cuda":
            raise UnsupportedVariantError(f"{spec.kind} runs only on a GPU; this model is on the {dev.type}. "
                                          f"Variants available here: {', '.join(available_variants(dev))}.")
        dtype = torch.float16 if spec.kind == "fp16" else torch.bfloat16
        if dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
            raise UnsupportedVariantError("This GPU does not support bf16.")
        model = copy.deepcopy(source.model).to(dtype=dtype)
        card.update(method="half precision", backend=f"torch .to({dtype})")
    elif spec.kind == "int8":
        if dev.type != "cpu":
            raise UnsupportedVariantError("Dynamic int8 runs on the CPU only; load the model with device='cpu'.")
        model = quantize_int8(copy.deepcopy(source.model))
        card.update(method="dynamic int8 quantisation of nn.Linear", backend=INT8_BACKEND, backend_reason=INT8_WHY,
                    quantization={"method": "dynamic-int8", "backend": INT8_BACKEND, "dtype": "qint8",
                                  "weights": "per-channel", "modules": ["nn.Linear"]})
    elif spec.kind == "prune":
        model = prune_magnitude(copy.deepcopy(source.model), spec.sparsity, spec.scope)
        card.update(method=f"unstructured L1 magnitude pruning ({spec.scope}) of encoder Linear weights, "
                           "made permanent (prune.remove)", backend="torch.nn.utils.prune",
                    requested_sparsity=spec.sparsity)
    elif spec.kind == "layers":
        model = copy.deepcopy(source.model)
        kept = keep_layers(model, spec.layers)
        card.update(method=f"structured pruning: kept encoder layers {kept}", kept_layers=kept,
                    backend="layer drop (transformers 5 has no prune_heads)")
        if spec.recovery_examples:
            card["recovery_fine_tune"] = _fit(model, source, spec,
                                              spec.recovery_examples, None, say)
    else:  # distill
        model = copy.deepcopy(source.model)
        kept = keep_layers(model, spec.layers)
        card.update(method=f"knowledge distillation into a {len(kept)}-layer student initialised from teacher "
                           f"layers {kept}", kept_layers=kept, backend="transformers Trainer, KD loss",
                    distillation={"temperature": spec.temperature, "alpha": spec.alpha,
                                  **_fit(model, source, spec, spec.train_examples, source.model, say)})
    card["seconds_to_make"] = round(time.perf_counter() - started, 1)
    card.update(weight_sparsity(model))
    card["parameters"] = count_parameters(model)
    info = {**source.info, "id": f"{source.id}@{spec.name}", "compression": card}
    say(f"{spec.name}: made in {card['seconds_to_make']} s")
    return Variant(spec.name, spec, _with_model(source, model, info, dtype), card)


# --- measuring ------------------------------------------------------------------------------------------
def _dequantized(m: torch.ao.nn.quantized.dynamic.Linear) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Weight and bias of a dynamic int8 Linear as float tensors (rounding can make small weights 0)."""
    w, b = m._packed_params._weight_bias()
    return w.dequantize(), b


def _pruning_targets(model: nn.Module) -> list[torch.Tensor]:
    """Weights of the layers :func:`prune_magnitude` targets (encoder Linear layers, int8 ones included)."""
    base = getattr(model, "base_model", model)
    out = []
    for name, m in base.named_modules():
        if "pooler" in name:
            continue
        if isinstance(m, nn.Linear):
            out.append(m.weight.detach())
        elif isinstance(m, torch.ao.nn.quantized.dynamic.Linear):
            out.append(_dequantized(m)[0])
    return out


def _all_weights(model: nn.Module) -> list[torch.Tensor]:
    """Every parameter tensor, plus the packed weights and biases of int8 Linear layers (as in
    :func:`count_parameters`)."""
    out = [p.detach() for p in model.parameters()]
    for m in model.modules():
        if isinstance(m, torch.ao.nn.quantized.dynamic.Linear):
            out += [t for t in _dequantized(m) if t is not None]
    return out


def _zero_fraction(tensors: Sequence[torch.Tensor]) -> tuple[float, int]:
    total = sum(t.numel() for t in tensors)
    zeros = sum(int((t == 0).sum()) for t in tensors)
    return (zeros / total if total else 0.0), int(total)


def weight_sparsity(model: nn.Module) -> dict[str, Any]:
    """Fraction of exactly-zero weights over two denominators, each named with its size.

    Returns:
        ``{"sparsity_all_weights": zeros / all parameters (embeddings, LayerNorms, biases, pooler and head
        included), "sparsity_pruned_layers": zeros / the weights of the encoder Linear layers that
        pruning targets (their biases, the pooler and the head excluded), "sparsity_denominators": {the two
        denominators in words, with their counts}}``. Fractions are rounded to 6 places.
    """
    all_frac, all_n = _zero_fraction(_all_weights(model))
    targets = _pruning_targets(model)
    pruned_frac, pruned_n = _zero_fraction(targets)
    return {
        "sparsity_all_weights": round(all_frac, 6),
        "sparsity_pruned_layers": round(pruned_frac, 6),
        "sparsity_denominators": {
            "all_weights": f"all {all_n:,} parameters (embeddings, LayerNorms, biases, pooler and head included)",
            "pruned_layers": f"the {pruned_n:,} weights of the {len(targets)} encoder Linear layers that pruning "
                             "targets (biases, pooler and head excluded)",
        },
    }


def count_parameters(model: nn.Module) -> int:
    """Parameters, counting the packed weights and biases of quantised Linear layers too."""
    n = sum(p.numel() for p in model.parameters())
    for m in model.modules():
        if isinstance(m, torch.ao.nn.quantized.dynamic.Linear):
            w, b = m._packed_params._weight_bias()
            n += w.numel() + (b.numel() if b is not None else 0)
    return int(n)


def _tensors(obj: Any) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [t for o in obj for t in _tensors(o)]
    return []


def weight_bytes(model: nn.Module) -> int:
    """Bytes the weights take in memory (quantised weights at 1 byte each)."""
    total = 0
    for m in model.modules():
        if isinstance(m, torch.ao.nn.quantized.dynamic.Linear):
            total += sum(t.numel() * t.element_size() for t in _tensors(m._packed_params._weight_bias()))
    total += sum(p.numel() * p.element_size() for p in model.parameters())
    return int(total)


def size_on_disk(model: Any) -> tuple[int, str]:
    """Bytes of the saved weights and how they were saved.

    int8 models go through ``torch.save(state_dict)`` (safetensors cannot hold packed quantised tensors);
    the others through ``save_pretrained`` (safetensors). Pruned zeros are stored dense, so pruning alone
    does not shrink the file.
    """
    if is_quantized(model):
        buf = io.BytesIO()
        torch.save(model.state_dict(), buf)
        return buf.tell(), "torch.save(state_dict) (packed int8 weights)"
    with tempfile.TemporaryDirectory(prefix="loupe-size-") as tmp:
        model.save_pretrained(tmp)
        return sum(p.stat().st_size for p in Path(tmp).glob("*.safetensors")), "safetensors"


def _batches(handle: ModelHandle, texts: Sequence[str], batch_size: int) -> list[dict[str, torch.Tensor]]:
    out = []
    for start in range(0, len(texts), batch_size):
        enc = handle.tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True,
                               max_length=handle.max_length, return_tensors="pt")
        out.append({k: v.to(handle.device) for k, v in enc.items()})
    return out


def _forward(handle: ModelHandle, batch: dict[str, torch.Tensor]) -> None:
    with torch.inference_mode():
        handle.model(**batch)
    if handle.device.type == "cuda":
        torch.cuda.synchronize()


def benchmark_latency(handles: dict[str, ModelHandle], texts: Sequence[str], batch_sizes: Sequence[int] = (1, 32),
                      repeats: int = 30, warmup: int = 3,
                      progress: Progress | None = None) -> dict[str, dict[str, float]]:
    """Model latency, warm, interleaved across variants in one run (same inputs, same thread count).

    Each round runs every variant once on the same pre-tokenized batch, in a rotated order, so drift in
    machine load hits all variants alike. Tokenization is excluded (it is the same for every variant).

    Returns:
        ``{name: {"p50_ms_b1", "p95_ms_b1", "p50_ms_b32", ..., "throughput_per_s"}}``; throughput is texts
        per second at the largest batch size.
    """
    say = progress or (lambda _msg: None)
    names = list(handles)
    out: dict[str, dict[str, float]] = {n: {} for n in names}
    for bs in batch_sizes:
        pool = [texts[i % len(texts)] for i in range(max(bs * repeats, bs))]
        inputs = {n: _batches(h, pool, bs) for n, h in handles.items()}
        times: dict[str, list[float]] = {n: [] for n in names}
        for n in names:
            for b in inputs[n][:warmup]:
                _forward(handles[n], b)
        rounds = len(inputs[names[0]])
        for r in range(rounds):
            for j in range(len(names)):
                n = names[(r + j) % len(names)]
                t0 = time.perf_counter()
                _forward(handles[n], inputs[n][r])
                times[n].append(time.perf_counter() - t0)
        for n in names:
            ms = np.asarray(times[n]) * 1000
            out[n][f"p50_ms_b{bs}"] = round(float(np.percentile(ms, 50)), 3)
            out[n][f"p95_ms_b{bs}"] = round(float(np.percentile(ms, 95)), 3)
            out[n]["throughput_per_s"] = round(float(bs * len(ms) / (ms.sum() / 1000)), 1)
        say(f"latency at batch {bs}: done")
    return out


def peak_memory(handle: ModelHandle, texts: Sequence[str], batch_size: int = 32) -> dict[str, float]:
    """Peak memory of inference at ``batch_size``: weights in memory plus the forward pass's peak allocation.

    On CUDA it is ``torch.cuda.max_memory_allocated``; on the CPU the allocations the PyTorch profiler
    records during one forward (activations and workspaces; buffers private to a math library are missed).
    """
    batch = _batches(handle, list(texts[:batch_size]), batch_size)[0]
    weights = weight_bytes(handle.model)
    if handle.device.type == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        _forward(handle, batch)
        forward_peak = torch.cuda.max_memory_allocated() - before
    else:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            _forward(handle, batch)
        events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                        key=lambda e: e.start_ns())
        current = forward_peak = 0
        for e in events:
            current += e.nbytes()
            forward_peak = max(forward_peak, current)
    return {"weights_mb": round(weights / 2**20, 2), "forward_peak_mb": round(forward_peak / 2**20, 2),
            "peak_memory_mb": round((weights + forward_peak) / 2**20, 2)}


def outputs_depend_on_batch(model: nn.Module) -> bool:
    """Whether a text's outputs change with the rest of its batch: dynamic int8 computes one activation
    scale per padded batch (fp32/fp16 outputs change only by rounding)."""
    return is_quantized(model)


def at_batch_size(handle: ModelHandle, batch_size: int) -> ModelHandle:
    """The same model (and lock) serving ``predict_proba`` ``batch_size`` texts per pass, so explainers and
    metrics that call it see that batch composition."""
    return dataclasses.replace(handle, batch_size=int(batch_size), total_passes=0)


def card_test_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The model card's ``metrics.test`` from a measured row: accuracy and macro F1 at batch 1 (one text per
    pass, as the dashboard predicts a typed text), the batch-32 figures beside them, and the batch size said.
    A dict with plain ``accuracy``/``f1_macro`` is passed through."""
    if "accuracy_b1" not in metrics:
        return {k: metrics[k] for k in ("accuracy", "f1_macro") if k in metrics}
    out: dict[str, Any] = {"accuracy": metrics["accuracy_b1"], "f1_macro": metrics.get("f1_macro_b1"),
                           "batch_size": 1}
    for bs in EVAL_BATCH_SIZES[1:]:
        out.update({f"{k}_b{bs}": metrics.get(f"{k}_b{bs}") for k in ("accuracy", "f1_macro")})
    return out


def evaluate_predictions(probs: np.ndarray, labels: Sequence[int], reference: np.ndarray | None,
                         n_classes: int) -> dict[str, float]:
    """Accuracy, macro F1 and agreement with the reference (original) predictions."""
    preds = probs.argmax(axis=1)
    m = classification_metrics(np.asarray(labels), preds, n_classes)
    agree = float((preds == reference).mean()) if reference is not None else 1.0
    return {"accuracy": round(m["accuracy"], 4), "f1_macro": round(m["f1_macro"], 4), "agreement": round(agree, 4)}


def measure(variants: Sequence[Variant], test: TextDataset, latency_texts: int = 64, repeats: int = 30,
            batch_sizes: Sequence[int] = EVAL_BATCH_SIZES,
            progress: Progress | None = None) -> dict[str, dict[str, Any]]:
    """Every number of the results table except drift, per variant (the first one is the reference).

    Accuracy, macro F1 and agreement with the reference are measured at each of ``batch_sizes`` (keys
    ``accuracy_b1``, ``agreement_b32``...; agreement compares with the reference at the same batch size),
    because an int8 model's outputs depend on the rest of its batch. ``batch_dependent`` says whether the
    variant's outputs do.

    Args:
        variants: the original first, then the variants, all on the same device.
        test: the evaluation texts (the same for every variant).
        latency_texts: distinct texts cycled through in the latency runs.
        repeats: timed batches per variant and batch size.
        batch_sizes: texts per pass for the accuracy runs (``predict_proba``: length-sorted, padded per batch).
    """
    say = progress or (lambda _msg: None)
    rows: dict[str, dict[str, Any]] = {}
    reference: dict[int, np.ndarray] = {}
    for v in variants:
        say(f"{v.name}: accuracy on {len(test)} test texts at batch size {', '.join(map(str, batch_sizes))}")
        row: dict[str, Any] = {"variant": v.name, "kind": v.spec.kind,
                               "batch_dependent": outputs_depend_on_batch(v.handle.model)}
        for bs in batch_sizes:
            probs = v.handle.predict_proba(test.texts, batch_size=bs)
            reference.setdefault(bs, probs.argmax(axis=1))
            m = evaluate_predictions(probs, test.labels, reference[bs], len(test.label_names))
            row.update({f"{k}_b{bs}": val for k, val in m.items()})
        size, saved_as = size_on_disk(v.handle.model)
        rows[v.name] = {
            **row, "size_mb": round(size / 2**20, 2), "saved_as": saved_as,
            "parameters": count_parameters(v.handle.model), **weight_sparsity(v.handle.model),
            **peak_memory(v.handle, test.texts),
        }
    sample = test.texts[:: max(1, len(test) // latency_texts)][:latency_texts]
    latency = benchmark_latency({v.name: v.handle for v in variants}, sample, repeats=repeats, progress=say)
    base = latency[variants[0].name]
    for name, lat in latency.items():
        rows[name].update(lat)
        rows[name]["latency_x_b1"] = round(lat["p50_ms_b1"] / base["p50_ms_b1"], 3)
        rows[name]["latency_x_b32"] = round(lat["p50_ms_b32"] / base["p50_ms_b32"], 3)
    rows[variants[0].name]["threads"] = torch.get_num_threads()
    return rows


# --- saving ------------------------------------------------------------------------------------------------
def save_variant(variant: Variant, folder: Path, source_folder: Path | None = None,
                 metrics: dict[str, Any] | None = None) -> Path:
    """Write ``variant`` as a store-style folder that ``model_zoo.load`` reads back.

    int8 variants are saved as the fp32 model (safetensors; the store holds no pickles) plus a card
    with ``"quantization": {"method": "dynamic-int8"}``; ``load`` quantises again on the way in, which is
    deterministic, so the reloaded model is the one measured. Everything else is a plain safetensors folder.

    Args:
        folder: where to write (created; replaced if it exists).
        source_folder: the source model's folder, whose fp32 weights an int8 variant reuses; without it the
            variant's handle must still hold an fp32 model, which int8 handles do not.
    """
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    handle = variant.handle
    if variant.spec.kind == "int8":
        src = source_folder or Path(str((variant.handle.info or {}).get("path") or ""))
        if not (src / "config.json").exists():
            raise CompressionError("Saving an int8 variant needs the source model's folder (its fp32 weights).")
        for f in src.iterdir():
            if f.is_file() and f.name != store.CARD:
                shutil.copy2(f, folder / f.name)
    else:
        model = handle.model
        if handle.dtype != torch.float32:
            model = copy.deepcopy(model).float()  # fp16/bf16 cards say so; weights are kept in fp32
        model.save_pretrained(folder)
        handle.tokenizer.save_pretrained(folder)
    source_card = {k: v for k, v in handle.info.items() if k not in ("id", "source", "path", "compression",
                                                                     "head_untrained", "architecture")}
    card = {**source_card, "id": folder.name, "labels": [handle.labels[i] for i in range(handle.num_labels)],
            "method": variant.card.get("method", variant.spec.kind), "compression": dict(variant.card),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    card.pop("metrics", None)
    if metrics:
        card["compression"]["metrics"] = metrics
        card["metrics"] = {"test": card_test_metrics(metrics)}
    if "quantization" in variant.card:
        card["quantization"] = variant.card["quantization"]
        card["compression"]["stored_as"] = "fp32 safetensors; load() re-applies dynamic int8 quantisation"
    if variant.spec.kind in ("fp16", "bf16"):
        card["compression"]["stored_as"] = f"fp32 safetensors; load it with dtype='{variant.spec.kind}'"
    store.write_card(folder, card)
    return folder


def publish_variant(folder: Path, model_id: str) -> Path:
    """Copy a saved variant folder into the model store as ``model_id`` (atomically)."""
    return store.publish_copy(folder, model_id)
