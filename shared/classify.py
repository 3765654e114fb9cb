"""Personal-data classification of a table's columns, by name and by a sample of values.

Why at every materialization: a column that is personal must be masked for agents before it
is ever served, including one that arrives with schema drift. Orchestration classifies
each new version before publishing it and records the result in the version's manifest
(``extra["classification"]``) and in the Dagster materialization metadata; the API reads it
from the manifest it serves, so a served column and its classification always come from the
same version. An admin's per-column override lives in the control database and wins.

Categories: ``email``, ``phone``, ``person_name``, ``postal_address``, ``ip_address``,
``payment_card`` (digits passing the Luhn check), ``national_id`` (US SSN, UK NINO,
Canadian SIN, Spanish DNI, Indian Aadhaar formats) and ``free_text`` (longer text with any
of these inside). Each column gets a confidence (0 to 1) and its evidence: the name rule
that matched, and the share of sampled values that matched a value rule.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterable, Sequence
from typing import Any

CATEGORIES = ("email", "phone", "person_name", "postal_address", "ip_address", "payment_card", "national_id",
              "free_text")
SAMPLE_ROWS = 1000
PERSONAL_AT = 0.5  # a confidence at or above this makes a column personal
VALUE_SHARE = 0.6  # share of sampled values that must match a value rule
TEXT_SHARE = 0.05  # share of free-text values that must contain personal data
SPARSE_SHARE, SPARSE_MIN = 0.01, 2  # share and count of values in an unambiguous personal format
VALUE_CHARS = 512  # characters of each sampled value that are judged
# Columns sampled per scan. A reservoir sample holds buffers for every column it carries: over
# about 400 columns one scan ran out of the sync writer's 64 MB whatever the row count, and a wide
# table could never be published. Each scan draws its own seeded sample of the same relation.
COLUMNS_PER_SAMPLE = 64

# Name rules: (category, pattern on the lower-cased name with separators removed, confidence).
_NAME_RULES: tuple[tuple[str, re.Pattern[str], float], ...] = (
    ("email", re.compile(r"e?mail(address)?$|^email"), 0.8),
    ("phone", re.compile(r"phone|mobile|telephone|^tel$|fax|msisdn|cellnumber"), 0.8),
    ("national_id", re.compile(r"ssn|socialsecurity|nationalid|nino|passport|taxid|^tin$|dni|aadhaar|sin$"), 0.8),
    ("payment_card", re.compile(r"cardnumber|creditcard|ccnumber|^pan$|^card$"), 0.8),
    ("ip_address", re.compile(r"ipaddress|^ip$|ipv4|ipv6|clientip|remoteaddr"), 0.7),
    ("person_name", re.compile(r"(first|last|full|given|family|middle|sur|maiden|customer|contact|person|user)name$"),
     0.8),
    ("postal_address", re.compile(r"address|street|postcode|postalcode|zipcode|^zip$|^city$|country"), 0.6),
)
_STRICT_FORMATS = frozenset({"email", "ip_address", "payment_card"})
_WEAK_NAME = re.compile(r"^name$")  # a bare NAME: personal only when the values look like people's names

_EMAIL = re.compile(r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
_EMAIL_IN = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"^\+?[0-9][0-9 ().-]{5,20}[0-9]$")
_NOT_PHONE = re.compile(r"^\d{4}-\d{2}-\d{2}|^\d{1,2}[./-]\d{1,2}[./-]\d{2,4}$|^-?\d+\.\d+$")  # dates, decimals
_PHONE_IN = re.compile(r"(?<![\w.])\+?\(?\d{1,4}\)?[ .-]\d{2,4}[ .-]\d{3,4}(?:[ .-]\d{2,4})?(?![\w])")
_CARD_IN = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
_IPV4 = re.compile(r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\d.])")
_NATIONAL = (
    re.compile(r"(?<!\d)(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?!\d)"),  # US SSN
    re.compile(r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"),  # UK NINO
    re.compile(r"(?<!\d)\d{8}-?[A-HJ-NP-TV-Z](?![\w])"),  # Spanish DNI
    re.compile(r"(?<!\d)[2-9]\d{3} \d{4} \d{4}(?!\d)"),  # Indian Aadhaar
)
_SIN = re.compile(r"(?<!\d)\d{3}[ -]\d{3}[ -]\d{3}(?!\d)")  # Canadian SIN (with the Luhn check)
_STREET = re.compile(
    r"^\d{1,6}[A-Za-z]?,? +[\w .'-]+ (street|st|avenue|ave|road|rd|lane|ln|boulevard|blvd|drive|dr|way|court|ct|"
    r"place|pl|square|sq|terrace|strasse|straße|str|weg|rue|via|calle|laan)\b|"
    r"^[\w .'-]+(strasse|straße|str\.|weg|gasse|platz) \d{1,5}", re.IGNORECASE)
_WORDS = re.compile(r"^[A-Z][a-zA-Z'’-]+(?: [A-Z][a-zA-Z'’.-]*){1,3}$")
# Common given names (several languages): a value whose first word is one of these looks like a person.
GIVEN_NAMES = frozenset({
    "aaron", "adam", "adrian", "ahmed", "aisha", "akira", "alan", "albert", "alejandro", "alex", "alexander",
    "alexandra", "alice", "alicia", "amanda", "amelia", "amy", "ana", "andre", "andrea", "andreas", "andrew",
    "angela", "anna", "anne", "anthony", "antonio", "arjun", "ava", "barbara", "ben", "benjamin", "bernard", "beth",
    "brian", "bruno", "carl", "carla", "carlos", "carmen", "caroline", "catherine", "charles", "charlotte", "chen",
    "chris", "christian", "christina", "christopher", "claire", "clara", "claude", "daniel", "david", "deborah",
    "diana", "diego", "dmitri", "elena", "elizabeth", "ella", "emily", "emma", "eric", "ethan", "eva", "fatima",
    "felix", "fernando", "francesca", "francisco", "frank", "gabriel", "george", "giulia", "grace", "hannah", "hans",
    "harry", "helen", "henry", "hiroshi", "hugo", "ian", "igor", "isabel", "isabella", "jack", "jacob", "james",
    "jan", "jane", "jason", "javier", "jean", "jennifer", "jessica", "joao", "john", "jonathan", "jose", "joseph",
    "juan", "julia", "julie", "karen", "kate", "katherine", "kevin", "laura", "lea", "leo", "li", "liam", "linda",
    "lisa", "lucas", "lucy", "luis", "luke", "maria", "mark", "marta", "martin", "mary", "matthew", "max", "mei",
    "michael", "michelle", "mohammed", "nadia", "natalia", "nathan", "nicolas", "noah", "olga", "olivia", "omar",
    "oscar", "paul", "pedro", "peter", "pierre", "priya", "rachel", "rahul", "raj", "ravi", "rebecca", "richard",
    "robert", "rosa", "ryan", "sakura", "samuel", "sara", "sarah", "sebastian", "sergei", "sofia", "sophia",
    "sophie", "stefan", "stephanie", "steven", "susan", "thomas", "tom", "victoria", "vincent", "wei", "william",
    "yuki", "zoe",
})


@dataclasses.dataclass(frozen=True)
class ColumnClass:
    """One column's verdict: its category (None: nothing personal found), confidence and evidence."""

    category: str | None
    confidence: float
    evidence: dict[str, Any]

    @property
    def personal(self) -> bool:
        return self.category is not None and self.confidence >= PERSONAL_AT

    def to_json(self) -> dict[str, Any]:
        return {"category": self.category, "confidence": round(self.confidence, 3), "personal": self.personal,
                "evidence": self.evidence}


