"""CLI: reports without the UI.

    python -m dashboard report --model M --text "..." --methods ig,shap,lime,attention --out report.html \
        [--png report.png]
    python -m dashboard report --model M --csv texts.csv [--text-column text] --out-dir reports/ [--png]
    ... [--redact [placeholder|mask|hash]] [--redact-input]

``--redact``: the model reads each text as it is, and the reports (text, highlights, tables, index) show it with
its personal data replaced; ``--redact-input``: the model reads the redacted text too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from model_zoo import DEFAULT_MODEL_ID, LoupeError
from model_zoo.errors import run_cli

if TYPE_CHECKING:  # explainers is imported only when a report is made
    from explainers import Attribution
    from model_zoo import ModelHandle
    from model_zoo.privacy import Redactor


def _explain_all(handle: ModelHandle, text: str, methods: list[str]) -> list[Attribution]:
    import explainers

    return [explainers.get(m).explain(handle, text) for m in methods]


def _report(handle: ModelHandle, text: str, methods: list[str], args: argparse.Namespace,
            redactor: Redactor | None) -> tuple[str, str, list[Attribution]]:
    """One report's HTML, the text it shows and the (shown) explanations: redacted as the flags ask."""
    from dashboard import report

    if redactor is None:
        attrs = _explain_all(handle, text, methods)
        return report.explain_report(handle, text, attrs), text, attrs
    from dashboard.redaction import redact_attribution
    from explainers.metrics import faithfulness_many

    redacted, replacements = redactor.redact(text)
    if args.redact_input:
        attrs = _explain_all(handle, redacted, methods)
        return report.explain_report(handle, redacted, attrs), redacted, attrs
    attrs = _explain_all(handle, text, methods)  # the model reads the original; the report never shows it
    faith = dict(zip(methods, faithfulness_many(handle, attrs)))
    shown = [redact_attribution(a, replacements, redacted) for a in attrs]
    return report.explain_report(handle, redacted, shown, faith), redacted, shown


def cmd_report(args: argparse.Namespace) -> int:
    from dashboard import report
    from model_zoo import load
    from model_zoo.data import read_csv_frame

    handle = load(args.model, device=args.device)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    redactor = None
    if args.redact or args.redact_input:
        from model_zoo.privacy import Redactor

        redactor = Redactor(args.redact or "placeholder")  # one salt for the run: pseudonyms agree across reports
    if args.csv:
        frame = read_csv_frame(Path(args.csv))
        if args.text_column not in frame.columns:
            raise LoupeError(f"No column {args.text_column!r} in {args.csv}; it has: {', '.join(frame.columns)}")
        out_dir = Path(args.out_dir or "reports")
        out_dir.mkdir(parents=True, exist_ok=True)
        links = []
        for i, text in enumerate(frame[args.text_column].astype(str)):
            if not text.strip():
                continue
            page, shown_text, attrs = _report(handle, text, methods, args, redactor)
            path = out_dir / f"report-{i:04d}.html"
            path.write_text(page, encoding="utf-8")
            if args.png:
                report.render_png(path, path.with_suffix(".png"))
            label = attrs[0].labels[attrs[0].predicted]
            links.append(f"<tr><td>{i}</td><td><a href='{path.name}'>{report.esc(shown_text[:120])}</a></td>"
                         f"<td>{report.esc(label)}</td></tr>")
            print(f"wrote {path}")
        index = out_dir / "index.html"
        index.write_text(report._page(f"Loupe reports · {handle.id}",
                                      "<table><tr><th>#</th><th>text</th><th>prediction</th></tr>"
                                      + "".join(links) + "</table>", None), encoding="utf-8")
        print(f"wrote {index}")
        return 0
    if not args.text:
        raise LoupeError("Give --text or --csv.")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_report(handle, args.text, methods, args, redactor)[0], encoding="utf-8")
    print(f"wrote {out}")
    if args.png:
        png = Path(args.png) if isinstance(args.png, str) else out.with_suffix(".png")
        report.render_png(out, png)
        print(f"wrote {png}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboard", description="Loupe reports without the UI.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("report", help="write a self-contained HTML report (and a PNG screenshot)")
    p.add_argument("--model", default=DEFAULT_MODEL_ID)
    p.add_argument("--text")
    p.add_argument("--csv", help="batch: one report per row of this CSV, plus index.html")
    p.add_argument("--text-column", default="text")
    p.add_argument("--methods", default="ig,shap,lime,attention")
    p.add_argument("--out", default="report.html")
    p.add_argument("--out-dir", help="batch output folder (default: reports/)")
    p.add_argument("--png", nargs="?", const=True, default=None,
                   help="also write a PNG screenshot (path; default: beside the HTML)")
    p.add_argument("--device", default="auto")
    p.add_argument("--redact", nargs="?", const="placeholder", choices=("placeholder", "mask", "hash"),
                   help="show personal data replaced in the reports (placeholder, mask or hash; default "
                        "placeholder); the model still reads the original text")
    p.add_argument("--redact-input", action="store_true",
                   help="the model reads the redacted text too (with --redact's style)")
    p.set_defaults(func=cmd_report)
    return run_cli(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
