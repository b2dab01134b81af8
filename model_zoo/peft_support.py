"""Fine-tuning methods: which weights train, and how a parameter-efficient model is saved and reloaded.

Six methods, each behind one name in :data:`METHODS`, with a ``Config`` dataclass whose fields carry
``help``/``min``/``max`` (and ``choices`` for strings) so the dashboard can build widgets from them:

- ``full``: every weight trains.
- ``lora``: low-rank updates on chosen linear layers (``peft.LoraConfig``); the head trains in full
  (``modules_to_save``). Saved merged into the weights (a plain model) or as an adapter plus its base.
- ``bitfit``: only bias terms and the head train (Ben Zaken et al., 2022).
- ``adapters``: bottleneck adapters (Houlsby et al., 2019). ``peft`` 0.21 has no bottleneck adapter and the
  ``adapters`` library is not installed, so :class:`BottleneckAdapter` is Loupe's own: a residual
  down-projection, non-linearity and up-projection applied by a forward hook to the output of each layer's
  feed-forward output projection (and, optionally, the attention output projection), before the residual
  sum and LayerNorm. The up-projection starts at zero, so training starts from the base model exactly.
- ``prompt_tuning``: trainable virtual-token embeddings prepended to the input (``peft.PromptTuningConfig``,
  ``task_type=SEQ_CLS``) plus the head. It cannot be merged: saved as an adapter plus its base.
- ``head_only``: the encoder is frozen and only the classification head trains (a baseline).

LoRA, adapters, prompt tuning and head-only also train the pooler (BERT's dense + tanh over [CLS], which
only the head reads) unless their ``include_pooler`` is off: a sentence encoder such as the bundled MiniLM
was trained with mean pooling, so its pooler was never trained and its [CLS] vector says little about the
text; with a frozen pooler these methods barely move from the majority class in a short run (LoRA: 0.57
validation accuracy after 63 steps on 2,000 Rotten Tomatoes sentences, 0.73 with the pooler). For LoRA and
prompt tuning the pooler joins the head in ``modules_to_save``. BitFit stays biases + head by default (the
pooler's bias included), so on the bundled MiniLM it needs more than one short epoch or ``include_pooler``.

An adapter folder holds ``config.json`` (the fine-tuned labels), the tokenizer, the adapter weights
(safetensors only) and a ``loupe.json`` card whose ``peft`` entry names the base model and a SHA-256 of
its weights; :func:`load_adapter_model` (called by ``model_zoo.load``) rebuilds the model from them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from model_zoo import loading
from model_zoo.errors import LoupeError, ModelLoadError, UntrainedHeadError

HEAD_MODULES = ("classifier", "score", "pre_classifier")
"""Top-level modules of a ``*ForSequenceClassification`` model that form its classification head."""
ADAPTER_WEIGHTS = "loupe_adapter.safetensors"
PEFT_WEIGHTS = "adapter_model.safetensors"
_FFN_OUT = (r"layer\.\d+\.output\.dense$", r"layer\.\d+\.ffn\.lin2$")  # BERT/RoBERTa/ELECTRA, DistilBERT
_ATTN_OUT = (r"layer\.\d+\.attention\.output\.dense$", r"layer\.\d+\.attention\.out_lin$")


# --- method configs ------------------------------------------------------------------------------
@dataclass
class FullConfig:
    """Full fine-tuning has no settings of its own."""


@dataclass
class LoraMethodConfig:
    """LoRA: ``W + (alpha / r) * B A`` on the target layers, with ``B`` starting at zero."""

    r: int = field(default=8, metadata={"help": "Rank of the update matrices", "min": 1, "max": 256})
    alpha: int = field(default=16, metadata={"help": "Scaling numerator (update scale = alpha / r)", "min": 1,
                                             "max": 512})
    dropout: float = field(default=0.1, metadata={"help": "Dropout on the LoRA input", "min": 0.0, "max": 0.5})
    target_modules: str = field(default="query,value", metadata={
        "help": "Comma-separated names of the linear layers to adapt (empty: peft's default for the model)"})
    merge: bool = field(default=True, metadata={
        "help": "Save the update merged into the weights (a plain model) instead of an adapter plus its base"})
    include_pooler: bool = field(default=True, metadata={
        "help": "Also train the pooler (BERT's dense + tanh over [CLS]), which only the head uses"})

    def __post_init__(self) -> None:
        if self.r < 1 or self.alpha < 1 or not 0.0 <= self.dropout < 1.0:
            raise ValueError("LoRA needs r >= 1, alpha >= 1 and 0 <= dropout < 1.")

    def targets(self) -> list[str] | None:
        names = [t.strip() for t in self.target_modules.split(",") if t.strip()]
        return names or None


@dataclass
class BitFitConfig:
    """BitFit trains the bias terms and the head (Ben Zaken et al.); optionally the whole pooler too."""

    include_pooler: bool = field(default=False, metadata={
        "help": "Also train the pooler's weight (not only its bias): off is BitFit proper; on helps a sentence "
                "encoder whose pooler was never trained (e.g. the bundled MiniLM)"})


@dataclass
class AdapterConfig:
    """Bottleneck adapters (see the module docstring)."""

    bottleneck: int = field(default=64, metadata={"help": "Width of the adapter's bottleneck", "min": 1,
                                                  "max": 1024})
    activation: str = field(default="relu", metadata={"help": "Non-linearity inside the adapter",
                                                      "choices": ["relu", "gelu", "tanh"]})
    placement: str = field(default="ffn", metadata={
        "help": "ffn: one adapter per layer, after the feed-forward block (Pfeiffer); both: also after "
                "attention (Houlsby)", "choices": ["ffn", "both"]})
    train_layer_norm: bool = field(default=True, metadata={"help": "Also train the LayerNorm weights"})
    include_pooler: bool = field(default=True, metadata={
        "help": "Also train the pooler (BERT's dense + tanh over [CLS]), which only the head uses"})

    def __post_init__(self) -> None:
        if self.bottleneck < 1:
            raise ValueError("The adapter bottleneck must be at least 1.")
        if self.activation not in ("relu", "gelu", "tanh") or self.placement not in ("ffn", "both"):
            raise ValueError("activation must be relu/gelu/tanh and placement ffn/both.")


@dataclass
class PromptTuningMethodConfig:
    """Prompt tuning: ``num_virtual_tokens`` trainable embeddings before the text, plus the head."""

    num_virtual_tokens: int = field(default=20, metadata={"help": "Number of trainable prompt tokens", "min": 1,
                                                          "max": 200})
    init: str = field(default="sample_vocab", metadata={
        "help": "Start the prompt from embeddings of random vocabulary tokens, or from random vectors",
        "choices": ["sample_vocab", "random"]})
    include_pooler: bool = field(default=True, metadata={
        "help": "Also train the pooler (BERT's dense + tanh over [CLS]), which only the head uses"})

    def __post_init__(self) -> None:
        if self.num_virtual_tokens < 1 or self.init not in ("sample_vocab", "random"):
            raise ValueError("Prompt tuning needs num_virtual_tokens >= 1 and init sample_vocab or random.")


@dataclass
class HeadOnlyConfig:
    """Frozen encoder: only the head trains."""

    include_pooler: bool = field(default=True, metadata={
        "help": "Also train the pooler (BERT's dense + tanh over [CLS]), which only the head uses"})


@dataclass(frozen=True)
class Method:
    """A fine-tuning method: its name, a title and summary for people, its config, its recipe."""

    name: str
    title: str
    summary: str
    config_cls: type
    train_defaults: dict[str, Any]


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("full", "Full fine-tuning", "Every weight trains.", FullConfig,
           {"learning_rate": 1e-4, "epochs": 2.0}),
    Method("lora", "LoRA", "Low-rank updates on the attention projections; the head and pooler train in full.",
           LoraMethodConfig, {"learning_rate": 2e-3, "batch_size": 16, "epochs": 3.0}),
    Method("bitfit", "BitFit", "Only the bias terms and the head train.", BitFitConfig,
           {"learning_rate": 2e-3, "epochs": 3.0, "weight_decay": 0.0}),
    Method("adapters", "Bottleneck adapters", "Small residual bottleneck layers inside each block train.",
           AdapterConfig, {"learning_rate": 2e-3, "epochs": 3.0}),
    Method("prompt_tuning", "Prompt tuning", "Trainable virtual tokens before the text; the head and pooler train.",
           PromptTuningMethodConfig, {"learning_rate": 1e-2, "batch_size": 16, "epochs": 5.0, "warmup_ratio": 0.1}),
    Method("head_only", "Frozen encoder (head only)", "Only the classification head trains (a baseline).",
           HeadOnlyConfig, {"learning_rate": 5e-3, "epochs": 3.0, "weight_decay": 0.0}),
)}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise LoupeError(f"Unknown fine-tuning method {name!r}; choose one of {', '.join(METHODS)}.")
    return METHODS[name]


def method_config(method: str, values: dict[str, Any] | Any | None = None) -> Any:
    """The method's config dataclass from a dict (unknown keys are an error) or an instance."""
    cls = get_method(method).config_cls
    if isinstance(values, cls):
        return values
    values = dict(values or {})
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise LoupeError(f"{method} has no setting(s) {', '.join(unknown)}; it has: {', '.join(known) or 'none'}.")
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise LoupeError(f"Bad {method} settings: {err}") from err


