"""The rows a Vault read needs in two SQL statements: the token with the account, then the audit row.

A ``static-cred`` read is the hot path (a deploy makes hundreds of applications read at once), and
building an ORM query costs several times what the database takes to run it. So these few
statements are written once from the models' own metadata (tables, columns: a renamed field
follows) and their rows become ordinary model instances through Django's own converters;
everything above them (token checks, the access policy, the audit event's fields) is the code
every other path runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from django.db import DEFAULT_DB_ALIAS, connection, connections, models

from api.models import Application, Token
from audit.models import AuditEvent
from records.models import PamUser
from rotation.models import PasswordVersion


@dataclass(frozen=True)
class Columns:
    """Some concrete fields of a model, in the model's order (as ``from_db`` wants), and their converters."""

    model: type[models.Model]
    fields: tuple[models.Field, ...]
    converters: tuple[tuple[int, object, tuple], ...]  # (position, column expression, converters)

    @classmethod
    def of(cls, model, names: tuple[str, ...] | None = None) -> Columns:
        """Return the named fields (by name or attname; all when None), with the database's converters."""
        fields = tuple(
            field
            for field in model._meta.concrete_fields
            if names is None or field.name in names or field.attname in names
        )
        converters = []
        for position, field in enumerate(fields):
            column = field.get_col(model._meta.db_table)  # what the ORM's compiler converts by
            found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
            if found:
                converters.append((position, column, tuple(found)))
        return cls(model, fields, tuple(converters))

    def select(self, alias: str) -> str:
        """Return the ``alias."column", ...`` list of a SELECT."""
        return ", ".join(f"{alias}.{connection.ops.quote_name(field.column)}" for field in self.fields)

    def instance(self, values, db) -> models.Model:
        """Return the model instance a raw row of these columns describes (as the ORM would load it)."""
        values = list(values)
        for position, column, converters in self.converters:
            for convert in converters:
                values[position] = convert(values[position], column, db)
        return self.model.from_db(db.alias, [field.attname for field in self.fields], values)


def _database():
    """Return this thread's default database connection itself (the ``connection`` proxy costs a lookup a use)."""
    return connections[DEFAULT_DB_ALIAS]


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _column(model, name: str) -> str:
    """Return a field's quoted column name (``application`` gives ``"application_id"``)."""
    return connection.ops.quote_name(model._meta.get_field(name).column)


@cache
def _token_query(vendor: str, account_names: tuple[str, ...] | None) -> tuple[str, Columns, Columns, Columns]:
    """Return the token lookup (the token, its application, that one's configurations and, when
    ``account_names`` are given, the accounts a role name means with their previous passwords) and its columns.
    """
    token, application, links = Columns.of(Token), Columns.of(Application), Application.configurations.through
    account = Columns.of(PamUser, ("id", "uid", *(account_names or ())))
    select = join = ""
    if account_names:  # its two parameters come before the digest
        select = f", {account.select('u')}, {_previous('u')}"
        join = f"LEFT JOIN {_table(PamUser)} u ON ({_by_role_name('u')}) "
    sql = (
        f"SELECT {token.select('t')}, {application.select('a')}, "  # noqa: S608 - names from metadata
        f"l.{_column(links, 'pamconfiguration')}{select} "
        f"FROM {_table(Token)} t "
        f"LEFT JOIN {_table(Application)} a ON a.{_column(Application, 'id')} = t.{_column(Token, 'application')} "
        f"LEFT JOIN {_table(links)} l ON l.{_column(links, 'application')} = a.{_column(Application, 'id')} "
        f"{join}WHERE t.{_column(Token, 'digest')} = %s"
    )
    return sql, token, application, account


def _previous(alias: str) -> str:
    """Return the subquery of an account's previous password's ciphertext (the version replaced last)."""
    version = PasswordVersion
    return (
        f"(SELECT v.{_column(version, 'password_encrypted')} FROM {_table(version)} v "  # noqa: S608 - metadata
        f"WHERE v.{_column(version, 'user')} = {alias}.{_column(PamUser, 'id')} "
        f"ORDER BY v.{_column(version, 'replaced_at')} DESC, v.{_column(version, 'id')} DESC LIMIT 1)"
    )


