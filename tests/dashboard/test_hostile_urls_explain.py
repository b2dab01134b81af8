"""A hostile or careless link to the Explain and Compare pages: never an exception, one clear message, limits
clamped and said, and nothing beyond a cheap default runs before a click."""

from __future__ import annotations

import json
import re

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import state
from model_zoo import store
from model_zoo.paths import models_dir
from tests.conftest import build_tiny_bert
from tests.dashboard.test_apptest import APP, _card_titles

MARKDOWN = "![beacon](http://127.0.0.1:9/beacon.png) **bold** [link](http://127.0.0.1:9/) <img src=x onerror=alert(1)>"
EXPLAIN_CASES = {
    "long text": {"text": "a" * 30_000},
    "long methods": {"methods": "ig," * 5_000},
    "unknown methods": {"methods": "bogus,<script>alert(1)</script>,shap"},
    "markdown methods": {"methods": MARKDOWN},
    "huge target": {"target": "9" * 5_000},
    "negative target": {"target": "-1"},
    "target out of range": {"target": "99"},
    "target not a number": {"target": "1e3"},
    "nested cfg": {"cfg": "[" * 5_000},
    "deep object cfg": {"cfg": '{"a":' * 2_000 + "1" + "}" * 2_000},
    "huge cfg": {"cfg": json.dumps({"lime": {"seed": 1, "pad": "x" * 100_000}})},
    "cfg not json": {"cfg": "{lime: 1"},
    "cfg a list": {"cfg": "[1, 2, 3]"},
    "cfg method not a dict": {"cfg": '{"lime": [1, 2]}'},
    "cfg unknown method": {"cfg": '{"bogus": {"x": 1}, "<b>x</b>": {}}'},
    "cfg unknown field": {"cfg": '{"lime": {"bogus": 1}}'},
    "cfg wrong type": {"cfg": '{"lime": {"num_samples": "many", "perturbation": 3, "kernel_width": true}}'},
    "cfg infinite": {"cfg": '{"lime": {"kernel_width": 1e999, "num_samples": NaN}}'},
    "cfg big int": {"cfg": '{"lime": {"seed": ' + "9" * 3_000 + "}}"},
    "cfg over limit": {"cfg": '{"lime": {"num_samples": 10000000}, "shap": {"max_evals": 20001}}'},
    "cfg below min": {"cfg": '{"ig": {"n_steps": -5}}'},
    "markdown text": {"text": MARKDOWN, "methods": "ablation"},
    "everything": {"text": "x" * 25_000, "methods": "nope", "target": "7" * 100, "cfg": "]" * 9},
}


def _open(params: dict[str, str], page: str | None = None) -> AppTest:
    """The app opened at ``page`` (default: Explain) from a link with ``params``."""
    at = AppTest.from_file(APP, default_timeout=180)
    if page:
        at.switch_page(page)
    at.query_params.update(params)
    at.run()
    return at


def _link_warning(at: AppTest) -> str:
    return "\n".join(w.value for w in at.warning if "This link asked for" in w.value)


def _assert_inert(at: AppTest) -> None:
    """No Markdown or HTML from the link can render: Markdown is escaped; HTML blocks hold no tags from it and
    no blank line (which would end the block and turn the rest into Markdown)."""
    shown = [(m.value, m.proto.allow_html) for m in [*at.markdown, *at.caption]]
    shown += [(e.value, False) for e in [*at.warning, *at.error, *at.info, *at.success]]
    for value, allow_html in shown:
        if allow_html:
            assert not re.search(r"<(img|script|b>x)", value) and "\n\n" not in value, value[:300]
        else:  # Markdown: only backslash-escaped forms (\<img, \*\*bold\*\*) may appear
            assert not re.search(r"(?<!\\)(!\[|\]\(|\*\*bold|<img|<script|<b>)", value), value[:300]


@pytest.mark.parametrize("case", list(EXPLAIN_CASES))
def test_hostile_explain_link(tiny_store: str, case: str) -> None:
    at = _open(EXPLAIN_CASES[case])
    assert not at.exception, at.exception
    if case != "markdown text":
        assert _link_warning(at), [w.value for w in at.warning]  # one clear message
        assert len([w for w in at.warning if "This link asked for" in w.value]) == 1
    if case != "markdown text":  # a short text with default settings may run on open; nothing else does
        assert not _card_titles(at)
    for n in at.number_input:  # every setting widget within its limit
        assert n.min is None or n.value >= n.min
        assert n.max is None or n.value <= n.max
    _assert_inert(at)


