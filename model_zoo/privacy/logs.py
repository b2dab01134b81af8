"""Keeping raw text out of logs.

:func:`fingerprint` names a text without holding it (an HMAC with a key that lives only in this process, so
log lines about one text match each other, and the text cannot be looked up in a list of guesses). In hosted
mode, :func:`install_scrubber` puts a filter on every log handler that replaces, in each record and its
traceback, any text the app is hiding (:func:`watch`: the texts of the hide and redact modes and their
personal data) by its fingerprint.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable

from model_zoo import hosting

_KEY = secrets.token_bytes(32)
_WATCHED: OrderedDict[str, None] = OrderedDict()
_LOCK = threading.Lock()
_LIMIT = 512
_MIN_CHARS = 4  # shorter values ("Al") would blank out ordinary words of log lines


def fingerprint(text: object) -> str:
    """``text#1f2e3d4c5b6a (42 chars)``: the same text gives the same name within this process."""
    raw = str(text)
    digest = hmac.new(_KEY, raw.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:12]
    return f"text#{digest} ({len(raw)} chars)"


def loggable(text: object) -> str:
    """What to put in a log for ``text``: its fingerprint when hosted, the text itself locally."""
    return fingerprint(text) if hosting.hosted() else str(text)


def watch(text: str, values: Iterable[str] = ()) -> None:
    """Remember ``text`` and the personal data in it (``values``) so the log filter replaces them (the last
    512 are kept, in memory only)."""
    with _LOCK:
        for item in (text, *values):
            if isinstance(item, str) and len(item.strip()) >= _MIN_CHARS:
                _WATCHED[item] = None
                _WATCHED.move_to_end(item)
        while len(_WATCHED) > _LIMIT:
            _WATCHED.popitem(last=False)


def scrub(message: str) -> str:
    """``message`` with every watched text (longest first) replaced by its fingerprint."""
    with _LOCK:
        watched = sorted(_WATCHED, key=len, reverse=True)
    for item in watched:
        if item in message:
            message = message.replace(item, fingerprint(item))
    return message


class Scrubber(logging.Filter):
    """A handler filter: the record's message and traceback with watched texts replaced (always passes it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format: leave it to the handler
            return True
        record.msg, record.args = scrub(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


_SCRUBBER = Scrubber()


def install_scrubber(loggers: Iterable[str] = ("", "streamlit")) -> bool:
    """In hosted mode, add the :class:`Scrubber` to every handler of these loggers (root and Streamlit's);
    idempotent. Returns whether it is in place."""
    if not hosting.hosted():
        return False
    for name in loggers:
        for handler in logging.getLogger(name or None).handlers:
            if _SCRUBBER not in handler.filters:
                handler.addFilter(_SCRUBBER)
    return True


__all__ = ["Scrubber", "fingerprint", "install_scrubber", "loggable", "scrub", "watch"]
