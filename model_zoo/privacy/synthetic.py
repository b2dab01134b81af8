"""A generated evaluation set for personal-data detection, and its scoring (tests and ``bench/privacy.py``).

Sentences from templates (reviews, support tickets, messages) with planted names (several origins), e-mail
addresses, phone numbers (US, UK, German, French formats), Luhn-valid card numbers, IBANs with correct check
digits, street addresses, IP addresses, URLs and dates; each planted value is a known span. Nothing is real:
card numbers use test prefixes' shapes, phone numbers the reserved 555-01xx and Ofcom drama ranges.

Scoring, per entity type: a planted span is *recalled* when spans found of the same type cover every letter
and digit of it (half a name left in the text is a leak); a found span is *precise* when it overlaps a planted
span of the same type. ``hidden`` is the share of planted spans whose letters and digits are all covered by
spans of any type (what redaction hides).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from model_zoo.privacy.detect import PiiSpan

FIRST = ["James", "Mary", "Robert", "Patricia", "Michael", "Jennifer", "David", "Linda", "William", "Elizabeth",
         "Sarah", "Thomas", "Emma", "Oliver", "Sophie", "Daniel", "Laura", "Maria", "Carlos", "Sofia", "Lucas",
         "Hannah", "Lukas", "Anna", "Pierre", "Camille", "Giulia", "Marco", "Priya", "Rahul", "Aisha", "Omar",
         "Chen", "Yuki", "Kenji", "Olga", "Ivan", "Fatima", "Ahmed", "Ingrid"]
LAST = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Wilson", "Anderson",
        "Taylor", "Thomas", "Moore", "Martin", "Jackson", "Thompson", "White", "Harris", "Clark", "Lewis",
        "Robinson", "Walker", "Young", "Hall", "Schmidt", "Müller", "Fischer", "Dubois", "Moreau", "Rossi",
        "Bianchi", "Fernandez", "Lopez", "Patel", "Sharma", "Khan", "Nakamura", "Tanaka", "Ivanova", "Larsen"]
STREETS = ["Baker", "Oak", "Maple", "Elm", "High", "Church", "Park", "Mill", "Station", "Victoria", "King", "Queen",
           "Cedar", "Pine", "Washington", "Lincoln", "Sunset", "Lake", "Hill", "River"]
STREET_WORDS = ["Street", "Avenue", "Road", "Lane", "Drive", "Boulevard", "Way", "Court", "Place", "Terrace"]
DOMAINS = ["example.com", "mail.example.org", "example.co.uk", "firma.example.de", "example.net", "corp.example.io"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]

# Each template names its slots; {name} is a person, the rest one of the pattern types.
TEMPLATES = [
    "Great film! {name} and I watched it twice last weekend.",
    "Please call me back on {phone}, this is {name}.",
    "My card {card} was charged twice for the same ticket.",
    "Hi, I'm {name}, my email is {email} and my phone is {phone}.",
    "Refund to IBAN {iban} please, account holder {name}.",
    "Send the invoice to {name} at {address}.",
    "The delivery never arrived at {address}; contact {email}.",
    "{name} wrote the review from {ip} on {date}.",
    "Terrible service. Ask {name} about ticket 4471, she promised a refund.",
    "You can reach {name} via {email} or {phone} any time.",
    "I paid with {card} on {date} and still have no confirmation.",
    "Account {iban} belongs to {name}, please update it.",
    "See {url} for the photos {name} took.",
    "Booked on {date} by {name}; card ending {card}.",
    "Ship it to {address} and text {phone} when it arrives.",
    "Login attempts from {ip} were blocked, notify {email}.",
    "My neighbour {name} recommended this, and honestly it was dull.",
    "Thanks to {name} for the quick reply to my email {email}.",
    "The manager, {name}, said the card {card} would be refunded.",
    "Reviewed by {name}. More at {url}.",
    "Dear {name}, your appointment on {date} is confirmed.",
    "Wire the deposit to {iban} before {date}.",
    "I live at {address}, not at the old flat.",
    "{name} called from {phone} about the broken screen.",
    # Numbers that are not personal data: precision must survive them.
    "The film runs 118 minutes, cost $25 million and came out in 2019; {name} liked it.",
    "Order #55012 took 3 days and version 2.1.3 crashed at 10:30, wrote {email}.",
    "Rated 4.5 of 5 by 1,204 viewers; room 12B, seat 7, said {name} on {date}.",
]


@dataclass(frozen=True)
class Planted:
    """A planted value: ``text[start:end]`` is personal data of type ``entity``."""

    start: int
    end: int
    entity: str


def _luhn_complete(digits: str) -> str:
    total = 0
    for i, d in enumerate(reversed(digits + "0")):
        n = int(d)
        if i % 2 == 1:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return digits + str((10 - total % 10) % 10)


def _card(rng: random.Random) -> str:
    prefix, length, groups = rng.choice([("4", 16, (4, 4, 4, 4)), ("5" + str(rng.randint(1, 5)), 16, (4, 4, 4, 4)),
                                         ("3" + rng.choice("47"), 15, (4, 6, 5))])
    number = _luhn_complete(prefix + "".join(str(rng.randint(0, 9)) for _ in range(length - len(prefix) - 1)))
    sep = rng.choice([" ", "-", ""])
    parts, pos = [], 0
    for g in groups:
        parts.append(number[pos:pos + g])
        pos += g
    return sep.join(parts)


def _iban(rng: random.Random) -> str:
    country, length = rng.choice([("DE", 18), ("GB", 18), ("FR", 23), ("NL", 14), ("ES", 20)])
    if country == "GB":
        bban = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4)) + "".join(
            str(rng.randint(0, 9)) for _ in range(14))
    elif country == "NL":
        bban = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4)) + "".join(
            str(rng.randint(0, 9)) for _ in range(10))
    else:
        bban = "".join(str(rng.randint(0, 9)) for _ in range(length))
    digits = "".join(str(int(c, 36)) for c in bban + country + "00")
    iban = f"{country}{98 - int(digits) % 97:02d}{bban}"
    return " ".join(iban[i:i + 4] for i in range(0, len(iban), 4)) if rng.random() < 0.6 else iban


def _phone(rng: random.Random) -> str:
    line = f"01{rng.randint(0, 99):02d}"
    return rng.choice([
        f"({rng.choice(['212', '415', '617', '312'])}) 555-{line}",
        f"+1 {rng.choice(['212', '415', '617', '312'])}-555-{line}",
        f"{rng.choice(['212', '415', '617', '312'])}-555-{line}",
        f"+44 20 7946 0{rng.randint(100, 999)}",
        f"020 7946 0{rng.randint(100, 999)}",
        f"+49 30 {rng.randint(100000, 999999)}",
        f"+33 1 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}",
    ])


def _value(slot: str, rng: random.Random, person: tuple[str, str]) -> str:
    first, last = person
    if slot == "name":
        return f"{first} {last}"
    if slot == "email":
        return f"{first.lower()}.{last.lower()}@{rng.choice(DOMAINS)}".replace("ü", "ue")
    if slot == "phone":
        return _phone(rng)
    if slot == "card":
        return _card(rng)
    if slot == "iban":
        return _iban(rng)
    if slot == "address":
        number = f"{rng.randint(1, 9999)}{rng.choice(['', '', '', 'B'])}"
        return f"{number} {rng.choice(STREETS)} {rng.choice(STREET_WORDS)}"
    if slot == "ip":
        return ".".join(str(rng.randint(1, 254)) for _ in range(4))
    if slot == "url":
        return f"https://www.{rng.choice(DOMAINS)}/{rng.choice(['photos', 'reviews', 'u'])}/{rng.randint(10, 9999)}"
    if slot == "date":
        day, month, year = rng.randint(1, 28), rng.randint(1, 12), rng.randint(2015, 2025)
        return rng.choice([f"{year}-{month:02d}-{day:02d}", f"{day:02d}/{month:02d}/{year}",
                           f"{MONTHS[month - 1]} {day}, {year}", f"{day} {MONTHS[month - 1]} {year}"])
    raise ValueError(slot)


SLOT_ENTITY = {"name": "PERSON", "email": "EMAIL", "phone": "PHONE", "card": "CREDIT_CARD", "iban": "IBAN",
               "address": "ADDRESS", "ip": "IP_ADDRESS", "url": "URL", "date": "DATE"}


def synthetic_set(n: int = 500, seed: int = 0) -> list[tuple[str, list[Planted]]]:
    """``n`` sentences with their planted spans (templates in turn, values drawn with ``seed``)."""
    import string

    rng = random.Random(seed)
    out = []
    for i in range(n):
        template = TEMPLATES[i % len(TEMPLATES)]
        person = (rng.choice(FIRST), rng.choice(LAST))
        text, spans = "", []
        for literal, slot, _, _ in string.Formatter().parse(template):
            text += literal
            if slot:
                value = _value(slot, rng, person)
                spans.append(Planted(len(text), len(text) + len(value), SLOT_ENTITY[slot]))
                text += value
        out.append((text, spans))
    return out


def _covered(planted: Planted, text: str, found: Sequence[PiiSpan], same_type: bool) -> bool:
    chars = [i for i in range(planted.start, planted.end) if text[i].isalnum()]
    spans = [s for s in found if not same_type or s.entity == planted.entity]
    return all(any(s.start <= i < s.end for s in spans) for i in chars)


def score(data: Sequence[tuple[str, Sequence[Planted]]], found: Sequence[Sequence[PiiSpan]]) -> dict[str, Any]:
    """Recall and precision per entity type (see the module docstring), and ``hidden`` over all planted spans.

    Returns:
        ``{"per_type": {entity: {"planted", "found", "recall", "precision"}}, "hidden": float, "sentences": n}``;
        recall is None for a type never planted, precision None for a type never found.
    """
    per: dict[str, dict[str, float]] = {}
    hidden = planted_total = 0
    for (text, planted), spans in zip(data, found):
        for p in planted:
            row = per.setdefault(p.entity, {"planted": 0, "recalled": 0, "found": 0, "correct": 0})
            row["planted"] += 1
            row["recalled"] += _covered(p, text, spans, True)
            hidden += _covered(p, text, spans, False)
            planted_total += 1
        for s in spans:
            row = per.setdefault(s.entity, {"planted": 0, "recalled": 0, "found": 0, "correct": 0})
            row["found"] += 1
            row["correct"] += any(p.entity == s.entity and s.start < p.end and p.start < s.end for p in planted)
    table = {e: {"planted": int(r["planted"]), "found": int(r["found"]),
                 "recall": r["recalled"] / r["planted"] if r["planted"] else None,
                 "precision": r["correct"] / r["found"] if r["found"] else None} for e, r in sorted(per.items())}
    return {"per_type": table, "hidden": hidden / planted_total if planted_total else None, "sentences": len(data)}


__all__ = ["FIRST", "LAST", "SLOT_ENTITY", "TEMPLATES", "Planted", "score", "synthetic_set"]
