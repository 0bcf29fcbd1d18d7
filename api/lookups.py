"""The rows a Vault read needs, each in one SQL statement: the token, the account, the audit row.

A ``static-cred`` read is the hot path (a deploy makes hundreds of applications read at once), and
building an ORM query costs some ten times what SQLite takes to run it. So these few statements
are written once from the models' own metadata (tables, columns, so a renamed field follows) and
their rows become ordinary model instances; everything above them (token checks, the access
policy, the audit event's fields) is the same code every other path runs.
"""

from __future__ import annotations

import datetime as dt
from functools import cache

from django.db import connection, models

from api.models import Application, Token
from audit.models import AuditEvent
from records.models import PamUser
from rotation.models import PasswordVersion


def _quoted(model, alias: str, field_names=None) -> list[str]:
    """Return ``alias."column"`` for a model's concrete fields (or the named ones), in order."""
    fields = _fields(model, field_names)
    return [f"{alias}.{connection.ops.quote_name(field.column)}" for field in fields]


def _fields(model, field_names=None) -> list[models.Field]:
    """Return the concrete fields (those named, by name or attname), in the model's order (as from_db wants)."""
    fields = model._meta.concrete_fields
    if field_names is None:
        return list(fields)
    return [field for field in fields if field.name in field_names or field.attname in field_names]


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _column(model, name: str) -> str:
    """Return a field's quoted column name (``application`` gives ``"application_id"``)."""
    return connection.ops.quote_name(model._meta.get_field(name).column)


def from_row(model, fields: list[models.Field], values) -> models.Model:
    """Return a model instance from a raw row of ``fields`` (SQLite's naive datetimes are UTC)."""
    converted = [
        value.replace(tzinfo=dt.UTC)
        if isinstance(value, dt.datetime) and value.tzinfo is None and isinstance(field, models.DateTimeField)
        else value
        for field, value in zip(fields, values, strict=True)
    ]
    return model.from_db(connection.alias, [field.attname for field in fields], converted)


@cache
def _token_query(vendor: str) -> tuple[str, list, list]:
    """Return the token lookup (token, its application, the application's configurations) and its fields."""
    links = Application.configurations.through
    sql = (
        f"SELECT {', '.join(_quoted(Token, 't') + _quoted(Application, 'a'))}, "  # noqa: S608 - names from metadata
        f"l.{_column(links, 'pamconfiguration')} "
        f"FROM {_table(Token)} t "
        f"LEFT JOIN {_table(Application)} a ON a.{_column(Application, 'id')} = t.{_column(Token, 'application')} "
        f"LEFT JOIN {_table(links)} l ON l.{_column(links, 'application')} = a.{_column(Application, 'id')} "
        f"WHERE t.{_column(Token, 'digest')} = %s"
    )
    return sql, _fields(Token), _fields(Application)


def token_by_digest(wanted: str) -> Token | None:
    """Return the token with this digest, its application and the application's configuration ids loaded.

    One statement (a row per configuration of the application): reading ``token.application`` and
    ``application.configuration_ids`` afterwards costs no query.
    """
    sql, token_fields, application_fields = _token_query(connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute(sql, [wanted])
        rows = cursor.fetchall()
    if not rows:
        return None
    first, count = rows[0], len(token_fields)
    token = from_row(Token, token_fields, first[:count])
    if token.application_id is not None:
        application = from_row(Application, application_fields, first[count:-1])
        application.__dict__["configuration_ids"] = frozenset(row[-1] for row in rows if row[-1] is not None)
        token._state.fields_cache["application"] = application
    return token


@cache
def _role_query(vendor: str, field_names: tuple[str, ...]) -> tuple[str, list]:
    """Return the account lookup by uid or title with its previous password's ciphertext, and its fields."""
    version = PasswordVersion
    sql = (
        f"SELECT {', '.join(_quoted(PamUser, 'u', field_names))}, "  # noqa: S608 - names from metadata
        f"(SELECT v.{_column(version, 'password_encrypted')} FROM {_table(version)} v "
        f"WHERE v.{_column(version, 'user')} = u.{_column(PamUser, 'id')} "
        f"ORDER BY v.{_column(version, 'replaced_at')} DESC, v.{_column(version, 'id')} DESC LIMIT 1) "
        f"FROM {_table(PamUser)} u "
        f"WHERE u.{_column(PamUser, 'uid')} = %s OR u.{_column(PamUser, 'title')} = %s LIMIT 2"
    )
    return sql, _fields(PamUser, field_names)


def account_by_role_name(name: str, field_names: tuple[str, ...] | None = None) -> tuple[PamUser, str] | None:
    """Return the account a Vault role name means (its uid first, else its title), with only
    ``field_names`` loaded if given, and its previous password's ciphertext ("" when it has none);
    None when nothing matches.
    """
    names = ("id", "uid", *field_names) if field_names else tuple(f.attname for f in _fields(PamUser))
    sql, fields = _role_query(connection.vendor, names)
    with connection.cursor() as cursor:
        cursor.execute(sql, [name, name])
        rows = cursor.fetchall()
    if not rows:
        return None
    uid = fields.index(PamUser._meta.get_field("uid"))
    row = next((row for row in rows if row[uid] == name), rows[0])  # a uid match wins over a title
    return from_row(PamUser, fields, row[:-1]), row[-1] or ""


@cache
def _insert_query(vendor: str) -> tuple[str, list]:
    fields = [field for field in AuditEvent._meta.concrete_fields if not field.primary_key]
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {_table(AuditEvent)} ({columns}) VALUES ({placeholders})"  # noqa: S608 - as above
    return sql, fields


def insert_event(event: AuditEvent) -> None:
    """Insert a new audit event in one statement, committed before this returns (autocommit).

    The row is what ``event.save()`` writes (each field's own pre-save and database preparation);
    only Django's query compiler is skipped. The instance's id is not read back.
    """
    if event.pk is not None:
        raise PermissionError("audit events cannot be changed")
    sql, fields = _insert_query(connection.vendor)
    values = [field.get_db_prep_save(field.pre_save(event, True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