def _by_role_name(alias: str) -> str:
    """Return the condition "the uid or the title is the role name" (two parameters)."""
    return f"{alias}.{_column(PamUser, 'uid')} = %s OR {alias}.{_column(PamUser, 'title')} = %s"


def token_by_digest(wanted: str, role: tuple[str, tuple[str, ...]] | None = None) -> Token | None:
    """Return the token with this digest, its application and the application's configuration ids loaded.

    One statement (a row per configuration of the application): reading ``token.application`` and
    ``application.configuration_ids`` afterwards costs no query. With ``role`` (a Vault role name and
    the account fields a path needs), the same statement also finds that account: the token's
    ``role_account`` is then ``account_by_role_name``'s answer.
    """
    name, names = role or ("", None)
    db = _database()
    sql, token_columns, application_columns, account_columns = _token_query(db.vendor, names)
    with db.cursor() as cursor:
        cursor.execute(sql, [name, name, wanted] if role else [wanted])
        rows = cursor.fetchall()
    if not rows:
        return None
    first, count = rows[0], len(token_columns.fields)
    linked = count + len(application_columns.fields)  # where the configuration id is, the account after it
    token = token_columns.instance(first[:count], db)
    if token.application_id is not None:
        application = application_columns.instance(first[count:linked], db)
        application.__dict__["configuration_ids"] = frozenset(
            row[linked] for row in rows if row[linked] is not None
        )
        token._state.fields_cache["application"] = application
    if role:
        token.role_account = _role_match(
            account_columns, [row[linked + 1 :] for row in rows if row[linked + 1] is not None], name, db
        )
    return token


def _role_match(account: Columns, rows: list, name: str, db) -> tuple[PamUser, str] | None:
    """Return the account of the rows (its columns, then the previous ciphertext) a role name means."""
    if not rows:
        return None
    uid = account.fields.index(PamUser._meta.get_field("uid"))
    row = next((row for row in rows if row[uid] == name), rows[0])  # a uid match wins over a title
    return account.instance(row[:-1], db), row[-1] or ""


@cache
def _role_query(vendor: str, names: tuple[str, ...] | None) -> tuple[str, Columns]:
    """Return the account lookup by uid or title, with its previous password's ciphertext, and its columns."""
    account = Columns.of(PamUser, names and ("id", "uid", *names))
    sql = (
        f"SELECT {account.select('u')}, {_previous('u')} "  # noqa: S608 - names from metadata
        f"FROM {_table(PamUser)} u WHERE {_by_role_name('u')} LIMIT 2"
    )
    return sql, account


def account_by_role_name(name: str, names: tuple[str, ...] | None = None) -> tuple[PamUser, str] | None:
    """Return the account a Vault role name means (its uid first, else its title), with only the
    fields ``names`` loaded if given, and its previous password's ciphertext ("" when it has none);
    None when nothing matches.
    """
    db = _database()
    sql, account = _role_query(db.vendor, names)
    with db.cursor() as cursor:
        cursor.execute(sql, [name, name])
        rows = cursor.fetchall()
    return _role_match(account, rows, name, db)


@cache
def _insert_query(vendor: str) -> tuple[str, tuple[models.Field, ...]]:
    fields = tuple(field for field in AuditEvent._meta.concrete_fields if not field.primary_key)
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {_table(AuditEvent)} ({columns}) VALUES ({placeholders})"  # noqa: S608 - as above
    return sql, fields


def insert_event(event: AuditEvent) -> None:
    """Insert a new audit event in one statement (outside a transaction, as a Vault read runs, it is
    committed before this returns).

    The row is what ``event.save()`` writes (each field's own pre-save and database preparation);
    only Django's query compiler is skipped. The instance's id is not read back.
    """
    event.ensure_new()
    db = _database()
    sql, fields = _insert_query(db.vendor)
    values = [field.get_db_prep_save(field.pre_save(event, True), db) for field in fields]
    with db.cursor() as cursor:
        cursor.execute(sql, values)