def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def name_rule(name: str) -> tuple[str, float, str] | None:
    """(category, confidence, rule) of the first name rule ``name`` matches."""
    squashed = _squash(name)
    for category, pattern, confidence in _NAME_RULES:
        if pattern.search(squashed):
            return category, confidence, f"name:{category}"
    return None


def luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _is_card(text: str) -> bool:
    digits = re.sub(r"[ -]", "", text)
    return digits.isdigit() and 13 <= len(digits) <= 19 and len(set(digits)) > 1 and luhn(digits)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_phone(text: str) -> bool:
    if not _PHONE.match(text) or _NOT_PHONE.match(text):
        return False
    digits = sum(ch.isdigit() for ch in text)
    return (9 <= digits <= 15 or (text.startswith("+") and digits >= 7)) and any(ch in text for ch in " ().-+")


def _is_national(text: str) -> bool:
    if any(p.fullmatch(text) for p in _NATIONAL):
        return True
    return bool(_SIN.fullmatch(text)) and luhn(re.sub(r"\D", "", text))


def _is_person(text: str) -> bool:
    return bool(_WORDS.match(text)) and text.split(" ", 1)[0].lower() in GIVEN_NAMES


_VALUE_RULES = (
    ("email", lambda t: bool(_EMAIL.match(t))),
    ("payment_card", _is_card),
    ("national_id", _is_national),
    ("ip_address", _is_ip),
    ("phone", _is_phone),
    ("postal_address", lambda t: bool(_STREET.search(t))),
    ("person_name", _is_person),
)


