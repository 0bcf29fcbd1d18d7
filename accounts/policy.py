"""The one access policy: may this actor do this action to this target?

Every entry point asks ``can`` (or ``require``): pages, templates (the ``can`` filter), the REST
API (``api.permissions.Policy``), the Vault paths, the Django admin and the commands. A decision
comes from three things only:

1. the actor's role on the target's configuration: the role groups (Viewers, Operators,
   Administrators) count on every configuration, a grant (``accounts.models.Grant``) on the
   configurations it names; a superuser is an Administrator everywhere; an application reads
   and rotates the accounts of its own configurations and nothing else;
2. the action's rule (``RULES``): the lowest role it needs, whether it needs a session verified
   with a second factor, whether it needs that role on every configuration;
3. the session's state: a session that owes its second factor may do nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import Http404, HttpRequest

from accounts import mfa


class Role(IntEnum):
    """The roles, in order: each may do what the one before it may."""

    NONE = 0
    VIEWER = 1
    OPERATOR = 2
    ADMINISTRATOR = 3


ROLE_GROUPS = {"Viewers": Role.VIEWER, "Operators": Role.OPERATOR, "Administrators": Role.ADMINISTRATOR}


class Action(models.TextChoices):
    VIEW = "view", "view records"
    VIEW_ATTEMPTS = "view_attempts", "view rotation attempts"
    VIEW_AUDIT = "view_audit", "view the audit log"
    CREATE = "create", "create records"
    EDIT = "edit", "edit records"
    DELETE = "delete", "delete records"
    CONFIGURE_ROTATION = "configure_rotation", "configure rotation settings"
    ROTATE = "rotate", "rotate credentials"
    TEST_CONNECTION = "test_connection", "test a directory connection"
    REVEAL_CURRENT = "reveal_current", "reveal the current password"
    REVEAL_PREVIOUS = "reveal_previous", "reveal an earlier password"
    READ_API = "read_api", "read a password by the API or the Vault path"
    DISCOVER = "discover", "discover and adopt accounts"
    MANAGE_SCRIPTS = "manage_scripts", "manage post-rotation scripts"
    RERUN_SCRIPTS = "rerun_scripts", "run post-rotation scripts again"
    IMPORT = "import", "import records"
    EXPORT_SECRETS = "export_secrets", "export records with their passwords"
    MANAGE_PEOPLE = "manage_people", "manage people and their roles"
    MANAGE_APPLICATIONS = "manage_applications", "manage API applications and their tokens"
    MANAGE_OWN_TOKENS = "manage_own_tokens", "manage one's own API tokens"
    APPROVE = "approve", "approve access requests"
    ADMIN_SITE = "admin_site", "use the Django admin"
    MANAGE_ALERTS = "manage_alerts", "manage alert webhooks and the SIEM stream"
    CHECK_OUT = "check_out", "check accounts out and in"
    REQUEST_ACCESS = "request_access", "request access to an account that needs approval"
    FORCE_CHECK_IN = "force_check_in", "check in an account someone else holds"
    BREAK_GLASS = "break_glass", "take a password at once without approval (break-glass)"


@dataclass(frozen=True)
class Rule:
    """What an action needs: a role, a verified session, and that role on every configuration or not."""

    role: Role
    mfa: bool = True
    everywhere: bool = False
    superuser: bool = False


RULES: dict[str, Rule] = {
    Action.VIEW: Rule(Role.VIEWER, mfa=False),
    Action.VIEW_ATTEMPTS: Rule(Role.VIEWER, mfa=False),
    Action.VIEW_AUDIT: Rule(Role.VIEWER, mfa=False),
    Action.CREATE: Rule(Role.ADMINISTRATOR),
    Action.EDIT: Rule(Role.ADMINISTRATOR),
    Action.DELETE: Rule(Role.ADMINISTRATOR),
    Action.CONFIGURE_ROTATION: Rule(Role.ADMINISTRATOR),
    Action.ROTATE: Rule(Role.OPERATOR),
    Action.TEST_CONNECTION: Rule(Role.OPERATOR),
    Action.REVEAL_CURRENT: Rule(Role.OPERATOR),
    Action.REVEAL_PREVIOUS: Rule(Role.ADMINISTRATOR),
    Action.READ_API: Rule(Role.OPERATOR),
    Action.DISCOVER: Rule(Role.ADMINISTRATOR),
    Action.MANAGE_SCRIPTS: Rule(Role.ADMINISTRATOR),
    Action.RERUN_SCRIPTS: Rule(Role.OPERATOR),
    Action.IMPORT: Rule(Role.ADMINISTRATOR, everywhere=True),
    Action.EXPORT_SECRETS: Rule(Role.ADMINISTRATOR, everywhere=True),
    Action.MANAGE_PEOPLE: Rule(Role.ADMINISTRATOR, everywhere=True),
    Action.MANAGE_APPLICATIONS: Rule(Role.ADMINISTRATOR, everywhere=True),
    Action.MANAGE_OWN_TOKENS: Rule(Role.VIEWER),
    Action.APPROVE: Rule(Role.ADMINISTRATOR),
    Action.MANAGE_ALERTS: Rule(Role.ADMINISTRATOR, everywhere=True),
    Action.ADMIN_SITE: Rule(Role.ADMINISTRATOR, everywhere=True, superuser=True),
    Action.CHECK_OUT: Rule(Role.OPERATOR),
    Action.REQUEST_ACCESS: Rule(Role.OPERATOR),
    Action.FORCE_CHECK_IN: Rule(Role.ADMINISTRATOR),
    Action.BREAK_GLASS: Rule(Role.ADMINISTRATOR),
}
# What an application's token may do, on the accounts of its own configurations. Vault readers
# read the previous password with the current one (static-cred's last_password).
APPLICATION_ACTIONS = frozenset(
    {Action.READ_API, Action.REVEAL_PREVIOUS, Action.ROTATE, Action.VIEW_ATTEMPTS, Action.CHECK_OUT}
)
# Conditions a higher app adds to a person's action on one record, as ``check(user, target) -> reason``
# (access: "this configuration requires approval", "checked out by someone else"); "" lets it pass.
CONDITIONS: dict[str, list] = {}


def register_condition(action: str, check) -> None:
    """Make ``check(user, target)`` a further condition of ``action`` for people (applications have none)."""
    if check not in CONDITIONS.setdefault(action, []):
        CONDITIONS[action].append(check)


APPLICATION_REFUSED = "An application may only read credentials and request rotations of its accounts."
ALL = None  # configurations_for's answer for "every configuration"


@dataclass
class Principal:
    """Who asks: a person (signed in by session or personal token), an application, or the system (CLI)."""

    user: object = None
    application: object = None
    verified: bool = False
    pending: bool = False
    system: bool = False
    _roles: tuple | None = field(default=None, repr=False)

    def __str__(self) -> str:
        if self.system:
            return "system"
        if self.application is not None:
            return self.application.actor_name
        return self.user.get_username() if self.user is not None else "anonymous"

    @property
    def is_person(self) -> bool:
        return self.user is not None and getattr(self.user, "is_authenticated", False)

    def roles(self) -> tuple[Role, dict[int, Role]]:
        """Return the role on every configuration and the roles granted on single configurations."""
        if self._roles is None:
            if not (self.is_person and self.user.is_active):
                self._roles = (Role.NONE, {})
            else:  # kept on the user object too: one request asks through several Principals
                if getattr(self.user, "_policy_roles", None) is None:
                    self.user._policy_roles = _roles_of(self.user)
                self._roles = self.user._policy_roles
        return self._roles

    def role_on(self, configuration_id) -> Role:
        """Return the role on one configuration; ``EVERYWHERE`` asks for the role on all of them."""
        everywhere, scoped = self.roles()
        if configuration_id is EVERYWHERE:
            return everywhere
        if configuration_id is ANYWHERE:
            return max([everywhere, *scoped.values()])
        return max(everywhere, scoped.get(configuration_id, Role.NONE))


EVERYWHERE = object()  # a target that needs a role on every configuration (a new configuration)
ANYWHERE = object()  # no target: a role on at least one configuration (a list, a "New" button)


def _roles_of(user) -> tuple[Role, dict[int, Role]]:
    """Return a person's role on every configuration (groups, superuser) and their scoped grants."""
    if user.is_superuser:
        return Role.ADMINISTRATOR, {}
    from accounts.models import Grant

    names = user.groups.values_list("name", flat=True)
    everywhere = max([ROLE_GROUPS.get(name, Role.NONE) for name in names], default=Role.NONE)
    scoped: dict[int, Role] = {}
    for role, configuration_id in Grant.pairs_for(user):
        if configuration_id is None:
            everywhere = max(everywhere, Role(role))
        else:
            scoped[configuration_id] = max(scoped.get(configuration_id, Role.NONE), Role(role))
    return everywhere, scoped


