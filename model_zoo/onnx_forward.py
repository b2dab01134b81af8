"""A faster exact forward pass for predictions on the CPU: the model exported to ONNX and run by ONNX Runtime.

Perturbation explainers (SHAP, LIME, Feature Ablation) and the faithfulness metrics spend their time in
gradient-free forward passes of many masked texts (:meth:`ModelHandle.predict_proba`). On this project's 2-core
CPU, ONNX Runtime runs MiniLM's forward in 0.41x PyTorch's time at batch 1 and 0.56x at batch 64 (fused
attention, LayerNorm and GELU kernels; ``bench/onnx_forward.py``). Gradients stay in PyTorch.

- **Exact or not at all.** After export the session is checked against PyTorch on a probe batch (random token
  ids, one row padded): every class probability within :data:`TOLERANCE` (1e-5) or the session is not used. The
  handle's ``info["onnx"]`` says which path predictions take and why.
- **Never in the way.** The export (about 5 s for MiniLM) runs in a background thread when the model loads; until
  it is ready, and whenever it is not possible (an architecture the exporter cannot trace, a GPU, int8 or half
  weights, a prompt classifier or an adapter), predictions take the PyTorch path as before.
- **Tied to the weights.** A session belongs to one model object and its weights as exported: it is dropped as
  soon as any parameter is replaced or changed in place (``data_ptr`` and autograd version of each parameter).
  A copy of the model (the sanity check's randomised copies, compressed variants) has no session.
- **Cached on disk** under ``LOUPE_HOME/onnx/<digest>.onnx``, the digest of the model's class, config and
  weights, so a later process skips the export; the check runs again on every load.

``LOUPE_ONNX=off`` turns it off (``auto``, the default: on where possible). Needs ``onnxruntime`` (and ``onnx``,
``onnxscript`` for the export); without them predictions take the PyTorch path.
"""

from __future__ import annotations

import copy as copy_module
import hashlib
import json
import logging
import os
import threading
import warnings
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model_zoo.paths import loupe_home

log = logging.getLogger(__name__)

ENV = "LOUPE_ONNX"
TOLERANCE = 1e-5  # largest difference of a class probability from PyTorch's on the probe batch
OPSET = 18
KEEP = 16  # exports kept in LOUPE_HOME/onnx (the most recently used; about 90 MB each for MiniLM)


def enabled() -> bool:
    """Whether ``LOUPE_ONNX`` allows the ONNX Runtime path (``auto``, the default; ``off`` turns it off)."""
    value = os.environ.get(ENV, "auto").strip().lower()
    if value not in ("auto", "off", "on", "0", "1", ""):
        log.warning("%s=%r is not auto or off; using auto", ENV, value)
    return value not in ("off", "0")


def fingerprint(model: torch.nn.Module) -> tuple[tuple[int, int], ...]:
    """Where each parameter's storage is and how often it was changed in place: equal only for the same weights."""
    return tuple((p.data_ptr(), p._version) for p in model.parameters())


@dataclass
class OnnxForward:
    """An ONNX Runtime session computing ``model``'s logits from ``input_ids`` and ``attention_mask``."""

    session: Any
    weights: tuple[tuple[int, int], ...]
    path: Path

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {"input_ids": input_ids.cpu().numpy().astype(np.int64),
                                      "attention_mask": attention_mask.cpu().numpy().astype(np.int64)})[0]
        return torch.from_numpy(np.asarray(out))


# model object -> its session, or the reason it has none (a string). Weak keys: a dropped model drops its entry.
_STATE: weakref.WeakKeyDictionary[torch.nn.Module, OnnxForward | str] = weakref.WeakKeyDictionary()
_STATE_LOCK = threading.Lock()


# Models that load() built from a folder, the hub or the store: the ones worth exporting. A copy made in memory (the
# sanity check's randomised layers, a compressed variant before it is saved) is used once and stays on PyTorch.
_ALLOWED: weakref.WeakSet[torch.nn.Module] = weakref.WeakSet()


def allow(model: torch.nn.Module) -> None:
    """Let :func:`prepare_in_background` prepare ``model`` (called by :func:`model_zoo.load`)."""
    _ALLOWED.add(model)


def session_for(model: torch.nn.Module) -> OnnxForward | None:
    """The ready session of ``model`` with its weights as exported, else None (use PyTorch)."""
    state = _STATE.get(model)
    if not isinstance(state, OnnxForward):
        return None
    if fingerprint(model) != state.weights:
        with _STATE_LOCK:
            _STATE[model] = "the weights changed after the export"
        return None
    return state


def status(model: torch.nn.Module) -> str:
    """How ``model``'s predictions run: ``onnxruntime``, ``pytorch: <why>``, or ``preparing``."""
    state = _STATE.get(model)
    if state is None:
        return "pytorch: not prepared"
    if isinstance(state, OnnxForward):
        return "onnxruntime" if fingerprint(model) == state.weights else "pytorch: the weights changed after the export"
    return state if state == "preparing" else f"pytorch: {state}"


def unsuitable(model: torch.nn.Module, device: torch.device) -> str | None:
    """Why ``model`` cannot take the ONNX Runtime path (None when it can)."""
    if not enabled():
        return f"{ENV}=off"
    if device.type != "cpu":
        return "runs on a GPU (ONNX Runtime is used on the CPU only)"
    if any(p.dtype != torch.float32 for p in model.parameters()):
        return "weights are not float32"
    if any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in model.modules()):
        return "int8 layers"
    config = getattr(model, "config", None)
    if config is None or not type(model).__name__.endswith("ForSequenceClassification"):
        return "not a transformers sequence classifier (an adapter, a prompt classifier)"
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "onnxruntime is not installed"
    return None