def contains_personal(text: str) -> str | None:
    """The category of personal data found inside free text, or None."""
    if _EMAIL_IN.search(text):
        return "email"
    for m in _CARD_IN.finditer(text):
        if _is_card(m.group(0)):
            return "payment_card"
    if any(p.search(text) for p in _NATIONAL):
        return "national_id"
    if _IPV4.search(text):
        return "ip_address"
    if _PHONE_IN.search(text):
        return "phone"
    return None


_UNAMBIGUOUS = (("email", lambda t: bool(_EMAIL.match(t))), ("national_id", _is_national), ("ip_address", _is_ip))
_CARD_LIKE = re.compile(r"^\d[\d -]{11,21}\d$")


def _sparse(values: Sequence[str]) -> tuple[str, float] | None:
    """(category, share) of an unambiguous format found in a real share (``SPARSE_SHARE``, and at
    least ``SPARSE_MIN`` values) although most values are something else (placeholders such as
    ``n/a``, codes).

    Why: an e-mail, a national identifier or an IP address is personal wherever it is, and a
    column holding one in a third of its rows serves that third raw if only a majority counts.
    Card numbers count when nearly every card-length digit string passes the Luhn check (random
    digits pass one time in ten, so an id column of long numbers is not taken for cards)."""
    for category, rule in _UNAMBIGUOUS:
        found = sum(1 for v in values if rule(v))
        if found >= SPARSE_MIN and found / len(values) >= SPARSE_SHARE:
            return category, found / len(values)
    like = [v for v in values if _CARD_LIKE.match(v) and 13 <= len(re.sub(r"[ -]", "", v)) <= 19]
    if len(like) >= 3 and len(like) / len(values) >= SPARSE_SHARE and sum(map(_is_card, like)) >= 0.9 * len(like):
        return "payment_card", len(like) / len(values)
    # Inside longer values: an e-mail or a national identifier in a note, however short the other notes.
    inside = sum(1 for v in values if _EMAIL_IN.search(v) or any(p.search(v) for p in _NATIONAL))
    if inside >= SPARSE_MIN and inside / len(values) >= SPARSE_SHARE:
        return "free_text", inside / len(values)
    return None


