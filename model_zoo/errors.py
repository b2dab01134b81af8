"""Typed errors raised by model_zoo. Each message is written for a person, not a stack trace."""

from __future__ import annotations


class LoupeError(Exception):
    """Base class of every error Loupe raises on purpose; the UI shows ``str(err)`` as is."""


class ModelLoadError(LoupeError):
    """A model could not be loaded (missing folder, unknown id, broken files)."""


class UnsafeCheckpointError(ModelLoadError):
    """Only pickle weights (``.bin``/``.pt``) were found and pickle loading was not allowed."""


class CustomCodeError(ModelLoadError):
    """The model folder asks for custom Python code (``auto_map``); Loupe never runs it."""


class MissingTokenizerError(ModelLoadError):
    """The model folder has no tokenizer files."""


class LabelMismatchError(ModelLoadError):
    """The number of labels in config, card, head or the caller's request disagree."""


class UntrainedHeadError(ModelLoadError):
    """The checkpoint has no classification head, so predictions would come from random weights."""


class HubUnavailableError(ModelLoadError):
    """A hub id was given but the hub cannot be reached (offline) or does not know it."""


class DatasetError(LoupeError):
    """A dataset or uploaded file cannot be used (missing columns, one class, bad encoding...)."""


class EmptyTextError(LoupeError, ValueError):
    """The text to explain or predict is empty or only whitespace."""


def run_cli(args: object) -> int:
    """Run a CLI subcommand (``args.func(args)``); a LoupeError becomes ``error: ...`` and exit status 2."""
    import sys

    try:
        return int(args.func(args))  # type: ignore[attr-defined]
    except LoupeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
