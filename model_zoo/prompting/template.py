"""A prompt template and its verbaliser: what a prompted language model reads, and which words answer.

The prompt is, joined by ``separator``:

- the *instruction* (optional), e.g. ``Classify the sentiment of the movie review as positive or negative.``;
- one block per *demonstration*: ``pattern`` with ``{text}`` and ``{label}`` filled in (the label's first word);
- the *query*: ``pattern`` with the text filled in, cut just before ``{label}`` (trailing spaces removed). What
  the pattern has between ``{text}`` and ``{label}`` is the *answer cue* (``\\nSentiment:``).

The model's next token after the query is the answer. ``verbaliser`` maps each label (in class order) to one or
more answer words; a label's probability is the summed next-token probability of its words' first tokens,
normalised over the labels (see :mod:`model_zoo.prompting.model`). With ``chat`` the prompt is the user's turn of
the tokenizer's chat template and the answer is the first token of the assistant's turn.

Text from people goes into the prompt by plain string concatenation, never ``str.format``: a review may hold
``{label}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from model_zoo.errors import LoupeError

TEXT_SLOT = "{text}"
LABEL_SLOT = "{label}"
DEFAULT_INSTRUCTION = "Classify the sentiment of the movie review as positive or negative."
DEFAULT_PATTERN = "Review: {text}\nSentiment: {label}"
DEFAULT_CONTENT_FREE = ("N/A", "", "[MASK]")  # Zhao et al. (2021)
_EXAMPLE = "'" + DEFAULT_PATTERN.replace("\n", " ⏎ ") + "'"  # the default pattern on one line, for messages
MAX_DEMONSTRATIONS = 32
MAX_FIELD_CHARS = 4000


class PromptError(LoupeError):
    """A prompt classifier cannot be built as asked (bad template, verbaliser or demonstrations)."""


class TemplateError(PromptError):
    """The template has no ``{text}`` or ``{label}`` slot, has one twice, or has them in the wrong order."""


class VerbaliserError(PromptError):
    """The verbaliser is empty, a label has no word, two labels share a word (or its first token)."""


class DemonstrationError(PromptError):
    """A demonstration is empty or names a label the verbaliser does not have."""


@dataclass(frozen=True)
class Demonstration:
    """One worked example shown in the prompt: a text and its label (a verbaliser label)."""

    text: str
    label: str


@dataclass(frozen=True)
class Segment:
    """Where one part of a rendered prompt body lies: ``kind`` is instruction, demonstration or query;
    ``index`` the demonstration's position; ``start``/``end`` character offsets into the body."""

    kind: str
    index: int
    start: int
    end: int


@dataclass(frozen=True)
class Rendered:
    """A prompt body with the text in it: ``prefix + text + suffix == body``; ``space`` says the pattern has a
    space right before ``{text}`` (left out of ``prefix``: the text's first token carries it, as a tokenizer
    would split the whole string); ``segments`` locate the instruction, each demonstration and the query."""

    prefix: str
    suffix: str
    space: bool
    segments: tuple[Segment, ...]
    text_start: int  # where the text starts in the body (after the space, if any)

    def body(self, text: str) -> str:
        return self.prefix + (" " if self.space else "") + text + self.suffix


