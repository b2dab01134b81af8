"""Explaining many texts with one explainer, on either engine (:mod:`model_zoo.engine`).

:func:`explain_texts` is the engine task (it runs in this process or on a Ray worker); :func:`explain_many`
runs it and gives back :class:`~explainers.base.Attribution` objects in the order of the texts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

from explainers.base import Attribution, get, make_config
from model_zoo import LoupeError, ModelHandle, engine


def explain_texts(handle: ModelHandle, batch: list[Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    """The engine task: explain each text with ``params["method"]`` and its ``config``.

    Returns one :meth:`Attribution.to_dict` per text (without large extras), or ``{"error": message}`` for a
    text the explainer refuses: one bad text does not sink the batch.
    """
    method = str(params["method"])
    config = make_config(method, params.get("config"))
    target = params.get("target")
    out: list[dict[str, Any]] = []
    for text in batch:
        try:
            out.append(get(method).explain(handle, str(text), target, config).to_dict(extras=False))
        except LoupeError as err:
            out.append({"error": str(err)})
    return out


def explain_many(texts: Sequence[str], method: str, config: Any = None, *, target: int | None = None,
                 model: str = "", handle: ModelHandle | None = None, device: str = "auto",
                 run_on: engine.EngineConfig | dict[str, Any] | None = None,
                 ) -> Iterator[tuple[int, Attribution | LoupeError]]:
    """Explain ``texts`` with ``method``; yields ``(index, Attribution)`` (or ``(index, LoupeError)``) in order.

    Raises:
        ExplainerConfigError: a bad config, before any work starts.
        EngineError: the engine could not run (see :func:`model_zoo.engine.run`).
    """
    cfg = make_config(method, config)
    params = {"method": method, "config": dataclasses.asdict(cfg), "target": target}
    for i, rec in engine.run(explain_texts, list(texts), params, model=model, handle=handle, device=device,
                             engine=engine.config(run_on)):
        yield i, LoupeError(rec["error"]) if "error" in rec else Attribution.from_dict(rec)
