"""The prompt playground page (AppTest) on a tiny random causal LM: edit, predict, explain, evaluate, save."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import state
from dashboard.services import prompting as svc
from model_zoo import prompting, store
from model_zoo.prompting import Demonstration, PromptTemplate
from tests.model_zoo.test_prompting import build_tiny_lm

pytestmark = pytest.mark.usefixtures("one_thread")

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
PAGE = "app_pages/prompts.py"
PAYLOAD = '"><img src=x onerror=alert(1)>**bold**'




@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_lm(tmp_path_factory.mktemp("page-lm") / "tiny-llama")


def _page(lm_dir: Path, **values: object) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    at.session_state[state.PR_BASE] = svc.OTHER_LM  # the tiny LM, not the bundled SmolLM2
    at.session_state[state.PR_BASE_PATH] = str(lm_dir)
    at.session_state[state.PR_TYPED] = "positive: a great film\nnegative: a dull film"
    at.session_state[state.PR_METHODS] = ["ablation", "saliency"]
    for key, value in values.items():
        at.session_state[key] = value
    at.run()
    at.switch_page(PAGE)
    at.run()
    return at


def _click(at: AppTest, label: str) -> AppTest:
    next(b for b in at.button if b.label == label).click()
    at.run()
    return at


def test_playground_predicts_explains_evaluates_and_saves(tiny_store: str, lm_dir: Path) -> None:
    at = _page(lm_dir)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert len(at.get("plotly_chart")) == 2  # uncalibrated and calibrated probabilities
    assert any("p_cf" in c.value for c in at.caption)
    _click(at, "Explain")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert sum('class="loupe-text"' in m.value for m in at.markdown) == 2  # ablation and saliency
    assert any("Which demonstration mattered" in m.value for m in at.markdown)
    assert any("Removing demonstration" in c.value or "No single demonstration" in c.value for c in at.caption)

    at.toggle(key=state.PR_WHOLE).set_value(True)
    at.run()
    _click(at, "Explain")
    assert not at.exception and not at.error
    # the whole prompt is highlighted: its instruction's words are in the explained text
    assert any('class="loupe-text"' in m.value and ">review</span>" in m.value for m in at.markdown)
    assert len(at.get("plotly_chart")) >= 2 + 2 + 1  # probabilities, two attribution-mass charts, leave-one-out

    at.number_input(key=state.PR_N).set_value(6)
    _click(at, "Evaluate")
    assert not at.exception and not at.error
    table = at.dataframe[-1].value
    assert list(table["accuracy"].between(0, 1)) == [True, True]

    at.text_input(key=state.PR_NAME).set_value("tiny-playground")
    at.run()
    _click(at, "Save")
    assert not at.exception and not at.error
    assert any("Saved as" in s.value for s in at.success)
    card = store.read_card(store.model_path("tiny-playground"))
    assert card["method"] == "prompt" and card["metrics"]["validation"]["n"] == 6
    assert card["prompt"]["demonstrations"][0] == {"text": "a great film", "label": "positive"}
    _click(at, "Explain with this model")
    assert at.session_state[state.MODEL] == "tiny-playground"


@pytest.mark.parametrize(("key", "value", "message"), [
    (state.PR_PATTERN, "Review: {label}", "exactly one {text} slot"),
    (state.PR_WORDS, "", "verbaliser is empty"),
    (state.PR_WORDS, "negative: good\npositive: good", "both use the word"),
    (state.PR_WORDS, "negative good", "label: word, word"),
    (state.PR_TYPED, "neutral: so-so", "not one of the verbaliser"),
])
def test_bad_prompts_get_a_message_not_a_traceback(tiny_store: str, lm_dir: Path, key: str, value: str,
                                                    message: str) -> None:
    at = _page(lm_dir, **{key: value})
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("This prompt cannot be used" in e and message in e.replace("\\", "") for e in errors), errors


def test_missing_language_model_is_a_message(tiny_store: str, lm_dir: Path, tmp_path: Path) -> None:
    at = _page(lm_dir, **{state.PR_BASE_PATH: str(tmp_path / "nothing-here")})
    assert not at.exception
    assert any("Could not load the language model" in e.value for e in at.error)


def test_a_stored_prompt_classifier_fills_the_form_and_is_listed(lm_dir: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    template = PromptTemplate(instruction=f"Judge the review. {PAYLOAD}", pattern="Text: {text}\nVerdict: {label}",
                              demonstrations=(Demonstration("so good", "positive"),), calibrate=True)
    prompting.save("tiny-stored-prompt", template, str(lm_dir))
    monkeypatch.setenv("LOUPE_DEFAULT_MODEL", "tiny-stored-prompt")
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    assert not at.exception  # the Explain page opens with the prompt classifier
    at.switch_page(PAGE)
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.text_area(key=state.PR_INSTRUCTION).value == template.instruction
    assert at.toggle(key=state.PR_CALIBRATE).value is True
    assert at.text_area(key=state.PR_TYPED).value == "positive: so good"
    assert not any("<img" in m.value for m in at.markdown)  # the instruction only ever reaches HTML escaped
    at.switch_page("app_pages/models.py")
    at.run()
    assert not at.exception
    assert "tiny-stored-prompt" in at.dataframe[0].value["id"].tolist()
