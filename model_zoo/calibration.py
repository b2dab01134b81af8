"""Is the model's confidence honest? Expected calibration error, Brier score, reliability bins, temperature scaling.

- **ECE** (Guo et al., 2017): the top-label confidences are put in ``n_bins`` equal-width bins over [0, 1];
  ECE = sum over bins of (bin size / n) * |accuracy in the bin - mean confidence in the bin|.
- **Brier score** (multi-class): the mean over texts of sum_k (p_k - 1[y = k])^2; 0 is perfect, 2 the worst.
- **Temperature scaling** (Guo et al., 2017): one scalar T > 0 dividing the logits, fitted by minimising the
  negative log-likelihood on a split that is *not* the one reported. It changes confidence, never the argmax, so
  accuracy is unchanged. From probabilities, log p serves as the logits (softmax is invariant to the shift).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from model_zoo import cli
from model_zoo.errors import LoupeError

N_BINS = 15


class CalibrationError(LoupeError):
    """Calibration cannot be measured or fitted on these inputs."""


@dataclass(frozen=True)
class Bin:
    """One bin of the reliability diagram: confidences in ``[lo, hi)`` (the last bin includes 1.0)."""

    lo: float
    hi: float
    count: int
    confidence: float | None  # mean top-label confidence (None for an empty bin)
    accuracy: float | None  # share of those texts predicted right


@dataclass(frozen=True)
class Calibration:
    """How calibrated the probabilities are on one split."""

    n: int
    accuracy: float
    ece: float
    brier: float
    nll: float
    bins: tuple[Bin, ...] = field(default_factory=tuple)


def _check(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=float)
    labels = np.asarray(labels, dtype=int)
    if probs.ndim != 2 or probs.shape[0] != labels.shape[0] or probs.shape[0] == 0:
        raise CalibrationError(f"Need probabilities (n, classes) and n labels; got {probs.shape} and {labels.shape}.")
    if labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise CalibrationError("A label is not a class of these probabilities.")
    return probs, labels


def reliability(probs: np.ndarray, labels: np.ndarray, n_bins: int = N_BINS) -> tuple[Bin, ...]:
    """The reliability diagram's bins (equal width over [0, 1], top-label confidence)."""
    probs, labels = _check(probs, labels)
    conf, right = probs.max(axis=1), probs.argmax(axis=1) == labels
    # bin b holds [b / n, (b + 1) / n); computed from conf * n (not from linspace edges, whose rounding would put
    # a confidence of exactly 0.6 below its edge 0.6000000000000001)
    which = np.minimum(np.floor(conf * n_bins + 1e-9).astype(int), n_bins - 1)
    out = []
    for b in range(n_bins):
        inside = which == b
        count = int(inside.sum())
        out.append(Bin(b / n_bins, (b + 1) / n_bins, count,
                       float(conf[inside].mean()) if count else None, float(right[inside].mean()) if count else None))
    return tuple(out)


def ece(probs: np.ndarray, labels: np.ndarray, n_bins: int = N_BINS) -> float:
    """Expected calibration error (see the module docstring)."""
    bins = reliability(probs, labels, n_bins)
    n = sum(b.count for b in bins)
    return float(sum(b.count / n * abs(b.accuracy - b.confidence) for b in bins if b.count))  # type: ignore[operator]


def brier(probs: np.ndarray, labels: np.ndarray) -> float:
    """Multi-class Brier score (see the module docstring)."""
    probs, labels = _check(probs, labels)
    onehot = np.eye(probs.shape[1])[labels]
    return float(((probs - onehot) ** 2).sum(axis=1).mean())


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true labels."""
    probs, labels = _check(probs, labels)
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0)).mean())


def measure(probs: np.ndarray, labels: np.ndarray, n_bins: int = N_BINS) -> Calibration:
    """Accuracy, ECE, Brier score, NLL and the reliability bins of ``probs`` against ``labels``."""
    probs, labels = _check(probs, labels)
    return Calibration(n=len(labels), accuracy=float((probs.argmax(axis=1) == labels).mean()),
                       ece=ece(probs, labels, n_bins), brier=brier(probs, labels), nll=nll(probs, labels),
                       bins=reliability(probs, labels, n_bins))


def scale(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log p / T)``: the probabilities a temperature ``T`` gives (T > 1 softens, T < 1 sharpens)."""
    if not temperature > 0:
        raise CalibrationError(f"The temperature must be positive, not {temperature}.")
    logits = np.log(np.clip(np.asarray(probs, dtype=float), 1e-12, 1.0)) / float(temperature)
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return np.asarray(out / out.sum(axis=1, keepdims=True))


def fit_temperature(probs: np.ndarray, labels: np.ndarray, low: float = 0.05, high: float = 20.0) -> float:
    """The temperature that minimises the NLL of ``labels`` (bounded scalar search over log T).

    Raises:
        CalibrationError: fewer than 10 texts, or one class only (nothing to fit on).
    """
    from scipy.optimize import minimize_scalar

    probs, labels = _check(probs, labels)
    if len(labels) < 10 or len(np.unique(labels)) < 2:
        raise CalibrationError("Fitting a temperature needs at least 10 labelled texts of two or more classes.")
    result = minimize_scalar(lambda log_t: nll(scale(probs, float(np.exp(log_t))), labels),
                             bounds=(np.log(low), np.log(high)), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(result.x))


