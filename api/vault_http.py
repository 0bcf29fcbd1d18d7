"""Vault's HTTP rules for every /v1/ path: methods, headers, body, token, rate limit, errors.

The /v1/ paths are machine paths with their own token (never a session), so ``VaultPathMiddleware``
answers them ahead of the browser's middleware (sessions, CSRF, second factor, lock-outs, messages):
a read costs what it needs, nothing more. The security headers still apply (the middleware sits
after ClientAddress, Security and the header middleware in settings.MIDDLEWARE).
"""

from __future__ import annotations

import functools
import json
import re
import threading
import time
import uuid

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve
from rest_framework import exceptions

from api.authentication import authenticate_token
from api.throttles import TokenRateThrottle

PREFIX = "/v1/"
VAULT_URLCONF = "api.vault_urls"  # this app's /v1/ routes alone: the hot ones resolve without the site's list
WRITE_METHODS = {"POST", "PUT"}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class VaultError(Exception):
    """An answer in Vault's error shape: ``{"errors": [...]}`` with an HTTP status."""

    def __init__(self, status: int, *messages: str, headers: dict | None = None):
        super().__init__(messages[0] if messages else "")
        self.status, self.messages, self.headers = status, list(messages), headers or {}


def error_response(status: int, *messages: str, headers: dict | None = None) -> JsonResponse:
    """Return Vault's error answer."""
    response = JsonResponse({"errors": list(messages)}, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def envelope(data: dict | None = None, *, auth: dict | None = None, mount_type: str | None = None) -> dict:
    """Return Vault's response envelope around ``data`` (or an ``auth`` block)."""
    body = {
        "request_id": str(uuid.uuid4()),
        "lease_id": "",
        "renewable": False,
        "lease_duration": 0,
        "data": data,
        "wrap_info": None,
        "warnings": None,
        "auth": auth,
    }
    if mount_type is not None:
        body["mount_type"] = mount_type
    return body


def duration(value, field: str, default: int | None = None) -> int | None:
    """Return Vault's duration (``300``, ``"300"``, ``"5m"``, ``"2h"``) in whole seconds, or raise a 400."""
    if value in (None, ""):
        return default
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        seconds = value
    else:
        match = _DURATION.match(value) if isinstance(value, str) else None
        if match is None:
            raise VaultError(400, f"{field}: not a duration (use seconds or 30s, 5m, 2h, 1d)")
        seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    # One limit for both forms: a whole number of seconds past it would overflow a date (a 500).
    if seconds > 10 * 366 * 86400:
        raise VaultError(400, f"{field}: longer than ten years")
    return seconds


def body(request) -> dict:
    """Return the JSON object sent with a write (any or no Content-Type; ``null`` or nothing is ``{}``)."""
    if request.method not in WRITE_METHODS:
        return {}
    try:
        raw = request.read(settings.API_MAX_BODY_BYTES + 1)
    except OSError:
        raise VaultError(400, "failed to read the request body") from None
    if len(raw) > settings.API_MAX_BODY_BYTES:
        raise VaultError(400, f"the request body is larger than {settings.API_MAX_BODY_BYTES} bytes")
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise VaultError(400, "failed to parse JSON input") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise VaultError(400, "the request body must be a JSON object")
    return data


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def check_headers(request) -> None:
    """Apply Vault's header rules: wrapping is refused, a namespace must be the root one."""
    if request.META.get("HTTP_X_VAULT_WRAP_TTL"):
        raise VaultError(400, "response wrapping is not supported by pamrotate")
    namespace = request.META.get("HTTP_X_VAULT_NAMESPACE", "").strip().strip("/")
    if namespace and namespace != "root":
        raise VaultError(400, f"no namespace {namespace[:64]!r}: pamrotate has only the root namespace")


def presented_token(request) -> str:
    """Return the token the caller sent (X-Vault-Token, else Authorization: Bearer), or ""."""
    clear = request.META.get("HTTP_X_VAULT_TOKEN", "")
    if not clear:
        keyword, _, rest = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        clear = rest.strip() if keyword.lower() == "bearer" else ""
    return clear


def authenticate(request, role: tuple[str, tuple[str, ...]] | None = None) -> None:
    """Set request.user and request.auth from X-Vault-Token (or Bearer), or raise Vault's 403.

    ``role`` (a role name and account fields) also loads that account in the token's statement.
    """
    clear = presented_token(request)
    if not clear:
        raise VaultError(403, "permission denied")
    try:
        request.user, request.auth = authenticate_token(request, clear, role)
    except exceptions.AuthenticationFailed:
        raise VaultError(403, "permission denied", "invalid token") from None
    except exceptions.PermissionDenied as denied:
        raise VaultError(403, "permission denied", str(denied.detail)) from None


# Per worker process: {cache key: [window, calls not yet added to the shared count, shared count seen]},
# changed under the lock (a gthread worker serves several requests at once).
_counts: dict[str, list[int]] = {}
_counts_lock = threading.Lock()


def throttle(request) -> None:
    """Apply the per-token rate limit (PAMROTATE_API_RATE) in fixed windows; 429 with Retry-After past it.

    The shared count lives in the cache, as DRF's throttle keeps its history there, but a worker
    adds its calls in small batches (at most 1/20 of the limit, 50 at most) and settles on every
    call once near the limit: a read does not pay a cache write, and the limit holds within the
    other workers' unsent batches. Small limits (under 40) are counted exactly.
    """
    limiter = TokenRateThrottle()
    limit, period = limiter.num_requests, limiter.duration
    if limit is None:
        return
    key, now = limiter.get_cache_key(request, None), time.time()
    window = int(now // period)
    batch = max(1, min(limit // 20, 50))
    with _counts_lock:
        state = _counts.get(key)
        if state is None or state[0] != window:
            state = _counts[key] = [window, 0, 0]
        state[1] += 1
        unsent = state[1] if state[1] >= batch or state[2] + state[1] > limit - batch else 0
        state[1] -= unsent
    if unsent:  # the cache call outside the lock: another thread's read does not wait for it
        shared = _add_to_shared(f"{key}:{window}", unsent, period)
        with _counts_lock:
            state[2] = max(state[2], shared)
    if state[1] + state[2] > limit:
        retry = max(1, int(period - now % period))
        raise VaultError(429, "rate limit exceeded: try again later", headers={"Retry-After": str(retry)})


def _add_to_shared(key: str, calls: int, period: int) -> int:
    """Add calls to a window's shared count; return the new total."""
    cache.add(key, 0, period * 2)
    try:
        return cache.incr(key, calls)
    except ValueError:  # expired between add and incr
        cache.set(key, calls, period * 2)
        return calls


def vault_view(
    *methods: str, token: bool = True, reads_body: bool = False, account: tuple[str, ...] | None = None
):
    """Make a function a Vault path: allowed methods, header rules, token, rate limit, Vault's errors.

    The view is called as ``view(request, data, **kwargs)``: ``data`` is the JSON body of a write
    to a path that ``reads_body`` (a body sent elsewhere is ignored, as Vault ignores unknown fields).
    With ``account`` (fields), the account the path's ``name`` means is loaded in the token's own
    statement: ``request.auth.role_account`` is (account, previous password's ciphertext) or None.
    """
    allowed = (
        set(methods) | ({"PUT"} if "POST" in methods else set()) | ({"HEAD"} if "GET" in methods else set())
    )

    def decorate(view):
        @functools.wraps(view)
        def wrapper(request, **kwargs):
            try:
                if request.method not in allowed:
                    raise VaultError(405, f"unsupported operation: {request.method}")
                check_headers(request)
                if token:
                    authenticate(request, (kwargs["name"], account) if account else None)
                    throttle(request)
                return view(request, body(request) if reads_body else {}, **kwargs)
            except VaultError as exc:
                return error_response(exc.status, *exc.messages, headers=exc.headers)
            except Http404:
                return error_response(404)
            except DjangoPermissionDenied:
                return error_response(403, "permission denied")
            except DjangoValidationError as exc:
                return error_response(400, *exc.messages)

        wrapper.vault_methods = allowed
        return wrapper

    return decorate


class VaultPathMiddleware:
    """Answer /v1/ paths directly from the URL map, in Vault's shapes, skipping the browser's middleware."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path_info.startswith(PREFIX):
            return self.get_response(request)
        request.get_host()  # the ALLOWED_HOSTS check CommonMiddleware would make
        if "\x00" in request.path_info:  # no name holds one, and PostgreSQL refuses it in a query
            return error_response(404, "unsupported path")
        try:
            match = resolve(request.path_info, urlconf=VAULT_URLCONF)
        except Resolver404:
            try:  # another app's /v1/ paths (access: the library sets) are in the site's list
                match = resolve(request.path_info)
            except Resolver404:
                return error_response(404, "unsupported path")
        if not hasattr(match.func, "vault_methods"):
            return self.get_response(request)
        request.resolver_match = match
        response = match.func(request, *match.args, **match.kwargs)
        return response if isinstance(response, HttpResponse) else HttpResponse(status=500)
