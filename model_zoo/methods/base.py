"""What every fine-tuning method shares: the :class:`FinetuneMethod` contract, its registry, head lookup, and
how a folder saved as an adapter plus a reference to its base is found, checked and rebuilt.

A method is one subclass in its own module, registered at import with :func:`register` (as PEFT registers its
tuners with ``register_peft_method``). It carries everything that differs between methods: its settings
(``Config``, a dataclass declared with :func:`model_zoo.spec.setting`), its recipe (training defaults), which
weights train (:meth:`FinetuneMethod.prepare`), how the trained model is saved (:meth:`~FinetuneMethod.save`)
and, for adapter methods, how it is rebuilt from its base (:meth:`~FinetuneMethod.attach`). Nothing outside a
method's module branches on its name.

The pooler (BERT's dense + tanh over [CLS], which only the head reads) trains only when a method's
``include_pooler`` is on (off by default). The bundled MiniLM was trained with mean pooling, so its checkpoint's
pooler is an untrained random projection; :func:`model_zoo.loading.identity_pooler` replaces it by the identity
when the bundled encoder is loaded, so a frozen pooler passes the [CLS] vector through (LoRA with a frozen
identity pooler: 0.721 validation / 0.801 test after one epoch on 2,000 Rotten Tomatoes sentences, against
0.734 / 0.802 training the random pooler with three times the parameters).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from torch import nn

from model_zoo import loading, spec
from model_zoo.errors import LoupeError, ModelLoadError, UntrainedHeadError
from model_zoo.registry import Registry

HEAD_MODULES = ("classifier", "score", "pre_classifier")
"""Top-level modules of a ``*ForSequenceClassification`` model that form its classification head."""
INCLUDE_POOLER_HELP = "Also train the pooler (BERT's dense + tanh over [CLS]), which only the head uses"


@dataclass
class NoSettings:
    """A method without settings of its own."""


class FinetuneMethod:
    """A fine-tuning method (see the module docstring). Subclasses set the class attributes and :meth:`prepare`.

    Attributes:
        name: the registry key, also the card's ``method`` and an adapter card's ``peft.type``.
        title, summary: for people (the page's method picker and its caption).
        trains: one sentence saying what trains (the page's help).
        Config: the settings dataclass (fields made with ``spec.setting``: help, bounds, choices).
        recipe: training defaults of this method, on top of ``TrainConfig``'s (learning rate, epochs...).
        weights_file: the file an adapter folder keeps its weights in (adapter methods only).
        adds_tokens: whether the method puts tokens of its own before the text (so a model's attention rows and
            embedding outputs no longer line up with the text's tokens).
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    trains: ClassVar[str] = ""
    Config: ClassVar[type] = NoSettings
    recipe: ClassVar[dict[str, float | int]] = {}
    weights_file: ClassVar[str] = ""
    adds_tokens: ClassVar[bool] = False

    def config(self, values: Any = None) -> Any:
        """The method's settings from a dict (JSON), an instance or None (the defaults), validated.

        Raises:
            ConfigError: an unknown setting, a wrong type or a value out of bounds.
        """
        return spec.build(self.Config, values, scope=self.name)

    def prepare(self, model: nn.Module, cfg: Any) -> nn.Module:
        """Freeze what does not train, add or wrap what does; returns the model to train (maybe a wrapper)."""
        raise NotImplementedError

    def saves_adapter(self, cfg: Any) -> bool:
        """Whether the trained model is saved as an adapter plus a reference to its base (not a full model)."""
        return False

    def max_length(self, model_config: Any, cfg: Any, max_length: int) -> int:
        """The most text tokens one input may hold with this method (prompt tuning keeps room for its tokens)."""
        return max_length

    def save(self, model: nn.Module, folder: Path, cfg: Any) -> dict[str, Any]:
        """Write the trained weights (safetensors) into ``folder``; returns card entries saying how.

        The default saves the whole model; adapter methods save only their weights (the caller adds
        ``config.json``, the tokenizer and the card's ``peft`` entry).
        """
        model.save_pretrained(folder, safe_serialization=True)  # type: ignore[operator]
        return {"merged": False}

    def attach(self, model: nn.Module, folder: Path, cfg: Any) -> tuple[nn.Module, set[str]]:
        """Put the adapter saved in ``folder`` on its freshly loaded base; returns the model and the saved keys."""
        raise ModelLoadError(f"{folder.name}: {self.title} does not save adapters.")

    def load(self, folder: Path, card: dict[str, Any], config: Any, attn_implementation: str) -> nn.Module:
        """Rebuild a model saved as adapter + base reference (``model_zoo.load`` calls this through the card).

        The base is found like any model id, checked like any folder (safetensors only, no custom code) and
        compared with the fingerprint in the card; its head is replaced by the adapter's trained head.

        Raises:
            ModelLoadError: the base is missing or changed, or the adapter files are missing or unsafe.
        """
        from transformers import AutoModelForSequenceClassification

        entry = card["peft"]
        base_id = str(entry.get("base", ""))
        base_folder, base_source = loading.locate(base_id)
        if base_folder is None or not base_folder.is_dir():
            raise ModelLoadError(f"{folder.name} is an adapter on {base_id!r}, which is not in the store or on disk.")
        loading._check_folder(base_folder, allow_pickle=False)
        if entry.get("base_sha256") and weights_sha256(base_folder) != entry["base_sha256"]:
            raise ModelLoadError(f"{folder.name} was trained on a different version of {base_id!r} (its weights "
                                 "changed since); it cannot be applied to the current one.")
        if not (folder / self.weights_file).exists():
            raise ModelLoadError(f"{folder.name} has no {self.weights_file} (adapters are loaded from safetensors "
                                 "only).")
        model = AutoModelForSequenceClassification.from_pretrained(
            base_folder, config=config, use_safetensors=True, ignore_mismatched_sizes=True,
            attn_implementation=attn_implementation)
        if base_source == "bundled":  # as it was trained on (see loading.identity_pooler)
            loading.identity_pooler(model)
        heads = head_names(model)
        model, saved = self.attach(model, folder, self.config(entry.get("config")))
        missing = [h for h in heads if not any(f"{h}." in k for k in saved)]
        if missing:
            raise UntrainedHeadError(f"{folder.name}: the adapter carries no weights for the head ({missing}).")
        return model

    def adapter_card(self, cfg: Any, base_ref: str, base_folder: Path) -> dict[str, Any]:
        """The card's ``peft`` entry: the method, its settings, the base and a fingerprint of its weights."""
        return {"type": self.name, "config": asdict(cfg), "base": base_ref, "base_sha256": weights_sha256(base_folder)}


class PeftLibraryMethod(FinetuneMethod):
    """A method the ``peft`` library implements: it wraps the model in a ``PeftModel`` whose
    ``modules_to_save`` are the head (and, with ``include_pooler``, the pooler); saved and reloaded by ``peft``."""

    weights_file: ClassVar[str] = "adapter_model.safetensors"

    def peft_config(self, cfg: Any, modules_to_save: list[str]) -> Any:
        """The ``peft`` config of this method for these settings."""
        raise NotImplementedError

    def prepare(self, model: nn.Module, cfg: Any) -> nn.Module:
        from peft import get_peft_model

        model.requires_grad_(False)
        heads = head_names(model) + (pooler_names(model) if cfg.include_pooler else [])
        try:
            return get_peft_model(model, self.peft_config(cfg, heads))
        except ValueError as err:  # e.g. no module matches target_modules
            raise LoupeError(f"peft could not set up {self.title} on {type(model).__name__}: {err}") from err

    def saves_adapter(self, cfg: Any) -> bool:
        return True

    def save(self, model: nn.Module, folder: Path, cfg: Any) -> dict[str, Any]:
        folder.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(folder, safe_serialization=True)  # type: ignore[operator]
        return {}

    def attach(self, model: nn.Module, folder: Path, cfg: Any) -> tuple[nn.Module, set[str]]:
        from peft import PeftModel
        from safetensors import safe_open

        with safe_open(str(folder / self.weights_file), "pt") as fh:
            saved = set(fh.keys())
        return PeftModel.from_pretrained(model, folder, is_trainable=False), saved


M = TypeVar("M", bound=type[FinetuneMethod])
METHODS: Registry[FinetuneMethod] = Registry("fine-tuning method", LoupeError)


def register(cls: M) -> M:
    """Class decorator: register one instance of the method under its ``name`` (a second one is an error)."""
    METHODS.register(cls.name, cls())
    return cls


# --- shared helpers -------------------------------------------------------------------------------------
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


def train_head(model: nn.Module, include_pooler: bool = False) -> None:
    """Let the head (and with ``include_pooler`` the pooler) train."""
    for name in head_names(model):
        getattr(model, name).requires_grad_(True)
    if include_pooler:
        for name in pooler_names(model):
            model.get_submodule(name).requires_grad_(True)


def weights_sha256(folder: Path) -> str:
    """SHA-256 over a model folder's ``*.safetensors`` files (names and bytes), to pin an adapter's base."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).glob("*.safetensors")):
        digest.update(path.name.encode())
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def load_adapter_folder(folder: Path, card: dict[str, Any], config: Any, attn_implementation: str) -> nn.Module:
    """The ``peft`` card entry's builder for ``model_zoo.load``: the method named in the card rebuilds the model."""
    kind = (card.get("peft") or {}).get("type")
    if not isinstance(kind, str) or kind not in METHODS:
        raise ModelLoadError(f"{folder.name}: unknown adapter type {kind!r} in its card.")
    return METHODS[kind].load(folder, card, config, attn_implementation)


loading.BUILDERS.register("peft", load_adapter_folder)