# --- calibrating a model on a labelled split -----------------------------------------------------------------

@dataclass(frozen=True)
class CalibrationRun:
    """A temperature fitted on one split and its effect measured on another."""

    model: str
    temperature: float
    fitted_on: str
    reported_on: str
    before: Calibration
    after: Calibration
    saved: bool = False

    def to_dict(self) -> dict[str, object]:
        from dataclasses import asdict

        return asdict(self)


def calibrate(model: str, fit_split: str = "validation", report_split: str = "test", save: bool = False,
              device: str = "cpu") -> CalibrationRun:
    """Fit a temperature for store model ``model`` on a Rotten Tomatoes split and measure it on another.

    The model is read without any temperature its card already has (the fit starts from its own logits). With
    ``save`` the temperature goes to the card's ``calibration`` entry, and ``model_zoo.load`` applies it from then
    on (every page, explainer and report sees the calibrated probabilities).

    Raises:
        CalibrationError: the same split for fitting and reporting, a model whose labels are not Rotten
            Tomatoes', or (with ``save``) a model that is not in the store.
    """
    from model_zoo import store
    from model_zoo.data import RT_LABELS, SPLITS, rotten_tomatoes
    from model_zoo.loading import load

    if fit_split == report_split:
        raise CalibrationError("Fit the temperature on one split and report on another (the fit would flatter it).")
    for split in (fit_split, report_split):
        if split not in SPLITS:
            raise CalibrationError(f"Unknown split {split!r}; choose from {', '.join(SPLITS)}.")
    folder = store.model_path(model)
    if save and folder is None:
        raise CalibrationError(f"{model!r} is not in the store; only store models keep a temperature on their card.")
    handle = load(model, device=device)
    handle.temperature = 1.0
    if handle.label_names != list(RT_LABELS):
        raise CalibrationError("Calibrating on Rotten Tomatoes needs a model with its labels (negative, positive).")
    fit, report = rotten_tomatoes(fit_split), rotten_tomatoes(report_split)
    temperature = fit_temperature(handle.predict_proba(fit.texts), np.asarray(fit.labels))
    probs, labels = handle.predict_proba(report.texts), np.asarray(report.labels)
    run = CalibrationRun(model, round(temperature, 4), f"Rotten Tomatoes {fit_split} ({len(fit)} texts)",
                         f"Rotten Tomatoes {report_split} ({len(report)} texts)", measure(probs, labels),
                         measure(scale(probs, temperature), labels), saved=save)
    if save:
        save_temperature(model, run.temperature, run.fitted_on, run.before.ece, run.after.ece, run.reported_on)
    return run


def save_temperature(model_id: str, temperature: float, fitted_on: str, ece_before: float | None = None,
                     ece_after: float | None = None, reported_on: str | None = None) -> None:
    """Write ``temperature`` to the store model's card (its ``calibration`` entry); ``model_zoo.load`` applies it
    from then on.

    Raises:
        CalibrationError: the model is not in the store, or the temperature is not positive.
    """
    from model_zoo import store

    folder = store.model_path(model_id)
    if folder is None:
        raise CalibrationError(f"{model_id!r} is not in the store; only store models keep a temperature on their "
                               "card.")
    if not temperature > 0:
        raise CalibrationError(f"The temperature must be positive, not {temperature}.")
    entry: dict[str, object] = {"temperature": round(float(temperature), 4), "method": "temperature scaling (NLL)",
                                "fitted_on": fitted_on}
    for key, value in (("ece_before", ece_before), ("ece_after", ece_after)):
        if value is not None:
            entry[key] = round(float(value), 4)
    if reported_on:
        entry["reported_on"] = reported_on
    card = store.read_card(folder)
    card["calibration"] = entry
    store.write_card(folder, card)  # the card is part of the model's file stamp: caches reload it


def _cmd_calibrate(args: Any) -> int:
    import json

    run = calibrate(args.model, args.fit_split, args.report_split, save=args.save, device=args.device)
    if args.json:
        print(json.dumps(run.to_dict(), indent=2))
        return 0
    rows = [(name, f"{c.accuracy:.4f}", f"{c.ece:.4f}", f"{c.brier:.4f}", f"{c.nll:.4f}")
            for name, c in (("before", run.before), (f"T = {run.temperature:.3f}", run.after))]
    print(f"{run.model}: temperature fitted on {run.fitted_on}, measured on {run.reported_on}")
    print(cli.table(rows, ("", "accuracy", "ECE", "Brier", "NLL")))
    print("saved to the model card: the app and the CLIs now use it" if run.saved else "not saved (use --save)")
    return 0


@cli.command("model_zoo", "calibrate")
def add_cli(sub: Any) -> None:
    """Add ``python -m model_zoo calibrate``."""
    from model_zoo import DEFAULT_MODEL_ID

    p = sub.add_parser("calibrate", help="fit a temperature on one split, report calibration on another")
    p.add_argument("--model", default=DEFAULT_MODEL_ID)
    p.add_argument("--fit-split", default="validation", choices=["train", "validation", "test"])
    p.add_argument("--report-split", default="test", choices=["train", "validation", "test"])
    p.add_argument("--save", action="store_true", help="write the temperature to the model's card")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_calibrate)
