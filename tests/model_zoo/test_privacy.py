"""Personal data: detection quality on a generated set, the three redaction styles, pseudonym stability per salt,
working offline, the fallback without a NER model, dataset scans, the CLI and the log filter."""

from __future__ import annotations

import io
import json
import logging
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from model_zoo import privacy
from model_zoo.errors import LoupeError
from model_zoo.privacy import analyzer as engine_mod
from model_zoo.privacy import logs
from model_zoo.privacy.synthetic import Planted, score, synthetic_set

ROOT = Path(__file__).resolve().parents[2]
PATTERN_TYPES = ("EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "IP_ADDRESS", "URL", "DATE", "ADDRESS")
TEXT = "Hi, I'm Maria Garcia, mail maria.garcia@example.com or call +44 20 7946 0321. Card 4111 1111 1111 1111."


@pytest.fixture(scope="module", autouse=True)
def _engine() -> None:
    privacy.engine()  # built once for the module (several seconds cold)


def test_detection_quality_on_the_generated_set() -> None:
    data = synthetic_set(n=360, seed=7)
    result = score(data, privacy.find_pii_many([t for t, _ in data]))["per_type"]
    for entity in PATTERN_TYPES:
        assert result[entity]["planted"] >= 10, entity
        assert result[entity]["recall"] >= 0.98, (entity, result[entity])
        assert result[entity]["precision"] >= 0.95, (entity, result[entity])
    assert result["PERSON"]["recall"] >= 0.85, result["PERSON"]


def test_the_scorer_counts_a_half_hidden_name_as_missed() -> None:
    text = "Ann Lee called."
    planted = [Planted(0, 7, "PERSON")]
    half = [privacy.PiiSpan(0, 3, "PERSON", 0.9, "Ann")]
    assert score([(text, planted)], [half])["per_type"]["PERSON"]["recall"] == 0.0
    assert score([(text, planted)], [[]])["hidden"] == 0.0
    whole = [privacy.PiiSpan(0, 7, "PERSON", 0.9, "Ann Lee")]
    assert score([(text, planted)], [whole])["per_type"]["PERSON"] == {"planted": 1, "found": 1, "recall": 1.0,
                                                                      "precision": 1.0}


def test_find_pii_spans_point_at_the_values() -> None:
    spans = privacy.find_pii(TEXT)
    found = {(s.entity, s.value) for s in spans}
    assert {("PERSON", "Maria Garcia"), ("EMAIL", "maria.garcia@example.com"), ("PHONE", "+44 20 7946 0321"),
            ("CREDIT_CARD", "4111 1111 1111 1111")} <= found
    assert all(TEXT[s.start:s.end] == s.value for s in spans)
    assert all(a.end <= b.start for a, b in zip(spans, spans[1:]))  # no overlaps (the e-mail's domain is no URL)
    assert not [s for s in spans if s.entity == "URL"]
    assert privacy.find_pii(TEXT, entities=["EMAIL"]) == [s for s in spans if s.entity == "EMAIL"]
    assert privacy.find_pii("   ") == []
    # A card number failing the Luhn checksum is not a card.
    assert not privacy.find_pii("Card 4111 1111 1111 1112 please", entities=["CREDIT_CARD"])


@pytest.mark.parametrize("style, token", [("placeholder", "<PERSON>"), ("mask", privacy.MASK)])
def test_placeholder_and_mask(style: str, token: str) -> None:
    redacted, mapping = privacy.redact(TEXT, style)
    assert "Maria" not in redacted and "example.com" not in redacted and "4111" not in redacted
    assert token in redacted
    for r in mapping:
        assert TEXT[r.start:r.end] == r.original
        assert redacted[r.new_start:r.new_end] == r.token
    if style == "placeholder":
        assert redacted.startswith("Hi, I'm <PERSON>, mail <EMAIL> or call <PHONE>.")


def test_hash_pseudonyms_are_stable_within_a_salt_and_differ_across_salts() -> None:
    one = privacy.Redactor("hash", salt="dataset-1")
    a, _ = one.redact("Ann Lee wrote to ann@example.org.")
    later = "Later ANN  LEE replied."
    start = later.index("ANN")
    b, _ = one.redact(later, [privacy.PiiSpan(start, start + 8, "PERSON", 0.9, "ANN  LEE")])
    token = a.split()[0]
    assert token.startswith("<PERSON_") and token in b  # same person, other spacing and case: same pseudonym
    assert privacy.Redactor("hash", salt="dataset-1").token("PERSON", "Ann Lee") == token
    assert privacy.Redactor("hash", salt="dataset-2").token("PERSON", "Ann Lee") != token
    assert privacy.Redactor("hash").token("PERSON", "Ann Lee") != privacy.Redactor("hash").token("PERSON", "Ann Lee")
    # Numbers compare by their digits: one card written two ways is one pseudonym.
    assert one.token("CREDIT_CARD", "4111 1111 1111 1111") == one.token("CREDIT_CARD", "4111-1111-1111-1111")


def test_bad_style_and_entity_are_typed_errors() -> None:
    with pytest.raises(LoupeError, match="redaction style"):
        privacy.redact("x", "blur")
    with pytest.raises(LoupeError, match="Unknown kind"):
        privacy.find_pii("x", entities=["SHOE_SIZE"])


def test_map_offset() -> None:
    text = "Mail ann@x.org now"
    redacted, mapping = privacy.redact(text, "placeholder", spans=[privacy.PiiSpan(5, 14, "EMAIL", 1.0, "ann@x.org")])
    assert redacted == "Mail <EMAIL> now"
    assert privacy.map_offset(0, mapping) == 0 and privacy.map_offset(5, mapping) == 5
    assert privacy.map_offset(8, mapping) == 5 and privacy.map_offset(8, mapping, end=True) == 12
    assert privacy.map_offset(15, mapping) == redacted.index("now")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[object]:
    """Every socket connection attempt is recorded and refused; caches start empty."""
    attempts: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError("network is off in this test")

    def refuse_dns(*args: object, **kwargs: object) -> list[object]:
        attempts.append(args[0] if args else "?")
        raise socket.gaierror("network is off in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse_dns)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no suffix list cached by an earlier run
    monkeypatch.setenv("TLDEXTRACT_CACHE", str(tmp_path / "cache" / "tld"))
    return attempts


def test_works_offline_and_never_tries_the_network(no_network: list[object], monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    import spacy.cli
    import tldextract

    monkeypatch.setattr(spacy.cli, "download", lambda *a, **k: pytest.fail("spacy download was called"))
    engine_mod.reset()
    try:
        spans = privacy.find_pii("Write to Ann Lee at ann.lee@example.co.uk from 10.0.0.7.")
    finally:
        engine_mod.reset()
    assert {s.entity for s in spans} >= {"EMAIL", "IP_ADDRESS", "PERSON"}
    assert no_network == []
    assert not (tmp_path / "cache").exists()  # and nothing was cached on disk
    # The guard is not vacuous: tldextract's default extractor (what Presidio uses) does try the network.
    tldextract.TLDExtract(cache_dir=str(tmp_path / "default-cache"))("ann@example.co.uk")
    assert no_network


def test_without_a_ner_model_patterns_still_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(privacy.MODEL_ENV, "none")
    engine_mod.reset()
    try:
        status = privacy.status()
        assert not status.ner and "not detected" in status.sentence()
        spans = privacy.find_pii(TEXT)
        assert not privacy.engine().ner
    finally:
        engine_mod.reset()
    found = {s.entity for s in spans}
    assert "EMAIL" in found and "CREDIT_CARD" in found and "PERSON" not in found
    monkeypatch.setenv(privacy.MODEL_ENV, "no_such_spacy_model_package")
    assert not privacy.status().ner


def test_importing_the_module_loads_neither_presidio_nor_spacy() -> None:
    code = "import sys, model_zoo.privacy; print(any(m.split('.')[0] in ('presidio_analyzer', 'spacy') " \
           "for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


CSV = ("text,author,label\n"
       '"Loved it, thanks to Maria Garcia",Maria Garcia,1\n'
       '"Refund to DE89 3704 0044 0532 0130 00 please",Tom Baker,0\n'
       '"A dull, lifeless film.",anon,0\n'
       '"Mail maria.garcia@example.com about it",Maria Garcia,1\n')


def test_scan_counts_per_type_and_column_with_masked_examples() -> None:
    calls: list[tuple[int, int]] = []
    result = privacy.scan_csv(CSV.encode(), ["text", "author"], progress=lambda d, n: calls.append((d, n)))
    assert result.rows == 4 and result.columns == ["text", "author"]
    assert result.counts["PERSON"] == {"text": 1, "author": 3}
    assert result.counts["IBAN"] == {"text": 1} and result.counts["EMAIL"] == {"text": 1}
    assert result.rows_with_pii == {"text": 3, "author": 3}
    assert calls[-1] == (8, 8)
    shown = json.dumps(result.examples, ensure_ascii=False)
    assert result.examples and "Maria" not in shown and "DE89" not in shown and privacy.MASK in shown
    assert {r["personal data"] for r in result.table()} == {"PERSON", "IBAN", "EMAIL"}
    with pytest.raises(LoupeError, match="No column"):
        privacy.scan_csv(CSV.encode(), ["body"])


def test_cli_scan_and_redact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from model_zoo.__main__ import main

    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text(CSV, encoding="utf-8")
    assert main(["pii", "scan", str(src), "--text-column", "text", "--column", "author", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["counts"]["PERSON"]["author"] == 3 and report["total"] >= 6
    assert main(["pii", "redact", str(src), str(out), "--column", "author", "--style", "hash", "--salt", "s",
                 "--quiet"]) == 0
    written = out.read_text(encoding="utf-8")
    assert "Maria" not in written and "DE89" not in written and "maria.garcia" not in written
    token = privacy.Redactor("hash", salt="s").token("PERSON", "Maria Garcia")
    assert written.count(token) == 3  # one person, one pseudonym, in both columns
    assert "A dull, lifeless film." in written
    assert main(["pii", "scan", str(src), "--entities", "SHOE_SIZE"]) == 2
    assert "Unknown kind" in capsys.readouterr().err


def test_fingerprint_names_a_text_without_holding_it() -> None:
    a, b = logs.fingerprint("Maria Garcia"), logs.fingerprint("Maria Garcia")
    assert a == b and "Maria" not in a and "(12 chars)" in a
    assert logs.fingerprint("Maria Garcia.") != a


def test_hosted_log_scrubber_replaces_watched_text(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    log = logging.getLogger("loupe-test-scrubber")
    log.addHandler(handler)
    log.propagate = False
    try:
        monkeypatch.delenv("LOUPE_HOSTED", raising=False)
        assert not logs.install_scrubber(["loupe-test-scrubber"])
        logs.watch("Loved it, thanks to Maria Garcia", ["Maria Garcia"])
        log.warning("explaining %r", "Loved it, thanks to Maria Garcia")
        assert "Maria Garcia" in stream.getvalue()  # locally nothing is changed
        monkeypatch.setenv("LOUPE_HOSTED", "1")
        assert logs.install_scrubber(["loupe-test-scrubber"])
        stream.seek(0)
        stream.truncate()
        log.warning("explaining %r", "Loved it, thanks to Maria Garcia")
        try:
            raise ValueError("bad name Maria Garcia")
        except ValueError:
            log.exception("failed")
        out = stream.getvalue()
        assert "Maria" not in out and "text#" in out and "ValueError" in out
    finally:
        log.removeHandler(handler)
