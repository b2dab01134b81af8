"""What every compressed variant shares: its settings (:class:`VariantSpec`), the variant-kind base class, the
registry :data:`VARIANTS`, and :func:`make_variant`, which looks a kind up and lets it do its work.

A variant kind (``int8``, ``prune``...) is one :class:`VariantKind` subclass in its own module, registered
with :func:`register`. It knows its names (``prune-50``), which settings of :class:`VariantSpec` it reads,
on which devices it can be made, how to make itself from a copy of the source model, and (where it differs
from a plain safetensors folder) how it is saved and what its model card says.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from model_zoo import spec as config_spec
from model_zoo.errors import LoupeError
from model_zoo.handle import ModelHandle
from model_zoo.params import count_parameters
from model_zoo.registry import Registry

Progress = Callable[[str], None]
SCOPE = "variant"  # the settings' scope in messages and in LOUPE_LIMITS ("variant.train_examples")


class CompressionError(LoupeError):
    """A variant cannot be made, measured or saved."""


class UnsupportedVariantError(CompressionError):
    """The variant does not exist on this device (fp16/bf16 on a CPU) or for this architecture."""


class CompressionSettingError(CompressionError, config_spec.ConfigError):
    """A variant or compression setting is unknown, has the wrong type or is out of its range."""


class CompressionOverBudgetError(CompressionSettingError, config_spec.SettingOverBudgetError):
    """A variant or compression setting is over its maximum or this server's limit."""


def no_progress(_message: str) -> None:
    """A progress callback that says nothing."""


@dataclass
class VariantSpec:
    """How to make one variant. ``name`` (``prune-50``, ``layers-3``...) is derived from the settings by the
    variant's kind; each kind reads only its :attr:`VariantKind.fields`."""

    kind: str = config_spec.setting("int8", "Kind of variant (a name in model_zoo.compression.VARIANTS)")
    sparsity: float = config_spec.setting(0.5, "prune: fraction of encoder Linear weights set to 0", min=0.01,
                                          max=0.99)
    scope: str = config_spec.setting("global", "prune: rank weights over all layers or per layer",
                                     choices=("global", "layer"))
    layers: int = config_spec.setting(3, "layers/distill: encoder layers kept", min=1, max=48)
    recovery_examples: int = config_spec.setting(0, "layers: RT training texts for a recovery fine-tune (0: none)",
                                                 min=0, max=20000)
    train_examples: int = config_spec.setting(2000, "distill: RT training texts", min=32, max=20000)
    epochs: float = config_spec.setting(1.0, "distill/recovery: passes over those texts", min=0.1, max=10.0)
    temperature: float = config_spec.setting(2.0, "distill: softmax temperature", min=0.5, max=20.0)
    alpha: float = config_spec.setting(0.5, "distill: weight of the soft-label loss", min=0.0, max=1.0)
    seed: int = config_spec.setting(13, "Random seed", min=0, max=2**31 - 1)

    def __post_init__(self) -> None:
        VARIANTS.lookup(self.kind)  # an unknown kind: CompressionError naming the known ones

    @property
    def variant_kind(self) -> VariantKind:
        return VARIANTS.lookup(self.kind)

    @property
    def name(self) -> str:
        return self.variant_kind.name_of(self)

    @classmethod
    def parse(cls, spec: str | dict[str, Any] | VariantSpec) -> VariantSpec:
        """A spec from a name (``"prune-50"``), a dict (``{"name": "prune-50", "scope": "layer"}``) or a spec.

        Raises:
            CompressionError: an unknown name or kind; :class:`CompressionSettingError` for an unknown setting
                or a value out of range (:func:`model_zoo.spec.build`).
        """
        if isinstance(spec, VariantSpec):
            config_spec.check(spec, SCOPE, error=CompressionSettingError, over=CompressionOverBudgetError)
            return spec
        values: dict[str, Any] = dict(spec) if isinstance(spec, dict) else {"name": spec}
        name = str(values.pop("name", "") or "").strip().lower()
        if name:
            values = {**_settings_of_name(name), **values}
        return config_spec.build(cls, values, SCOPE, error=CompressionSettingError, over=CompressionOverBudgetError)


def _settings_of_name(name: str) -> dict[str, Any]:
    for kind in VARIANTS.values():
        settings = kind.parse_name(name)
        if settings is not None:
            return {"kind": kind.name, **settings}
    names = [k.naming for k in VARIANTS.values() if k.listed]
    raise CompressionError(f"Unknown variant {name!r}; use {', '.join(names[:-1])} or {names[-1]}.")


@dataclass
class Variant:
    """A made variant: its name, spec, a handle to run it and a card saying how it was made."""

    name: str
    spec: VariantSpec
    handle: ModelHandle
    card: dict[str, Any]


@dataclass
class Made:
    """What a kind's :meth:`VariantKind.transform` returns: the variant's model, what to add to its card, and
    its dtype when it differs from the source's."""

    model: nn.Module
    card: dict[str, Any]
    dtype: torch.dtype | None = None


@dataclass(frozen=True)
class Sweep:
    """A setting a page may offer several values of at once (one variant per value), e.g. prune sparsities."""

    setting: str
    label: str
    options: tuple[Any, ...]
    default: tuple[Any, ...]
    format: str = "{}"  # how a value is shown ("{:.0%}": 0.3 -> "30%")


