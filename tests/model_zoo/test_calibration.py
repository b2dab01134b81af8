"""Calibration on known answers: hand-computed ECE and Brier, a recovered temperature, the card's temperature used."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from model_zoo import calibration, load, store
from model_zoo.calibration import CalibrationError
from model_zoo.paths import models_dir

PROBS = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.3, 0.7]])
LABELS = np.array([0, 1, 0, 1])


def test_ece_and_brier_by_hand() -> None:
    # confidences 0.9, 0.8 (wrong), 0.6, 0.7; five bins of 0.2: [0.6, 0.8) holds 0.6 and 0.7 (conf 0.65, acc 1),
    # [0.8, 1.0] holds 0.9 and 0.8 (conf 0.85, acc 0.5): ECE = 0.5 * 0.35 + 0.5 * 0.35
    assert calibration.ece(PROBS, LABELS, n_bins=5) == pytest.approx(0.35)
    bins = calibration.reliability(PROBS, LABELS, n_bins=5)
    assert [b.count for b in bins] == [0, 0, 0, 2, 2]
    assert bins[3].confidence == pytest.approx(0.65) and bins[4].accuracy == pytest.approx(0.5)
    # (0.01 + 0.01) + (0.64 + 0.64) + (0.16 + 0.16) + (0.09 + 0.09) = 1.8 over 4 texts
    assert calibration.brier(PROBS, LABELS) == pytest.approx(0.45)
    perfect = calibration.measure(np.eye(2)[LABELS], LABELS)
    assert perfect.ece == pytest.approx(0.0) and perfect.brier == pytest.approx(0.0) and perfect.accuracy == 1.0


def test_temperature_is_recovered_and_keeps_the_argmax() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(4000, 3))
    true = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(3, p=p) for p in true])
    overconfident = calibration.scale(true, 0.5)  # what a model twice too sure would say
    fitted = calibration.fit_temperature(overconfident, labels)
    assert fitted == pytest.approx(2.0, rel=0.08)
    fixed = calibration.scale(overconfident, fitted)
    assert calibration.ece(fixed, labels) < calibration.ece(overconfident, labels)
    assert (fixed.argmax(axis=1) == overconfident.argmax(axis=1)).all()
    np.testing.assert_allclose(calibration.scale(true, 1.0), true, atol=1e-9)
    with pytest.raises(CalibrationError):
        calibration.fit_temperature(overconfident[:5], labels[:5])
    with pytest.raises(CalibrationError):
        calibration.scale(true, 0.0)


def test_card_temperature_is_applied_everywhere(tiny_model_dir: Path) -> None:
    folder = models_dir() / "tiny-calibrated"
    shutil.copytree(tiny_model_dir, folder)
    store.write_card(folder, {"id": "tiny-calibrated", "labels": ["negative", "positive"]})
    plain = load("tiny-calibrated")
    assert plain.temperature == 1.0
    texts = ["a fine film", "a dull and boring film"]
    before = plain.predict_proba(texts)
    store.write_card(folder, {"id": "tiny-calibrated", "labels": ["negative", "positive"],
                              "calibration": {"temperature": 2.0}})
    hot = load("tiny-calibrated")
    assert hot.temperature == 2.0
    np.testing.assert_allclose(hot.predict_proba(texts), calibration.scale(before, 2.0), atol=1e-5)
    enc = hot.encode(texts[0])
    with torch.no_grad():
        grad_path = hot.forward_probs(enc.input_ids, enc.attention_mask)[0].numpy()
    np.testing.assert_allclose(grad_path, hot.predict_proba(texts[:1])[0], atol=1e-5)
    store.write_card(folder, {"id": "tiny-calibrated", "calibration": {"temperature": "hot"}})
    assert load("tiny-calibrated").temperature == 1.0  # an unusable value is ignored, not trusted


def test_calibrate_fits_on_one_split_reports_on_another_and_saves(tiny_model_dir: Path) -> None:
    folder = models_dir() / "tiny-rt"
    shutil.copytree(tiny_model_dir, folder)
    store.write_card(folder, {"id": "tiny-rt", "labels": ["negative", "positive"]})
    with pytest.raises(CalibrationError, match="another"):
        calibration.calibrate("tiny-rt", "test", "test")
    run = calibration.calibrate("tiny-rt", "validation", "test", save=True)
    assert run.before.accuracy == run.after.accuracy and run.before.n == run.after.n > 1000
    assert run.after.nll <= run.before.nll + 0.05  # fitted elsewhere, so not guaranteed better; never far off
    card = store.read_card(folder)
    assert card["calibration"]["temperature"] == run.temperature and "validation" in card["calibration"]["fitted_on"]
    assert load("tiny-rt").temperature == pytest.approx(run.temperature)
    again = calibration.calibrate("tiny-rt", "validation", "test")  # starts from the model's own logits
    assert again.temperature == pytest.approx(run.temperature, rel=1e-3)
    with pytest.raises(CalibrationError, match="not in the store"):
        calibration.calibrate(str(tiny_model_dir), save=True)
