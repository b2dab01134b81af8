"""Personal data through the app (issue 15): the Personal data setting of Explain and Compare, the dependence
panel, dataset scans on Fine-tune, the report CLI's --redact, and a leak search after a whole hide-mode session:
Explain, a report and a fine-tune on text with planted personal data, then LOUPE_HOME, the caches, the server
log and the exported files are searched for the originals."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.redaction import Share, dependence_sentences, pii_share, redact_attribution
from model_zoo import jobs, privacy, store
from model_zoo.paths import loupe_home, models_dir
from tests.dashboard.test_apptest import APP

NAME, EMAIL, PHONE = "Hannah Whitfield", "hannah.whitfield@example.org", "+44 20 7946 0958"
TEXT = f"{NAME} loved this film, email {EMAIL} or call {PHONE}."
ORIGINALS = (NAME, "Whitfield", EMAIL, "7946 0958")
FAST = (("loupe_cfg.shap.max_evals", 40), ("loupe_cfg.lime.num_samples", 40), ("loupe_cfg.ig.n_steps", 8))


@pytest.fixture(scope="module", autouse=True)
def _detector() -> None:
    privacy.engine()  # built once (several seconds cold), so page timeouts measure the pages


def _explain_page(text: str, mode: str, methods: list[str] | None = None, check: bool = False) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    at.text_area(key="loupe_text").set_value(text)
    at.radio(key="loupe_pii").set_value(mode)
    if methods is not None:
        at.multiselect(key="loupe_methods").set_value(methods)
    at.run()
    for key, value in FAST:
        if key.split(".")[1] in (methods or ["ig", "shap", "lime"]):
            at.number_input(key=key).set_value(value)
    if check:
        at.toggle(key="loupe_pii_check").set_value(True)
    next(b for b in at.button if b.label == "Explain").click()
    at.run()
    assert not at.exception, at.exception
    return at


def _query_text(at: AppTest) -> str:
    value = at.query_params["text"]
    return str(value[0] if isinstance(value, list) else value)


def _shown(at: AppTest) -> str:
    """Everything the page shows except the person's own marked copy of their text (markdown, captions, alerts,
    tables, code, expander labels)."""
    parts = [m.value for m in at.markdown if "loupe-pii" not in m.value]
    parts += [c.value for c in at.caption] + [c.value for c in at.code]
    parts += [e.value for e in (*at.error, *at.warning, *at.info, *at.success)]
    parts += [d.value.to_csv() for d in at.dataframe]
    return "\n".join(parts)


def _cached_bytes() -> bytes:
    """Every value in Streamlit's data caches (pickled), joined."""
    from streamlit.runtime.caching import cache_data_api

    blobs: list[bytes] = []
    for per_session in list(cache_data_api._data_caches._function_caches.values()):
        for cache in list(per_session.values()):
            blobs += [v for v in list(getattr(cache.storage, "_mem_cache", {}).values()) if isinstance(v, bytes)]
    return b"\n".join(blobs)


