"""Sign-in, sign-out, second factor, your own account, and the people page for Administrators."""

from __future__ import annotations

import math

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView, PasswordChangeView
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts import mfa, policy, roles, sessions, signin, timezones
from accounts import people as people_service
from accounts.forms import AddPersonForm, CodeForm, GrantForm, PersonForm, SignInForm, TimeZoneForm
from accounts.models import Grant, Preference, Profile, RecoveryCodeDevice, Source, TOTPDevice
from audit.actors import Actor
from audit.models import AuditEvent, Outcome

_SIGN_IN = {
    "form_class": SignInForm,
    "template_name": "registration/login.html",
    "redirect_authenticated_user": True,
}


def lockout_response(request, original_response=None, credentials=None):
    """Answer the failure that reached the limit as any failure (AXES_LOCKOUT_CALLABLE); later ones see the wait.

    The sign-in form refuses the next attempts itself, with the wait time; a request that did not
    come through it (another authenticate() caller) gets the sign-in page with the wait, status 429.
    """
    if original_response is not None:
        return original_response
    username = signin.axes_username(request, credentials)
    form = SignInForm(request, initial={"username": username})
    form.lockout_error = signin.lockout_message(
        signin.seconds_locked(request, username) or 60 * settings.SIGNIN_LOCKOUT_MINUTES
    )
    return render(request, "registration/login.html", {"form": form}, status=429)


def sign_in(request: HttpRequest) -> HttpResponse:
    """Sign in; the page offers "your directory account" only when directory sign-in is configured."""
    directory = bool(getattr(settings, "AUTH_LDAP_SERVER_URI", ""))
    return LoginView.as_view(**_SIGN_IN, extra_context={"directory_sign_in": directory})(request)


@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    logout(request)
    messages.info(request, "You are signed out.")
    return redirect(settings.LOGOUT_REDIRECT_URL)


@login_required
@require_POST
def sign_out_everywhere(request: HttpRequest) -> HttpResponse:
    user = request.user
    count = sessions.sign_out_everywhere(user)
    signin.audit(request, AuditEvent.SIGNED_OUT, user=user, note=f"signed out everywhere ({count} sessions)")
    logout(request)
    messages.info(request, "You are signed out on every device.")
    return redirect(settings.LOGOUT_REDIRECT_URL)


