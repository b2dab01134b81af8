"""The ONNX Runtime forward pass (issue 13): equal to PyTorch within 1e-5, used only while the weights are the ones
exported, never for an in-memory copy, and any failure leaves the PyTorch path with its reason."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from explainers import REGISTRY
from model_zoo import load, onnx_forward

TEXTS = [f"a {w} film about {x}" for w in ("good", "bad", "dull", "fine") for x in ("love", "war", "cats", "dogs")]


@pytest.fixture
def fresh(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A handle of its own (its own model object), with the ONNX Runtime path allowed."""
    monkeypatch.setenv("LOUPE_ONNX", "auto")
    return load(str(tiny_model_dir), device="cpu")


def _torch_probs(handle, texts: list[str]) -> np.ndarray:  # type: ignore[no-untyped-def]
    enc = handle.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        return torch.softmax(handle.model(**enc).logits, -1).numpy()


def test_predictions_come_from_onnx_runtime_and_equal_pytorchs(fresh, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    expected = _torch_probs(fresh, TEXTS)
    assert onnx_forward.prepare(fresh.model, fresh.device) == "onnxruntime" == fresh.forward_path
    assert list((onnx_forward.loupe_home() / "onnx").glob("*.onnx"))  # cached for the next process

    def boom(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("PyTorch forward called")

    monkeypatch.setattr(fresh.model, "forward", boom)
    np.testing.assert_allclose(fresh.predict_proba(TEXTS), expected, atol=onnx_forward.TOLERANCE)


def test_an_explanation_through_onnx_runtime_equals_pytorchs(tiny_model_dir: Path, fresh,  # type: ignore[no-untyped-def]
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    onnx_forward.prepare(fresh.model, fresh.device)
    monkeypatch.setenv("LOUPE_ONNX", "off")
    plain = load(str(tiny_model_dir), device="cpu")
    text = "an instant classic with a superb cast and a dull ending"
    for method in ("shap", "lime", "ablation"):
        a, b = REGISTRY[method].explain(fresh, text, 1), REGISTRY[method].explain(plain, text, 1)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)
    assert plain.forward_path.startswith("pytorch")


def test_changed_weights_drop_the_session(fresh) -> None:  # type: ignore[no-untyped-def]
    onnx_forward.prepare(fresh.model, fresh.device)
    with torch.no_grad():
        fresh.model.classifier.weight.mul_(-1.0)  # in place: same storage, new version
    assert fresh.forward_path == "pytorch: the weights changed after the export"
    np.testing.assert_allclose(fresh.predict_proba(TEXTS), _torch_probs(fresh, TEXTS), atol=1e-6)


def test_a_copy_made_in_memory_is_never_exported(fresh) -> None:  # type: ignore[no-untyped-def]
    clone = copy.deepcopy(fresh.model)
    onnx_forward.prepare_in_background(clone, fresh.device)
    assert onnx_forward.status(clone) == "pytorch: not prepared" and onnx_forward.session_for(clone) is None


def test_the_first_large_prediction_prepares_it_in_the_background(fresh) -> None:  # type: ignore[no-untyped-def]
    assert fresh.forward_path == "pytorch: not prepared"
    fresh.predict_proba(TEXTS[:3])  # a page's single predictions: not worth an export
    assert fresh.forward_path == "pytorch: not prepared"
    fresh.predict_proba(TEXTS)
    deadline = time.time() + 120
    while fresh.forward_path == "preparing" and time.time() < deadline:
        time.sleep(0.2)
    assert fresh.forward_path == "onnxruntime"


@pytest.mark.parametrize(("setup", "reason"), [
    ("off", "pytorch: LOUPE_ONNX=off"),
    ("export", "pytorch: export failed (RuntimeError: no exporter today)"),
    ("differs", "pytorch: the export differs from PyTorch by 1.0e-01 (more than 1e-05)"),
    ("half", "pytorch: weights are not float32"),
])
def test_what_cannot_be_used_says_why_and_predictions_go_on(fresh, monkeypatch: pytest.MonkeyPatch, setup: str,  # type: ignore[no-untyped-def]
                                                            reason: str) -> None:
    if setup == "off":
        monkeypatch.setenv("LOUPE_ONNX", "off")
    elif setup == "export":
        def fail(model, path):  # type: ignore[no-untyped-def]
            raise RuntimeError("no exporter today")

        monkeypatch.setattr(onnx_forward, "export", fail)
    elif setup == "differs":
        monkeypatch.setattr(onnx_forward, "check", lambda *args, **kwargs: 0.1)
    else:
        fresh.model.half()
    assert onnx_forward.prepare(fresh.model, fresh.device) == reason == fresh.forward_path
    if setup == "differs":
        assert not list((onnx_forward.loupe_home() / "onnx").glob("*.onnx"))  # a wrong export is not kept
    if setup != "half":
        np.testing.assert_allclose(fresh.predict_proba(TEXTS), _torch_probs(fresh, TEXTS), atol=1e-6)