# --- which weights train ---------------------------------------------------------------------------
def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts, each shared tensor counted once."""
    seen: set[int] = set()
    trainable = total = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return trainable, total


def head_names(model: nn.Module) -> list[str]:
    """Names of the model's head modules (``classifier``, ...), found among its top-level children."""
    names = [n for n, _ in model.named_children() if n in HEAD_MODULES]
    if not names:
        raise LoupeError(f"{type(model).__name__} has no classification head Loupe recognises ({HEAD_MODULES}).")
    return names


def pooler_names(model: nn.Module) -> list[str]:
    """Names of the model's pooler modules (BERT's ``bert.pooler``; none for DistilBERT, RoBERTa's head...)."""
    return [n for n, m in model.named_modules()
            if n.split(".")[-1] == "pooler" and next(m.parameters(), None) is not None]


def _train_head(model: nn.Module, include_pooler: bool = False) -> None:
    for name in head_names(model):
        getattr(model, name).requires_grad_(True)
    if include_pooler:
        for name in pooler_names(model):
            model.get_submodule(name).requires_grad_(True)


def apply_method(model: nn.Module, method: str, config: Any = None) -> nn.Module:
    """Set up ``model`` for ``method``: freeze what does not train, wrap or extend it. Returns the model to train.

    The returned model may be a ``peft.PeftModel`` wrapping ``model`` (LoRA, prompt tuning).
    """
    cfg = method_config(method, config)
    model.requires_grad_(method == "full")
    if method == "full":
        return model
    if method == "head_only":
        _train_head(model, cfg.include_pooler)
        return model
    if method == "bitfit":
        for name, p in model.named_parameters():
            p.requires_grad_(name.endswith(".bias"))
        _train_head(model, cfg.include_pooler)
        return model
    if method == "adapters":
        add_bottleneck_adapters(model, cfg)
        if cfg.train_layer_norm:
            for module in model.modules():
                if isinstance(module, nn.LayerNorm):
                    module.requires_grad_(True)
        _train_head(model, cfg.include_pooler)
        return model
    return _wrap_peft(model, method, cfg)