SYSTEM = Principal(system=True, verified=True)


def actor_of(who) -> Principal:
    """Return the Principal for a request (Django's or DRF's), a user, or a Principal; cached on a request."""
    if isinstance(who, Principal):
        return who
    if who is None:
        return Principal()
    if getattr(who, "kind", None) == "system":  # audit.actors.Actor.system(): a command
        return SYSTEM
    # A Vault /v1/ request has no session (api.vault_http answers it ahead of SessionMiddleware).
    if isinstance(who, HttpRequest) or hasattr(who, "session") or hasattr(who, "_request"):
        cached = getattr(who, "_policy_actor", None)
        if cached is None:
            cached = _actor_of_request(who)
            try:
                who._policy_actor = cached
            except AttributeError:
                pass
        return cached
    # A bare user (a command acting for someone): no session, so no second factor to owe.
    return Principal(user=who, verified=True)


def _actor_of_request(request) -> Principal:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return Principal()
    application = getattr(user, "application", None)
    if application is not None:
        return Principal(application=application, verified=True)
    if getattr(request, "auth", None) is not None:
        return Principal(user=user, verified=True)  # a personal token: only a verified session makes one
    django_request = getattr(request, "_request", request)
    pending = hasattr(django_request, "session") and pending_step(django_request) is not None
    return Principal(
        user=user, verified=not pending and mfa.session_is_verified(django_request), pending=pending
    )