def _next_url(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return target
    return reverse(settings.LOGIN_REDIRECT_URL)


@login_required
def security(request: HttpRequest) -> HttpResponse:
    recovery = RecoveryCodeDevice.objects.filter(user=request.user).first()
    context = {
        "enrolled": mfa.is_enrolled(request.user),
        "recovery_left": recovery.remaining() if recovery else 0,
        "local": Profile.source_of(request.user) == Source.LOCAL,
        "verified": request.user.is_verified(),
        "must_enrol": policy.must_enrol(request.user),
        "time_zone_form": TimeZoneForm(instance=Preference.objects.filter(user=request.user).first()),
    }
    return render(request, "accounts/security.html", context)


@login_required
@require_POST
def time_zone(request: HttpRequest) -> HttpResponse:
    preference = Preference.objects.filter(user=request.user).first() or Preference(user=request.user)
    form = TimeZoneForm(request.POST, instance=preference)
    if not form.is_valid():
        messages.error(request, "Time zone not changed: " + "; ".join(form.errors.get("time_zone", [])))
        return redirect("accounts:security")
    form.save()
    timezones.remember(request, preference.time_zone)
    chosen = preference.time_zone or "your browser's time zone"
    messages.success(request, f"Times are now shown in {chosen}.")
    return redirect("accounts:security")


def _replacing_unverified(request: HttpRequest) -> bool:
    """Return whether this session would replace an enrolled device without having used it."""
    return mfa.is_enrolled(request.user) and not request.user.is_verified()


@login_required
def mfa_enrol(request: HttpRequest) -> HttpResponse:
    if _replacing_unverified(request):
        return redirect("accounts:mfa-verify")
    device = TOTPDevice.objects.filter(user=request.user, confirmed=False).last() or TOTPDevice.start(
        request.user
    )
    return _enrol_page(request, device, CodeForm())


def _enrol_page(request: HttpRequest, device: TOTPDevice, form: CodeForm, status: int = 200) -> HttpResponse:
    secret = device.secret_base32
    context = {
        "form": form,
        "qr_svg": mfa.qr_svg(device.config_url()),
        "secret": secret,
        "secret_groups": [secret[i : i + 4] for i in range(0, len(secret), 4)],
        "reenrol": mfa.is_enrolled(request.user),
        "must_enrol": policy.must_enrol(request.user),
    }
    return render(request, "accounts/mfa_enrol.html", context, status=status)


@login_required
@require_POST
def mfa_confirm(request: HttpRequest) -> HttpResponse:
    if _replacing_unverified(request):
        return redirect("accounts:mfa-verify")
    device = TOTPDevice.objects.filter(user=request.user, confirmed=False).last()
    if device is None:
        return redirect("accounts:mfa-enrol")
    form = CodeForm(request.POST)
    if not (form.is_valid() and device.verify_token(form.cleaned_data["code"])):
        signin.audit(
            request,
            AuditEvent.MFA_FAILED,
            user=request.user,
            outcome=Outcome.FAIL,
            note="enrolment code refused",
        )
        form.add_error(None, "That code is not right. Check the time on your phone and try the next code.")
        return _enrol_page(request, device, form, status=400)
    with transaction.atomic():
        TOTPDevice.objects.filter(user=request.user).exclude(pk=device.pk).delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        codes = RecoveryCodeDevice.issue(request.user)
    mfa.mark_verified(request, device)
    signin.audit(request, AuditEvent.MFA_ENROLLED, user=request.user, note="authenticator app enrolled")
    return render(
        request,
        "accounts/recovery_codes.html",
        {"codes": codes, "next": reverse(settings.LOGIN_REDIRECT_URL)},
    )


@login_required
@require_POST
@mfa.require_verified
def recovery_codes_new(request: HttpRequest) -> HttpResponse:
    if not mfa.is_enrolled(request.user):
        return redirect("accounts:mfa-enrol")
    codes = RecoveryCodeDevice.issue(request.user)
    signin.audit(request, AuditEvent.MFA_ENROLLED, user=request.user, note="new recovery codes issued")
    return render(
        request, "accounts/recovery_codes.html", {"codes": codes, "next": reverse("accounts:security")}
    )


@login_required
def mfa_verify(request: HttpRequest) -> HttpResponse:
    if request.user.is_verified():
        return redirect(_next_url(request))
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        device = _verify_code(request, form.cleaned_data["code"])
        if device is not None:
            mfa.mark_verified(request, device)
            return redirect(_next_url(request))
        form.add_error(None, _code_refused(request.user))
    status = 400 if request.method == "POST" else 200
    return render(
        request, "accounts/mfa_verify.html", {"form": form, "next": _next_url(request)}, status=status
    )


def _code_refused(user) -> str:
    """Say a code was refused and, when wrong codes locked the second factor, how long to wait."""
    devices = [*TOTPDevice.objects.filter(user=user, confirmed=True)]
    devices += RecoveryCodeDevice.objects.filter(user=user)
    locks = [info["locked_until"] for ok, info in (d.verify_is_allowed() for d in devices) if not ok and info]
    if not locks:
        return "That code is not right: check the time on your phone and retry."
    seconds = max(1, math.ceil((max(locks) - timezone.now()).total_seconds()))
    return f"That code is not right. Wrong codes lock the second factor for a while: retry in {seconds} s."


def _verify_code(request: HttpRequest, code: str):
    """Return the device that accepts the code (6 digits: the app; else a recovery code), auditing the outcome."""
    code = code.strip().replace(" ", "")
    with transaction.atomic():
        if code.isdigit():
            # Locked so that one code cannot be accepted twice by two parallel requests.
            for device in TOTPDevice.objects.select_for_update().filter(user=request.user, confirmed=True):
                if device.verify_token(code):
                    return device
        else:
            for device in RecoveryCodeDevice.objects.filter(user=request.user):
                if device.verify_token(code):
                    left = device.remaining()
                    signin.audit(request, AuditEvent.RECOVERY_CODE_USED, user=request.user,
                                 note=f"{left} recovery codes left")  # fmt: skip
                    return device
    signin.audit(
        request, AuditEvent.MFA_FAILED, user=request.user, outcome=Outcome.FAIL, note="sign-in code refused"
    )
    return None


class LocalPasswordChangeView(PasswordChangeView):
    """Change your own password: local accounts only (a directory account's password is the directory's)."""

    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("accounts:security")

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and Profile.source_of(request.user) != Source.LOCAL:
            raise PermissionDenied("Your password is your directory's: change it there.")
        return super().dispatch(request, *args, **kwargs)

    def form_valid(self, form):
        response = super().form_valid(form)
        signin.audit(
            self.request, AuditEvent.PASSWORD_CHANGED, user=self.request.user, note="own password changed"
        )
        messages.success(self.request, "Your password is changed.")
        return response


password_change = login_required(LocalPasswordChangeView.as_view())


def _require_administrator(request: HttpRequest) -> None:
    policy.require(request, policy.Action.MANAGE_PEOPLE)


@login_required
def people(request: HttpRequest) -> HttpResponse:
    _require_administrator(request)
    users = get_user_model().objects.order_by("username").prefetch_related("groups")
    enrolled = set(TOTPDevice.objects.filter(confirmed=True).values_list("user_id", flat=True))
    directory = set(Profile.objects.filter(source=Source.DIRECTORY).values_list("user_id", flat=True))
    rows = [
        {
            "user": user,
            "role": roles.role_of(user) or "No role",
            "mfa": user.pk in enrolled,
            "source": Source.DIRECTORY.label if user.pk in directory else Source.LOCAL.label,
            "form": PersonForm(
                initial={"role": roles.role_of(user), "is_active": user.is_active}, prefix=f"p{user.pk}"
            ),
            "local": user.pk not in directory,
        }
        for user in users
    ]
    context = {
        "rows": rows,
        "require_mfa": settings.REQUIRE_MFA,
        "grants": Grant.objects.select_related("user").prefetch_related("configurations").order_by("pk"),
        "grant_form": GrantForm(),
        "add_form": AddPersonForm(),
    }
    return render(request, "accounts/people.html", context)


@login_required
@mfa.require_verified
@never_cache
def person_add(request: HttpRequest) -> HttpResponse:
    _require_administrator(request)
    form = AddPersonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        person, clear = people_service.add_person(**form.cleaned_data, actor=Actor.from_request(request))
        # Shown once, on a page that is never cached; only its hash is stored.
        return render(request, "accounts/person_added.html", {"person": person, "password": clear})
    return render(request, "accounts/person_add.html", {"form": form}, status=400 if form.is_bound else 200)


@login_required
@require_POST
@mfa.require_verified
def grant_add(request: HttpRequest) -> HttpResponse:
    _require_administrator(request)
    form = GrantForm(request.POST)
    if not form.is_valid():
        messages.error(request, "No role given: " + " ".join(m for ms in form.errors.values() for m in ms))
        return redirect("accounts:people")
    data = form.cleaned_data
    people_service.give_grant(
        person=data["person"],
        group_dn=data["group_dn"],
        role=data["role"],
        configurations=data["configurations"],
        everywhere=data["all_configurations"],
        actor=Actor.from_request(request),
    )
    messages.success(request, "Role given.")
    return redirect("accounts:people")


@login_required
@require_POST
@mfa.require_verified
def grant_remove(request: HttpRequest, pk: int) -> HttpResponse:
    _require_administrator(request)
    grant = get_object_or_404(Grant.objects.select_related("user"), pk=pk)
    people_service.take_grant(grant, actor=Actor.from_request(request))
    messages.success(request, "Role taken back.")
    return redirect("accounts:people")


@login_required
@require_POST
@mfa.require_verified
def person_change(request: HttpRequest, pk: int) -> HttpResponse:
    _require_administrator(request)
    person = get_object_or_404(get_user_model(), pk=pk)
    form = PersonForm(request.POST, prefix=f"p{person.pk}")
    if not form.is_valid():
        messages.error(request, "Choose one of the roles.")
        return redirect("accounts:people")
    changes = _apply_person_change(request, person, form.cleaned_data)
    if changes:
        signin.audit(
            request,
            AuditEvent.ROLE_CHANGED,
            user=request.user,
            note=f"{person.username}: {'; '.join(changes)}",
        )
        messages.success(request, f"{person.username}: {'; '.join(changes)}.")
    return redirect("accounts:people")


def _apply_person_change(request: HttpRequest, person, data: dict) -> list[str]:
    """Apply a role and active change to a person and return what changed, refusing to lock yourself out."""
    changes = []
    if person.pk == request.user.pk and (not data["is_active"] or data["role"] != roles.role_of(person)):
        messages.error(request, "You cannot change your own role or deactivate yourself.")
        return changes
    local = Profile.source_of(person) == Source.LOCAL
    if data["role"] != roles.role_of(person):
        if not local:
            messages.error(request, f"{person.username}'s role comes from the directory groups.")
        elif roles.set_roles(person, [data["role"]] if data["role"] else []):
            changes.append(f"role set to {data['role'] or 'no role'}")
    if data["is_active"] != person.is_active:
        person.is_active = data["is_active"]
        person.save(update_fields=["is_active"])
        changes.append("activated" if person.is_active else "deactivated")
        if not person.is_active:
            sessions.sign_out_everywhere(person)
    return changes


@login_required
@require_POST
@mfa.require_verified
def person_reset_mfa(request: HttpRequest, pk: int) -> HttpResponse:
    _require_administrator(request)
    person = get_object_or_404(get_user_model(), pk=pk)
    removed = mfa.reset(person)
    sessions.sign_out_everywhere(person)
    signin.audit(request, AuditEvent.MFA_DEVICE_RESET, user=request.user,
                 note=f"{person.username}: {removed} second-factor devices removed, signed out everywhere")  # fmt: skip
    messages.success(
        request, f"{person.username}'s second factor is reset: they enrol again at their next sign-in."
    )
    return redirect("accounts:people")
