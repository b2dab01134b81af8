"""The explainer contract: ``Attribution``, ``Explainer``, configs and the registry."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from model_zoo import limits, spec
from model_zoo.errors import EmptyTextError, LoupeError
from model_zoo.handle import Encoded, ModelHandle
from model_zoo.registry import Registry


class ExplainerError(LoupeError):
    """An explanation could not be made (bad target, unsupported model, bad config)."""


class ExplainerConfigError(ExplainerError, spec.ConfigError):
    """An explainer setting is unknown or has a bad value."""


class SettingOverBudgetError(ExplainerConfigError, spec.SettingOverBudgetError):
    """A setting is above this server's limit for it (``LOUPE_LIMITS``, the hosted default, or the field's max)."""


@dataclass(frozen=True)
class Word:
    """A whitespace-delimited word of the text with the summed score of its tokens."""

    text: str
    start: int
    end: int
    score: float
    tokens: tuple[int, ...]


@dataclass(frozen=True)
class Cost:
    """What an explanation cost: model passes (forward or forward+backward batches) and wall time."""

    passes: int
    seconds: float


@dataclass(frozen=True)
class Attribution:
    """One explanation of one text for one target class. Renderers and metrics take only this.

    ``tokens``/``offsets``/``special``/``scores`` are parallel, one entry per model token (specials
    included, with offsets ``(0, 0)`` and, for most methods, score 0). ``words`` is the word-level view.
    """

    text: str
    tokens: tuple[str, ...]
    offsets: tuple[tuple[int, int], ...]
    special: tuple[bool, ...]
    scores: tuple[float, ...]
    words: tuple[Word, ...]
    target: int
    labels: tuple[str, ...]
    probs: tuple[float, ...]
    signed: bool
    method: str
    params: dict[str, Any]
    cost: Cost
    truncated: bool = False
    extras: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        n = len(self.tokens)
        if not (len(self.offsets) == len(self.special) == len(self.scores) == n):
            raise ValueError(f"Attribution arrays disagree: {n} tokens, {len(self.offsets)} offsets, "
                             f"{len(self.special)} special flags, {len(self.scores)} scores")
        if not 0 <= self.target < len(self.labels) or len(self.probs) != len(self.labels):
            raise ValueError("target, probs and labels disagree")
        for a, b in self.offsets:
            if not 0 <= a <= b <= len(self.text):
                raise ValueError(f"offset ({a}, {b}) is outside the text")

    @property
    def target_label(self) -> str:
        return self.labels[self.target]

    @property
    def predicted(self) -> int:
        return int(np.argmax(self.probs))

    def word_scores(self) -> np.ndarray:
        return np.array([w.score for w in self.words], dtype=float)

    def top_words(self, k: int = 10) -> list[Word]:
        """The ``k`` top words: highest score first, ties in text order.

        This is Loupe's one meaning of "top": for a signed method the words that push hardest *toward*
        the target (not the largest magnitudes), for an unsigned one the most important. Highlights,
        tables, faithfulness, top-k overlap and the disagreement flag all rank this way.
        """
        return [self.words[i] for i in rank_order(self.word_scores())[:k]]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Attribution:
        """Rebuild an Attribution from :meth:`to_dict` output (e.g. a job's saved results)."""
        names = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in data.items() if k in names}
        d["words"] = tuple(Word(w["text"], w["start"], w["end"], w["score"], tuple(w["tokens"])) for w in d["words"])
        d["cost"] = Cost(**d["cost"])
        d["offsets"] = tuple(tuple(o) for o in d["offsets"])
        for key in ("tokens", "special", "scores", "labels", "probs"):
            d[key] = tuple(d[key])
        return cls(**d)

    def to_dict(self, extras: bool = True) -> dict[str, Any]:
        """JSON-ready dict; numpy arrays in extras become lists (large ones only when ``extras``)."""
        out = dataclasses.asdict(self)
        out["target_label"] = self.target_label
        out["extras"] = {k: _jsonable(v) for k, v in self.extras.items()
                         if extras or not isinstance(v, np.ndarray)}
        return out


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.round(6).tolist()
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    return v


def default_config(name: str) -> Any:
    """The explainer's Config with every default brought within this server's limits."""
    return spec.defaults(get(name).Config, name)


def make_config(name: str, values: Any = None) -> Any:
    """An explainer's Config from None (the defaults within this server's limits), an instance or a dict, checked.

    Raises:
        ExplainerConfigError: an unknown field or a bad value (an ``ExplainerError``).
        SettingOverBudgetError: a value over its limit (also a ``model_zoo.limits.BudgetError``).
    """
    if values is None:
        return default_config(name)
    return spec.build(get(name).Config, values, name, error=ExplainerConfigError, over=SettingOverBudgetError)


