"""OpenAPI descriptions drf-spectacular cannot infer: the bearer-token scheme."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """``Authorization: Bearer pr_app_…`` (an application) or ``pr_pat_…`` (a person)."""

    target_class = "api.authentication.BearerTokenAuthentication"
    name = "bearerToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An application token (pr_app_…) or a personal token (pr_pat_…).",
        }


ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "detail": {"type": "string"},
        "errors": {"type": "object", "description": "Field by field, on a 400."},
    },
    "required": ["detail"],
}
ERRORS = {
    "400": "The request is not valid (a body, a query value or a cursor).",
    "401": "No token, or a token that is unknown, expired or revoked.",
    "403": "The token's person or application may not do this.",
    "404": "No such record, or one outside the caller's configurations.",
    "409": "The record's state does not allow it now.",
    "429": "Too many requests: see Retry-After.",
}
# The rules the models enforce on single values (records/validators.py, records/complexity.py).
RULES = {
    "default_password_complexity": {"pattern": r"^[^,]*(,[^,]*){4}(,.*)?$"},
    "password_complexity": {"pattern": r"^$|^[^,]*(,[^,]*){4}(,.*)?$"},
    "port": {"minimum": 1, "maximum": 65535},
    "hostname": {"pattern": r"^\s*[0-9A-Za-z:.\-\[\]]+\s*$", "maxLength": 253},
}


def describe_errors_and_rules(result, generator, request, public):
    """Add the error answers every operation may give and the value rules the models enforce."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Error", ERROR_SCHEMA)
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            for code, description in ERRORS.items():
                responses.setdefault(
                    code,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    },
                )
    for schema in schemas.values():
        for name, prop in (schema.get("properties") or {}).items():
            if name in RULES and not prop.get("readOnly"):
                prop.update(RULES[name])
            if prop.get("format") == "time":  # served as "02:00:00": JSON Schema's time wants an offset
                del prop["format"]
                prop["pattern"] = r"^\d{2}:\d{2}(:\d{2}(\.\d+)?)?$"
    # An attempt without an error (queued, running, succeeded) has error_class "".
    if "" not in schemas.get("ErrorClassEnum", {}).get("enum", [""]):
        schemas["ErrorClassEnum"]["enum"].append("")
    return result
