"""Compressed variants of a classifier, and how they compare: accuracy, latency, size, sparsity, memory.

Each kind of variant is one module registered in :data:`VARIANTS` (names in brackets):

- ``int8`` (:mod:`.int8`): dynamic int8 quantisation of every ``nn.Linear``; CPU only.
- ``fp16`` / ``bf16`` (:mod:`.half`): half precision, GPU only.
- ``prune-50`` (:mod:`.prune`): unstructured L1 magnitude pruning of the encoder's Linear weights.
- ``layers-3`` (:mod:`.layers`): structured pruning by dropping whole encoder layers, optionally followed by a
  short recovery fine-tune.
- ``distill-3l`` (:mod:`.distill`): a student with 3 of the teacher's layers trained on the teacher's soft
  labels and the hard labels.
- ``original`` (:mod:`.original`): the source model, the reference of every comparison.

A new kind is one module with a :class:`VariantKind` subclass and ``register(...)``, imported below.
:mod:`.measure` compares made variants (accuracy and agreement at each of :data:`EVAL_BATCH_SIZES`, latency,
size, sparsity, peak memory; :mod:`.weights` inspects their weights); :mod:`.saving` writes and publishes them.
Nothing here imports a higher layer; explanation drift is computed one layer up.
"""

from model_zoo.compression.base import (
    VARIANTS,
    CompressionError,
    CompressionOverBudgetError,
    CompressionSettingError,
    Made,
    Progress,
    Sweep,
    UnsupportedVariantError,
    Variant,
    VariantKind,
    VariantSpec,
    available_variants,
    make_variant,
    parse_variants,
    register,
    variant_handle,
)
from model_zoo.compression.measure import (
    EVAL_BATCH_SIZES,
    at_batch_size,
    benchmark_latency,
    evaluate_predictions,
    measure,
    outputs_depend_on_batch,
    peak_memory,
)
from model_zoo.compression.saving import card_test_metrics, publish_variant, save_variant
from model_zoo.compression.weights import size_on_disk, weight_bytes, weight_sparsity
from model_zoo.handle import is_quantized

# The kinds register themselves on import, in the order pages list them.
from model_zoo.compression import original, int8, half, prune, layers, distill  # noqa: E402  isort: skip
from model_zoo.compression.int8 import INT8_BACKEND, INT8_WHY, apply_card_quantization, quantize_int8  # noqa: E402
from model_zoo.compression.layers import keep_layers, spread  # noqa: E402
from model_zoo.compression.prune import prune_magnitude  # noqa: E402

__all__ = [
    "EVAL_BATCH_SIZES", "INT8_BACKEND", "INT8_WHY", "VARIANTS", "CompressionError", "CompressionOverBudgetError",
    "CompressionSettingError", "Made", "Progress", "Sweep", "UnsupportedVariantError", "Variant", "VariantKind",
    "VariantSpec", "apply_card_quantization", "at_batch_size", "available_variants", "benchmark_latency",
    "card_test_metrics", "distill", "evaluate_predictions", "half", "int8", "is_quantized", "keep_layers", "layers",
    "make_variant", "measure", "original", "outputs_depend_on_batch", "parse_variants", "peak_memory",
    "prune", "prune_magnitude", "publish_variant", "quantize_int8", "register", "save_variant", "size_on_disk",
    "spread", "variant_handle", "weight_bytes", "weight_sparsity",
]
