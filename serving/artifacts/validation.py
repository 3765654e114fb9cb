"""Validation of what clients say about an artifact: name, type, tags, metadata, visibility, expiry.

Why strict: a name is metadata only (objects are stored under their SHA-256), but it
is shown to other agents and echoed in ``Content-Disposition``, so characters that
spoof or break headers are refused rather than silently rewritten: NUL and other
control characters, bidirectional overrides (``invoice\u202egpj.exe``), and names
beyond ``MAX_NAME`` characters. Path-like names (``../x``, ``/etc/passwd``, fullwidth
dots) are harmless here and kept verbatim; only the download header uses a safe form.
"""

from __future__ import annotations

import dataclasses
import json
import re
import unicodedata
from typing import Any
from urllib.parse import quote

from serving.artifacts.upload import Form
from serving.lib.errors import BadRequest

MAX_NAME = 255
MAX_TAGS = 32
MAX_TAG = 64
MAX_METADATA_BYTES = 16 * 1024
MAX_VISIBLE_TO = 100
MAX_TTL_S = 365 * 24 * 3600
MAX_CONTENT_TYPE = 255
VISIBILITIES = ("private", "swarm", "agents")
_MIME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
                   r"(\s*;\s*[A-Za-z0-9_.-]+=(\"[A-Za-z0-9_. /+-]*\"|[A-Za-z0-9_.+-]+))*$")
