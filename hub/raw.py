"""Raw landing of inbound bytes (principle 1: raw first), shared by every receiver.

``store_raw`` writes one immutable row into a ``raw.*`` table inside the caller's
transaction and tells whether the row is new or a repeat of an earlier delivery with the
same ``(source, dedupe_key)``. The partial unique index ``uq_<table>_dedupe`` (see
``hub.db._raw_table`` and migration 0001) only covers rows whose ``dedupe_key`` is not
NULL, so rows stored with ``dedupe_key=None`` (flagged requests) never collide and never
block a later genuine delivery that carries the same key.

No Flask here: the receiver, the CLI and the tests all use these helpers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Required, TypedDict, Unpack

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy import Table, Text, TextClause, bindparam, text
from sqlalchemy.engine import Connection

from hub import db as hub_db

# Status values of the raw tables (check constraint ck_<table>_status).
STATUS_RECEIVED = "received"  # accepted, waiting for the ingest
STATUS_FLAGGED = "flagged"  # kept for the record, never processed
STATUS_IGNORED = "ignored"  # accepted but nothing to do (e.g. Eventbrite test ping)

RAW_TABLES: dict[str, Table] = {
    "webhook_events": hub_db.webhook_events,
    "inbound_emails": hub_db.inbound_emails,
    "checkout_requests": hub_db.checkout_requests,
    "platform_pulls": hub_db.platform_pulls,
}

# Header values that are credentials of the sender (or of us) and are never stored.
# Signature headers (Stripe-Signature, X-Hub-Signature-256, X-Luma-Signature) are kept:
# they are only valid for this exact body and let the ingest (or an audit) re-verify it.
MASKED_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-luma-api-key",
        "x-auth-token",
    }
)
MASK = "***"

# Keys longer than this are replaced by their SHA-256 (a btree entry has a size limit).
MAX_DEDUPE_KEY_LENGTH = 255


@dataclass(frozen=True)
class RawStoreResult:
    id: int
    duplicate: bool


def sha256_hex(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


# PostgreSQL's bigint: a declared Content-Length beyond it is stored as this ceiling.
MAX_BODY_SIZE = 2**63 - 1


def storable_text(value: str | None) -> str | None:
    """Text from outside made storable in PostgreSQL TEXT and JSONB: NUL (which neither
    can hold) becomes U+FFFD, and so does a lone surrogate (``"\\ud800"`` in a JSON body
    decodes to one; it cannot be encoded to UTF-8). Everything else is kept as is."""
    if value is None:
        return None
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return value


_clean_text = storable_text


def storable_json(value: Any) -> Any:
    """A JSON-like value (dicts, lists, scalars) with every string, keys included, made
    storable (:func:`storable_text`); other scalars are returned unchanged."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, Mapping):
        return {storable_text(str(k)): storable_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable_json(v) for v in value]
    return value


def normalize_dedupe_key(key: str | None) -> str | None:
    """The key as stored: NUL-free, and hashed (``sha256:<hex>``) when too long."""
    if key is None:
        return None
    key = _clean_text(key.strip()) or ""
    if not key:
        return None
    if len(key) > MAX_DEDUPE_KEY_LENGTH:
        return f"sha256:{sha256_hex(key)}"
    return key


def redact_headers(
    headers: Mapping[str, Any] | Iterable[tuple[str, Any]],
) -> dict[str, str]:
    """Headers fit for the raw table: credentials masked, repeats joined with ", ".

    Authorization, Cookie and API-key headers become ``***``; signature headers are kept
    verbatim (they are bound to the body and needed to re-verify it).
    """
    items = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, str] = {}
    for name, value in items:
        name = _clean_text(str(name)) or ""
        text = MASK if name.lower() in MASKED_HEADERS else (_clean_text(str(value)) or "")
        out[name] = f"{out[name]}, {text}" if name in out and text != MASK else text
    return out


