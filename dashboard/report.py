"""Self-contained reports: one HTML file (CSS inline, no script, no network) and its PNG screenshot.

Every string from the user, the model, the tokenizer or a dataset is escaped. Nothing here imports
streamlit, so the CLI (``python -m dashboard report``) and the pages share it.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import explainers
from dashboard import __version__
from dashboard.components.highlight import CSS as HIGHLIGHT_CSS
from dashboard.components.highlight import esc_html, highlight_html, legend_html
from explainers import Attribution
from explainers.metrics import Faithfulness, agreement, faithfulness_many
from model_zoo.hosting import strip_paths

_STYLE = """
<style>
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;max-width:1100px;margin:24px auto;padding:0 16px;
color:#1f2328;background:#fff}
h1{font-size:1.6rem;margin:.2rem 0}h2{font-size:1.2rem;margin:1.6rem 0 .5rem;border-bottom:1px solid #eee;
padding-bottom:.3rem}h3{font-size:1.02rem;margin:1.1rem 0 .3rem}
.meta{color:#666;font-size:.85rem}.grid{display:grid;grid-template-columns:1fr 1fr;gap:18px}
.card{border:1px solid #e5e5e5;border-radius:8px;padding:10px 14px}
table{border-collapse:collapse;font-size:.85rem}td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}.bar{height:14px;background:#2166ac;border-radius:3px}
.faith{font-size:.85rem;margin:.3rem 0}.warn{background:#fff4e5;border:1px solid #f5c27a;padding:6px 10px;
border-radius:6px;font-size:.9rem}.random{color:#888}
</style>
"""
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def esc(value: Any) -> str:
    """Escaped for HTML, with direction-control and zero-width characters shown as markers (``⟨RLO⟩``)."""
    return esc_html(value)


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return esc(value)


def _page(title: str, body: str, card: Mapping[str, Any] | None) -> str:
    created = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    title = strip_paths(title)  # a model opened from a folder is named by its last part, not a server path
    card_html = ""
    if card:
        rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v if not isinstance(v, (dict, list)) else _short(v))}</td></tr>"
                       for k, v in card.items() if k not in ("path",) and v not in (None, ""))
        card_html = f"<h2>Model card</h2><table>{rows}</table>"
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'\">"
            f"<title>{esc(title)}</title>{_STYLE}{HIGHLIGHT_CSS}</head><body>"
            f"<h1>{esc(title)}</h1><div class='meta'>Made by Loupe {esc(__version__)} on {esc(created)}</div>"
            f"{body}{card_html}</body></html>")


def _short(value: Any) -> str:
    import json

    text = json.dumps(value, default=str)
    return text if len(text) < 400 else text[:400] + "…"


def _prediction(labels: Sequence[str], probs: Sequence[float]) -> str:
    rows = "".join(f"<tr><td>{esc(lab)}</td><td style='width:320px'><div class='bar' style='width:{p * 100:.1f}%'>"
                   f"</div></td><td class='num'>{p:.1%}</td></tr>" for lab, p in zip(labels, probs))
    return f"<table>{rows}</table>"


def _faith_line(f: Faithfulness | None) -> str:
    if f is None:
        return ""
    b = f.baseline
    rand = (lambda v: f" <span class='random'>(random {v:.3f})</span>") if b else (lambda v: "")
    return (f"<div class='faith'>Comprehensiveness AOPC ↑ <b>{f.comp_aopc:.3f}</b>{rand(b.comp_aopc) if b else ''}"
            f" · Sufficiency AOPC ↓ <b>{f.suff_aopc:.3f}</b>{rand(b.suff_aopc) if b else ''}</div>")


def _top_table(a: Attribution, k: int = 8) -> str:
    rows = "".join(f"<tr><td>{esc(w.text)}</td><td class='num'>{w.score:+.4f}</td></tr>" for w in a.top_words(k))
    return f"<table><tr><th>word</th><th>score</th></tr>{rows}</table>"


def _explanation(a: Attribution, f: Faithfulness | None, scale: float | None = None) -> str:
    e = explainers.get(a.method)
    extra = f" · convergence δ {a.extras['convergence_delta']:.2g}" if "convergence_delta" in a.extras else ""
    return (f"<div class='card'><h3>{esc(e.title)}</h3><div class='meta'>explains <b>{esc(a.target_label)}</b> · "
            f"{a.cost.passes} model passes · {a.cost.seconds:.2f} s{extra}</div>"
            f"{highlight_html(a, 'words', scale)}{_faith_line(f)}{_top_table(a)}</div>")


def _agreement_table(attrs: Sequence[Attribution]) -> str:
    names = [explainers.get(a.method).title for a in attrs]
    head = "".join(f"<th>{esc(n)}</th>" for n in names)
    rows = ""
    for i, a in enumerate(attrs):
        cells = ""
        for b in attrs:
            rho = agreement(a, b).spearman
            shade = "" if rho is None else f" style='background:rgba(33,102,172,{max(0.0, rho) * 0.5:.2f})'"
            cells += f"<td class='num'{shade}>{_num(rho, 2)}</td>"
        rows += f"<tr><th>{esc(names[i])}</th>{cells}</tr>"
    return f"<table><tr><th></th>{head}</tr>{rows}</table>"


def explain_report(handle: Any, text: str, attributions: Sequence[Attribution],
                   faith: Mapping[str, Faithfulness] | None = None, card: Mapping[str, Any] | None = None) -> str:
    """An HTML report of one text's explanations: prediction, highlights, faithfulness, agreement, card.

    Args:
        handle: the model (used for faithfulness when ``faith`` is not given; may be None then).
        text: the explained text.
        attributions: one per explainer, all of ``text``.
        faith: faithfulness per method; computed in one batched call when None and a handle is given.
        card: the model card to include (default: ``handle.info``).
    """
    if not attributions:
        raise ValueError("A report needs at least one explanation.")
    if faith is None and handle is not None:
        faith = dict(zip([a.method for a in attributions], faithfulness_many(handle, attributions)))
    faith = faith or {}
    first = attributions[0]
    notes = ""
    if first.truncated:
        notes = "<p class='warn'>The text was truncated; the grey tail was not seen by the model.</p>"
    body = (f"<h2>Text</h2><div class='card'><div class='loupe-text'>{esc(text)}</div></div>"
            f"<h2>Prediction</h2>{_prediction(first.labels, first.probs)}{notes}"
            f"<h2>Explanations</h2>{legend_html(first.target_label, True)}{legend_html(first.target_label, False)}"
            f"<div class='grid'>{''.join(_explanation(a, faith.get(a.method)) for a in attributions)}</div>")
    if len(attributions) > 1:
        body += f"<h2>Agreement (Spearman of word scores)</h2>{_agreement_table(attributions)}"
    model = card.get("id") if card else getattr(handle, "id", "model")
    return _page(f"Loupe report · {model}", body, card if card is not None else getattr(handle, "info", None))


def table_report(title: str, rows: Sequence[Mapping[str, Any]], note: str = "") -> str:
    """A results table (compression, fine-tuning) as a self-contained HTML report."""
    if not rows:
        return _page(title, "<p>No results.</p>", None)
    cols = list(rows[0])
    body = (f"<p class='meta'>{esc(note)}</p>" if note else "") + "<table><tr>"
    body += "".join(f"<th>{esc(c)}</th>" for c in cols) + "</tr>"
    body += "".join("<tr>" + "".join(f"<td class='num'>{_num(r.get(c))}</td>" for c in cols) + "</tr>" for r in rows)
    return _page(title, body + "</table>", None)


def sections_report(title: str, sections: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], note: str = "") -> str:
    """Several titled tables (e.g. an error analysis: metrics, classes, slices, examples) as one HTML report."""
    body = f"<p class='meta'>{esc(note)}</p>" if note else ""
    for heading, rows in sections:
        body += f"<h2>{esc(heading)}</h2>"
        if not rows:
            body += "<p>None.</p>"
            continue
        cols = list(rows[0])
        body += "<table><tr>" + "".join(f"<th>{esc(c)}</th>" for c in cols) + "</tr>"
        body += "".join("<tr>" + "".join(f"<td class='num'>{_num(r.get(c))}</td>" for c in cols) + "</tr>"
                        for r in rows) + "</table>"
    return _page(title, body, None)


_SPLIT_TITLES = {"train": "Train", "validation": "Validation", "test": "Test (held out)"}


def finetune_rows(metrics: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per evaluated split: split, what it was used for, texts, accuracy, macro F1 (page CSV and report)."""
    return [{"split": m.get("split", split), "used for": m.get("role", ""), "texts": m.get("size"),
             "accuracy": m.get("accuracy"), "macro F1": m.get("f1_macro")} for split, m in metrics.items()]


def finetune_report(title: str, result: Mapping[str, Any], card: Mapping[str, Any] | None = None) -> str:
    """A fine-tuning run as a self-contained HTML report: every figure names the split it was measured on.

    Args:
        title: the heading (e.g. ``Fine-tuning <job id>``).
        result: the job's result (``metrics`` per split, ``data`` summary, ``selection``, method and counts).
        card: the saved model's card: its ``labels`` name the confusion matrix (the card itself is not
            copied in: its data spec holds server paths).
    """
    card = card or {}
    metrics = result.get("metrics") or {}
    data = result.get("data") or card.get("data") or {}
    body = (f"<p class='meta'>{esc(result.get('method'))} · {_num(result.get('trainable'))} of "
            f"{_num(result.get('total'))} parameters trained · {esc(result.get('steps'))} steps · "
            f"{esc(result.get('train_seconds'))} s</p>")
    if metrics and "test" not in data:  # a run from before the held-out split: its "test" was validation
        body += ("<p class='warn'>This run had no separate test split: its test figures were measured on the "
                 "validation split that also chose the checkpoint.</p>")
    parts = {k: v for k, v in data.items() if isinstance(v, Mapping) and "size" in v}
    if parts:
        classes = list(next(iter(parts.values())).get("classes") or {})
        body += f"<h2>Data</h2><p class='meta'>{esc(data.get('source', ''))} · {esc(data.get('split', ''))}</p>"
        body += ("<table><tr><th>split</th><th>used for</th><th>texts</th>"
                 + "".join(f"<th>{esc(c)}</th>" for c in classes) + "</tr>")
        body += "".join(f"<tr><td>{esc(_SPLIT_TITLES.get(k, k))}</td><td>{esc(p.get('role', ''))}</td>"
                        f"<td class='num'>{_num(p.get('size'))}</td>"
                        + "".join(f"<td class='num'>{_num((p.get('classes') or {}).get(c))}</td>" for c in classes)
                        + "</tr>" for k, p in parts.items()) + "</table>"
    selection = result.get("selection") or card.get("selection") or {}
    if selection.get("rule"):
        body += f"<p class='meta'>Saved weights: {esc(selection['rule'])} (step {esc(selection.get('step'))}).</p>"
    body += "<h2>Results by split</h2><table><tr><th>split</th><th>used for</th><th>texts</th><th>accuracy</th>"
    body += "<th>macro F1</th></tr>" + "".join(
        f"<tr><td>{esc(_SPLIT_TITLES.get(r['split'], r['split']))}</td><td>{esc(r['used for'])}</td>"
        f"<td class='num'>{_num(r['texts'])}</td><td class='num'>{_num(r['accuracy'])}</td>"
        f"<td class='num'>{_num(r['macro F1'])}</td></tr>" for r in finetune_rows(metrics)) + "</table>"
    test = metrics.get("test") or {}
    cm = test.get("confusion_matrix")
    if cm:
        names = list(card.get("labels") or [str(i) for i in range(len(cm))])
        body += (f"<h3>Confusion matrix · test split ({_num(test.get('size', sum(map(sum, cm))))} texts)</h3>"
                 "<table><tr><th>true \\ predicted</th>" + "".join(f"<th>{esc(n)}</th>" for n in names) + "</tr>"
                 + "".join(f"<tr><th>{esc(n)}</th>" + "".join(f"<td class='num'>{_num(v)}</td>" for v in row)
                           + "</tr>" for n, row in zip(names, cm)) + "</table>")
    notes = data.get("notes") or []
    if notes:
        body += "<h2>Notes</h2><ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>"
    return _page(title, body, None)


def csv_safe(value: Any) -> Any:
    """Guard a cell against formula injection in spreadsheets (a leading = + - @ tab or CR)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_bytes(rows: Iterable[Mapping[str, Any]]) -> bytes:
    """Rows of dicts as UTF-8 CSV with every cell guarded by :func:`csv_safe`."""
    rows = list(rows)
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        for r in rows:
            writer.writerow({k: csv_safe(v) for k, v in r.items()})
    return out.getvalue().encode("utf-8")


def render_png(html_path: Path, png_path: Path, width: int = 1200, chromium: str = "/usr/bin/chromium") -> Path:
    """Screenshot a report with headless Chromium, every network request blocked.

    Runs in its own thread: Playwright's sync API refuses a thread that already runs an asyncio loop.
    """
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(_render_png, html_path, png_path, width, chromium).result()


def _render_png(html_path: Path, png_path: Path, width: int, chromium: str) -> Path:
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=args, timeout=120_000)
        page = browser.new_page(viewport={"width": width, "height": 800})
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort())
        page.goto(Path(html_path).resolve().as_uri(), timeout=120_000)
        page.screenshot(path=str(png_path), full_page=True, timeout=120_000)
        browser.close()
    return png_path