def must_enrol(user) -> bool:
    """Return whether PAMROTATE_REQUIRE_MFA makes this user enrol: Operators, Administrators, superusers."""
    return settings.REQUIRE_MFA and highest_role(user) >= Role.OPERATOR


def pending_step(request) -> str | None:
    """Return the view a signed-in person must go to first (verify or enrol), or None."""
    user = request.user
    if getattr(user, "is_verified", None) and user.is_verified():
        return None
    enrolled = request.session.get(mfa.ENROLLED_SESSION_KEY)
    if enrolled is None:
        enrolled = request.session[mfa.ENROLLED_SESSION_KEY] = mfa.is_enrolled(user)
    if enrolled:
        return "accounts:mfa-verify"
    if must_enrol(user):
        return "accounts:mfa-enrol"
    return None


def _configuration_model():
    """Return the model grants scope to (records' configuration), read from Grant's own relation."""
    from accounts.models import Grant

    return Grant._meta.get_field("configurations").related_model


def configuration_of(target):
    """Return the configuration id a target belongs to, EVERYWHERE, or ANYWHERE for no target."""
    configuration = _configuration_model()
    if target is None:
        return ANYWHERE
    if target is configuration:
        return EVERYWHERE
    if isinstance(target, type):
        return ANYWHERE
    if isinstance(target, configuration):
        return target.pk
    if getattr(target, "configuration_id", None) is not None:
        return target.configuration_id
    for name in ("user", "owner"):
        related = getattr(target, name, None)
        if related is not None and related is not target:
            return configuration_of(related)
    return ANYWHERE