def digest(model: torch.nn.Module) -> str:
    """A digest of the model's class, config and weights: the file name of its cached export."""
    h = hashlib.sha256(type(model).__name__.encode())
    config: Any = getattr(model, "config", None)
    h.update(json.dumps(config.to_dict() if config is not None else {}, sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:32]


class _Logits(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def export(model: torch.nn.Module, path: Path) -> None:
    """Write ``model`` (logits from ``input_ids`` and ``attention_mask``, any batch size and length) to ``path``.

    The dynamo exporter: the TorchScript one bakes the example's sequence length into the graph (position ids),
    giving wrong answers for every other length.
    """
    ids = torch.full((2, 8), 1000, dtype=torch.long)
    mask = torch.ones_like(ids)
    batch, seq = torch.export.Dim.DYNAMIC, torch.export.Dim.DYNAMIC
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    quiet = logging.getLogger("torch.onnx")  # "torchvision is not installed. Skipping ..." per operator
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(_Logits(model).eval(), (ids, mask), dynamo=True, opset_version=OPSET,
                                        dynamic_shapes=({0: batch, 1: seq}, {0: batch, 1: seq}),
                                        input_names=["input_ids", "attention_mask"], output_names=["logits"],
                                        external_data=False, verbose=False)
        if program is None:
            raise RuntimeError("the exporter returned no program")
        program.save(str(tmp), external_data=False)
        tmp.replace(path)
    finally:
        quiet.setLevel(level)
        tmp.unlink(missing_ok=True)


def _prune(folder: Path) -> None:
    """Remove all but the :data:`KEEP` most recently used exports (a shared server fine-tunes many models)."""
    files = sorted(folder.glob("*.onnx"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[KEEP:]:
        old.unlink(missing_ok=True)


def check(forward: OnnxForward, model: torch.nn.Module, vocab: int) -> float:
    """The largest difference of a class probability between the session and PyTorch on a probe batch."""
    gen = torch.Generator().manual_seed(0)
    low = min(1000, max(1, vocab - 2))
    ids = torch.randint(low, vocab, (3, 21), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 13:] = 0  # a padded row: the mask must matter
    with torch.inference_mode():
        expected = torch.softmax(model(input_ids=ids, attention_mask=mask).logits.float(), -1)
    got = torch.softmax(forward.logits(ids, mask).float(), -1)
    return float((got - expected).abs().max())


def prepare(model: torch.nn.Module, device: torch.device, copy: torch.nn.Module | None = None,
            threads: int | None = None, weights: tuple[tuple[int, int], ...] | None = None) -> str:
    """Export (or find the cached export of) ``model``, check it, and use it for its predictions.

    ``copy``: a copy of ``model`` with the same weights to export and check instead (so no hook another thread
    puts on the model meanwhile is traced). Returns the status (:func:`status`). Never raises: any failure leaves
    the PyTorch path, with the reason. ``weights``: ``model``'s :func:`fingerprint` when ``copy`` was taken.
    """
    weights = weights if weights is not None else fingerprint(model)
    reason = unsuitable(model, device)
    if reason is not None:
        with _STATE_LOCK:
            _STATE[model] = reason
        return status(model)
    source = copy if copy is not None else model
    state: OnnxForward | str
    try:
        import onnxruntime as ort

        path = loupe_home() / "onnx" / f"{digest(source)}.onnx"
        if path.is_file():
            path.touch()  # recently used: kept by _prune
        else:
            export(source, path)
            _prune(path.parent)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        forward = OnnxForward(ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]),
                              weights, path)
        config: Any = getattr(source, "config", None)
        diff = check(forward, source, int(config.vocab_size))
        if diff <= TOLERANCE:
            state = forward
        else:
            state = f"the export differs from PyTorch by {diff:.1e} (more than {TOLERANCE:.0e})"
            path.unlink(missing_ok=True)
    except Exception as err:  # noqa: BLE001  (any exporter or runtime failure: stay on PyTorch, say why)
        first = str(err).splitlines()[0][:200] if str(err) else ""
        state = f"export failed ({type(err).__name__}: {first})"
        log.info("ONNX Runtime path not used: %s", state)
    with _STATE_LOCK:
        changed = isinstance(state, OnnxForward) and fingerprint(model) != weights
        _STATE[model] = "the weights changed during the export" if changed else state
    return status(model)


def hookless_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A deep copy of ``model`` without the hooks other threads may have put on it (an explainer's, for one pass)."""
    clone = copy_module.deepcopy(model)
    for module in clone.modules():
        for hooks in (module._forward_hooks, module._forward_pre_hooks, module._backward_hooks,
                      module._backward_pre_hooks):
            hooks.clear()
    return clone


def prepare_in_background(model: torch.nn.Module, device: torch.device) -> None:
    """:func:`prepare` on a copy, in a daemon thread, once per model that :func:`model_zoo.load` built
    (predictions use PyTorch until it is done)."""
    with _STATE_LOCK:
        if model in _STATE or model not in _ALLOWED:
            return
        reason = unsuitable(model, device)
        _STATE[model] = reason or "preparing"
    if reason is None:
        weights = fingerprint(model)
        clone = hookless_copy(model)
        if fingerprint(model) != weights:  # changed while copied (a training step): leave it to PyTorch
            with _STATE_LOCK:
                _STATE[model] = "the weights changed during the export"
            return
        threading.Thread(target=_prepare_copy, args=(model, device, clone, weights), name="loupe-onnx-export",
                         daemon=True).start()


def _prepare_copy(model: torch.nn.Module, device: torch.device, clone: torch.nn.Module,
                  weights: tuple[tuple[int, int], ...]) -> None:
    prepare(model, device, copy=clone, weights=weights)