_BIDI = {"\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069",
         "\u200e", "\u200f", "\u061c"}
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_DURATION = re.compile(r"^\s*([0-9]{1,12})\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _bad(field: str, message: str) -> BadRequest:
    return BadRequest(f"{field}: {message}", rule="invalid_artifact_field", details={"field": field})


def check_text(value: str, field: str, limit: int) -> str:
    if not value or not value.strip():
        raise _bad(field, "must not be empty")
    if len(value) > limit:
        raise _bad(field, f"is longer than {limit} characters")
    for ch in value:
        if ch in _BIDI:
            raise _bad(field, f"must not contain bidirectional control characters (U+{ord(ch):04X})")
        if unicodedata.category(ch) in ("Cc", "Cs") or ch in ("\u2028", "\u2029"):
            raise _bad(field, f"must not contain control characters (U+{ord(ch):04X})")
    return value


def check_name(value: Any) -> str:
    """A display name, stored verbatim (NFC) and never used as a path."""
    if not isinstance(value, str):
        raise _bad("name", "must be a string")
    return check_text(unicodedata.normalize("NFC", value), "name", MAX_NAME)


def is_id(value: str) -> bool:
    """An artifact, token or job id: 1 to 64 of ``[A-Za-z0-9_.:-]`` (anything else names nothing)."""
    return bool(_ID.match(value))


def check_content_type(value: Any) -> str:
    if not isinstance(value, str) or not _MIME.match(value.strip()):
        raise _bad("content_type", "must be a media type such as text/csv or application/octet-stream")
    if len(value.strip()) > MAX_CONTENT_TYPE:
        raise _bad("content_type", f"is longer than {MAX_CONTENT_TYPE} characters")
    return value.strip().lower() if ";" not in value else value.strip()


def _listish(value: Any, field: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except (ValueError, RecursionError) as e:
                raise _bad(field, "is not valid JSON (or is nested too deeply)") from e
            if not isinstance(parsed, list):
                raise _bad(field, "must be a JSON list")
            return parsed
        return [t.strip() for t in text.split(",") if t.strip()]
    raise _bad(field, "must be a list of strings")


def check_tags(value: Any) -> list[str]:
    tags: list[str] = []
    for raw in _listish(value, "tags"):
        if not isinstance(raw, str):
            raise _bad("tags", "must be strings")
        tag = check_text(unicodedata.normalize("NFC", raw.strip()), "tags", MAX_TAG)
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise _bad("tags", f"at most {MAX_TAGS} tags")
    return tags


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def check_metadata(value: Any) -> dict[str, Any]:
    """A JSON object of at most ``MAX_METADATA_BYTES``: standard JSON only (no NaN or
    Infinity, no unpaired surrogates), so every control database and client can read it back."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value, parse_constant=_no_constant)
        except (ValueError, RecursionError) as e:
            raise _bad("metadata", "is not valid JSON (or is nested too deeply)") from e
    if not isinstance(value, dict):
        raise _bad("metadata", "must be a JSON object")
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
        size = len(text.encode("utf-8"))
    except (ValueError, RecursionError) as e:  # 1e999 parses as inf; UnicodeEncodeError is a ValueError
        raise _bad("metadata", "must be standard JSON: finite numbers, valid Unicode, not nested too deeply") from e
    if size > MAX_METADATA_BYTES:
        raise _bad("metadata", f"is larger than {MAX_METADATA_BYTES} bytes")
    return value


def check_visibility(value: Any) -> tuple[str, list[str]]:
    """``private``, ``swarm``, or a list of agent token ids: ``(visibility, visible_to)``."""
    if value is None or value == "":
        return "private", []
    if isinstance(value, str) and value.strip().lower() in ("private", "swarm"):
        return value.strip().lower(), []
    ids = _listish(value, "visibility")
    if not ids or not all(isinstance(i, str) and _ID.match(i) for i in ids):
        raise _bad("visibility", "must be 'private', 'swarm' or a non-empty list of agent token ids")
    ids = list(dict.fromkeys(ids))
    if len(ids) > MAX_VISIBLE_TO:
        raise _bad("visibility", f"at most {MAX_VISIBLE_TO} agent ids")
    return "agents", ids


def check_expires_in(value: Any, default_s: int) -> int:
    """Seconds from now: an integer or ``30m``, ``12h``, ``7d``; between 1 s and a year."""
    if value is None or value == "":
        return default_s
    if isinstance(value, bool):
        raise _bad("expires_in", "must be seconds or a duration such as '12h' or '7d'")
    if isinstance(value, int):
        seconds = value
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise _bad("expires_in", "must be seconds or a duration such as '12h' or '7d'")
        seconds = int(m.group(1)) * _UNITS[m.group(2).lower()]
    if not 1 <= seconds <= MAX_TTL_S:
        raise _bad("expires_in", f"must be between 1 second and {MAX_TTL_S} seconds")
    return seconds


def content_disposition(name: str) -> str:
    """``attachment`` with an ASCII fallback and the exact name in RFC 5987 form.

    The name never becomes a path; the header still drops separators so a browser's
    "save as" does not either.
    """
    base = name.replace("/", "_").replace("\\", "_")
    ascii_name = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii")
    ascii_name = re.sub(r'[^A-Za-z0-9 ._()+-]', "_", ascii_name).strip(" .") or "artifact"
    return f"attachment; filename=\"{ascii_name[:150]}\"; filename*=UTF-8''{quote(base, safe='')}"


def _one(fields: dict[str, list[str]], name: str) -> str | None:
    values = fields.get(name)
    if not values:
        return None
    if len(values) > 1 and name != "tags":
        raise BadRequest(f"form field {name!r} was given more than once", rule="invalid_artifact_field",
                         details={"field": name})
    return values[-1]


@dataclasses.dataclass(frozen=True)
class Draft:
    """A validated upload's metadata, before the object is published."""

    name: str
    content_type: str
    tags: list[str]
    metadata: dict[str, Any]
    visibility: str
    visible_to: list[str]
    expires_in: int


def draft_from_form(form: Form, default_ttl_s: int) -> Draft:
    """The artifact's metadata from the upload's form fields, validated (400 names the field)."""
    f = form.fields
    unknown = set(f) - {"name", "content_type", "tags", "metadata", "visibility", "expires_in"}
    if unknown:
        raise BadRequest(f"unknown form fields: {', '.join(sorted(unknown))}", rule="invalid_artifact_field",
                         details={"field": sorted(unknown)[0]})
    tag_values = f.get("tags") or []
    visibility, visible_to = check_visibility(_one(f, "visibility"))
    return Draft(
        name=check_name(_one(f, "name") or form.filename or "artifact"),
        content_type=check_content_type(_one(f, "content_type") or form.part_content_type or "application/octet-stream"),
        tags=check_tags(tag_values[0] if len(tag_values) == 1 else tag_values),
        metadata=check_metadata(_one(f, "metadata")), visibility=visibility, visible_to=visible_to,
        expires_in=check_expires_in(_one(f, "expires_in"), default_ttl_s),
    )