def decide(who, action: str, target=None) -> str:
    """Return "" when the actor may do the action to the target, else the reason it may not."""
    actor = actor_of(who)
    rule = RULES[action]
    if actor.system:
        return ""
    if actor.application is not None:
        return _decide_application(actor, action, target)
    if not actor.is_person:
        return "Sign in first."
    if actor.pending:
        return "Finish signing in with your second factor first."
    where = EVERYWHERE if rule.everywhere else configuration_of(target)
    if rule.superuser and not actor.user.is_superuser:
        return f"You may not {RULES_LABELS[action]}: it is for superusers."
    if actor.role_on(where) < rule.role:
        scope = "on every configuration" if where is EVERYWHERE else "here"
        return f"You may not {RULES_LABELS[action]}: it needs the {rule.role.name.title()} role {scope}."
    if rule.mfa and not actor.verified:
        return "This needs a session verified with your second factor."
    for check in CONDITIONS.get(action, ()) if isinstance(target, models.Model) else ():
        reason = check(actor.user, target)
        if reason:
            return reason
    return ""


def _decide_application(actor: Principal, action: str, target) -> str:
    if action not in APPLICATION_ACTIONS:
        return APPLICATION_REFUSED
    where = configuration_of(target)
    if where is ANYWHERE or where is EVERYWHERE:
        return ""  # an application's lists are filtered to its configurations (configurations_for)
    if where not in actor.application.configuration_ids:
        return APPLICATION_REFUSED
    return ""


RULES_LABELS = {action.value: action.label for action in Action}


def can(who, action: str, target=None) -> bool:
    """Return whether the actor (a request, a user or a Principal) may do the action to the target."""
    return decide(who, action, target) == ""


def require(who, action: str, target=None) -> None:
    """Raise PermissionDenied (a 403 in pages and the API) unless the actor may do the action."""
    reason = decide(who, action, target)
    if reason:
        raise PermissionDenied(reason)


def configurations_for(who, action: str = Action.VIEW):
    """Return the ids of the configurations the actor may do the action on, or ALL."""
    actor = actor_of(who)
    if actor.system:
        return ALL
    if actor.application is not None:
        if action not in APPLICATION_ACTIONS:
            return set()
        return set(actor.application.configuration_ids)
    if not actor.is_person:
        return set()
    rule = RULES[action]
    if actor.pending or (rule.mfa and not actor.verified):
        return set()
    everywhere, scoped = actor.roles()
    if everywhere >= rule.role:
        return ALL
    return {pk for pk, role in scoped.items() if role >= rule.role}


def scope(who, queryset, path: str = "configuration", action: str = Action.VIEW):
    """Return the queryset narrowed to the records the actor may do the action on (``path`` leads to the configuration)."""
    allowed = configurations_for(who, action)
    if allowed is ALL:
        return queryset
    lookup = "pk__in" if path in ("", "pk") else f"{path}_id__in" if "__" not in path else f"{path}__in"
    return queryset.filter(**{lookup: allowed})


def highest_role(user) -> Role:
    """Return a person's highest role on any configuration (who must enrol a second factor)."""
    return Principal(user=user).role_on(ANYWHERE)


def sees(who, target) -> bool:
    """Return whether a target is within what the actor may see at all (else it is answered as missing)."""
    allowed = configurations_for(who, Action.VIEW_ATTEMPTS if _is_application(who) else Action.VIEW)
    if allowed is ALL:
        return True
    where = configuration_of(target)
    return where is not ANYWHERE and where is not EVERYWHERE and where in allowed


def _is_application(who) -> bool:
    return actor_of(who).application is not None