def _wrap_peft(model: nn.Module, method: str, cfg: Any) -> nn.Module:
    from peft import LoraConfig, PromptTuningConfig, PromptTuningInit, TaskType, get_peft_model

    heads = head_names(model) + (pooler_names(model) if cfg.include_pooler else [])
    if method == "lora":
        peft_cfg: Any = LoraConfig(task_type=TaskType.SEQ_CLS, r=cfg.r, lora_alpha=cfg.alpha,
                                   lora_dropout=cfg.dropout, target_modules=cfg.targets(), modules_to_save=heads)
    else:
        init = PromptTuningInit.SAMPLE_VOCAB if cfg.init == "sample_vocab" else PromptTuningInit.RANDOM
        peft_cfg = PromptTuningConfig(task_type=TaskType.SEQ_CLS, num_virtual_tokens=cfg.num_virtual_tokens,
                                      prompt_tuning_init=init, modules_to_save=heads)
    try:
        return get_peft_model(model, peft_cfg)
    except ValueError as err:  # e.g. no module matches target_modules
        raise LoupeError(f"peft could not set up {method} on {type(model).__name__}: {err}") from err


# --- bottleneck adapters ----------------------------------------------------------------------------
class BottleneckAdapter(nn.Module):
    """``x + up(act(down(x)))``; ``up`` starts at zero, so a new adapter is the identity."""

    def __init__(self, hidden: int, bottleneck: int, activation: str = "relu") -> None:
        super().__init__()
        self.down = nn.Linear(hidden, bottleneck)
        self.up = nn.Linear(bottleneck, hidden)
        self.act = {"relu": nn.ReLU(), "gelu": nn.GELU(), "tanh": nn.Tanh()}[activation]
        nn.init.normal_(self.down.weight, std=1e-2)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.act(self.down(x)))


def _adapter_targets(model: nn.Module, placement: str) -> list[tuple[str, nn.Linear]]:
    patterns = _FFN_OUT + (_ATTN_OUT if placement == "both" else ())
    found = [(n, m) for n, m in model.named_modules()
             if isinstance(m, nn.Linear) and any(re.search(p, n) for p in patterns)]
    if not found:
        raise LoupeError(f"Bottleneck adapters do not know where to go in {type(model).__name__} "
                         "(no BERT-style `layer.N.output.dense` or DistilBERT-style `ffn.lin2` layers).")
    return found