@dataclass(frozen=True)
class PromptTemplate:
    """Instruction, pattern, demonstrations, verbaliser and calibration of a prompt classifier (see the module
    docstring). Build it with :meth:`from_dict` or directly; :meth:`check` raises a :class:`PromptError` with a
    message for a person."""

    verbaliser: Mapping[str, Sequence[str]] = field(
        default_factory=lambda: {"negative": ("negative",), "positive": ("positive",)})
    instruction: str = DEFAULT_INSTRUCTION
    pattern: str = DEFAULT_PATTERN
    demonstrations: tuple[Demonstration, ...] = ()
    separator: str = "\n\n"
    chat: bool = False
    calibrate: bool = False
    content_free: tuple[str, ...] = DEFAULT_CONTENT_FREE

    def __post_init__(self) -> None:
        # One shape whatever was passed (lists from JSON, tuples from code), so equal templates compare equal.
        words = {str(k): (v,) if isinstance(v, str) else tuple(v) for k, v in dict(self.verbaliser).items()}
        object.__setattr__(self, "verbaliser", words)
        object.__setattr__(self, "demonstrations", tuple(
            d if isinstance(d, Demonstration) else Demonstration(str(d["text"]), str(d["label"]))
            for d in self.demonstrations))
        object.__setattr__(self, "content_free", tuple(self.content_free))

    # --- checks ------------------------------------------------------------------------------------------
    @property
    def labels(self) -> list[str]:
        """The class names, in class-id order (the verbaliser's order)."""
        return [str(k) for k in self.verbaliser]

    def words(self, label: str) -> list[str]:
        """The answer words of ``label``, stripped, empty ones left out."""
        return [w.strip() for w in self.verbaliser.get(label, ()) if w and w.strip()]

    def check(self) -> PromptTemplate:
        """Raise :class:`TemplateError`, :class:`VerbaliserError` or :class:`DemonstrationError` when the template
        cannot be used; returns ``self``."""
        for name, value in (("instruction", self.instruction), ("pattern", self.pattern),
                            ("separator", self.separator)):
            if not isinstance(value, str) or len(value) > MAX_FIELD_CHARS:
                raise TemplateError(f"The {name} must be text of at most {MAX_FIELD_CHARS} characters.")
        n_text, n_label = self.pattern.count(TEXT_SLOT), self.pattern.count(LABEL_SLOT)
        if n_text != 1:
            raise TemplateError("The template needs exactly one {text} slot, where the text to classify goes "
                                f"(it has {n_text}). Example: {_EXAMPLE}.")
        if n_label != 1:
            raise TemplateError("The template needs exactly one {label} slot, where the answer word goes "
                                f"(it has {n_label}). Example: {_EXAMPLE}.")
        if self.pattern.index(LABEL_SLOT) < self.pattern.index(TEXT_SLOT):
            raise TemplateError("The {label} slot must come after the {text} slot: the model reads the text, "
                                "then answers.")
        labels = self.labels
        if len(labels) < 2:
            raise VerbaliserError("The verbaliser needs at least two labels, each with an answer word "
                                  "(e.g. negative: negative, positive: positive).")
        if any(not label.strip() for label in labels):
            raise VerbaliserError("Every label needs a name.")
        seen: dict[str, str] = {}
        for label in labels:
            words = self.words(label)
            if not words:
                raise VerbaliserError(f"The label {label!r} has no answer word.")
            for word in words:  # case matters: "Positive" and "positive" are different tokens
                if word in seen and seen[word] != label:
                    raise VerbaliserError(f"The labels {seen[word]!r} and {label!r} both use the word {word!r}; "
                                          "each answer word may belong to one label only.")
                seen[word] = label
        if len(self.demonstrations) > MAX_DEMONSTRATIONS:
            raise DemonstrationError(f"At most {MAX_DEMONSTRATIONS} demonstrations.")
        for i, demo in enumerate(self.demonstrations, 1):
            if not demo.text or not demo.text.strip():
                raise DemonstrationError(f"Demonstration {i} has no text.")
            if len(demo.text) > MAX_FIELD_CHARS:
                raise DemonstrationError(f"Demonstration {i} is longer than {MAX_FIELD_CHARS} characters.")
            if demo.label not in self.verbaliser:
                raise DemonstrationError(f"Demonstration {i} has the label {demo.label!r}, which is not one of "
                                         f"the verbaliser's labels ({', '.join(labels)}).")
        if not self.content_free:
            raise PromptError("Contextual calibration needs at least one content-free text (e.g. 'N/A').")
        return self

    # --- rendering ---------------------------------------------------------------------------------------
    def _pieces(self) -> tuple[str, str, str]:
        """``(before_text, between, after_label)`` of the pattern."""
        before, rest = self.pattern.split(TEXT_SLOT, 1)
        between, after = rest.split(LABEL_SLOT, 1)
        return before, between, after

    @property
    def answer_cue(self) -> str:
        """What the query ends with: the pattern between the text and the label, trailing spaces removed."""
        return self._pieces()[1].rstrip()

    @property
    def answer_gap(self) -> str:
        """The whitespace the pattern puts between the cue and the label word (``" "`` in ``Sentiment: {label}``);
        the label words are tokenized with it in front, as they appear after the cue in the demonstrations."""
        between = self._pieces()[1]
        return between[len(between.rstrip()):]

    def demonstration_block(self, demo: Demonstration) -> str:
        before, between, after = self._pieces()
        return before + demo.text + between + self.words(demo.label)[0] + after

    def without(self, index: int) -> PromptTemplate:
        """The same template with demonstration ``index`` left out (leave-one-out)."""
        demos = tuple(d for i, d in enumerate(self.demonstrations) if i != index)
        return replace_template(self, demonstrations=demos)

    def render(self) -> Rendered:
        """The body around the text slot, with the segments of instruction, demonstrations and query."""
        before, between, _ = self._pieces()
        parts: list[tuple[str, int, str]] = []
        if self.instruction.strip():
            parts.append(("instruction", 0, self.instruction.strip()))
        for i, demo in enumerate(self.demonstrations):
            parts.append(("demonstration", i, self.demonstration_block(demo)))
        head, segments, pos = "", [], 0
        for kind, index, piece in parts:
            segments.append(Segment(kind, index, pos, pos + len(piece)))
            head += piece + self.separator
            pos += len(piece) + len(self.separator)
        space = before.endswith(" ")
        prefix = head + (before[:-1] if space else before)
        text_start = len(prefix) + (1 if space else 0)
        suffix = between.rstrip()
        segments.append(Segment("query", 0, len(head), -1))  # its end depends on the text (see segments_for)
        return Rendered(prefix, suffix, space, tuple(segments), text_start)

    def segments_for(self, text: str) -> tuple[Segment, ...]:
        """The segments of the body made with ``text`` (the query's end filled in)."""
        r = self.render()
        end = len(r.body(text))
        return tuple(s if s.end >= 0 else Segment(s.kind, s.index, s.start, end) for s in r.segments)

    def body(self, text: str) -> str:
        """The whole prompt body for ``text`` (without any chat frame)."""
        return self.render().body(text)

    @property
    def shots(self) -> int:
        return len(self.demonstrations)

    def title(self) -> str:
        """``zero-shot``, ``4-shot``; ``, calibrated`` when contextual calibration is on."""
        shots = "zero-shot" if not self.shots else f"{self.shots}-shot"
        return shots + (", calibrated" if self.calibrate else "")

    # --- JSON --------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "instruction": self.instruction,
            "pattern": self.pattern,
            "separator": self.separator,
            "verbaliser": {str(k): [str(w) for w in v] for k, v in self.verbaliser.items()},
            "demonstrations": [{"text": d.text, "label": d.label} for d in self.demonstrations],
            "chat": bool(self.chat),
            "calibrate": bool(self.calibrate),
            "content_free": list(self.content_free),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PromptTemplate:
        """A template from :meth:`to_dict` output (or a model card's ``prompt`` entry), checked.

        Raises:
            PromptError: a field has the wrong type, or :meth:`check` fails.
        """
        if not isinstance(data, Mapping):
            raise PromptError("A prompt template is a JSON object.")
        raw_verbaliser = data.get("verbaliser", {})
        if not isinstance(raw_verbaliser, Mapping) or not raw_verbaliser:
            raise VerbaliserError("The verbaliser is empty: give each label at least one answer word.")
        verbaliser: dict[str, tuple[str, ...]] = {}
        for label, words in raw_verbaliser.items():
            if isinstance(words, str):
                words = [words]
            if not isinstance(words, Sequence) or not all(isinstance(w, str) for w in words):
                raise VerbaliserError(f"The answer words of {label!r} must be a list of strings.")
            verbaliser[str(label)] = tuple(words)
        demos = []
        for i, d in enumerate(data.get("demonstrations") or [], 1):
            if not isinstance(d, Mapping) or not isinstance(d.get("text"), str) or d.get("label") is None:
                raise DemonstrationError(f"Demonstration {i} needs a text and a label.")
            demos.append(Demonstration(str(d["text"]), str(d["label"])))
        content_free = data.get("content_free", DEFAULT_CONTENT_FREE)
        if not isinstance(content_free, Sequence) or isinstance(content_free, str) \
                or not all(isinstance(c, str) for c in content_free):
            raise PromptError("content_free must be a list of strings.")
        template = cls(
            verbaliser=verbaliser,
            instruction=_text(data, "instruction", DEFAULT_INSTRUCTION),
            pattern=_text(data, "pattern", DEFAULT_PATTERN),
            demonstrations=tuple(demos),
            separator=_text(data, "separator", "\n\n"),
            chat=bool(data.get("chat", False)),
            calibrate=bool(data.get("calibrate", False)),
            content_free=tuple(content_free),
        )
        return template.check()


def _text(data: Mapping[str, Any], key: str, default: str) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise TemplateError(f"The {key} must be text.")
    return value


def replace_template(template: PromptTemplate, **changes: Any) -> PromptTemplate:
    """``dataclasses.replace`` for templates (kept here so callers need not import dataclasses)."""
    import dataclasses

    return dataclasses.replace(template, **changes)


def parse_verbaliser(lines: Mapping[str, str]) -> dict[str, list[str]]:
    """label -> comma-separated words (as typed in a form) to label -> words."""
    return {label: [w.strip() for w in str(words).split(",") if w.strip()] for label, words in lines.items()}