def get_object(who, queryset, action: str, **lookup):
    """Return the one object for an action: 404 when missing or out of the actor's sight, 403 when not allowed.

    A record outside the actor's configurations is answered exactly as one that does not exist, so
    that names outside a scope cannot be probed: 404 for a person, and for an application 403
    (Vault answers "permission denied" before it looks whether a path exists).
    """
    require(who, action)  # no role for it anywhere: refused before anything is looked up
    found = queryset.filter(**lookup).first()
    if found is None or not sees(who, found):
        if _is_application(who):
            raise PermissionDenied(APPLICATION_REFUSED)
        raise Http404("No such record.")
    require(who, action, found)
    return found


# Django permission names that templates and older code still say, and the action each one means.
PERMISSION_ACTIONS = {
    "records.view_pamconfiguration": (Action.VIEW, None),
    "records.view_pamdirectory": (Action.VIEW, None),
    "records.view_pamuser": (Action.VIEW, None),
    "records.add_pamconfiguration": (Action.CREATE, "records.PamConfiguration"),
    "records.add_pamdirectory": (Action.CREATE, None),
    "records.add_pamuser": (Action.CREATE, None),
    "records.change_pamconfiguration": (Action.EDIT, None),
    "records.change_pamdirectory": (Action.EDIT, None),
    "records.change_pamuser": (Action.EDIT, None),
    "records.delete_pamconfiguration": (Action.DELETE, None),
    "records.delete_pamdirectory": (Action.DELETE, None),
    "records.delete_pamuser": (Action.DELETE, None),
    "records.configure_rotation": (Action.CONFIGURE_ROTATION, None),
    "records.rotate_credentials": (Action.ROTATE, None),
    "records.reveal_password": (Action.REVEAL_CURRENT, None),
    "rotation.view_rotationattempt": (Action.VIEW_ATTEMPTS, None),
    "audit.view_auditevent": (Action.VIEW_AUDIT, None),
    "rotation.view_auditevent": (Action.VIEW_AUDIT, None),
    "api.manage_applications": (Action.MANAGE_APPLICATIONS, None),
}


def can_permission(who, permission: str, target=None) -> bool:
    """Answer a Django permission name ("records.rotate_credentials") through the policy; unknown names are refused."""
    if permission not in PERMISSION_ACTIONS:
        return False
    action, model = PERMISSION_ACTIONS[permission]
    if model is not None and target is None:
        from django.apps import apps

        target = apps.get_model(model)
    return can(who, action, target)


class PolicyPermissions:
    """Templates' ``perms``, answered by the policy: ``{% if perms.records.rotate_credentials %}``."""

    def __init__(self, request):
        self.request = request

    def __getitem__(self, app_label: str):
        return _AppPermissions(self.request, app_label)

    def __iter__(self):
        return iter(())

    def __contains__(self, permission: str) -> bool:
        return can_permission(self.request, permission) if "." in permission else False


class _AppPermissions:
    def __init__(self, request, app_label: str):
        self.request, self.app_label = request, app_label

    def __getitem__(self, codename: str) -> bool:
        return can_permission(self.request, f"{self.app_label}.{codename}")

    def __iter__(self):
        return iter(())

    def __bool__(self) -> bool:
        return True


def is_verified(who) -> bool:
    """Return whether the actor carries a second factor (a command, or a person's verified session)."""
    actor = actor_of(who)
    return bool(actor.system or (actor.is_person and actor.verified and not actor.pending))


def scope_events(who, queryset):
    """Return audit events narrowed to those about records of the actor's configurations (the audit log's scope)."""
    allowed = configurations_for(who, Action.VIEW_AUDIT)
    if allowed is ALL:
        return queryset
    from django.db.models import Q

    from audit.events import RECORD_SCOPES

    condition = Q(pk__in=[])
    for pk in sorted(allowed):
        for record_type, ids in RECORD_SCOPES["configuration"](pk).items():
            condition |= Q(record_type=record_type, record_id__in=ids)
    return queryset.filter(condition)