def add_bottleneck_adapters(model: nn.Module, config: AdapterConfig) -> nn.ModuleDict:
    """Insert one :class:`BottleneckAdapter` after each target projection (forward hooks).

    The adapters live in ``model.loupe_adapters`` so they move with the model, reach the optimizer and
    appear in its ``state_dict`` (Trainer checkpoints and resumes them with the rest).
    """
    if hasattr(model, "loupe_adapters"):
        raise LoupeError("This model already has bottleneck adapters.")
    ref = next(model.parameters())
    adapters = nn.ModuleDict()
    for name, linear in _adapter_targets(model, config.placement):
        adapter = BottleneckAdapter(linear.out_features, config.bottleneck, config.activation)
        adapters[name.replace(".", "_")] = adapter.to(device=ref.device, dtype=ref.dtype)
        linear.register_forward_hook(lambda _m, _i, out, a=adapter: a(out))
    model.add_module("loupe_adapters", adapters)
    return adapters


# --- saving and loading adapter folders ------------------------------------------------------------
def weights_sha256(folder: Path) -> str:
    """SHA-256 over a model folder's ``*.safetensors`` files (names and bytes), to pin an adapter's base."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).glob("*.safetensors")):
        digest.update(path.name.encode())
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def is_adapter_method(method: str, config: Any) -> bool:
    """Whether ``method`` saves an adapter plus a base reference (rather than a full model)."""
    return method in ("prompt_tuning", "adapters") or (method == "lora" and not method_config(method, config).merge)


def save_adapter(model: nn.Module, method: str, folder: Path) -> None:
    """Write a trained model's adapter weights (safetensors) into ``folder``.

    The caller writes ``config.json``, the tokenizer and the card (with :func:`peft_card`).
    """
    folder.mkdir(parents=True, exist_ok=True)
    if method in ("lora", "prompt_tuning"):
        model.save_pretrained(folder, safe_serialization=True)  # type: ignore[operator]
        return
    from safetensors.torch import save_file

    state = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    save_file(state, str(folder / ADAPTER_WEIGHTS))


def peft_card(method: str, config: Any, base_id: str, base_folder: Path) -> dict[str, Any]:
    """The card's ``peft`` entry: method, its settings, the base model and a fingerprint of its weights."""
    return {"type": method, "config": asdict(method_config(method, config)), "base": base_id,
            "base_sha256": weights_sha256(base_folder)}


def load_adapter_model(folder: Path, card: dict[str, Any], config: Any, attn_implementation: str) -> nn.Module:
    """Rebuild a model saved as adapter + base reference (called by ``model_zoo.load``).

    The base is found like any model id, checked like any folder (safetensors only, no custom code) and
    compared with the fingerprint in the card; its head is replaced by the adapter's trained head.
    LoRA adapters are merged on load, so explainers see a plain model; prompt tuning stays a ``PeftModel``.

    Raises:
        ModelLoadError: the base is missing or changed, or the adapter files are missing or unsafe.
    """
    from transformers import AutoModelForSequenceClassification

    spec = card["peft"]
    method, base_id = spec.get("type"), str(spec.get("base", ""))
    if method not in ("lora", "prompt_tuning", "adapters"):
        raise ModelLoadError(f"{folder.name}: unknown adapter type {method!r} in its card.")
    base_folder, _ = loading.locate(base_id)
    if base_folder is None or not base_folder.is_dir():
        raise ModelLoadError(f"{folder.name} is an adapter on {base_id!r}, which is not in the store or on disk.")
    loading._check_folder(base_folder, allow_pickle=False)
    if spec.get("base_sha256") and weights_sha256(base_folder) != spec["base_sha256"]:
        raise ModelLoadError(f"{folder.name} was trained on a different version of {base_id!r} (its weights "
                             "changed since); it cannot be applied to the current one.")
    weights = folder / (ADAPTER_WEIGHTS if method == "adapters" else PEFT_WEIGHTS)
    if not weights.exists():
        raise ModelLoadError(f"{folder.name} has no {weights.name} (adapters are loaded from safetensors only).")
    model = AutoModelForSequenceClassification.from_pretrained(
        base_folder, config=config, use_safetensors=True, ignore_mismatched_sizes=True,
        attn_implementation=attn_implementation)
    heads = head_names(model)
    if method == "adapters":
        from safetensors.torch import load_file

        add_bottleneck_adapters(model, method_config("adapters", spec.get("config")))
        state = load_file(str(weights))
        result = model.load_state_dict(state, strict=False)
        if result.unexpected_keys:
            raise ModelLoadError(f"{folder.name}: adapter weights do not fit the base: {result.unexpected_keys[:4]}")
        saved = set(state)
    else:
        from peft import PeftModel
        from safetensors import safe_open

        with safe_open(str(weights), "pt") as fh:
            saved = set(fh.keys())
        model = PeftModel.from_pretrained(model, folder, is_trainable=False)
        if method == "lora":
            model = model.merge_and_unload()
    missing_heads = [h for h in heads if not any(f"{h}." in k for k in saved)]
    if missing_heads:
        raise UntrainedHeadError(f"{folder.name}: the adapter carries no weights for the head ({missing_heads}).")
    return model



loading.BUILDERS.register("peft", load_adapter_model)
