"""Registries that carry behaviour: a name -> entry mapping filled at import by the module that owns each entry.

Explainers, fine-tuning methods, compression variants, job kinds and CLI subcommands each live in one
registry. An entry is registered once (a second entry under the same name is an error); looking up an unknown
name raises the registry's typed error with the known names listed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

from model_zoo.errors import LoupeError

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """An ordered, read-mostly mapping of names to entries (see the module docstring).

    Args:
        what: what an entry is, for messages ("explainer", "fine-tuning method").
        error: raised by :meth:`lookup` for an unknown name.
    """

    def __init__(self, what: str, error: type[LoupeError] = LoupeError) -> None:
        self.what = what
        self.error = error
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        """Add ``entry`` under ``name``; a name used twice is a ``ValueError`` (a programming error)."""
        if name in self._entries:
            raise ValueError(f"A {self.what} named {name!r} is already registered.")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        """Remove an entry (tests that register a fixture entry clean up with this)."""
        self._entries.pop(name, None)

    def lookup(self, name: str) -> T:
        """The entry called ``name``; :attr:`error` naming the known ones when there is none."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise self.error(f"Unknown {self.what} {name!r}; known: {', '.join(self._entries) or 'none'}.") from None

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}: {', '.join(self._entries)})"
