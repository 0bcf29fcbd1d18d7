"""Keeper Commander's `pam rotation` verbs: list, info and edit rotation settings."""

from __future__ import annotations

import datetime as dt
import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.cli import Acting, add_as_argument
from accounts.policy import Action
from records import schedules
from records.changes import save_record, validate
from records.complexity import Complexity, ComplexityError
from records.models import PamConfiguration, PamDirectory, PamUser

EDITABLE_FIELDS = (
    "schedule_type",
    "schedule_cron",
    "schedule_tz",
    "password_complexity",
    "rotation_enabled",
)


# -- Finding records (shared with pam_action) ----------------------------------------------------


def find_user(name: str, acting: Acting | None = None) -> PamUser:
    """Return the user whose title or login is ``name`` within the actor's sight; CommandError when none or several match."""
    acting = acting or Acting.from_options({})
    users = acting.scope(PamUser.objects.select_related("configuration", "resource"))
    matches = list(users.filter(Q(title=name) | Q(login=name)).order_by("title"))
    if not matches:
        raise CommandError(f"no PAM user has the title or login {name!r}")
    if len(matches) > 1:
        listed = "\n".join(
            f"  {user.title!r} (login {user.login!r}, configuration {user.configuration.title!r})"
            for user in matches
        )
        raise CommandError(
            f"{name!r} is ambiguous; it matches {len(matches)} users:\n{listed}\nName one by its title."
        )
    return matches[0]


def select_users(
    options: dict, *, rotating: bool = False, acting: Acting | None = None
) -> tuple[str, list[PamUser]]:
    """Return a description and the users chosen by --user, --directory or --configuration.

    For a rotation of a whole directory or configuration only the accounts it covers count
    (``PamUser.objects.targets``): managed and switched-off accounts are left out, as in the UI.
    Only records the actor may see are found; others are answered as missing.
    """
    acting = acting or Acting.from_options({})
    users = acting.scope(PamUser.objects.select_related("configuration", "resource").order_by("title"))
    if options.get("user"):
        user = find_user(options["user"], acting)
        return f"user {user.title!r}", [user]
    if options.get("directory"):
        directory = acting.scope(PamDirectory.objects).filter(title=options["directory"]).first()
        if directory is None:
            raise CommandError(f"no PAM directory is titled {options['directory']!r}")
        chosen = (
            acting.scope(PamUser.objects.targets(directory=directory))
            if rotating
            else users.filter(resource=directory)
        )
        return f"directory {directory.title!r}", list(chosen)
    configuration = (
        acting.scope(PamConfiguration.objects, "pk").filter(title=options["configuration"]).first()
    )
    if configuration is None:
        raise CommandError(f"no PAM configuration is titled {options['configuration']!r}")
    if rotating:
        chosen = acting.scope(PamUser.objects.targets(configuration=configuration))
    else:
        chosen = users.filter(configuration=configuration)
    return f"configuration {configuration.title!r}", list(chosen)


def add_target_arguments(parser) -> None:
    """Add the mutually exclusive --user / --directory / --configuration options, and --as."""
    add_as_argument(parser)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--user", metavar="USER", help="A PAM user's title or login.")
    target.add_argument("--directory", metavar="TITLE", help="Every user the directory rotates.")
    target.add_argument("--configuration", metavar="TITLE", help="Every user of the configuration.")


# -- Presenting ---------------------------------------------------------------------------------


def _when(value) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M %Z") if value else ""


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def _schedule_text(user: PamUser) -> str:
    try:
        user.effective_schedule.validate()
    except schedules.ScheduleError as exc:
        return f"invalid: {exc}"
    text = user.effective_schedule.describe()
    return f"{text} (configuration default)" if user.schedule_type == schedules.USE_DEFAULT else text