def classify_values(values: Sequence[str]) -> tuple[str | None, float, dict[str, Any]]:
    """(category, share of values matching it, evidence) of the best value rule."""
    values = [v.strip() for v in values if v is not None and v.strip()]
    if not values:
        return None, 0.0, {"sampled": 0}
    best: tuple[str | None, float] = (None, 0.0)
    for category, rule in _VALUE_RULES:
        share = sum(1 for v in values if rule(v)) / len(values)
        if share > best[1]:
            best = (category, share)
    evidence: dict[str, Any] = {"sampled": len(values)}
    if best[0] is not None and best[1] >= VALUE_SHARE:
        return best[0], best[1], evidence | {"value_rule": best[0], "matched_share": round(best[1], 3)}
    sparse = _sparse(values)
    if sparse is not None:
        return sparse[0], sparse[1], evidence | {"value_rule": sparse[0], "matched_share": round(sparse[1], 3),
                                                 "sparse": True}
    texty = [v for v in values if " " in v and len(v) >= 20]
    if len(texty) >= max(1, len(values) // 2):
        found = [c for v in texty if (c := contains_personal(v)) is not None]
        share = len(found) / len(texty)
        if share >= TEXT_SHARE:
            inside = sorted(set(found))
            return "free_text", share, evidence | {"value_rule": "free_text", "matched_share": round(share, 3),
                                                   "contains": inside}
    if best[0] is not None:
        evidence |= {"best_value_rule": best[0], "matched_share": round(best[1], 3)}
    return None, best[1], evidence


def classify_column(name: str, values: Sequence[str]) -> ColumnClass:
    """One column's verdict from its name and a sample of its values (as text)."""
    by_name = name_rule(name)
    category, share, evidence = classify_values(values)
    if by_name is not None:
        evidence = {"name_rule": by_name[2], **evidence}
    if category is not None:
        # Free text, or an unambiguous format in a minority of values: any real share of values
        # carrying personal data is a strong signal.
        strong = category == "free_text" or evidence.get("sparse")
        confidence = min(0.9, (0.6 if strong else 0.4) + share / 2)
        if by_name is not None and by_name[0] == category:
            confidence = min(1.0, confidence + 0.1)
        return ColumnClass(category, round(confidence, 3), evidence)
    if by_name is not None:
        sampled = evidence.get("sampled", 0)
        # A name rule holds on its own, unless the rule's format is unambiguous (an e-mail, an IP
        # address, a card number) and many values were seen without one of them matching.
        weak = sampled and not evidence.get("matched_share", 0) and by_name[0] in _STRICT_FORMATS
        confidence = by_name[1] - 0.4 if weak else by_name[1]
        return ColumnClass(by_name[0], round(confidence, 3), evidence)
    if _WEAK_NAME.match(_squash(name)) and share:
        evidence = {"name_rule": "name:bare", **evidence}
    return ColumnClass(None, 0.0, evidence)


def classify_names(names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Verdicts from names alone (for a served version recorded before classification existed)."""
    return {n: classify_column(n, []).to_json() for n in names}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        return None
    return str(value)


def is_text_type(duckdb_type: str) -> bool:
    """Whether values of this DuckDB type are text whose shape can be personal (VARCHAR, JSON)."""
    return duckdb_type.upper().split("(")[0] in ("VARCHAR", "TEXT", "STRING", "JSON", "CHAR", "BPCHAR")


_CONTAINERS = ("STRUCT", "MAP", "UNION", "LIST", "BLOB", "BYTEA", "VARBINARY", "BINARY")
_WIDE_NUMBERS = ("BIGINT", "INT8", "LONG", "UBIGINT", "HUGEINT", "INT128", "UHUGEINT", "DECIMAL", "NUMERIC")


def judged_as(duckdb_type: str) -> str | None:
    """How values of this DuckDB type are judged: ``text`` (every value rule), ``nested`` (lists,
    structs, maps, unions and binary: their text form is searched for personal data inside, as
    free text is, since an e-mail in a struct field or a card number in a list is served whole),
    ``number`` (integers wide enough for a card number, and decimals: the card rule only, since
    a phone rule would take every long id for a phone), or None (judged by its name only)."""
    kind = duckdb_type.upper().strip()
    base = kind.split("(")[0].strip()
    if is_text_type(kind):
        return "text"
    if kind.endswith("]") or base in _CONTAINERS:
        return "nested"
    if base in _WIDE_NUMBERS:
        return "number"
    return None


def classify_nested(name: str, values: Sequence[str]) -> ColumnClass:
    """A nested or binary column: personal when a real share of its values carries personal data inside."""
    values = [v for v in values if v]
    found = [c for v in values if (c := contains_personal(v)) is not None]
    share = len(found) / len(values) if values else 0.0
    if share >= TEXT_SHARE:
        return ColumnClass("free_text", round(min(0.9, 0.6 + share / 2), 3),
                           {"sampled": len(values), "value_rule": "free_text", "matched_share": round(share, 3),
                            "contains": sorted(set(found))})
    return classify_column(name, [])


def classify_number(name: str, values: Sequence[str]) -> ColumnClass:
    """A wide number column: a payment card when most values are card numbers (Luhn), else by its name."""
    digits = [re.sub(r"\.0*$", "", v.strip()) for v in values if v and v.strip()]
    share = sum(1 for d in digits if _is_card(d)) / len(digits) if digits else 0.0
    if share >= VALUE_SHARE:
        return ColumnClass("payment_card", round(min(0.9, 0.4 + share / 2), 3),
                           {"sampled": len(digits), "value_rule": "payment_card", "matched_share": round(share, 3)})
    return classify_column(name, [])


def classify_table(con: Any, relation: str, columns: Sequence[str], *, types: Sequence[str] | None = None,
                   sample_rows: int = SAMPLE_ROWS) -> dict[str, dict[str, Any]]:
    """Verdicts of every column of ``relation`` (a quoted table reference on the DuckDB
    connection ``con``), from a seeded sample of up to ``sample_rows`` rows. With ``types``,
    text, nested, binary and wide number columns are judged by their values (``judged_as``; a
    date or a small amount is judged by its name). Each sampled value is cut to its first
    ``VALUE_CHARS`` characters, so the sample stays small whatever the column holds."""
    kinds = ["text" if types is None else judged_as(types[i]) for i in range(len(columns))]
    judged = [i for i, _ in enumerate(columns) if kinds[i] is not None]
    sampled: dict[int, list[Any]] = {}
    for start in range(0, len(judged), COLUMNS_PER_SAMPLE):
        group = judged[start:start + COLUMNS_PER_SAMPLE]
        select = ", ".join(f'left(CAST("{columns[i].replace(chr(34), chr(34) * 2)}" AS VARCHAR), {VALUE_CHARS})'
                           for i in group)
        rows = con.execute(f"SELECT {select} FROM {relation} USING SAMPLE reservoir({int(sample_rows)} ROWS) "
                           "REPEATABLE (0)").fetchall()
        sampled.update((i, [r[j] for r in rows]) for j, i in enumerate(group))
    out = {}
    for i, name in enumerate(columns):
        if i not in sampled:
            out[name] = classify_column(name, []).to_json()
            continue
        values = [t for v in sampled[i] if (t := _text(v)) is not None]
        judge = {"nested": classify_nested, "number": classify_number}.get(kinds[i] or "", classify_column)
        out[name] = judge(name, values).to_json()
    return out
