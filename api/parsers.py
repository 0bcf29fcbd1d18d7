"""A JSON parser with a size limit: DRF reads the body itself, past Django's upload limit."""

from __future__ import annotations

import json

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError


class LimitedJSONParser(parsers.JSONParser):
    """Parse a JSON body of at most API_MAX_BODY_BYTES; anything malformed or too big is a 400."""

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.API_MAX_BODY_BYTES
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise ParseError(f"The request body is larger than {limit} bytes.")
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json.loads(body.decode(encoding), parse_constant=_refuse_constant)
        except (ValueError, UnicodeDecodeError, RecursionError, LookupError) as exc:
            raise ParseError(f"JSON parse error: {str(exc)[:200]}") from None


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")
