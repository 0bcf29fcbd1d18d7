"""The audit log: write events (no secret in any), filter and page them, export them, purge them.

Writing is ``record_event`` (one function for everything that happens), with an ``Actor`` saying
who did it. Reading never changes a row, except ``purge_events``: the only code path that deletes
audit events (a deliberate raw DELETE, because the audit manager refuses bulk deletes). This
module imports no other pamrotate app: records hands in its scopes (``register_scope``).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from audit.actors import SYSTEM_ACTOR, Actor
from audit.models import AuditEvent, Category, Outcome

RECORD_EVENTS = {
    "created": AuditEvent.RECORD_CREATED,
    "updated": AuditEvent.RECORD_UPDATED,
    "deleted": AuditEvent.RECORD_DELETED,
}
# Which records an id of a kind ("configuration", "directory") covers, as {record_type: ids or a
# subquery}; records registers them (RecordsConfig.ready), so this module never imports it.
RECORD_SCOPES: dict[str, Callable[[int], dict]] = {}


def register_scope(kind: str, scope: Callable[[int], dict]) -> None:
    """Let the log's ``kind`` filter (``?configuration=ID``) find the events about what the id covers."""
    RECORD_SCOPES[kind] = scope


def new_event(
    event: str,
    *,
    instance=None,
    actor: Actor = SYSTEM_ACTOR,
    outcome: str = "",
    message: str = "",
    attempt_id: int | None = None,
    category: str = Category.RECORD,
) -> AuditEvent:
    """Return one audit event, not yet saved (``record_event`` saves; a batch bulk-creates).

    ``actor`` says who did it (``audit.actors.Actor``). A sign-in event names the actor's user
    agent at the end of its message (as sign-in events always did); other events keep their
    message as it is.
    """
    if not isinstance(actor, Actor):
        raise TypeError(f"an audit event's actor is an audit.actors.Actor, not {type(actor).__name__}")
    agent = f"user agent: {actor.user_agent}" if actor.user_agent and category == Category.LOGIN else ""
    return AuditEvent(
        event=event,
        category=category,
        outcome=outcome,
        actor=actor.user,
        actor_name=actor.name,
        remote_address=actor.address,
        record_type=instance._meta.model_name if instance is not None else "",
        record_id=instance.pk if instance is not None else None,
        record_uid=getattr(instance, "uid", "") or "",
        record_title=str(instance)[:200] if instance is not None else "",
        attempt_id=attempt_id,
        message="; ".join(part for part in (message, agent) if part)[:1000],
    )


def record_event(event: str, **fields) -> AuditEvent:
    """Append one audit event, saying who did it with ``actor``; the fields are ``new_event``'s."""
    instance = new_event(event, **fields)
    instance.save()
    return instance


def record_change(instance, action: str, *, actor: Actor = SYSTEM_ACTOR, changed=()) -> AuditEvent:
    """Record a create, update or delete of a record, naming changed fields, never values."""
    message = f"{instance._meta.verbose_name} {action}"
    if changed:
        message += ": " + ", ".join(sorted(changed))
    return record_event(
        RECORD_EVENTS[action], instance=instance, actor=actor, outcome=Outcome.OK, message=message
    )


# -- Reading the log: query parameters, a bad value is ignored, never a 500 ----------------------

PAGE_SIZE = 50
EXPORT_CHUNK = 2000

# Every event name pamrotate writes, for the filter's choice list (no DISTINCT over the table).
KNOWN_EVENTS = tuple(AuditEvent.LABELS.items())
OUTCOMES = dict(Outcome.choices)
RECORD_URLS = {
    "pamuser": "records:user-detail",
    "pamdirectory": "records:directory-detail",
    "pamconfiguration": "records:configuration-detail",
}

# Keeper's envelope names first, then pamrotate's own fields.
EXPORT_FIELDS = (
    "audit_event",
    "category",
    "username",
    "timestamp",
    "record_uid",
    "remote_address",
    "outcome",
    "message",
    "record_title",
    "record_type",
    "attempt_id",
)
_EXPORT_COLUMNS = (
    "event",
    "category",
    "actor_name",
    "created_at",
    "record_uid",
    "remote_address",
    "outcome",
    "message",
    "record_title",
    "record_type",
    "attempt_id",
)


def parse_id(value: str | None) -> int | None:
    """Return a record id written as digits, or None when it is not one (or past a 64-bit column)."""
    value = (value or "").strip()
    return int(value) if value.isascii() and value.isdigit() and len(value) < 19 else None


