"""model_zoo.load: sources, refusals with typed errors, device and max_length, predict_proba."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from model_zoo import (
    BASE_ENCODER_ID,
    CustomCodeError,
    EmptyTextError,
    HubUnavailableError,
    LabelMismatchError,
    MissingTokenizerError,
    ModelLoadError,
    UnsafeCheckpointError,
    UntrainedHeadError,
    load,
    store,
)
from model_zoo.paths import models_dir
from tests.conftest import TOKENIZER_FILES, build_tiny_bert


class _WritesAFile:
    """Unpickling this writes a file: the attack a pickle checkpoint can carry."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.write_text, (self.target, "pwned"))


def _pickle_folder(tmp_path: Path, tiny_model_dir: Path, payload_target: Path) -> Path:
    folder = tmp_path / "pickled"
    folder.mkdir()
    for name in ("config.json", *TOKENIZER_FILES):
        if (tiny_model_dir / name).exists():
            shutil.copy(tiny_model_dir / name, folder / name)
    with open(folder / "pytorch_model.bin", "wb") as fh:
        pickle.dump({"weight": _WritesAFile(payload_target)}, fh)
    return folder


def test_loads_local_folder(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    assert tiny_handle.labels == {0: "negative", 1: "positive"}
    assert tiny_handle.device == torch.device("cpu")
    assert tiny_handle.dtype == torch.float32
    assert not tiny_handle.model.training
    # The tokenizer says 512 but the tiny model only has 128 positions.
    assert tiny_handle.max_length == 128
    assert tiny_handle.attn_implementation == "eager"


def test_loads_from_store_with_card(tiny_model_dir: Path) -> None:
    folder = models_dir() / "my-model"
    shutil.copytree(tiny_model_dir, folder)
    store.write_card(folder, {"id": "my-model", "labels": ["bad", "good"], "task": "sentiment"})
    handle = load("my-model", device="cpu")
    assert handle.labels == {0: "bad", 1: "good"}
    assert handle.info["source"] == "store" and handle.info["task"] == "sentiment"
    assert [c["id"] for c in store.list_models()] == ["my-model"]


def test_pickle_checkpoint_refused_and_never_unpickled(tmp_path: Path, tiny_model_dir: Path) -> None:
    marker = tmp_path / "pwned.txt"
    folder = _pickle_folder(tmp_path, tiny_model_dir, marker)
    with pytest.raises(UnsafeCheckpointError, match="pickle"):
        load(str(folder), device="cpu")
    assert not marker.exists()
    # Opting in still reads with weights_only=True, which refuses the payload.
    with pytest.raises(ModelLoadError):
        load(str(folder), device="cpu", allow_pickle=True)
    assert not marker.exists()


def test_pickle_opt_in_loads_plain_tensors(tmp_path: Path, tiny_model_dir: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    folder = _pickle_folder(tmp_path, tiny_model_dir, tmp_path / "unused")
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    handle = load(str(folder), device="cpu", allow_pickle=True)
    reference = load(str(tiny_model_dir), device="cpu")
    text = ["a fine film"]
    np.testing.assert_allclose(handle.predict_proba(text), reference.predict_proba(text), atol=1e-6)


def test_custom_code_refused(tmp_path: Path, tiny_model_dir: Path) -> None:
    folder = tmp_path / "custom"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForSequenceClassification": "modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CustomCodeError, match="custom Python code"):
        load(str(folder), device="cpu")


def test_missing_tokenizer_refused(tmp_path: Path, tiny_model_dir: Path) -> None:
    folder = tmp_path / "notok"
    shutil.copytree(tiny_model_dir, folder)
    for name in TOKENIZER_FILES:
        (folder / name).unlink(missing_ok=True)
    with pytest.raises(MissingTokenizerError, match="tokenizer"):
        load(str(folder), device="cpu")


def test_base_encoder_head_is_untrained() -> None:
    with pytest.raises(UntrainedHeadError, match="classifier head is untrained"):
        load(BASE_ENCODER_ID, device="cpu")
    handle = load(BASE_ENCODER_ID, device="cpu", allow_untrained=True, labels=["a", "b", "c"])
    assert handle.num_labels == 3 and handle.info["head_untrained"]


def test_label_count_mismatch(tmp_path: Path, tiny_model_dir: Path) -> None:
    with pytest.raises(LabelMismatchError, match="2 outputs but 3 label names"):
        load(str(tiny_model_dir), device="cpu", labels=["a", "b", "c"])
    # A head saved for 3 classes under a config that says 2.
    folder = build_tiny_bert(tmp_path / "three", num_labels=3)
    config = json.loads((folder / "config.json").read_text())
    config["id2label"] = {"0": "a", "1": "b"}
    config["label2id"] = {"a": 0, "b": 1}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(LabelMismatchError):
        load(str(folder), device="cpu")


def test_hub_id_offline_fails_clearly() -> None:
    with pytest.raises(HubUnavailableError, match="Hugging Face Hub"):
        load("some-user/some-model-that-is-not-here", device="cpu")


def test_missing_local_folder_and_bad_device(tmp_path: Path, tiny_model_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="No model folder"):
        load(str(tmp_path / "nope"), device="cpu")
    with pytest.raises(ModelLoadError, match="only used on a GPU"):
        load(str(tiny_model_dir), device="cpu", dtype="float16")


def test_predict_proba_order_batches_and_passes(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    texts = [f"{t}{i}" for i in range(7) for t in ("short", "a much longer text " * 20, "", "medium length text ", "x")]
    texts[2] = ""  # one empty text; 35 distinct texts in all
    with tiny_handle.meter() as passes:
        probs = tiny_handle.predict_proba(texts, batch_size=8)
    assert passes[0] == 5  # ceil(35 / 8)
    assert probs.shape == (35, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    one_by_one = np.vstack([tiny_handle.predict_proba([t]) for t in texts[:5]])
    np.testing.assert_allclose(probs[:5], one_by_one, atol=1e-5)


def test_repeated_texts_and_remembered_ones_cost_no_pass(tiny_handle, tiny_model_dir) -> None:  # type: ignore[no-untyped-def]
    texts = ["a fine film", "a dull film", "a fine film", "a fine film"]
    with tiny_handle.meter() as passes:
        probs = tiny_handle.predict_proba(texts, batch_size=1)
    assert passes[0] == 2  # two distinct texts, one per batch
    np.testing.assert_allclose(probs[0], probs[2])
    with tiny_handle.remember():
        with tiny_handle.meter() as first:
            tiny_handle.predict_proba(["a fine film", "a new film"])
        with tiny_handle.meter() as again:
            again_probs = tiny_handle.predict_proba(["a new film", "a fine film"])
        other = load(tiny_model_dir)  # another model object never reads this one's answers
        with other.meter() as elsewhere:
            other.predict_proba(["a fine film"])
    with tiny_handle.meter() as after:
        tiny_handle.predict_proba(["a fine film"])
    assert (first[0], again[0], elsewhere[0], after[0]) == (1, 0, 1, 1)
    np.testing.assert_allclose(again_probs[1], probs[0], atol=1e-6)


def test_encode_truncates_long_text_and_refuses_empty(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    enc = tiny_handle.encode("word " * 1000)
    assert enc.truncated and len(enc.tokens) == tiny_handle.max_length
    assert not tiny_handle.encode("just a few words").truncated
    with pytest.raises(EmptyTextError):
        tiny_handle.encode("   \n\t")


def test_nested_meters_add_up(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    with tiny_handle.meter() as outer:
        tiny_handle.predict_proba(["one"])
        with tiny_handle.meter() as inner:
            tiny_handle.predict_proba(["two", "three"], batch_size=1)
    assert (outer[0], inner[0]) == (3, 2)