def check_config(config: Any, name: str, budget: limits.Budget | None = None) -> None:
    """Refuse values of the wrong type, outside a Config's declared min/choices, or over this server's limits.

    Raises:
        ExplainerConfigError: a wrong type, a value below ``min`` or not among ``choices``.
        SettingOverBudgetError: a value above the limit in force (also an ``ExplainerError`` and a
            ``model_zoo.limits.BudgetError``).
    """
    spec.check(config, name, budget, error=ExplainerConfigError, over=SettingOverBudgetError)


@runtime_checkable
class Explainer(Protocol):
    """What every explainer provides (see :class:`BaseExplainer` for the shared skeleton)."""

    name: str
    title: str
    Config: type
    signed: bool
    claims_faithfulness: bool
    description: str
    needs_exclusive_model: bool

    def supports(self, handle: ModelHandle) -> bool: ...

    def explain(self, handle: ModelHandle, text: str, target: int | None = None,
                config: Any = None) -> Attribution: ...


_WORD_RE = re.compile(r"\S+")


def rank_order(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    """Indices by score, highest first; ties keep their order (see :meth:`Attribution.top_words`)."""
    return np.argsort(-np.asarray(scores, dtype=float), kind="stable")


def word_spans(text: str, limit: int | None = None) -> list[tuple[int, int]]:
    """``(start, end)`` of each whitespace-delimited word of ``text[:limit]``: the words Loupe perturbs."""
    return [(m.start(), m.end()) for m in _WORD_RE.finditer(text, 0, len(text) if limit is None else limit)]


def compose_words(words: Sequence[str], keep: Sequence[bool] | np.ndarray, fill: str | None = None) -> str:
    """The text with the words where ``keep`` is False deleted (or replaced by ``fill``), single-spaced.

    This is the one perturbation of the faithfulness metrics and of LIME, so an explainer is scored by
    the same kind of change it was built from.
    """
    if fill is None:
        return " ".join(w for w, k in zip(words, keep) if k)
    return " ".join(w if k else fill for w, k in zip(words, keep))


def token_words(offsets: Sequence[tuple[int, int]], special: Sequence[bool],
                spans: Sequence[tuple[int, int]]) -> list[int]:
    """For each token, the index of the word span it starts in; -1 for specials and tokens outside."""
    out = []
    for (a, b), s in zip(offsets, special):
        idx = -1
        if not s and b > a:
            idx = next((j for j, (ws, we) in enumerate(spans) if ws <= a < we), -1)
        out.append(idx)
    return out


def word_view(text: str, offsets: list[tuple[int, int]], special: list[bool], scores: np.ndarray,
              limit: int) -> tuple[Word, ...]:
    """Aggregate token scores into whitespace words of ``text[:limit]`` (specials left out)."""
    words = []
    spans = word_spans(text, limit)
    j = 0
    token_order = sorted((a, i) for i, ((a, b), s) in enumerate(zip(offsets, special)) if not s and b > a)
    for start, end in spans:
        members = []
        while j < len(token_order) and token_order[j][0] < end:
            if token_order[j][0] >= start:
                members.append(token_order[j][1])
            j += 1
        if members:
            words.append(Word(text[start:end], start, end, float(sum(scores[i] for i in members)), tuple(members)))
    return tuple(words)


class BaseExplainer:
    """Shared skeleton: validate, tokenize, pick the target, time and count, build the Attribution.

    Subclasses set ``name``, ``title``, ``Config``, ``signed`` and implement ``_attribute``.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    Config: ClassVar[type]
    signed: ClassVar[bool] = True
    description: ClassVar[str] = ""
    needs_gradients: ClassVar[bool] = False
    # Whether the method attaches hooks to the shared model (Captum's layer methods do): then it needs the
    # model alone for the whole explanation. The others only run plain forward (and backward) passes, which
    # any number of sessions may run at once (model_zoo.concurrency.ModelGate).
    needs_exclusive_model: ClassVar[bool] = False
    # Whether the method claims its scores say how much each word *caused* the decision. Those that do
    # must rank planted trigger words first on the ground-truth model (tests/explainers/test_ground_truth.py).
    claims_faithfulness: ClassVar[bool] = True

    def supports(self, handle: ModelHandle) -> bool:
        # Dynamic int8 layers pass no gradients: a gradient method would silently return zeros.
        return not (self.needs_gradients and handle.is_quantized)

    def _attribute(self, handle: ModelHandle, enc: Encoded, text: str, target: int,
                   config: Any) -> tuple[np.ndarray, dict[str, Any]]:
        raise NotImplementedError

    def _predict_and_attribute(self, handle: ModelHandle, enc: Encoded, text: str, target: int | None,
                               config: Any) -> tuple[np.ndarray, int, np.ndarray, dict[str, Any]]:
        """``(probabilities, target, scores, extras)``: by default one prediction of the explained text, then
        :meth:`_attribute`. A method whose own pass yields the probabilities (a gradient or attention pass)
        overrides this and makes one pass in all."""
        probs = handle.predict_proba([text[: enc.explained_chars]])[0]
        target = int(np.argmax(probs)) if target is None else target
        scores, extras = self._attribute(handle, enc, text, target, config)
        return probs, target, scores, extras

    def explain(self, handle: ModelHandle, text: str, target: int | None = None,
                config: Any = None) -> Attribution:
        """Explain ``handle``'s prediction on ``text`` for class ``target`` (default: predicted).

        The text and config are checked against this server's budgets (:mod:`model_zoo.limits`) first;
        at most ``LOUPE_MAX_EXPLAIN_TOKENS`` tokens are explained (the rest is marked truncated).

        Raises:
            EmptyTextError: text is empty or whitespace only.
            TextTooLongError: the text is over ``LOUPE_MAX_TEXT_CHARS`` (a ``BudgetError``).
            SettingOverBudgetError: a setting is over its limit (an ``ExplainerError`` and a ``BudgetError``).
            ExplainerError: unsupported model, bad target or config.
        """
        if not isinstance(text, str) or not text.strip():
            raise EmptyTextError("The text is empty. Type or paste some text to explain.")
        budget = limits.current()
        budget.check_text(text)
        if not self.supports(handle):
            raise ExplainerError(f"{self.title} does not support this model.")
        config = config if config is not None else default_config(self.name)
        if not isinstance(config, self.Config):
            raise ExplainerError(f"{self.title} expects a {self.Config.__name__}, got {type(config).__name__}.")
        check_config(config, self.name, budget)
        if target is not None and not (isinstance(target, (int, np.integer)) and not isinstance(target, bool)
                                       and 0 <= int(target) < handle.num_labels):
            small = isinstance(target, (int, np.integer)) and abs(int(target)) < 10**9  # no 5,000-digit messages
            which = f"Target {target!r}" if small else "That target"
            raise ExplainerError(f"{which} is not a class of this model (0..{handle.num_labels - 1}).")
        start = time.perf_counter()
        # A hook-based method holds the model alone for the whole explanation; the others take shared use pass
        # by pass inside the handle, so a hook-based one waiting for the model goes in between their passes.
        hold = handle.use(True, self.title) if self.needs_exclusive_model else contextlib.nullcontext()
        with hold, handle.remember(), handle.meter() as passes:
            enc = handle.encode(text, max_tokens=budget.tokens_for(handle.max_length))
            probs, target, scores, extras = self._predict_and_attribute(
                handle, enc, text, None if target is None else int(target), config)
        scores = np.nan_to_num(np.asarray(scores, dtype=float))
        return Attribution(
            text=text,
            tokens=tuple(enc.tokens),
            offsets=tuple(enc.offsets),
            special=tuple(enc.special),
            scores=tuple(float(s) for s in scores),
            words=word_view(text, enc.offsets, enc.special, scores, enc.explained_chars),
            target=target,
            labels=tuple(handle.label_names),
            probs=tuple(float(p) for p in probs),
            signed=self.signed,
            method=self.name,
            params=dataclasses.asdict(config),  # type: ignore[call-overload]
            cost=Cost(passes=passes[0], seconds=round(time.perf_counter() - start, 4)),
            truncated=enc.truncated,
            extras=extras,
        )


REGISTRY: Registry[Explainer] = Registry("explainer", ExplainerError)


def register(explainer: Explainer) -> Explainer:
    """Add an explainer to :data:`REGISTRY`; a name used twice is an error."""
    return REGISTRY.register(explainer.name, explainer)


def registered(cls: type) -> type:
    """Class decorator: instantiate and register."""
    register(cls())
    return cls


def available(handle: ModelHandle) -> list[Explainer]:
    """Registry entries that support ``handle``, in registration order."""
    return [e for e in REGISTRY.values() if e.supports(handle)]


def get(name: str) -> Explainer:
    """The registered explainer ``name`` (:class:`ExplainerError` listing the known ones when there is none)."""
    return REGISTRY.lookup(name)