def _files_under(folder: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def _leaks(blob: bytes | str, originals: tuple[str, ...] = ORIGINALS) -> list[str]:
    data = blob.encode("utf-8") if isinstance(blob, str) else blob
    return [o for o in originals if o.encode("utf-8") in data]


def test_hide_mode_marks_the_text_and_shows_only_redacted_results(tiny_store: str) -> None:
    at = _explain_page(TEXT, "hide")
    marked = [m.value for m in at.markdown if "loupe-pii" in m.value]
    assert marked and 'title="PERSON"' in marked[0] and NAME in marked[0]  # the person sees what was found
    assert any("Personal data found" in e.label for e in at.expander)
    highlights = [m.value for m in at.markdown if 'class="u"' in m.value]
    assert len(highlights) == 4 and all("&lt;PERSON&gt;" in h and "&lt;EMAIL&gt;" in h for h in highlights)
    assert _leaks(_shown(at)) == []
    assert _query_text(at) == "<PERSON> loved this film, email <EMAIL> or call <PHONE>."
    assert at.query_params["pii"] in ("hide", ["hide"])
    assert any("pii=hide" in c.value and "%3CPERSON%3E" in c.value for c in at.code)


def test_leak_search_finds_the_original_when_the_setting_is_off(tiny_store: str) -> None:
    """The known answer of the leak search: with Personal data off, the explanation cache holds the text."""
    unique = TEXT.replace("Hannah", "Rosalind")
    _explain_page(unique, "off", ["attention"])
    assert _leaks(_cached_bytes(), ("Rosalind Whitfield",)) == ["Rosalind Whitfield"]


def test_redact_input_mode_explains_the_redacted_text_and_says_whether_it_matters(tiny_store: str) -> None:
    at = _explain_page(TEXT, "redact", ["ig", "attention"])
    assert _query_text(at).startswith("<PERSON> loved this film")
    assert "#### Does the decision depend on personal data?" in [m.value for m in at.markdown]
    said = _shown(at)
    assert "With the personal data the model predicts" in said.replace("\\", "")
    assert "placeholder for" in said.replace("\\", "")  # the shares are those of the tokens standing for it
    assert _leaks(said) == []


def test_dependence_panel_on_request_with_the_setting_off(tiny_store: str) -> None:
    at = _explain_page(TEXT, "off", ["ig", "lime"], check=True)
    table = next(d.value for d in at.dataframe if "on personal data" in d.value.columns)
    assert list(table["explainer"]) == ["Integrated Gradients", "LIME"]
    assert {"PERSON", "EMAIL", "PHONE"} <= set(table.columns)
    assert NAME in _query_text(at)  # off: nothing is changed


def test_compare_in_hide_mode_shows_redacted_highlights(tiny_store: str) -> None:
    shutil.copytree(models_dir() / "tiny", models_dir() / "tiny-2")
    store.write_card(models_dir() / "tiny-2", {"id": "tiny-2", "labels": ["negative", "positive"]})
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    at.switch_page("app_pages/compare.py")
    at.run()
    at.multiselect(key="loupe_cmp_models").set_value(["tiny", "tiny-2"])
    at.multiselect(key="loupe_cmp_methods").set_value(["attention"])
    at.text_area(key="loupe_cmp_text").set_value(TEXT)
    at.radio(key="loupe_cmp_pii").set_value("hide")
    at.run()
    next(b for b in at.button if b.label == "Compare").click()
    at.run()
    assert not at.exception, at.exception
    highlights = [m.value for m in at.markdown if 'class="u"' in m.value]
    assert len(highlights) == 2 and all("&lt;PERSON&gt;" in h for h in highlights)
    # Each model's dependence on the personal data: its prediction with and without it, its share per explainer.
    assert "#### Does each model's decision depend on personal data?" in [m.value for m in at.markdown]
    tables = [d.value for d in at.dataframe if "on personal data" in d.value.columns]
    assert len(tables) == 2 and all(list(t["explainer"]) == ["Attention (rollout)"] for t in tables)
    assert sum("With the personal data the model predicts" in m.value.replace("\\", "") for m in at.markdown) == 2
    assert _leaks(_shown(at)) == []
    assert _query_text(at).startswith("<PERSON>")


def _pii_csv(rows: int = 60) -> bytes:
    people = ["Hannah Whitfield", "Tobias Carrington", "Imogen Ashworth", "Felix Pemberton"]
    lines = ["text,label"]
    for i in range(rows):
        who = people[i % len(people)]
        mail = who.lower().replace(" ", ".") + "@example.org"
        lines.append(f'"{who} ({mail}) found film {i} {"good" if i % 2 else "bad"}",{"pos" if i % 2 else "neg"}')
    return ("\n".join(lines) + "\n").encode()


def _finetune_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    at.session_state["loupe_owner"] = "session:privacy-test"
    at.run()
    at.switch_page("app_pages/finetune.py")
    at.run()
    at.selectbox(key="loupe_ft_base").set_value("tiny")
    at.selectbox(key="loupe_ft_method").set_value("head_only")
    at.radio(key="loupe_ft_source").set_value("Upload a CSV")
    at.run()
    at.file_uploader[0].upload("people.csv", _pii_csv(), "text/csv")
    at.run()
    assert not at.exception, at.exception
    return at


def test_finetune_scans_an_upload_with_masked_examples(tiny_store: str) -> None:
    at = _finetune_page()
    next(b for b in at.button if b.label == "Scan for personal data").click()
    at.run()
    assert not at.exception, at.exception
    counts = next(d.value for d in at.dataframe if "personal data" in d.value.columns)
    assert dict(zip(counts["personal data"], counts["text"])) == {"PERSON": 60, "EMAIL": 60}
    examples = next(d.value for d in at.dataframe if "masked" in d.value.columns)
    assert len(examples) == 3 and all(privacy.MASK in m for m in examples["masked"])  # 3 cells show both kinds
    assert _leaks(examples.to_csv(), ("Whitfield", "Carrington", "example.org")) == []


def test_a_hide_mode_session_leaves_no_personal_data_behind(tiny_store: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture,
                                                            capfd: pytest.CaptureFixture[str]) -> None:
    """Explain in hide mode, a redacted report, a fine-tune on a redacted upload, all hosted: then no original
    in LOUPE_HOME (jobs, uploads, store, card), the explanation caches, the logs or the exported files."""
    import streamlit as st

    from dashboard.__main__ import main as dashboard_main

    st.cache_data.clear()  # earlier tests of this process explained the same text with the setting off
    monkeypatch.setenv("LOUPE_HOSTED", "1")
    caplog.set_level(logging.DEBUG)
    originals = (*ORIGINALS, "Tobias Carrington", "Imogen Ashworth", "felix.pemberton@example.org")

    # 1. Explain, hide mode (everything shown is checked by the test above; here what is kept).
    _explain_page(TEXT, "hide")
    # 2. A report from the command line, with --redact, and one exported from the page's own renderer.
    out = tmp_path / "exported"
    assert dashboard_main(["report", "--model", "tiny", "--text", TEXT, "--methods", "ig,attention",
                           "--out", str(out / "report.html"), "--redact", "--device", "cpu"]) == 0
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "&lt;PERSON&gt;" in report and "&lt;EMAIL&gt;" in report
    # 3. Fine-tune on an upload with names and e-mails, redacted before training.
    at = _finetune_page()
    at.checkbox(key="loupe_ft_pii_redact").check()
    at.run()
    at.selectbox(key="loupe_ft_pii_style").set_value("hash")
    at.run()
    next(b for b in at.button if b.label == "Start fine-tuning").click()
    at.run()
    assert not at.exception, at.exception
    job_id = at.query_params["job"]
    job_id = str(job_id[0] if isinstance(job_id, list) else job_id)
    staged = b"".join(Path(p).read_bytes() for p in jobs.config(job_id)["uploads"])  # what the job reads
    assert staged.startswith(b"text,label\n") and b"<PERSON_" in staged and _leaks(staged, originals) == []
    assert jobs.wait(job_id, timeout=600)["state"] == "done", jobs.log_tail(job_id)
    card = store.read_card(Path(jobs.result(job_id)["path"]))  # type: ignore[index]
    assert card["data"]["spec"]["redaction"]["style"] == "hash"
    assert card["data"]["spec"]["redaction"]["spans"] == {"EMAIL": 60, "PERSON": 60}
    assert any("was replaced (hash style)" in n for n in card["data"]["notes"])

    time.sleep(0.5)
    found = {"LOUPE_HOME": _leaks(_files_under(loupe_home()), originals),
             "caches": _leaks(_cached_bytes(), originals),
             "server log": _leaks(caplog.text + "\n".join(capfd.readouterr()), originals),
             "exported": _leaks(_files_under(out), originals)}
    assert found == {"LOUPE_HOME": [], "caches": [], "server log": [], "exported": []}
    assert list((loupe_home() / "jobs" / job_id).glob("*.txt"))  # the job's log was searched


def test_without_redaction_the_job_reads_the_original_upload(tiny_store: str) -> None:
    """The known answer of the upload check above: unredacted, the staged file holds the names."""
    at = _finetune_page()
    next(b for b in at.button if b.label == "Start fine-tuning").click()
    at.run()
    job_id = at.query_params["job"]
    job_id = str(job_id[0] if isinstance(job_id, list) else job_id)
    try:
        staged = b"".join(Path(p).read_bytes() for p in jobs.config(job_id)["uploads"])
        assert "Whitfield" in _leaks(staged, ("Whitfield",))
        assert not jobs.config(job_id)["config"]["data"]["redaction"]
    finally:
        jobs.cancel(job_id)


def test_the_leak_search_of_files_finds_an_unredacted_report(tiny_store: str, tmp_path: Path) -> None:
    """The known answer of the file search: a report made without --redact holds the text."""
    from dashboard.__main__ import main as dashboard_main

    assert dashboard_main(["report", "--model", "tiny", "--text", TEXT, "--methods", "attention",
                           "--out", str(tmp_path / "r.html"), "--device", "cpu"]) == 0
    assert NAME in _leaks(_files_under(tmp_path))


def test_redacted_attribution_keeps_scores_and_drops_the_originals(tiny_handle: object) -> None:
    import explainers

    a = explainers.get("attention").explain(tiny_handle, TEXT)  # type: ignore[arg-type]
    shown_text, reps = privacy.redact(TEXT, "placeholder")
    shown = redact_attribution(a, reps, shown_text)
    assert shown.text == shown_text and not _leaks(repr(shown))
    assert shown.words[0].text == "<PERSON>" and shown.words[0].score == pytest.approx(sum(
        w.score for w in a.words[:2]))  # "Hannah Whitfield": one word, both scores
    assert sum(w.score for w in shown.words) == pytest.approx(sum(w.score for w in a.words))
    assert len(shown.tokens) == len(a.tokens) and shown.scores == a.scores
    assert all(0 <= s <= e <= len(shown_text) for s, e in shown.offsets)
    share = pii_share(a, [(r.start, r.end, r.entity) for r in reps])
    assert set(share.by_entity) == {"PERSON", "EMAIL", "PHONE"} and 0 < share.share <= 1


def test_dependence_sentence_names_the_kind_of_personal_data() -> None:
    shares = [Share("ig", 0.23, {"PERSON": 0.2, "EMAIL": 0.03}, 0.1)]
    first, second = dependence_sentences(["negative", "positive"], [0.2, 0.8], [0.6, 0.4], shares, {"ig": "IG"})
    assert "predicts positive (p 0.80)" in first and "changes to negative" in first
    assert second.startswith("23% of what drove this prediction is a person's name")
    _, low = dependence_sentences(["n", "p"], [0.2, 0.8], [0.2, 0.8], [Share("ig", 0.05, {"EMAIL": 0.05}, 0.1)], {})
    assert "does not rest on it" in low


def test_error_page_scans_an_uploaded_csvs_text_column(tiny_store: str) -> None:
    from tests.dashboard.test_error_page import _errors_page

    at = _errors_page()
    at.radio(key="loupe_err_source").set_value("Upload a CSV")
    at.run()
    raw = _pii_csv().replace(b",neg\n", b",negative\n").replace(b",pos\n", b",positive\n")
    at.file_uploader[0].upload("people.csv", raw, "text/csv")
    at.run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    next(b for b in at.button if b.label.startswith("Scan the column")).click()
    at.run()
    assert not at.exception, at.exception
    counts = next(d.value for d in at.dataframe if "personal data" in d.value.columns)
    assert dict(zip(counts["personal data"], counts["text"])) == {"PERSON": 60, "EMAIL": 60}
    examples = next(d.value for d in at.dataframe if "masked" in d.value.columns)
    assert _leaks(examples.to_csv(), ("Whitfield", "Carrington", "example.org")) == []
