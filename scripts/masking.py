"""Mask every password of a script's input in what it printed, in every encoding we can name.

A script sees the new and old passwords, each additional credential's password and the stdin
line itself. Its output may carry any of them as written, JSON-escaped, base64 (standard and
URL-safe, padded or not, at any byte alignment inside a longer base64 text, so that
``Authorization: Basic base64(user:password)`` is caught), hex (lower and upper case),
URL-encoded (``quote`` and ``quote_plus``) or UTF-16 (LE and BE, as raw bytes). The output is
masked as a whole after the run, so a password split across writes is masked too.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus

from scripts.models import OUTPUT_LIMIT

MASK = b"********"
# Encoded forms shorter than this are too likely to be ordinary text; the plain form is always masked.
SHORTEST_ENCODED = 6


def _base64_cores(data: bytes) -> set[bytes]:
    """Return the base64 characters that encode ``data`` wherever it sits in a longer text (3 alignments)."""
    forms = set()
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + data)
        first = -(-8 * offset // 6)  # the first character made of data bits only
        last = 8 * (offset + len(data)) // 6  # past the last character made of data bits only
        core = encoded[first:last]
        forms |= {core, core.replace(b"+", b"-").replace(b"/", b"_")}
    return forms


def forms_of(secret: str) -> set[bytes]:
    """Return the byte strings that carry ``secret`` in a script's output."""
    raw = secret.encode()
    forms = {
        raw,
        json.dumps(secret)[1:-1].encode(),
        json.dumps(secret, ensure_ascii=False)[1:-1].encode(),
    }
    encoded = {
        base64.b64encode(raw),
        base64.urlsafe_b64encode(raw),
        base64.b64encode(raw).rstrip(b"="),
        base64.urlsafe_b64encode(raw).rstrip(b"="),
        *_base64_cores(raw),
        raw.hex().encode(),
        raw.hex().upper().encode(),
        quote(secret).encode(),
        quote(secret, safe="").encode(),
        quote_plus(secret).encode(),
        secret.encode("utf-16-le"),
        secret.encode("utf-16-be"),
    }
    return forms | {form for form in encoded if len(form) >= SHORTEST_ENCODED}


def mask(data: bytes, secrets: list[str]) -> str:
    """Return output as text with every secret masked in every form, cut at 64 KiB."""
    forms: set[bytes] = set()
    for secret in secrets:
        if secret:
            forms |= forms_of(secret)
    for form in sorted(forms, key=len, reverse=True):
        data = data.replace(form, MASK)
    cut = len(data) > OUTPUT_LIMIT
    text = data[:OUTPUT_LIMIT].decode("utf-8", "replace")
    return text + "\n[output cut at 64 KiB]" if cut else text