def _table(table: str | Table) -> Table:
    if isinstance(table, Table):
        return table
    name = table.split(".", 1)[1] if table.startswith("raw.") else table
    try:
        return RAW_TABLES[name]
    except KeyError:
        raise ValueError(f"unknown raw table {table!r}") from None


def _row(
    target: Table,
    *,
    source: str,
    headers: Mapping[str, Any],
    body: bytes,
    dedupe_key: str | None,
    verified: bool,
    flag: str | None,
    status: str,
    event_type: str | None = None,
    sender: str | None = None,
    subject: str | None = None,
    body_size: int | None = None,
    body_truncated: bool = False,
) -> dict[str, Any]:
    """The column values of one raw row, exactly as stored (keys in column order)."""
    values: dict[str, Any] = {
        "source": _clean_text(source),
        "dedupe_key": normalize_dedupe_key(dedupe_key),
        "headers": {storable_text(str(k)): storable_text(str(v)) for k, v in headers.items()},
        "body": bytes(body),
        "body_size": len(body) if body_size is None else min(int(body_size), MAX_BODY_SIZE),
        "body_truncated": bool(body_truncated),
        "verified": bool(verified),
        "flag": _clean_text(flag),
        "status": status,
    }
    for column, value in (("event_type", event_type), ("sender", sender), ("subject", subject)):
        if value is None:
            continue
        if column not in target.c:
            raise ValueError(f"raw.{target.name} has no column {column}")
        values[column] = _clean_text(value)
    return values


def _conflict(keyed: bool) -> str:
    # The partial unique index uq_<table>_dedupe: its columns and its predicate.
    return (
        " on conflict (source, dedupe_key) where dedupe_key is not null do nothing" if keyed else ""
    )


@lru_cache(maxsize=64)
def _statements(
    target: Table, columns: tuple[str, ...], keyed: bool
) -> tuple[TextClause, TextClause]:
    """The INSERT for one column set and the duplicate lookup, built once as ``text()``
    with typed bind parameters (SQLAlchemy does not cache the compiled form of a
    PostgreSQL ``insert().on_conflict_do_nothing()``, so building it per call recompiles
    it every time)."""
    name = f"{target.schema}.{target.name}"
    insert_sql = text(
        f"insert into {name} ({', '.join(columns)}) "
        f"values ({', '.join(':' + c for c in columns)}){_conflict(keyed)} returning id"
    ).bindparams(*(bindparam(c, type_=target.c[c].type) for c in columns))
    existing = text(
        f"select id from {name} where source = :source and dedupe_key = :dedupe_key"
    ).bindparams(bindparam("source", type_=Text()), bindparam("dedupe_key", type_=Text()))
    return insert_sql, existing


class RawFields(TypedDict, total=False):
    """What one raw row holds (the keyword arguments of the store functions)."""

    source: Required[str]
    headers: Required[Mapping[str, Any]]
    body: Required[bytes]
    dedupe_key: Required[str | None]
    verified: Required[bool]
    flag: Required[str | None]
    status: Required[str]
    event_type: str | None  # raw.webhook_events only
    sender: str | None  # raw.inbound_emails only
    subject: str | None  # raw.inbound_emails only
    body_size: int | None  # defaults to len(body); the real size when truncated
    body_truncated: bool


def store_raw(
    conn: Connection,
    table: str | Table,
    **fields: Unpack[RawFields],
) -> RawStoreResult:
    """Insert one raw row unless ``(source, dedupe_key)`` is already there.

    Runs ``INSERT ... ON CONFLICT (source, dedupe_key) WHERE dedupe_key IS NOT NULL DO
    NOTHING RETURNING id`` in the caller's transaction; on a conflict the id of the row
    already stored is returned with ``duplicate=True`` and nothing is written.
    ``headers`` are stored as given (pass them through :func:`redact_headers`).
    ``event_type`` applies to ``raw.webhook_events``; ``sender``/``subject`` to
    ``raw.inbound_emails``; passing one to a table without the column is an error.
    """
    target = _table(table)
    values = _row(target, **fields)
    key = values["dedupe_key"]
    insert_stmt, existing_stmt = _statements(target, tuple(values), key is not None)
    new_id = conn.execute(insert_stmt, values).scalar_one_or_none()
    if new_id is not None:
        return RawStoreResult(id=int(new_id), duplicate=False)
    existing = conn.execute(
        existing_stmt, {"source": values["source"], "dedupe_key": key}
    ).scalar_one()
    return RawStoreResult(id=int(existing), duplicate=True)


