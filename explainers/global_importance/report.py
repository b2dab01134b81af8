"""What a global explanation gives back: one report per model (:class:`GlobalReport`), and the result a job or the
page shows (:class:`GlobalResult`: the reports, their comparison, the example sentences), as dicts and as text."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from explainers.global_importance.aggregate import ClassWords, Comparison
from model_zoo import cli


@dataclass(frozen=True)
class GlobalReport:
    """One model's global explanation of a split: per class, the words toward and away, and how it was made."""

    model: str
    revision: str
    dataset: str  # the split as people read it ("Rotten Tomatoes test", "upload: reviews.csv")
    method: str
    title: str
    config: dict[str, Any]
    labels: tuple[str, ...]
    indices: tuple[int, ...]  # the sentences (indices into the split), in sample order
    explained: int
    failed: int
    errors: tuple[str, ...]  # the first distinct reasons sentences failed
    predicted: tuple[int, ...]  # explained sentences predicted as each class
    classes: tuple[ClassWords, ...]
    settings: dict[str, Any]
    cached: int  # sentences read from the cache
    seconds: float  # wall time of this run
    cost: float | None  # mean explainer seconds per sentence, as measured when each was explained

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class GlobalResult:
    """What the job returns and the page shows: one report per model, their comparison, the example texts."""

    reports: tuple[GlobalReport, ...]
    comparison: Comparison | None
    sentences: dict[int, tuple[str, str]]  # example sentence index -> (text, true label)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["sentences"] = {str(i): list(v) for i, v in self.sentences.items()}
        return out

    def table(self) -> str:
        """Plain-text tables (the CLI's output)."""
        out = []
        for r in self.reports:
            out.append(f"Global explanation of {r.model} · {r.dataset} · {r.explained} sentences · {r.title} "
                       f"(mean attribution toward each class; words in at least {r.settings['min_sentences']} "
                       f"sentences)")
            for c in r.classes:
                for side, words in (("toward", c.toward), ("away from", c.away)):
                    rows = [[w.word, w.count, w.sentences, f"{w.mean:+.4f}", f"! {w.kind}" if w.shortcut else ""]
                            for w in words]
                    out += [f"  {side} {c.label}:", _indent(cli.table(rows, ["word", "uses", "sentences",
                                                                             "mean", "shortcut?"]))]
            if r.failed:
                out.append(f"  {r.failed} sentence(s) failed: {'; '.join(r.errors)}")
        if self.comparison is not None:
            cmp = self.comparison
            out.append(f"Words whose mean attribution changed from {cmp.model_a} to {cmp.model_b}")
            for shift in cmp.classes:
                for side, shifts in (("gained toward", shift.gained), ("lost toward", shift.lost)):
                    rows = [[s.word, s.sentences, f"{s.mean_a:+.4f}", f"{s.mean_b:+.4f}", f"{s.change:+.4f}"]
                            for s in shifts]
                    out += [f"  {side} {shift.label}:", _indent(cli.table(rows, ["word", "sentences", "A", "B",
                                                                                 "change"]))]
        return "\n".join(out)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())
