"""Every form in which a secret could be stored, logged or shown: the suite's secret scans search for these."""

from __future__ import annotations

import base64
import functools
import html
import json
from urllib.parse import quote, quote_plus

SHORTEST = 8  # a shorter form would match unrelated text (hashes, ids) by chance


def named_encodings(secret: str) -> dict[str, str]:
    """Return each encoding of the secret, by name, as text that a table, a log line or a page could hold."""
    raw = secret.encode()
    forms = {
        "clear": secret,
        "base64": base64.b64encode(raw).decode(),
        "base64 without padding": base64.b64encode(raw).decode().rstrip("="),
        "urlsafe base64": base64.urlsafe_b64encode(raw).decode(),
        "urlsafe base64 without padding": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "hex": raw.hex(),
        "upper-case hex": raw.hex().upper(),
        "URL-encoded": quote(secret, safe=""),
        "URL-encoded (slashes kept)": quote(secret),
        "form-encoded": quote_plus(secret),
        "HTML-escaped": html.escape(secret),
        "JSON-escaped": json.dumps(secret)[1:-1],
        "JSON-escaped (non-ASCII kept)": json.dumps(secret, ensure_ascii=False)[1:-1],
        # database_text() decodes blobs (and django-q2's pickles) as latin-1; a script's output as UTF-8.
        "UTF-8 read as latin-1": raw.decode("latin-1"),
        "UTF-16-LE": secret.encode("utf-16-le").decode("latin-1"),
        "UTF-16-BE": secret.encode("utf-16-be").decode("latin-1"),
        "UTF-16-LE read as UTF-8": secret.encode("utf-16-le").decode("utf-8", "replace"),
        "UTF-16-BE read as UTF-8": secret.encode("utf-16-be").decode("utf-8", "replace"),
    }
    for offset in range(3):
        inner = _base64_inner(raw, offset)
        forms[f"base64 inside a larger blob (byte offset {offset})"] = inner
        forms[f"urlsafe base64 inside a larger blob (byte offset {offset})"] = inner.replace(
            "+", "-"
        ).replace("/", "_")
    forms = {name: form for name, form in forms.items() if len(form) >= SHORTEST}
    forms["clear"] = secret  # whatever its length: the scan has always looked for the secret itself
    return forms


def _base64_inner(raw: bytes, offset: int) -> str:
    """Return the base64 characters made of the secret's bits alone, when it starts `offset` bytes into a group."""
    encoded = base64.b64encode(bytes(offset) + raw).decode()
    return encoded[-(-8 * offset // 6) : 8 * (offset + len(raw)) // 6]


def encodings(secret: str) -> set[str]:
    """Return the secret in clear and in every encoding the scans look for (none shorter than SHORTEST)."""
    return set(named_encodings(secret).values())


@functools.lru_cache(maxsize=4096)
def _search_forms(secret: str) -> tuple[tuple[str, str], ...]:
    """Return the fewest (form, name) pairs to search: a form that contains another is found through it."""
    names: dict[str, str] = {}
    for name, form in named_encodings(secret).items():
        names.setdefault(form, name)
    little, big = secret.encode("utf-16-le").decode("latin-1"), secret.encode("utf-16-be").decode("latin-1")
    if little[:-1] == big[1:] and len(little) > SHORTEST:  # true when every character is below U+0100
        names.setdefault(little[:-1], "UTF-16")
    kept = [form for form in names if not any(other != form and other in form for other in names)]
    return tuple((form, names[form]) for form in kept)


def found_in(secret: str, text: str) -> str | None:
    """Return the name of the encoding in which the secret appears in the text, or None."""
    for form, name in _search_forms(secret):
        if form in text:
            return name
    return None
