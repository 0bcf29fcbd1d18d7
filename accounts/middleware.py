"""Keep a signed-in person on the second-factor pages until their session is verified (the API too)."""

from __future__ import annotations

from django.http import JsonResponse
from django.shortcuts import redirect

from accounts.policy import pending_step

EXEMPT_PREFIXES = ("/static/", "/healthz")
# Machine paths answer JSON, not a redirect: a session that owes its second factor gets a 403 there.
# (A token client has no session, so request.user is anonymous here and the check does not apply.)
JSON_PREFIXES = ("/api/", "/v1/")
ALWAYS_ALLOWED = {"logout"}
STEP_VIEWS = {
    "accounts:mfa-verify": {"accounts:mfa-verify"},
    "accounts:mfa-enrol": {"accounts:mfa-enrol", "accounts:mfa-confirm"},
}


class RequireMfaMiddleware:
    """Send an enrolled but unverified session to verification, and one that must enrol to enrolment."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if not request.user.is_authenticated or request.path.startswith(EXEMPT_PREFIXES):
            return None
        step = pending_step(request)
        name = request.resolver_match.view_name if request.resolver_match else ""
        if step is None or name in ALWAYS_ALLOWED or name in STEP_VIEWS[step]:
            return None
        if request.path.startswith(JSON_PREFIXES):
            return JsonResponse(
                {"detail": "Finish signing in with your second factor before using this session."},
                status=403,
            )
        return redirect(step)