def user_row(user: PamUser, verbose: bool = False) -> dict:
    """Return the list columns of one user."""
    row = {
        "title": user.title,
        "login": user.login,
        "directory": user.resource.title if user.resource else "",
        "configuration": user.configuration.title,
        "schedule": _schedule_text(user),
        "enabled": user.rotation_enabled and not user.rotation_blocked_reason,
        "last_rotated": _iso(user.last_rotated_at),
        "next_rotation": _iso(user.next_rotation_at),
        "status": user.rotation_status,
    }
    if verbose:
        row.update(
            {
                "id": user.pk,
                "distinguished_name": user.distinguished_name,
                "gateway": user.configuration.gateway,
                "complexity": _complexity_text(user),
                "blocked": user.rotation_blocked_reason,
                "error": user.rotation_error,
            }
        )
    return row


def _complexity_text(user: PamUser) -> str:
    try:
        return user.effective_complexity.to_keeper()
    except ComplexityError as exc:
        return f"invalid: {exc}"


def write_table(out, rows: list[dict]) -> None:
    """Write rows as an aligned plain-text table."""
    if not rows:
        out.write("No users.")
        return
    headers = list(rows[0])
    cells = [[_cell(row[h]) for h in headers] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    out.write(
        "  ".join(h.replace("_", " ").title().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()
    )
    out.write("  ".join("-" * w for w in widths))
    for row in cells:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str) and len(value) >= 19 and value[4:5] == "-" and value[10:11] == "T":
        return _when(dt.datetime.fromisoformat(value))
    return str(value)


class Command(BaseCommand):
    help = "List, show and edit rotation settings (Keeper Commander's `pam rotation`)."

    def add_arguments(self, parser):
        verbs = parser.add_subparsers(dest="verb", required=True, title="verbs")
        listing = verbs.add_parser("list", help="List users with rotation.")
        listing.add_argument(
            "--verbose", "-v", action="store_true", help="Add DN, gateway, complexity, errors."
        )
        listing.add_argument("--format", choices=["table", "json"], default="table")
        add_as_argument(listing)
        info = verbs.add_parser("info", help="Show one user's rotation settings and last attempts.")
        info.add_argument("name", metavar="USER", help="A PAM user's title or login.")
        info.add_argument("--format", choices=["table", "json"], default="table")
        add_as_argument(info)
        edit = verbs.add_parser(
            "edit", help="Change rotation settings of a user, directory or configuration."
        )
        add_target_arguments(edit)
        schedule = edit.add_mutually_exclusive_group()
        schedule.add_argument("--schedule-cron", metavar="EXPR", help='A cron expression, e.g. "0 2 * * 0".')
        schedule.add_argument("--on-demand", action="store_true", help="Rotate on demand only.")
        schedule.add_argument(
            "--schedule-config", action="store_true", help="Use the configuration's default schedule."
        )
        edit.add_argument("--tz", metavar="ZONE", help="IANA time zone of the schedule, e.g. Europe/Berlin.")
        edit.add_argument(
            "--complexity",
            metavar="SPEC",
            help='Keeper\'s "length,upper,lower,digits,special[,CHARS]"; "" uses the configuration\'s.',
        )
        switch = edit.add_mutually_exclusive_group()
        switch.add_argument("--enable", action="store_true", help="Turn rotation on.")
        switch.add_argument("--disable", action="store_true", help="Turn rotation off.")

    def handle(self, *args, **options):
        return getattr(self, f"handle_{options['verb']}")(options, Acting.from_options(options))

    def handle_list(self, options, acting: Acting) -> None:
        # Every account the actor sees, as the UI's list shows it: administrative credentials and switched-off ones too.
        users = acting.scope(PamUser.objects.select_related("configuration", "resource"))
        rows = [
            user_row(user, options["verbose"]) for user in users.order_by("configuration__title", "title")
        ]
        if options["format"] == "json":
            self.stdout.write(json.dumps(rows, indent=2))
        else:
            write_table(self.stdout, rows)

    def handle_info(self, options, acting: Acting) -> None:
        user = find_user(options["name"], acting)
        data = user_row(user, verbose=True)
        data["schedule_type"] = user.schedule_type
        data["schedule_cron"] = user.schedule_cron
        data["schedule_tz"] = user.schedule_tz
        data["password_complexity"] = user.password_complexity
        data["managed"] = user.managed
        data["account_state"] = user.account_state
        data["account_state_checked"] = _iso(user.account_state_at)
        data["account_state_detail"] = user.account_state_detail
        data["attempts"] = [
            {
                "id": attempt.pk,
                "state": attempt.state,
                "trigger": attempt.trigger,
                "requested_by": attempt.requested_by_name,
                "created": _iso(attempt.created_at),
                "finished": _iso(attempt.finished_at),
                "error_class": attempt.error_class,
                "error": attempt.error_message,
            }
            for attempt in user.attempts.all()[:10]
        ]
        if options["format"] == "json":
            self.stdout.write(json.dumps(data, indent=2))
            return
        attempts = data.pop("attempts")
        width = max(len(key) for key in data)
        for key, value in data.items():
            self.stdout.write(f"{key.replace('_', ' ').capitalize():<{width}}  {_cell(value)}")
        self.stdout.write("")
        self.stdout.write("Last attempts:")
        if attempts:
            write_table(self.stdout, attempts)
        else:
            self.stdout.write("  none")

    def handle_edit(self, options, acting: Acting) -> None:
        changes = self.requested_changes(options)
        description, users = select_users(options, acting=acting)
        if not users:
            raise CommandError(f"the {description} has no users")
        for user in users:
            acting.require(Action.CONFIGURE_ROTATION, user)
        errors, edited = [], []
        with transaction.atomic():
            for user in users:
                before = {name: getattr(user, name) for name in EDITABLE_FIELDS}
                for name, value in changes.items():
                    setattr(user, name, value)
                changed = [name for name in EDITABLE_FIELDS if getattr(user, name) != before[name]]
                if not changed:
                    continue
                try:
                    validate(user)
                except ValidationError as exc:
                    errors.append(
                        f"{user.title}: "
                        + "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
                    )
                    continue
                edited.append((user, changed))
            if errors:
                raise CommandError("nothing was changed:\n  " + "\n  ".join(errors))
            for user, changed in edited:
                save_record(user, created=False, changed=changed, actor=acting.actor)
        for user, changed in edited:
            self.stdout.write(
                f"{user.title}: {', '.join(changed)} changed; next rotation {_when(user.next_rotation_at) or 'none'}"
            )
        self.stdout.write(f"Edited {len(edited)} of {len(users)} users of the {description}.")

    def requested_changes(self, options) -> dict:
        """Return the field values the edit options ask for, or raise CommandError."""
        changes = {}
        if options["schedule_cron"] is not None:
            try:
                schedules.normalize_cron(options["schedule_cron"])
            except schedules.ScheduleError as exc:
                raise CommandError(f"--schedule-cron: {exc}") from None
            changes.update(schedule_type=schedules.CRON, schedule_cron=options["schedule_cron"].strip())
        elif options["on_demand"]:
            changes["schedule_type"] = schedules.ON_DEMAND
        elif options["schedule_config"]:
            changes["schedule_type"] = schedules.USE_DEFAULT
        if options["tz"] is not None:
            try:
                schedules.zone(options["tz"])
            except schedules.ScheduleError as exc:
                raise CommandError(f"--tz: {exc}") from None
            changes["schedule_tz"] = options["tz"]
        if options["complexity"] is not None:
            spec = options["complexity"].strip()
            if spec:
                try:
                    Complexity.parse(spec)
                except ComplexityError as exc:
                    raise CommandError(f"--complexity: {exc}") from None
            changes["password_complexity"] = spec
        if options["enable"]:
            changes["rotation_enabled"] = True
        elif options["disable"]:
            changes["rotation_enabled"] = False
        if not changes:
            raise CommandError(
                "nothing to change: give --schedule-cron, --on-demand, --schedule-config, --tz, "
                "--complexity, --enable or --disable"
            )
        return changes
