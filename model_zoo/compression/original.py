"""``original``: the source model itself, the reference every comparison starts with (not offered as a variant)."""

from __future__ import annotations

from model_zoo.compression.base import Progress, Variant, VariantKind, VariantSpec, register
from model_zoo.handle import ModelHandle


class Original(VariantKind):
    """The source model, unchanged and not copied: its variant handle is the source handle."""

    name = "original"
    title = "Original"
    changes = "Nothing: the model every variant is compared with."
    naming = "original"
    listed = False

    def make(self, source: ModelHandle, spec: VariantSpec, progress: Progress) -> Variant:
        return Variant("original", spec, source, {"variant": "original", "kind": "original",
                                                  "source_model": source.id})


register(Original())