def _date(value: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat((value or "").strip()[:10])
    except ValueError:
        return None


def _text(value: str | None, limit: int = 200) -> str:
    return (value or "").replace("\x00", "").strip()[:limit]


def parse_cursor(value: str | None) -> tuple[dt.datetime, int] | None:
    """Return the (created_at, id) of a ``<ISO timestamp>,<id>`` cursor, or None if it is not one."""
    stamp, _, pk = (value or "").rpartition(",")
    pk_value = parse_id(pk)
    if not stamp or pk_value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(stamp.replace(" ", "+").replace("Z", "+00:00"))
    except ValueError:
        return None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, dt.UTC)
    try:
        # Year 1 at +23:59 is before the datetime range in UTC, which the query needs.
        moment = moment.astimezone(dt.UTC)
    except OverflowError:
        return None
    return moment, pk_value


def make_cursor(created_at: dt.datetime, pk: int) -> str:
    """Return the cursor that points at one event (UTC, microseconds, so it is exact)."""
    return f"{created_at.astimezone(dt.UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')},{pk}"


@dataclass
class AuditFilters:
    """What the audit-log page is filtered by, from its query string."""

    date_from: dt.date | None = None
    date_to: dt.date | None = None
    event: str = ""
    outcome: str = ""
    actor: str = ""
    configuration: int | None = None
    directory: int | None = None
    account: int | None = None
    q: str = ""
    active: dict = field(default_factory=dict)

    @classmethod
    def from_query(cls, query) -> AuditFilters:
        """Read the filters from request.GET, dropping any value that does not parse."""
        outcome = query.get("outcome", "")
        filters = cls(
            date_from=_date(query.get("from")),
            date_to=_date(query.get("to")),
            event=_text(query.get("event"), 64),
            outcome=outcome if outcome in OUTCOMES else "",
            actor=_text(query.get("actor"), 150),
            configuration=parse_id(query.get("configuration")),
            directory=parse_id(query.get("directory")),
            account=parse_id(query.get("account")),
            q=_text(query.get("q")),
        )
        filters.active = {
            name: value
            for name, value in (
                ("from", filters.date_from),
                ("to", filters.date_to),
                ("event", filters.event),
                ("outcome", filters.outcome),
                ("actor", filters.actor),
                ("configuration", filters.configuration),
                ("directory", filters.directory),
                ("account", filters.account),
                ("q", filters.q),
            )
            if value not in (None, "")
        }
        return filters

    def describe(self) -> str:
        """Return the filters as text for the audit event of an export."""
        return ", ".join(f"{name}={value}" for name, value in self.active.items()) or "none"

    def apply(self, events: QuerySet) -> QuerySet:
        """Return the events that match, each condition one indexed or subquery filter."""
        tz = timezone.get_current_timezone()
        if self.date_from:
            start = dt.datetime.combine(self.date_from, dt.time.min, tzinfo=tz)
            events = events.filter(created_at__gte=start)
        if self.date_to:
            end = dt.datetime.combine(self.date_to + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
            events = events.filter(created_at__lt=end)
        if self.event:
            events = events.filter(event=self.event)
        if self.outcome:
            events = events.filter(outcome=self.outcome)
        if self.actor:
            events = events.filter(actor_name__iexact=self.actor)
        if self.configuration is not None:
            events = events.filter(_about("configuration", self.configuration))
        if self.directory is not None:
            events = events.filter(_about("directory", self.directory))
        if self.account is not None:
            events = events.filter(record_type="pamuser", record_id=self.account)
        if self.q:
            events = events.filter(
                Q(message__icontains=self.q)
                | Q(record_title__icontains=self.q)
                | Q(actor_name__icontains=self.q)
                | Q(event__icontains=self.q)
            )
        return events


def _about(kind: str, pk: int) -> Q:
    """Events about a record and the records under it, as the registered scope names them."""
    scope = RECORD_SCOPES.get(kind)
    if scope is None:
        return Q(pk__in=[])
    condition = Q(pk__in=[])
    for record_type, ids in scope(pk).items():
        condition |= Q(record_type=record_type, record_id__in=ids)
    return condition


# -- The audit log page: keyset pages, no COUNT(*) ---------------------------------------------


@dataclass
class EventPage:
    """One page of events plus the cursors of the pages before and after it."""

    events: list
    older: str = ""  # cursor for ?before=
    newer: str = ""  # cursor for ?after=
    is_first: bool = True


# What a page of the log (the audit log page, the API's list) reads of each event.
EVENT_COLUMNS = (
    "id",
    "created_at",
    "event",
    "category",
    "outcome",
    "actor_name",
    "remote_address",
    "record_type",
    "record_id",
    "record_uid",
    "record_title",
    "attempt_id",
    "message",
)


def event_page(events: QuerySet, before: str | None = None, after: str | None = None, size: int = PAGE_SIZE):
    """Return one page of events, newest first, fetching size + 1 rows to know if more exist."""
    events = events.only(*EVENT_COLUMNS)
    after_cursor = parse_cursor(after) if not before else None
    before_cursor = parse_cursor(before)
    if after_cursor:
        moment, pk = after_cursor
        rows = list(
            events.filter(Q(created_at__gt=moment) | Q(created_at=moment, id__gt=pk)).order_by(
                "created_at", "id"
            )[: size + 1]
        )
        more_newer = len(rows) > size
        rows = rows[:size][::-1]
        page = EventPage(rows, is_first=not more_newer)
        page.older = make_cursor(rows[-1].created_at, rows[-1].pk) if rows else ""
        page.newer = make_cursor(rows[0].created_at, rows[0].pk) if rows and more_newer else ""
        return page
    if before_cursor:
        moment, pk = before_cursor
        events = events.filter(Q(created_at__lt=moment) | Q(created_at=moment, id__lt=pk))
    rows = list(events.order_by("-created_at", "-id")[: size + 1])
    page = EventPage(rows[:size], is_first=before_cursor is None)
    if len(rows) > size:
        last = page.events[-1]
        page.older = make_cursor(last.created_at, last.pk)
    if before_cursor and page.events:
        first = page.events[0]
        page.newer = make_cursor(first.created_at, first.pk)
    return page


# -- Export: streamed, one chunk of rows in memory at a time -----------------------------------


def _timestamp(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def export_rows(events: QuerySet) -> Iterator[dict]:
    """Yield each event as a Keeper-style envelope, reading the rows in chunks."""
    rows = events.order_by("-created_at", "-id").values_list(*_EXPORT_COLUMNS)
    for row in rows.iterator(chunk_size=EXPORT_CHUNK):
        record = dict(zip(EXPORT_FIELDS, row, strict=True))
        record["timestamp"] = _timestamp(record["timestamp"])

        record["remote_address"] = record["remote_address"] or ""
        yield record


def spreadsheet_safe(value) -> str:
    """Return a cell a spreadsheet shows as text, never runs as a formula (CSV injection)."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def csv_lines(records: Iterable[dict]) -> Iterator[str]:
    """Yield a UTF-8 CSV (with a BOM so spreadsheets detect it): a header row, then one per event."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate(0)
        return text

    writer.writerow(EXPORT_FIELDS)
    yield "\ufeff" + flush()
    for record in records:
        writer.writerow([spreadsheet_safe(record[name]) for name in EXPORT_FIELDS])
        yield flush()


def jsonl_lines(records: Iterable[dict]) -> Iterator[str]:
    """Yield one JSON object per line."""
    for record in records:
        yield json.dumps(record, ensure_ascii=False) + "\n"


EXPORT_FORMATS = {
    "csv": ("text/csv; charset=utf-8", "csv", csv_lines),
    "jsonl": ("application/x-ndjson; charset=utf-8", "jsonl", jsonl_lines),
}


# -- Retention -----------------------------------------------------------------------------------


def purge_cutoff(older_than_days: int) -> dt.datetime:
    """Return the moment before which rows are purged."""
    return timezone.now() - dt.timedelta(days=older_than_days)


def purge_events(cutoff: dt.datetime) -> int:
    """Delete the audit events older than ``cutoff`` and return how many (the caller records the purge).

    This is the only code path that deletes audit events. The audit manager refuses bulk
    deletes on purpose, so the DELETE is written out here with a parameterised date.
    """
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {table} WHERE created_at < %s",  # noqa: S608 - table name from the model
            [connection.ops.adapt_datetimefield_value(cutoff)],
        )
        return cursor.rowcount


def record_purge(
    older_than_days: int, cutoff: dt.datetime, removed: dict[str, int], *, actor: Actor = SYSTEM_ACTOR
) -> AuditEvent:
    """Record one purge, counting what each part removed (``{"audit event(s)": 3, ...}``)."""
    counted = " and ".join(f"{count} {what}" for what, count in removed.items())
    return record_event(
        AuditEvent.AUDIT_PURGED,
        actor=actor,
        outcome=Outcome.OK,
        category=Category.SECURITY,
        message=f"Purged {counted} older than {older_than_days} day(s) (before {_timestamp(cutoff)})",
    )