@lru_cache(maxsize=64)
def _committed_sql(table: str, columns: tuple[str, ...], keyed: bool) -> tuple[str, str]:
    """One statement that inserts and, on a conflict, returns the stored row's id, and
    the plain lookup for the rare race it cannot see (psycopg ``%(name)s`` parameters)."""
    insert_sql = (
        f"insert into {table} ({', '.join(columns)}) "
        f"values ({', '.join(f'%({c})s' for c in columns)}){_conflict(keyed)} returning id"
    )
    lookup = f"select id from {table} where source = %(source)s and dedupe_key = %(dedupe_key)s"
    if not keyed:
        return insert_sql, lookup
    combined = (
        f"with ins as ({insert_sql}) select id, false from ins "
        f"union all select id, true from {table} where source = %(source)s "
        "and dedupe_key = %(dedupe_key)s and not exists (select 1 from ins)"
    )
    return combined, lookup


def raw_values(table: str | Table, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of :func:`committed_statement` for one row (as :func:`store_raw`
    would store it; headers wrapped for JSONB)."""
    values = _row(_table(table), **fields)
    values["headers"] = Jsonb(values["headers"])
    return values


def committed_statement(table: str | Table, values: dict[str, Any]) -> tuple[str, dict]:
    """The one statement that inserts the row and, on a conflict, returns the stored
    row's id (``(id, duplicate)``): psycopg SQL and its parameters."""
    target = _table(table)
    keyed = values["dedupe_key"] is not None
    sql, _ = _committed_sql(f"{target.schema}.{target.name}", tuple(values), keyed)
    return sql, values


def result_of_row(
    row: Any, table: str | Table, values: Mapping[str, Any], cur: psycopg.Cursor
) -> RawStoreResult:
    """The outcome of :func:`committed_statement`. No row back means the conflicting row
    was committed by a concurrent request after the statement's snapshot (it waited on
    it, then did nothing): one plain lookup finds it."""
    key = values["dedupe_key"]
    if row is not None:
        return RawStoreResult(id=int(row[0]), duplicate=bool(row[1]) if key else False)
    target = _table(table)
    _, lookup = _committed_sql(f"{target.schema}.{target.name}", tuple(values), True)
    found = cur.execute(lookup, {"source": values["source"], "dedupe_key": key}).fetchone()
    if found is None:  # pragma: no cover - the conflicting row is committed and immutable
        raise RuntimeError("raw row vanished after a dedupe conflict")
    return RawStoreResult(id=int(found[0]), duplicate=True)


def store_raw_committed(
    conn: psycopg.Connection,
    table: str | Table,
    **fields: Unpack[RawFields],
) -> RawStoreResult:
    """:func:`store_raw` as ONE autocommit statement on a psycopg connection: the row is
    committed (or found already there) when this returns, in one round trip.

    ``conn`` must be in autocommit mode: the INSERT is then its own transaction, durable
    on return exactly like INSERT + COMMIT. On a conflict the same statement returns the
    stored row's id. Same rows, same columns, same values as :func:`store_raw`.
    """
    if not conn.autocommit:
        raise ValueError("store_raw_committed needs an autocommit connection")
    values = raw_values(table, fields)
    sql, params = committed_statement(table, values)
    with conn.cursor() as cur:
        return result_of_row(cur.execute(sql, params).fetchone(), table, values, cur)