class VariantKind:
    """One kind of variant; subclasses fill in the class attributes and :meth:`transform`.

    Attributes:
        name: the kind (``"prune"``), its key in :data:`VARIANTS`.
        title: a few words for people (a checkbox label).
        changes: what the variant changes in the model, in one sentence.
        fields: the :class:`VariantSpec` settings the kind reads (the page draws widgets for these).
        naming: how its variants are named, for messages (``"prune-<percent>"``).
        sweep: a setting the page offers several values of at once, or None.
        listed: offered to people (``original`` is not: it is the reference every comparison starts with).
    """

    name: str = ""
    title: str = ""
    changes: str = ""
    fields: tuple[str, ...] = ()
    naming: str = ""
    sweep: Sweep | None = None
    listed: bool = True

    # --- names ---------------------------------------------------------------------------------------------
    def parse_name(self, name: str) -> dict[str, Any] | None:
        """The settings a variant name stands for (``"prune-50"`` -> ``{"sparsity": 0.5}``); None if not ours."""
        return {} if name == self.name else None

    def name_of(self, spec: VariantSpec) -> str:
        """The variant's name from its settings (the inverse of :meth:`parse_name`)."""
        return self.name

    # --- making --------------------------------------------------------------------------------------------
    def why_not(self, device: torch.device) -> str | None:
        """Why this kind cannot be made on ``device``; None when it can."""
        return None

    def transform(self, model: nn.Module, source: ModelHandle, spec: VariantSpec, progress: Progress) -> Made:
        """Turn ``model`` (a private copy of the source model) into the variant; may change it in place."""
        raise NotImplementedError

    def make(self, source: ModelHandle, spec: VariantSpec, progress: Progress) -> Variant:
        """Make the variant of ``source`` (left untouched) with the card entries every variant has."""
        reason = self.why_not(source.device)
        if reason:
            raise UnsupportedVariantError(reason)
        from model_zoo.compression.weights import weight_sparsity

        started = time.perf_counter()
        with source.lock:  # no explainer's hooks may be on the model while it is copied
            model = copy.deepcopy(source.model)
        made = self.transform(model, source, spec, progress)
        card: dict[str, Any] = {"variant": spec.name, "kind": spec.kind, "source_model": source.id,
                                "settings": dataclasses.asdict(spec), **made.card,
                                "seconds_to_make": round(time.perf_counter() - started, 1)}
        card.update(weight_sparsity(made.model))
        card["parameters"] = count_parameters(made.model).total
        info = {**source.info, "id": f"{source.id}@{spec.name}", "compression": card}
        progress(f"{spec.name}: made in {card['seconds_to_make']} s")
        return Variant(spec.name, spec, variant_handle(source, made.model, info, made.dtype), card)

    # --- saving --------------------------------------------------------------------------------------------
    def save_weights(self, variant: Variant, folder: Path, source_folder: Path | None) -> None:
        """Write the variant's weights and tokenizer into ``folder`` (fp32 safetensors, read by ``load``)."""
        model = variant.handle.model
        if variant.handle.dtype != torch.float32:
            model = copy.deepcopy(model).float()  # the card says which dtype to load it with
        model.save_pretrained(folder)
        variant.handle.tokenizer.save_pretrained(folder)

    def card_entries(self, variant: Variant) -> dict[str, Any]:
        """Top-level model-card entries that change how ``load`` reads the folder (e.g. ``quantization``)."""
        return {}

    def stored_as(self, variant: Variant) -> str | None:
        """How the saved weights differ from the variant as it ran, when they do (said in the card)."""
        return None


VARIANTS: Registry[VariantKind] = Registry("variant kind", CompressionError)


def register(kind: VariantKind) -> VariantKind:
    """Add ``kind`` to :data:`VARIANTS` under its name (a name used twice is a ``ValueError``)."""
    return VARIANTS.register(kind.name, kind)


def numbered(prefix: str, name: str, suffix: str = "") -> int | None:
    """The number in a name like ``prune-50`` / ``distill-3l`` (one or two digits), or None."""
    m = re.fullmatch(rf"{re.escape(prefix)}-(\d{{1,2}}){suffix}", name)
    return int(m.group(1)) if m else None


def variant_handle(source: ModelHandle, model: Any, info: dict[str, Any],
                   dtype: torch.dtype | None = None) -> ModelHandle:
    """A handle to a variant's model: the source's tokenizer and labels, with its own locks and pass count.

    Args:
        model: the variant's model (a transformers model, as the source's).

    A variant is a different model, so it gets its own exclusive-use lock (its gate is per model already);
    the tokenizer and its lock stay shared, as the tokenizer object is the same.
    """
    model.eval()
    model.requires_grad_(False)
    return dataclasses.replace(source, model=model, info=info, dtype=dtype or source.dtype, total_passes=0,
                               _lock=threading.Lock(), lock=threading.RLock())


def make_variant(source: ModelHandle, spec: str | dict[str, Any] | VariantSpec,
                 progress: Progress | None = None) -> Variant:
    """Make one variant of ``source`` (which is left untouched).

    Raises:
        UnsupportedVariantError: fp16/bf16 on a CPU, int8 off the CPU, or an architecture without layers.
    """
    parsed = VariantSpec.parse(spec)
    return parsed.variant_kind.make(source, parsed, progress or no_progress)


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
    return [name for name, kind in VARIANTS.items() if kind.listed and kind.why_not(dev) is None]