def test_over_limit_text_is_refused_not_loaded(tiny_store: str) -> None:  # noqa: F811
    at = _open({"text": "a" * 30_000, "methods": "saliency"})
    assert "30,000 characters; this server explains at most 20,000" in _link_warning(at)
    assert at.text_area(key=state.TEXT).value == ""


def test_markdown_in_a_link_is_shown_as_typed(tiny_store: str) -> None:  # noqa: F811
    at = _open({"text": "fine film", "methods": "shap,![b](http://e/b.png),**bold**,<img src=x>"})
    warning = _link_warning(at)
    assert "\\!\\[b\\]\\(http\\:" in warning and "\\*\\*bold\\*\\*" in warning and "\\<img" in warning


def test_permalink_with_maximal_settings_is_clamped_and_waits_for_a_click(tiny_store: str,  # noqa: F811
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOUPE_HOSTED", "1")
    monkeypatch.setenv("LOUPE_LIMITS", '{"lime.num_samples": 40}')
    cfg = {"lime": {"num_samples": 20000, "seed": 2**31 - 1, "kernel_width": 1000.0},
           "shap": {"max_evals": 20000, "batch_size": 1024}, "ig": {"n_steps": 500, "internal_batch_size": 500}}
    at = _open({"text": "a fine, warm film", "methods": "lime,shap,ig", "cfg": json.dumps(cfg)})
    assert not at.exception
    warning = _link_warning(at)
    assert "lime.num_samples: 20000 was lowered to 40 (this server's limit)" in warning.replace("\\", "")
    assert "shap.max_evals: 20000 was lowered to 2,000" in warning.replace("\\", "")
    assert at.number_input(key="loupe_cfg.lime.num_samples").value == 40
    assert at.number_input(key="loupe_cfg.shap.max_evals").value == 2000
    assert at.number_input(key="loupe_cfg.ig.n_steps").value == 100
    assert at.number_input(key="loupe_cfg.ig.internal_batch_size").value == 50
    assert not _card_titles(at)  # more work than the defaults: nothing runs until Explain is pressed
    assert any("Press **Explain**" in i.value and "more work than the defaults" in i.value for i in at.info)
    at.toggle(key=state.SANITY).set_value(False)
    at.multiselect(key=state.METHODS).set_value(["lime"])
    next(b for b in at.button if b.label == "Explain").click()
    at.run()
    assert not at.exception
    assert at.session_state[state.RESULTS].configs["lime"].num_samples == 40
    assert _card_titles(at) == ["#### LIME"]


def test_cheap_permalink_runs_on_open(tiny_store: str) -> None:  # noqa: F811
    at = _open({"text": "a fine film", "methods": "saliency,ablation", "cfg": '{"ablation":{"baseline":"pad"}}'})
    assert not at.exception and not _link_warning(at)
    assert len(_card_titles(at)) == 2


@pytest.fixture
def two_models(tiny_store: str) -> list[str]:  # noqa: F811
    folder = build_tiny_bert(models_dir() / "tiny-b", seed=1)
    store.write_card(folder, {"id": "tiny-b", "labels": ["negative", "positive"]})
    return ["tiny", "tiny-b"]


COMPARE_CASES = {
    "long text": {"models": "tiny,tiny-b", "text": "a" * 30_000, "methods": "saliency"},
    "unknown methods": {"models": "tiny,tiny-b", "text": "fine", "methods": "bogus," + MARKDOWN},
    "long models": {"models": "x," * 5_000, "text": "fine"},
    "unknown models": {"models": "tiny,../../etc,<b>x</b>", "text": "fine", "methods": "saliency"},
    "long methods": {"methods": "ig" * 1_000},
}


@pytest.mark.parametrize("case", list(COMPARE_CASES))
def test_hostile_compare_link(two_models: list[str], case: str) -> None:
    at = _open(COMPARE_CASES[case], "app_pages/compare.py")
    assert not at.exception, at.exception
    assert _link_warning(at)
    if case == "long text":  # refused: nothing to compare
        assert not any('class="loupe-text"' in m.value for m in at.markdown)
    # What was left out fell back to the defaults (a short text at the defaults may run on open).
    assert set(at.multiselect(key="loupe_cmp_methods").value) <= {"ig", "lime", "saliency"}
    _assert_inert(at)
