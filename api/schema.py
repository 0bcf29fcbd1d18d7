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
    "default_password_complexity": {"pattern": r"^[^,]*(,[^,]*){4}(,.*)?$"},  # five parts, then characters
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


# The Vault-compatible paths (api/vault_urls.py, access/urls.py): Vault's own API, answered with
# X-Vault-Token (or the same bearer token) and Vault's {"errors": [...]} shape. They are described
# here, for the docs pages; hvac, the bao CLI and Ansible test them (tests/test_vault*.py).
VAULT_PATHS = [
    (
        "get",
        "/v1/{mount}/static-cred/{name}",
        "Read an account's current password (Vault's LDAP static role).",
    ),
    ("post", "/v1/{mount}/rotate-role/{name}", "Rotate an account's password now."),
    ("get", "/v1/{mount}/library/{name}", "Read a pool (Vault's library set)."),
    ("post", "/v1/{mount}/library/{name}", "Create or change a pool: service_account_names, ttl, max_ttl."),
    (
        "post",
        "/v1/{mount}/library/{name}/check-out",
        "Check out any free account of the pool: its password and a lease.",
    ),
    ("post", "/v1/{mount}/library/{name}/check-in", "Check accounts in (rotates their passwords)."),
    ("get", "/v1/{mount}/library/{name}/status", "Which accounts of the pool are free."),
    ("post", "/v1/sys/leases/renew", "Renew a check-out's lease: lease_id, increment."),
    ("post", "/v1/sys/leases/revoke", "End a check-out by its lease: lease_id."),
    ("get", "/v1/sys/health", "Vault's health answer (no token)."),
    ("get", "/v1/sys/seal-status", "Vault's seal status: never sealed (no token)."),
    (
        "get",
        "/v1/sys/internal/ui/mounts/{path}",
        "The mount a path belongs to (Vault's KV preflight; no token).",
    ),
    ("get", "/v1/auth/token/lookup-self", "Describe the calling token."),
    ("post", "/v1/auth/token/renew-self", "Renew the calling token (a login token) up to its limit."),
    ("post", "/v1/auth/token/revoke-self", "Revoke the calling token."),
    ("post", "/v1/auth/token/create", "Issue a child token of the calling application's token."),
    (
        "post",
        "/v1/auth/approle/login",
        "Log in with an AppRole's role_id and secret_id: a token (no token needed).",
    ),
]
VAULT_ANSWER = {"type": "object", "additionalProperties": True}
VAULT_ERROR = {
    "type": "object",
    "properties": {"errors": {"type": "array", "items": {"type": "string"}}},
    "required": ["errors"],
}


def vault_paths(result, generator, request, public):
    """Describe the Vault-compatible /v1/ paths, which are not DRF views, in the schema."""
    from django.conf import settings

    paths = result.setdefault("paths", {})
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("VaultAnswer", VAULT_ANSWER)
    schemas.setdefault("VaultErrors", VAULT_ERROR)
    for method, template, summary in VAULT_PATHS:
        path = template.replace("{mount}", settings.VAULT_MOUNT)
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in ("name", "path")
            if "{" + name + "}" in path
        ]
        operation = {
            "operationId": "vault_"
            + path.strip("/").replace("/", "_").replace("{", "").replace("}", "").replace("-", "_")
            + "_"
            + method,
            "summary": summary,
            "tags": ["vault"],
            "parameters": parameters,
            "responses": {
                "200": _vault_content("Vault's answer", "VaultAnswer"),
                "204": {"description": "Done, no body."},
                **{code: _vault_content(text, "VaultErrors") for code, text in VAULT_ERRORS.items()},
            },
        }
        if method == "post":
            operation["requestBody"] = {
                "content": {"application/json": {"schema": VAULT_ANSWER}},
                "required": False,
            }
        paths.setdefault(path, {})[method] = operation
    return result


VAULT_ERRORS = {
    "400": "The request is not valid.",
    "403": "Permission denied (no token, or one without the right).",
    "404": "No such role, pool or lease.",
    "429": "Too many requests.",
}


def _vault_content(description: str, component: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{component}"}}},
    }
