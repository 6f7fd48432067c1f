"""Meetup sandbox: a local emulator of Meetup's GraphQL API (``/gql-ext``) and OAuth2 server.

It speaks the wire format in ../shared/CONTRACTS.md (Part 1, section 1):

- ``GET /oauth2/authorize`` (auto-consents, redirects with ``?code=&state=``) and
  ``POST /oauth2/access`` (form; ``authorization_code`` and ``refresh_token`` grants,
  refresh tokens rotate, OAuth-style ``invalid_grant`` / ``invalid_client`` errors);
- ``POST /gql-ext`` (alias ``/gql``) with ``Authorization: Bearer``: a small GraphQL
  executor (real parser, fragments, variables, aliases, ``@include``/``@skip``) over the
  part of the schema the hub uses: ``event(id)``, ``groupByUrlname(urlname)``, ``self``
  and the mutations ``createEvent``, ``editEvent``, ``publishEventDraft``,
  ``closeEventRsvps``, ``openEventRsvps``, ``deleteEvent``. Unknown fields come back as
  HTTP 200 ``errors[{message, locations, extensions:{classification:"ValidationError"}}]``;
  input problems as the payload's own ``errors[{code, field, message}]``.

State (events, RSVPs, members, codes and tokens, id counters) lives in a
:class:`SandboxStore`, so a restarted process with the same ``state_path`` keeps it.
Meetup sends no webhooks, so neither does this sandbox: RSVPs are polled.

Sandbox-only controls (besides the common ``/_sandbox/config|reset|health``):

- ``POST /_sandbox/simulate/registrations`` ``{"event_id", "count", "seed"}`` -> ``{"ids"}``
- ``POST /_sandbox/simulate/status`` ``{"rsvp_id", "status"}`` -> ``{"rsvp"}``
- ``POST /_sandbox/oauth/revoke`` ``{"refresh_token"}`` -> ``{"revoked": n}``

Run standalone: ``python -m integrations.sandbox.meetup --port 8801 --state meetup.sqlite``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import logging
import re
import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from flask import Flask, Response, jsonify, redirect, request

from integrations.sandbox.common import (
    PeopleFactory,
    SandboxControls,
    SandboxStore,
    install_controls,
    iso_z,
    retry_after_header,
    serve_forever,
    utcnow,
)
from integrations.sandbox.credentials import (
    MEETUP_CLIENT_ID,
    MEETUP_CLIENT_SECRET,
    MEETUP_GROUP_URLNAME,
)

log = logging.getLogger("hub.sandbox.meetup")

RSVP_STATUSES = (
    "YES",
    "NO",
    "WAITLIST",
    "ATTENDED",
    "NO_SHOW",
    "EXCUSED_ABSENCE",
    "MAYBE",
    "HAVENT",
    "YES_PENDING_PAYMENT",
)
DEFAULT_RSVP_FILTER = ("YES", "ATTENDED")  # Meetup's default: YES + ATTENDED only
SEAT_STATUSES = ("YES", "ATTENDED", "YES_PENDING_PAYMENT")  # statuses holding a seat
MAX_PAGE_SIZE = 200
TITLE_MAX = 80
DESCRIPTION_MAX = 50_000
CODE_TTL_SECONDS = 120
GROUP_TIMEZONE = "Europe/Istanbul"

EVENT_ID_START = 310_000_001
RSVP_ID_START = 683_100_001
MEMBER_ID_START = 186_300_001
ORGANIZER = {"id": "186300000", "name": "Sandbox Organizer"}


# =========================================================================== GraphQL parsing


class GraphQLError(Exception):
    """A request-level GraphQL error (syntax or validation): HTTP 200 with ``errors``."""

    def __init__(
        self,
        message: str,
        *,
        line: int | None = None,
        column: int | None = None,
        classification: str = "ValidationError",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.classification = classification

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message}
        if self.line is not None:
            out["locations"] = [{"line": self.line, "column": self.column}]
        else:
            out["locations"] = []
        out["extensions"] = {"classification": self.classification}
        return out


@dataclass
class Token:
    kind: str  # name, punct, int, float, string, var? (no: "$" is punct), eof
    value: str
    line: int
    column: int


_TOKEN_RE = re.compile(
    r"""
    (?P<ws>[\s,\ufeff]+)
  | (?P<comment>\#[^\n\r]*)
  | (?P<spread>\.\.\.)
  | (?P<block>\"\"\"(?:\\\"\"\"|[^"]|"(?!""))*\"\"\")
  | (?P<string>"(?:\\.|[^"\\\n\r])*")
  | (?P<float>-?(?:0|[1-9]\d*)(?:\.\d+(?:[eE][+-]?\d+)?|[eE][+-]?\d+))
  | (?P<int>-?(?:0|[1-9]\d*))
  | (?P<name>[_A-Za-z][_0-9A-Za-z]*)
  | (?P<punct>[!$&():=@\[\]{}|])
    """,
    re.VERBOSE,
)
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _tokenize(source: str) -> list[Token]:
    tokens: list[Token] = []
    pos, line, line_start = 0, 1, 0
    while pos < len(source):
        match = _TOKEN_RE.match(source, pos)
        if not match:
            raise GraphQLError(
                f"Invalid Syntax : offending token '{source[pos]}' at line {line} column "
                f"{pos - line_start + 1}",
                line=line,
                column=pos - line_start + 1,
                classification="InvalidSyntax",
            )
        kind = match.lastgroup or ""
        text = match.group()
        if kind not in ("ws", "comment"):
            value = text
            if kind == "string":
                value = _unescape(text[1:-1])
            elif kind == "block":
                kind, value = "string", text[3:-3].replace('\\"""', '"""')
            tokens.append(Token(kind, value, line, pos - line_start + 1))
        newlines = text.count("\n")
        if newlines:
            line += newlines
            line_start = pos + text.rfind("\n") + 1
        pos = match.end()
    tokens.append(Token("eof", "", line, pos - line_start + 1))
    return tokens


def _unescape(raw: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\" and i + 1 < len(raw):
            nxt = raw[i + 1]
            if nxt == "u":
                out.append(chr(int(raw[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


@dataclass
class Var:
    name: str


@dataclass
class EnumValue:
    name: str


@dataclass
class Field:
    name: str
    alias: str | None
    args: dict[str, Any]
    directives: list[tuple[str, dict[str, Any]]]
    selections: list[Any] | None
    line: int
    column: int

    @property
    def key(self) -> str:
        return self.alias or self.name


@dataclass
class FragmentSpread:
    name: str
    directives: list[tuple[str, dict[str, Any]]]
    line: int
    column: int


@dataclass
class InlineFragment:
    type_condition: str | None
    directives: list[tuple[str, dict[str, Any]]]
    selections: list[Any]


@dataclass
class Operation:
    kind: str  # query | mutation | subscription
    name: str | None
    variables: dict[str, Any]  # name -> default value (None when absent)
    selections: list[Any]
    line: int
    column: int


@dataclass
class Document:
    operations: list[Operation] = field(default_factory=list)
    fragments: dict[str, InlineFragment] = field(default_factory=dict)


class _Parser:
    def __init__(self, source: str) -> None:
        self.tokens = _tokenize(source)
        self.pos = 0

    # -- token helpers
    @property
    def tok(self) -> Token:
        return self.tokens[self.pos]

    def _error(self, expected: str) -> GraphQLError:
        tok = self.tok
        shown = tok.value if tok.kind != "eof" else "<EOF>"
        return GraphQLError(
            f"Invalid Syntax : offending token '{shown}' at line {tok.line} column "
            f"{tok.column} (expected {expected})",
            line=tok.line,
            column=tok.column,
            classification="InvalidSyntax",
        )

    def _peek(self, kind: str, value: str | None = None) -> bool:
        tok = self.tok
        return tok.kind == kind and (value is None or tok.value == value)

    def _skip(self, kind: str, value: str | None = None) -> bool:
        if self._peek(kind, value):
            self.pos += 1
            return True
        return False

    def _expect(self, kind: str, value: str | None = None) -> Token:
        if not self._peek(kind, value):
            raise self._error(value or kind)
        tok = self.tok
        self.pos += 1
        return tok

    # -- grammar
    def document(self) -> Document:
        doc = Document()
        while not self._peek("eof"):
            if self._peek("punct", "{"):
                tok = self.tok
                doc.operations.append(
                    Operation("query", None, {}, self.selection_set(), tok.line, tok.column)
                )
            elif self._peek("name", "fragment"):
                self.pos += 1
                name = self._expect("name").value
                self._expect("name", "on")
                type_name = self._expect("name").value
                directives = self.directives()
                doc.fragments[name] = InlineFragment(type_name, directives, self.selection_set())
            elif self.tok.kind == "name" and self.tok.value in (
                "query",
                "mutation",
                "subscription",
            ):
                tok = self.tok
                self.pos += 1
                name = self.tok.value if self._peek("name") else None
                if name:
                    self.pos += 1
                variables = self.variable_definitions()
                self.directives()
                doc.operations.append(
                    Operation(
                        tok.value, name, variables, self.selection_set(), tok.line, tok.column
                    )
                )
            else:
                raise self._error("query, mutation, fragment or {")
        if not doc.operations:
            raise GraphQLError("Invalid Syntax : no operation", classification="InvalidSyntax")
        return doc

    def variable_definitions(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if not self._skip("punct", "("):
            return out
        while not self._skip("punct", ")"):
            self._expect("punct", "$")
            name = self._expect("name").value
            self._expect("punct", ":")
            self.type_ref()
            default = self.value(const=True) if self._skip("punct", "=") else None
            self.directives()
            out[name] = default
        return out

    def type_ref(self) -> None:
        if self._skip("punct", "["):
            self.type_ref()
            self._expect("punct", "]")
        else:
            self._expect("name")
        self._skip("punct", "!")

    def directives(self) -> list[tuple[str, dict[str, Any]]]:
        out = []
        while self._skip("punct", "@"):
            name = self._expect("name").value
            out.append((name, self.arguments()))
        return out

    def arguments(self) -> dict[str, Any]:
        args: dict[str, Any] = {}
        if not self._skip("punct", "("):
            return args
        while not self._skip("punct", ")"):
            name = self._expect("name").value
            self._expect("punct", ":")
            args[name] = self.value()
        return args

    def value(self, const: bool = False) -> Any:
        tok = self.tok
        if tok.kind == "punct" and tok.value == "$" and not const:
            self.pos += 1
            return Var(self._expect("name").value)
        if tok.kind == "int":
            self.pos += 1
            return int(tok.value)
        if tok.kind == "float":
            self.pos += 1
            return float(tok.value)
        if tok.kind == "string":
            self.pos += 1
            return tok.value
        if tok.kind == "name":
            self.pos += 1
            return {"true": True, "false": False, "null": None}.get(tok.value, EnumValue(tok.value))
        if self._skip("punct", "["):
            items = []
            while not self._skip("punct", "]"):
                items.append(self.value(const))
            return items
        if self._skip("punct", "{"):
            obj = {}
            while not self._skip("punct", "}"):
                name = self._expect("name").value
                self._expect("punct", ":")
                obj[name] = self.value(const)
            return obj
        raise self._error("a value")

    def selection_set(self) -> list[Any]:
        self._expect("punct", "{")
        selections: list[Any] = []
        while not self._skip("punct", "}"):
            if self._peek("spread"):
                tok = self.tok
                self.pos += 1
                if self._peek("name") and self.tok.value != "on":
                    name = self._expect("name").value
                    selections.append(FragmentSpread(name, self.directives(), tok.line, tok.column))
                    continue
                type_condition = None
                if self._skip("name", "on"):
                    type_condition = self._expect("name").value
                directives = self.directives()
                selections.append(InlineFragment(type_condition, directives, self.selection_set()))
                continue
            tok = self._expect("name")
            alias, name = None, tok.value
            if self._skip("punct", ":"):
                alias, name = name, self._expect("name").value
            args = self.arguments()
            directives = self.directives()
            sub = self.selection_set() if self._peek("punct", "{") else None
            selections.append(Field(name, alias, args, directives, sub, tok.line, tok.column))
        if not selections:
            raise self._error("a field")
        return selections


def parse(source: str) -> Document:
    return _Parser(source).document()


# =========================================================================== schema

S = None  # a scalar or enum field
# type -> field -> (type name or None for scalars, {argument names})
SCHEMA: dict[str, dict[str, tuple[str | None, frozenset[str]]]] = {}


def _type(type_name: str, /, **fields: tuple[str | None, tuple[str, ...]] | str | None) -> None:
    table: dict[str, tuple[str | None, frozenset[str]]] = {}
    for fname, spec in fields.items():
        if isinstance(spec, tuple):
            table[fname] = (spec[0], frozenset(spec[1]))
        else:
            table[fname] = (spec, frozenset())
    SCHEMA[type_name] = table


_type(
    "Query",
    event=("Event", ("id",)),
    groupByUrlname=("Group", ("urlname",)),
    self="Member",
)
_MUTATIONS = (
    "createEvent",
    "editEvent",
    "publishEventDraft",
    "closeEventRsvps",
    "openEventRsvps",
    "deleteEvent",
)
_type("Mutation", **{m: (f"{m[0].upper()}{m[1:]}Payload", ("input",)) for m in _MUTATIONS})
for _m in _MUTATIONS:
    if _m in ("createEvent", "editEvent", "publishEventDraft"):
        _type(f"{_m[0].upper()}{_m[1:]}Payload", event="Event", errors="PayloadError")
    else:
        _type(f"{_m[0].upper()}{_m[1:]}Payload", success=S, errors="PayloadError")
_type("PayloadError", code=S, field=S, message=S)
_type(
    "Event",
    id=S,
    token=S,
    title=S,
    description=S,
    eventUrl=S,
    status=S,
    dateTime=S,
    endTime=S,
    duration=S,
    createdTime=S,
    eventType=S,
    isOnline=S,
    maxTickets=S,
    waitlistMode=S,
    rsvpsOpen=S,
    going=S,
    waiting=S,
    group="Group",
    venue="Venue",
    venues="Venue",
    rsvpSettings="RsvpSettings",
    feeSettings="FeeSettings",
    rsvps=("RsvpConnection", ("first", "after", "filter", "sort")),
)
_type("RsvpSettings", rsvpLimit=S, guestLimit=S, rsvpOpenTime=S, rsvpCloseTime=S)
_type("FeeSettings", required=S, amount=S, currency=S, accepts=S)
_type("Venue", id=S, name=S, address=S, city=S, country=S, venueType=S)
_type(
    "Group",
    id=S,
    name=S,
    urlname=S,
    timezone=S,
    events=("EventConnection", ("first", "after", "filter", "sort")),
    upcomingEvents=("EventConnection", ("first", "after", "filter", "sort")),
)
_type("EventConnection", totalCount=S, pageInfo="PageInfo", edges="EventEdge")
_type("EventEdge", cursor=S, node="Event")
_type(
    "RsvpConnection",
    totalCount=S,
    yesCount=S,
    waitlistCount=S,
    pageInfo="PageInfo",
    edges="RsvpEdge",
)
_type("RsvpEdge", cursor=S, node="Rsvp")
_type("Rsvp", id=S, status=S, guestsCount=S, updated=S, isHost=S, member="Member", event="Event")
_type("PageInfo", hasNextPage=S, hasPreviousPage=S, startCursor=S, endCursor=S)
_type("Member", id=S, name=S)

_REQUIRED_ARGS = {("Query", "event"): "id", ("Query", "groupByUrlname"): "urlname"}
_REQUIRED_ARGS.update({("Mutation", m): "input" for m in _MUTATIONS})


# =========================================================================== execution


class _Executor:
    def __init__(self, doc: Document, variables: dict[str, Any], operation_name: str | None):
        self.doc = doc
        self.op = self._pick(operation_name)
        self.variables = dict(variables or {})
        for name, default in self.op.variables.items():
            if name not in self.variables:
                self.variables[name] = self._const(default)

    def _pick(self, name: str | None) -> Operation:
        ops = self.doc.operations
        if name:
            for op in ops:
                if op.name == name:
                    return op
            raise GraphQLError(
                f"Unknown operation named '{name}'.", classification="ValidationError"
            )
        if len(ops) > 1:
            raise GraphQLError(
                "Must provide operation name if query contains multiple operations.",
                classification="ValidationError",
            )
        return ops[0]

    def _const(self, value: Any) -> Any:
        if isinstance(value, EnumValue):
            return value.name
        if isinstance(value, list):
            return [self._const(v) for v in value]
        if isinstance(value, dict):
            return {k: self._const(v) for k, v in value.items()}
        return value

    def resolve_value(self, value: Any) -> Any:
        if isinstance(value, Var):
            if value.name not in self.op.variables:
                raise GraphQLError(
                    f"Validation error (UndefinedVariable) : Undefined variable '{value.name}'"
                )
            return self.variables.get(value.name)
        if isinstance(value, EnumValue):
            return value.name
        if isinstance(value, list):
            return [self.resolve_value(v) for v in value]
        if isinstance(value, dict):
            return {k: self.resolve_value(v) for k, v in value.items()}
        return value

    def _included(self, directives: list[tuple[str, dict[str, Any]]]) -> bool:
        for name, args in directives:
            cond = bool(self.resolve_value(args.get("if")))
            if name == "skip" and cond:
                return False
            if name == "include" and not cond:
                return False
        return True

    def collect(self, selections: list[Any], type_name: str) -> list[Field]:
        fields: list[Field] = []
        for sel in selections:
            if isinstance(sel, Field):
                if self._included(sel.directives):
                    fields.append(sel)
            elif isinstance(sel, FragmentSpread):
                frag = self.doc.fragments.get(sel.name)
                if frag is None:
                    raise GraphQLError(
                        f"Validation error (UndefinedFragment) : Undefined fragment {sel.name}",
                        line=sel.line,
                        column=sel.column,
                    )
                if self._included(sel.directives) and self._applies(frag, type_name):
                    fields.extend(self.collect(frag.selections, type_name))
            elif self._included(sel.directives) and self._applies(sel, type_name):
                fields.extend(self.collect(sel.selections, type_name))
        return fields

    @staticmethod
    def _applies(frag: InlineFragment, type_name: str) -> bool:
        return frag.type_condition in (None, type_name)

    # -- validation (before anything runs, so a bad mutation changes nothing)
    def validate(self) -> list[GraphQLError]:
        root = {"query": "Query", "mutation": "Mutation"}.get(self.op.kind)
        if root is None:
            return [GraphQLError("Schema is not configured for subscriptions.")]
        errors: list[GraphQLError] = []
        self._validate(self.op.selections, root, [], errors)
        return errors

    def _validate(
        self, selections: list[Any], type_name: str, path: list[str], errors: list[GraphQLError]
    ) -> None:
        for fld in self.collect(selections, type_name):
            where = "/".join([*path, fld.name])
            if fld.name == "__typename":
                continue
            spec = SCHEMA[type_name].get(fld.name)
            if spec is None:
                errors.append(
                    GraphQLError(
                        f"Validation error (FieldUndefined@[{where}]) : Field '{fld.name}' in "
                        f"type '{type_name}' is undefined",
                        line=fld.line,
                        column=fld.column,
                    )
                )
                continue
            ftype, allowed = spec
            for arg in fld.args:
                if arg not in allowed:
                    errors.append(
                        GraphQLError(
                            f"Validation error (UnknownArgument@[{where}]) : Unknown field "
                            f"argument '{arg}'",
                            line=fld.line,
                            column=fld.column,
                        )
                    )
            required = _REQUIRED_ARGS.get((type_name, fld.name))
            if required and self.resolve_value(fld.args.get(required)) is None:
                errors.append(
                    GraphQLError(
                        f"Validation error (MissingFieldArgument@[{where}]) : Missing field "
                        f"argument '{required}'",
                        line=fld.line,
                        column=fld.column,
                    )
                )
            if ftype is None and fld.selections:
                errors.append(
                    GraphQLError(
                        f"Validation error (SubselectionNotAllowed@[{where}]) : Subselection "
                        f"not allowed on leaf type of field {fld.name}",
                        line=fld.line,
                        column=fld.column,
                    )
                )
            elif ftype is not None and not fld.selections:
                errors.append(
                    GraphQLError(
                        f"Validation error (SubselectionRequired@[{where}]) : Subselection "
                        f"required for type '{ftype}' of field '{fld.name}'",
                        line=fld.line,
                        column=fld.column,
                    )
                )
            elif ftype is not None and fld.selections:
                self._validate(fld.selections, ftype, [*path, fld.name], errors)

    # -- execution: objects are dicts whose values are plain or callables(args)
    def execute(self, selections: list[Any], type_name: str, obj: dict[str, Any]) -> dict:
        out: dict[str, Any] = {}
        for fld in self.collect(selections, type_name):
            if fld.name == "__typename":
                out[fld.key] = type_name
                continue
            ftype, _ = SCHEMA[type_name][fld.name]
            value = obj.get(fld.name)
            if callable(value):
                value = value({k: self.resolve_value(v) for k, v in fld.args.items()})
            out[fld.key] = self._complete(fld, ftype, value)
        return out

    def _complete(self, fld: Field, ftype: str | None, value: Any) -> Any:
        if value is None or ftype is None:
            return value
        if isinstance(value, list):
            return [self.execute(fld.selections or [], ftype, v) for v in value]
        return self.execute(fld.selections or [], ftype, value)


# =========================================================================== helpers


def _cursor(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode()


def _decode_cursor(cursor: str | None) -> int:
    """The offset *after* which the next page starts (-1 when there is no cursor)."""
    if cursor in (None, ""):
        return -1
    try:
        value = int(base64.b64decode(str(cursor).encode(), validate=True).decode())
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise GraphQLError(
            f"Invalid cursor '{cursor}'", classification="DataFetchingException"
        ) from None
    if value < 0:
        raise GraphQLError(f"Invalid cursor '{cursor}'", classification="DataFetchingException")
    return value


def _first(args: dict[str, Any]) -> int:
    """The connection's ``first`` (default 20), capped at MAX_PAGE_SIZE."""
    value = args.get("first")
    if value is None:
        return 20
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise GraphQLError(
            f"Validation error (WrongType) : argument 'first' must be a non-negative Int, "
            f"got {value!r}"
        )
    return min(value, MAX_PAGE_SIZE)


_DURATION_RE = re.compile(
    r"^P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?$"
)


def parse_duration(text: str) -> timedelta | None:
    """ISO-8601 duration (PT2H, PT1H30M, P1DT2H) -> timedelta; None when malformed."""
    match = _DURATION_RE.match(text or "")
    if not match or text in ("P", "PT") or text.endswith("T"):
        return None
    parts = {k: int(v) for k, v in match.groupdict().items() if v}
    return timedelta(
        days=parts.get("d", 0),
        hours=parts.get("h", 0),
        minutes=parts.get("m", 0),
        seconds=parts.get("s", 0),
    )


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    out = "P" + (f"{days}D" if days else "")
    clock = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    clock += f"{secs}S" if secs else ""
    return out + ("T" + clock if clock else "") if (days or clock) else "PT0S"


def parse_start(text: Any) -> datetime | None:
    """A ZonedDateTime string; a local time without offset is read in the group's zone."""
    if not isinstance(text, str) or not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(GROUP_TIMEZONE))
    return when


def meetup_datetime(when: datetime) -> str:
    """Meetup prints event times with the local offset and no seconds: 2026-05-01T19:00+03:00."""
    text = when.isoformat(timespec="minutes")
    return text


def _random_token(length: int = 32) -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _error(code: str, fld: str | None, message: str) -> dict[str, Any]:
    return {"code": code, "field": fld, "message": message}


def _gql_error_response(errors: list[dict[str, Any]], status: int = 200) -> Response:
    resp = jsonify({"errors": errors})
    resp.status_code = status
    return resp


# =========================================================================== the sandbox


CREATE_INPUT_FIELDS = frozenset(
    {
        "groupUrlname",
        "title",
        "description",
        "startDateTime",
        "duration",
        "venueId",
        "publishStatus",
        "rsvpSettings",
        "selfRsvp",
        "eventHosts",
        "feeOption",
        "howToFindUs",
        "featuredPhotoId",
        "topics",
        "question",
    }
)
EDIT_INPUT_FIELDS = (CREATE_INPUT_FIELDS - {"groupUrlname", "publishStatus", "selfRsvp"}) | {
    "eventId"
}
RSVP_SETTINGS_FIELDS = frozenset({"rsvpLimit", "guestLimit", "rsvpOpenTime", "rsvpCloseTime"})


class MeetupSandbox:
    """The emulator's state and behaviour; ``app.extensions["sandbox"]`` is one of these."""

    def __init__(
        self,
        store: SandboxStore,
        controls: SandboxControls,
        *,
        client_id: str,
        client_secret: str,
        group_urlname: str,
        access_token_ttl: int,
    ) -> None:
        self.store = store
        self.controls = controls
        self.client_id = client_id
        self.client_secret = client_secret
        self.group_urlname = group_urlname
        self.access_token_ttl = access_token_ttl

    # ----------------------------------------------------------------- OAuth
    def issue_code(self, redirect_uri: str) -> str:
        code = _random_token(32)
        self.store.insert(
            "oauth_code",
            code,
            {
                "client_id": self.client_id,
                "redirect_uri": redirect_uri,
                "expires_at": time.time() + CODE_TTL_SECONDS,
                "used": False,
            },
        )
        return code

    def issue_tokens(self) -> dict[str, Any]:
        access, refresh = _random_token(32), _random_token(32)
        with self.store.atomic():
            self.store.insert(
                "access_token",
                access,
                {
                    "id": access,
                    "expires_at": time.time() + self.access_token_ttl,
                    "refresh_token": refresh,
                    "revoked": False,
                },
            )
            self.store.insert("refresh_token", refresh, {"revoked": False})
        return {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "bearer",
            "expires_in": self.access_token_ttl,
        }

    def exchange_code(self, code: str, redirect_uri: str | None) -> dict[str, Any] | str:
        """Tokens, or the invalid_grant description."""
        with self.store.atomic():
            doc = self.store.get("oauth_code", code) if code else None
            if doc is None:
                return "Invalid authorization code"
            if doc["used"]:
                return "Authorization code has already been used"
            if doc["expires_at"] < time.time():
                return "Authorization code has expired"
            if redirect_uri != doc["redirect_uri"]:
                return "redirect_uri does not match the authorization request"
            doc["used"] = True
            self.store.update("oauth_code", code, doc)
            return self.issue_tokens()

    def refresh(self, refresh_token: str) -> dict[str, Any] | str:
        with self.store.atomic():
            doc = self.store.get("refresh_token", refresh_token) if refresh_token else None
            if doc is None or doc["revoked"]:
                return "Invalid refresh token"
            doc["revoked"] = True  # rotation: a refresh token works once
            self.store.update("refresh_token", refresh_token, doc)
            return self.issue_tokens()

    def revoke(self, refresh_token: str) -> int:
        """Revoke a refresh token and every access token issued with it."""
        revoked = 0
        with self.store.atomic():
            doc = self.store.get("refresh_token", refresh_token)
            if doc is None:
                return 0
            doc["revoked"] = True
            self.store.update("refresh_token", refresh_token, doc)
            revoked += 1
            for _, access in self.store.page(
                "access_token",
                limit=10**9,
                where="json_extract(data, '$.refresh_token') = ?",
                params=(refresh_token,),
            ):
                if not access["revoked"]:
                    access["revoked"] = True
                    self.store.update("access_token", access["id"], access)
                    revoked += 1
        return revoked

    def token_valid(self, access_token: str | None) -> bool:
        if not access_token:
            return False
        doc = self.store.get("access_token", access_token)
        return bool(doc) and not doc["revoked"] and doc["expires_at"] > time.time()

    # ----------------------------------------------------------------- events
    def _event_url(self, event_id: str) -> str:
        return f"https://www.meetup.com/{self.group_urlname}/events/{event_id}/"

    def get_event(self, event_id: Any) -> dict[str, Any] | None:
        if not isinstance(event_id, str | int):
            return None
        return self.store.get("event", str(event_id))

    def _validate_event_input(
        self, data: dict[str, Any], *, creating: bool
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Payload errors, and the normalized changes."""
        errors: list[dict[str, Any]] = []
        changes: dict[str, Any] = {}
        required = ("groupUrlname", "title", "description", "startDateTime") if creating else ()
        for name in required:
            value = data.get(name)
            if value is None or (isinstance(value, str) and not value.strip()):
                errors.append(_error("REQUIRED_FIELD_MISSING", name, f"{name} is required"))
        if creating and data.get("groupUrlname") and data["groupUrlname"] != self.group_urlname:
            errors.append(
                _error(
                    "GROUP_NOT_FOUND",
                    "groupUrlname",
                    f"Group '{data['groupUrlname']}' not found or you are not an organizer",
                )
            )
        if data.get("title") is not None:
            title = str(data["title"]).strip()
            if len(title) > TITLE_MAX:
                errors.append(
                    _error(
                        "FIELD_TOO_LONG",
                        "title",
                        f"title must be at most {TITLE_MAX} characters (got {len(title)})",
                    )
                )
            elif not title:
                errors.append(_error("REQUIRED_FIELD_MISSING", "title", "title is required"))
            changes["title"] = title
        if data.get("description") is not None:
            description = str(data["description"])
            if len(description) > DESCRIPTION_MAX:
                errors.append(
                    _error(
                        "FIELD_TOO_LONG",
                        "description",
                        f"description must be at most {DESCRIPTION_MAX} characters",
                    )
                )
            changes["description"] = description
        if data.get("startDateTime") is not None:
            start = parse_start(data["startDateTime"])
            if start is None:
                errors.append(
                    _error(
                        "INVALID_FORMAT",
                        "startDateTime",
                        "startDateTime must be an ISO-8601 date-time such as "
                        "2026-05-01T19:00:00+03:00",
                    )
                )
            else:
                changes["dateTime"] = meetup_datetime(start)
        if data.get("duration") is not None:
            delta = parse_duration(str(data["duration"]))
            if delta is None or delta <= timedelta(0) or delta > timedelta(days=14):
                errors.append(
                    _error(
                        "INVALID_DURATION",
                        "duration",
                        "duration must be a positive ISO-8601 duration up to 14 days, e.g. PT2H",
                    )
                )
            else:
                changes["duration"] = format_duration(delta)
        if "venueId" in data:
            changes["venueId"] = None if data["venueId"] is None else str(data["venueId"])
        if data.get("publishStatus") is not None:
            if data["publishStatus"] not in ("DRAFT", "PUBLISHED"):
                errors.append(
                    _error(
                        "INVALID_VALUE", "publishStatus", "publishStatus must be DRAFT or PUBLISHED"
                    )
                )
            changes["status"] = data["publishStatus"]
        settings = data.get("rsvpSettings")
        if settings is not None:
            if not isinstance(settings, dict):
                errors.append(_error("INVALID_VALUE", "rsvpSettings", "must be an object"))
            else:
                limit = settings.get("rsvpLimit")
                if limit is not None:
                    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
                        errors.append(
                            _error(
                                "INVALID_VALUE",
                                "rsvpSettings.rsvpLimit",
                                "rsvpLimit must be a non-negative integer (0 removes the limit)",
                            )
                        )
                    else:
                        changes["rsvpLimit"] = limit or None
                guests = settings.get("guestLimit")
                if guests is not None:
                    if not isinstance(guests, int) or guests < 0:
                        errors.append(
                            _error(
                                "INVALID_VALUE",
                                "rsvpSettings.guestLimit",
                                "guestLimit must be a non-negative integer",
                            )
                        )
                    else:
                        changes["guestLimit"] = guests
                for key in ("rsvpOpenTime", "rsvpCloseTime"):
                    if key in settings:
                        changes[key] = settings[key]
        fee = data.get("feeOption")
        if fee is not None:
            if not isinstance(fee, dict) or not isinstance(fee.get("amount"), int | float):
                errors.append(
                    _error("INVALID_VALUE", "feeOption", "feeOption needs a numeric amount")
                )
            else:
                changes["fee"] = {
                    "amount": fee["amount"],
                    "currency": str(fee.get("currency") or "USD").upper(),
                    "required": bool(fee.get("required", True)),
                    "accepts": fee.get("accepts") or fee.get("paymentMethod") or "CARDS",
                }
        if "howToFindUs" in data:
            changes["howToFindUs"] = data["howToFindUs"]
        return errors, changes

    def create_event(self, data: dict[str, Any]) -> dict[str, Any]:
        errors, changes = self._validate_event_input(data, creating=True)
        if errors:
            return {"event": None, "errors": errors}
        with self.store.atomic():
            event_id = str(self.store.next_counter("event_id", EVENT_ID_START))
            event = {
                "id": event_id,
                "token": _random_token(12),
                "groupUrlname": self.group_urlname,
                "title": changes["title"],
                "description": changes["description"],
                "dateTime": changes["dateTime"],
                "duration": changes.get("duration", "PT3H"),
                "venueId": changes.get("venueId"),
                "status": changes.get("status", "PUBLISHED"),
                "rsvpLimit": changes.get("rsvpLimit"),
                "guestLimit": changes.get("guestLimit", 0),
                "rsvpOpenTime": changes.get("rsvpOpenTime"),
                "rsvpCloseTime": changes.get("rsvpCloseTime"),
                "rsvpsOpen": True,
                "fee": changes.get("fee"),
                "howToFindUs": changes.get("howToFindUs"),
                "createdTime": iso_z(utcnow()),
            }
            self.store.insert("event", event_id, event, scope=self.group_urlname)
            if data.get("selfRsvp", True):
                self._add_rsvp(event, ORGANIZER, status="YES", is_host=True)
        return {"event": event_id, "errors": []}

    def edit_event(self, data: dict[str, Any]) -> dict[str, Any]:
        event = self.get_event(data.get("eventId"))
        if event is None:
            return {"event": None, "errors": [self._not_found(data.get("eventId"))]}
        errors, changes = self._validate_event_input(data, creating=False)
        if errors:
            return {"event": None, "errors": errors}
        with self.store.atomic():
            event.update(changes)
            self.store.update("event", event["id"], event)
            self._promote_waitlist(event)
        return {"event": event["id"], "errors": []}

    def _not_found(self, event_id: Any) -> dict[str, Any]:
        return _error("EVENT_NOT_FOUND", "eventId", f"Event '{event_id}' not found")

    def _simple_mutation(
        self, data: dict[str, Any], change: Callable[[dict[str, Any]], str | None]
    ) -> dict[str, Any]:
        with self.store.atomic():
            event = self.get_event(data.get("eventId"))
            if event is None:
                return {
                    "event": None,
                    "success": False,
                    "errors": [self._not_found(data.get("eventId"))],
                }
            problem = change(event)
            if problem:
                return {
                    "event": None,
                    "success": False,
                    "errors": [_error("INVALID_STATE", "eventId", problem)],
                }
            if self.store.get("event", event["id"]) is not None:
                self.store.update("event", event["id"], event)
            return {"event": event["id"], "success": True, "errors": []}

    def publish_draft(self, data: dict[str, Any]) -> dict[str, Any]:
        def change(event: dict[str, Any]) -> str | None:
            if event["status"] != "DRAFT":
                return f"Event '{event['id']}' is not a draft"
            event["status"] = "PUBLISHED"
            return None

        return self._simple_mutation(data, change)

    def set_rsvps_open(self, data: dict[str, Any], is_open: bool) -> dict[str, Any]:
        def change(event: dict[str, Any]) -> str | None:
            event["rsvpsOpen"] = is_open
            return None

        return self._simple_mutation(data, change)

    def delete_event(self, data: dict[str, Any]) -> dict[str, Any]:
        def change(event: dict[str, Any]) -> str | None:
            self.store.delete("event", event["id"])
            return None

        return self._simple_mutation(data, change)

    # ----------------------------------------------------------------- RSVPs
    def _count(self, event_id: str, statuses: tuple[str, ...]) -> int:
        marks = ",".join("?" * len(statuses))
        return self.store.count(
            "rsvp",
            scope=event_id,
            where=f"json_extract(data, '$.status') in ({marks})",
            params=statuses,
        )

    def _add_rsvp(
        self, event: dict[str, Any], member: dict[str, str], *, status: str, is_host: bool = False
    ) -> str:
        rsvp_id = str(self.store.next_counter("rsvp_id", RSVP_ID_START))
        self.store.insert(
            "rsvp",
            rsvp_id,
            {
                "id": rsvp_id,
                "eventId": event["id"],
                "status": status,
                "guestsCount": 0,
                "updated": iso_z(utcnow()),
                "isHost": is_host,
                "member": member,
            },
            scope=event["id"],
        )
        return rsvp_id

    def simulate_registrations(
        self, event_id: str, count: int, seed: int | None = None
    ) -> list[str]:
        """``count`` people RSVP to a published event; over ``rsvpLimit`` they join the
        waitlist (waitlistMode AUTO). Raises KeyError (no event) or ValueError (draft or
        RSVPs closed)."""
        people = PeopleFactory(seed).people(max(int(count), 0))
        ids: list[str] = []
        with self.store.atomic():
            event = self.get_event(event_id)
            if event is None:
                raise KeyError(f"event {event_id} not found")
            if event["status"] != "PUBLISHED":
                raise ValueError(f"event {event_id} is a draft: nobody can RSVP yet")
            if not event["rsvpsOpen"]:
                raise ValueError(f"RSVPs are closed for event {event_id}")
            taken = self._count(event["id"], SEAT_STATUSES)
            limit = event["rsvpLimit"]
            for person in people:
                member_id = str(self.store.next_counter("member_id", MEMBER_ID_START))
                status = "YES" if limit is None or taken < limit else "WAITLIST"
                taken += status == "YES"
                ids.append(
                    self._add_rsvp(
                        event, {"id": member_id, "name": person.full_name}, status=status
                    )
                )
        return ids

    def set_rsvp_status(self, rsvp_id: str, status: str) -> dict[str, Any]:
        if status not in RSVP_STATUSES:
            raise ValueError(f"unknown RSVP status {status!r}")
        with self.store.atomic():
            rsvp = self.store.get("rsvp", rsvp_id)
            if rsvp is None:
                raise KeyError(f"rsvp {rsvp_id} not found")
            rsvp["status"] = status
            rsvp["updated"] = iso_z(utcnow())
            self.store.update("rsvp", rsvp_id, rsvp)
            event = self.get_event(rsvp["eventId"])
            if event is not None:
                self._promote_waitlist(event)
        return rsvp

    def _promote_waitlist(self, event: dict[str, Any]) -> None:
        """Meetup moves the waitlist up by itself when seats free (contract Uncertain #3)."""
        limit = event.get("rsvpLimit")
        free = None if limit is None else limit - self._count(event["id"], SEAT_STATUSES)
        if free is not None and free <= 0:
            return
        waiting = self.store.page(
            "rsvp",
            scope=event["id"],
            limit=free if free is not None else 10**9,
            where="json_extract(data, '$.status') = 'WAITLIST'",
        )
        for _, rsvp in waiting:
            rsvp["status"] = "YES"
            rsvp["updated"] = iso_z(utcnow())
            self.store.update("rsvp", rsvp["id"], rsvp)

    # ----------------------------------------------------------------- GraphQL objects
    def event_object(self, event: dict[str, Any]) -> dict[str, Any]:
        start = datetime.fromisoformat(event["dateTime"])
        duration = parse_duration(event["duration"]) or timedelta(hours=3)
        online = event.get("venueId") == "online"
        fee = event.get("fee")
        limit = event.get("rsvpLimit")
        eid = event["id"]
        return {
            "id": eid,
            "token": event["token"],
            "title": event["title"],
            "description": event["description"],
            "eventUrl": self._event_url(eid),
            "status": event["status"],
            "dateTime": event["dateTime"],
            "endTime": meetup_datetime(start + duration),
            "duration": event["duration"],
            "createdTime": event["createdTime"],
            "eventType": "ONLINE" if online else "PHYSICAL",
            "isOnline": online,
            "maxTickets": limit or 0,
            "waitlistMode": "AUTO" if limit else "OFF",
            "rsvpsOpen": event["rsvpsOpen"],
            "going": lambda _a: self._count(eid, ("YES", "ATTENDED")),
            "waiting": lambda _a: self._count(eid, ("WAITLIST",)),
            "group": lambda _a: self.group_object(),
            "venue": self._venue(event),
            "venues": [v] if (v := self._venue(event)) else [],
            "rsvpSettings": {
                "rsvpLimit": limit or 0,
                "guestLimit": event.get("guestLimit", 0),
                "rsvpOpenTime": event.get("rsvpOpenTime"),
                "rsvpCloseTime": event.get("rsvpCloseTime"),
            },
            "feeSettings": dict(fee) if fee else None,
            "rsvps": lambda args: self.rsvp_connection(eid, args),
        }

    @staticmethod
    def _venue(event: dict[str, Any]) -> dict[str, Any] | None:
        venue_id = event.get("venueId")
        if not venue_id:
            return None
        if venue_id == "online":
            return {"id": "online", "name": "Online event", "venueType": "online"}
        return {"id": venue_id, "name": None, "venueType": "venue"}

    def group_object(self) -> dict[str, Any]:
        return {
            "id": "37000001",
            "name": self.group_urlname.replace("-", " ").title(),
            "urlname": self.group_urlname,
            "timezone": GROUP_TIMEZONE,
            "events": lambda args: self.event_connection(args, upcoming_only=False),
            "upcomingEvents": lambda args: self.event_connection(args, upcoming_only=True),
        }

    def event_connection(self, args: dict[str, Any], *, upcoming_only: bool) -> dict[str, Any]:
        first = _first(args)
        offset = _decode_cursor(args.get("after")) + 1
        flt = args.get("filter") or {}
        statuses = flt.get("status")
        if isinstance(statuses, str):
            statuses = [statuses]
        after = parse_start(flt.get("afterDateTime")) if flt.get("afterDateTime") else None
        before = parse_start(flt.get("beforeDateTime")) if flt.get("beforeDateTime") else None
        now = utcnow()
        matched: list[dict[str, Any]] = []
        for event in self.store.all("event", scope=self.group_urlname):
            start = datetime.fromisoformat(event["dateTime"])
            end = start + (parse_duration(event["duration"]) or timedelta(hours=3))
            past = end < now
            if upcoming_only and (past or event["status"] == "DRAFT"):
                continue
            if statuses:
                kinds = {event["status"]} | ({"PAST"} if past else set())
                if event["status"] == "PUBLISHED" and not past:
                    kinds |= {"ACTIVE", "UPCOMING"}
                if not kinds & set(statuses):
                    continue
            if after and start < after:
                continue
            if before and start > before:
                continue
            matched.append(event)
        page = matched[offset : offset + first]
        edges = [
            {"cursor": _cursor(offset + i), "node": self.event_object(e)}
            for i, e in enumerate(page)
        ]
        return {
            "totalCount": len(matched),
            "pageInfo": self._page_info(offset, len(page), len(matched)),
            "edges": edges,
        }

    @staticmethod
    def _page_info(offset: int, size: int, total: int) -> dict[str, Any]:
        return {
            "hasNextPage": offset + size < total,
            "hasPreviousPage": offset > 0,
            "startCursor": _cursor(offset) if size else None,
            "endCursor": _cursor(offset + size - 1) if size else None,
        }

    def rsvp_connection(self, event_id: str, args: dict[str, Any]) -> dict[str, Any]:
        first = _first(args)
        offset = _decode_cursor(args.get("after")) + 1
        flt = args.get("filter") or {}
        statuses = flt.get("rsvpStatus") or list(DEFAULT_RSVP_FILTER)
        if isinstance(statuses, str):
            statuses = [statuses]
        statuses = tuple(s for s in statuses if s in RSVP_STATUSES) or ("__none__",)
        marks = ",".join("?" * len(statuses))
        where = f"json_extract(data, '$.status') in ({marks})"
        total = self.store.count("rsvp", scope=event_id, where=where, params=statuses)
        rows = self.store.page(
            "rsvp", scope=event_id, limit=offset + first, where=where, params=statuses
        )[offset:]
        edges = [
            {"cursor": _cursor(offset + i), "node": self.rsvp_object(r)}
            for i, (_, r) in enumerate(rows)
        ]
        return {
            "totalCount": total,
            "yesCount": self._count(event_id, ("YES",)),
            "waitlistCount": self._count(event_id, ("WAITLIST",)),
            "pageInfo": self._page_info(offset, len(rows), total),
            "edges": edges,
        }

    def rsvp_object(self, rsvp: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": rsvp["id"],
            "status": rsvp["status"],
            "guestsCount": rsvp["guestsCount"],
            "updated": rsvp["updated"],
            "isHost": rsvp["isHost"],
            "member": dict(rsvp["member"]),  # id and name only: Meetup hides e-mail and phone
            "event": lambda _a: self._event_or_none(rsvp["eventId"]),
        }

    def _event_or_none(self, event_id: str) -> dict[str, Any] | None:
        event = self.get_event(event_id)
        return self.event_object(event) if event else None

    def _payload(self, result: dict[str, Any]) -> dict[str, Any]:
        out = dict(result)
        if "event" in out:
            event_id = out["event"]
            out["event"] = (lambda _a: self._event_or_none(event_id)) if event_id else None
        return out

    def root(self, kind: str) -> dict[str, Any]:
        if kind == "query":
            return {
                "event": lambda a: self._event_or_none(a.get("id")),
                "groupByUrlname": lambda a: (
                    self.group_object() if a.get("urlname") == self.group_urlname else None
                ),
                "self": dict(ORGANIZER),
            }

        def mutation(handler: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable:
            def run(args: dict[str, Any]) -> dict[str, Any]:
                data = args.get("input")
                if not isinstance(data, dict):
                    raise GraphQLError(
                        "Validation error (WrongType) : argument 'input' must be an object"
                    )
                return self._payload(handler(data))

            return run

        return {
            "createEvent": mutation(self.create_event),
            "editEvent": mutation(self.edit_event),
            "publishEventDraft": mutation(self.publish_draft),
            "closeEventRsvps": mutation(lambda d: self.set_rsvps_open(d, False)),
            "openEventRsvps": mutation(lambda d: self.set_rsvps_open(d, True)),
            "deleteEvent": mutation(self.delete_event),
        }

    def run_graphql(
        self, query: str, variables: dict[str, Any] | None, operation_name: str | None
    ) -> dict[str, Any]:
        try:
            doc = parse(query)
            executor = _Executor(doc, variables or {}, operation_name)
            errors = executor.validate()
            if errors:
                return {"errors": [e.as_dict() for e in errors]}
            for fld in executor.collect(executor.op.selections, "Mutation"):
                self._check_input_fields(executor, fld)
            root_type = "Query" if executor.op.kind == "query" else "Mutation"
            data = executor.execute(executor.op.selections, root_type, self.root(executor.op.kind))
        except GraphQLError as exc:
            return {"errors": [exc.as_dict()]}
        except Exception as exc:  # a resolver bug: answer like graphql-java, not with HTML
            log.exception("meetup sandbox: error while executing GraphQL")
            return {
                "errors": [
                    {
                        "message": f"Exception while fetching data: {type(exc).__name__}",
                        "locations": [],
                        "extensions": {"classification": "DataFetchingException"},
                    }
                ]
            }
        return {"data": data}

    @staticmethod
    def _check_input_fields(executor: _Executor, fld: Field) -> None:
        if executor.op.kind != "mutation" or fld.name not in _MUTATIONS:
            return
        data = executor.resolve_value(fld.args.get("input"))
        if not isinstance(data, dict):
            raise GraphQLError(
                f"Validation error (WrongType@[{fld.name}]) : argument 'input' must be an "
                "input object",
                line=fld.line,
                column=fld.column,
            )
        allowed = {
            "createEvent": CREATE_INPUT_FIELDS,
            "editEvent": EDIT_INPUT_FIELDS,
            "deleteEvent": frozenset({"eventId", "removeFromCalendar"}),
        }.get(fld.name, frozenset({"eventId"}))
        unknown = sorted(set(data) - allowed)
        settings = data.get("rsvpSettings")
        if isinstance(settings, dict):
            unknown += [f"rsvpSettings.{k}" for k in sorted(set(settings) - RSVP_SETTINGS_FIELDS)]
        if unknown:
            raise GraphQLError(
                f"Validation error (WrongType@[{fld.name}]) : argument 'input' contains a field "
                f"not in the input type: '{unknown[0]}'",
                line=fld.line,
                column=fld.column,
            )


# =========================================================================== Flask app


def create_app(
    state_path: str | None = None,
    *,
    client_id: str = MEETUP_CLIENT_ID,
    client_secret: str = MEETUP_CLIENT_SECRET,
    group_urlname: str = MEETUP_GROUP_URLNAME,
    access_token_ttl: int = 3600,
) -> Flask:
    """The Meetup emulator as a Flask app; state in SQLite at ``state_path`` (memory if None)."""
    app = Flask("meetup_sandbox")
    app.json.sort_keys = False  # type: ignore[attr-defined]  # GraphQL keeps field order
    store = SandboxStore(state_path)
    controls = SandboxControls()
    sandbox = MeetupSandbox(
        store,
        controls,
        client_id=client_id,
        client_secret=client_secret,
        group_urlname=group_urlname,
        access_token_ttl=access_token_ttl,
    )
    app.extensions["sandbox"] = sandbox

    def bearer() -> str | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    def rate_limited(wait: float) -> Response:
        resp = jsonify(
            {
                "errors": [
                    {
                        "message": "Too many requests, please try again shortly.",
                        "extensions": {
                            "code": "RATE_LIMITED",
                            "resetAt": iso_z(utcnow() + timedelta(seconds=wait)),
                        },
                    }
                ]
            }
        )
        resp.status_code = 429
        resp.headers["Retry-After"] = retry_after_header(wait)
        return resp

    def server_error(status: int) -> Response:
        resp = jsonify(
            {
                "errors": [
                    {
                        "message": "Internal server error",
                        "extensions": {"code": "INTERNAL_SERVER_ERROR"},
                    }
                ]
            }
        )
        resp.status_code = status
        return resp

    install_controls(
        app,
        controls,
        rate_limit_key=lambda: bearer() or request.remote_addr or "anonymous",
        rate_limited_response=rate_limited,
        server_error_response=server_error,
    )

    def oauth_error(error: str, description: str, status: int = 400) -> Response:
        resp = jsonify({"error": error, "error_description": description})
        resp.status_code = status
        resp.headers["Cache-Control"] = "no-store"
        return resp

    # ------------------------------------------------------------------ OAuth2
    @app.get("/oauth2/authorize")
    def authorize() -> Response:
        args = request.args
        if args.get("client_id") != client_id:
            return oauth_error("invalid_client", "Unknown client_id")
        redirect_uri = args.get("redirect_uri")
        if not redirect_uri:
            return oauth_error("invalid_request", "redirect_uri is required")
        if args.get("response_type") != "code":
            return oauth_error("unsupported_response_type", "response_type must be 'code'")
        code = sandbox.issue_code(redirect_uri)
        parts = urlsplit(redirect_uri)
        query = parse_qsl(parts.query, keep_blank_values=True)
        query.append(("code", code))
        if args.get("state") is not None:
            query.append(("state", args["state"]))
        return redirect(urlunsplit(parts._replace(query=urlencode(query))), code=302)

    @app.post("/oauth2/access")
    def access() -> Response:
        form = request.form
        cid, secret = form.get("client_id"), form.get("client_secret")
        if request.authorization and request.authorization.type == "basic":
            cid = cid or request.authorization.username
            secret = secret or request.authorization.password
        if cid != client_id or not secret or not secrets.compare_digest(secret, client_secret):
            return oauth_error("invalid_client", "Client authentication failed", 401)
        grant = form.get("grant_type")
        if grant == "authorization_code":
            result = sandbox.exchange_code(form.get("code", ""), form.get("redirect_uri"))
        elif grant == "refresh_token":
            result = sandbox.refresh(form.get("refresh_token", ""))
        else:
            return oauth_error("unsupported_grant_type", f"Unsupported grant_type {grant!r}")
        if isinstance(result, str):
            return oauth_error("invalid_grant", result)
        resp = jsonify(result)
        resp.headers["Cache-Control"] = "no-store"
        return resp

    # ------------------------------------------------------------------ GraphQL
    @app.post("/gql-ext")
    @app.post("/gql")
    def graphql() -> Response:
        if not sandbox.token_valid(bearer()):
            return _gql_error_response(
                [
                    {
                        "message": "Invalid or expired token",
                        "extensions": {"code": "UNAUTHENTICATED"},
                    }
                ],
                401,
            )
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return _gql_error_response(
                [
                    {
                        "message": "Request body must be JSON with a 'query' string",
                        "extensions": {"classification": "InvalidSyntax"},
                    }
                ],
                400,
            )
        variables = body.get("variables")
        if variables is not None and not isinstance(variables, dict):
            return _gql_error_response(
                [{"message": "'variables' must be an object", "extensions": {}}], 400
            )
        return jsonify(sandbox.run_graphql(body["query"], variables, body.get("operationName")))

    # ------------------------------------------------------------------ sandbox controls
    def control_error(message: str, status: int) -> Response:
        resp = jsonify({"error": message})
        resp.status_code = status
        return resp

    @app.post("/_sandbox/simulate/registrations")
    def simulate_registrations() -> Response:
        body = request.get_json(force=True, silent=True) or {}
        try:
            ids = sandbox.simulate_registrations(
                str(body.get("event_id", "")), int(body.get("count", 1)), body.get("seed")
            )
        except KeyError as exc:
            return control_error(str(exc.args[0]), 404)
        except (ValueError, TypeError) as exc:
            return control_error(str(exc), 409)
        return jsonify({"ids": ids})

    @app.post("/_sandbox/simulate/status")
    def simulate_status() -> Response:
        body = request.get_json(force=True, silent=True) or {}
        try:
            rsvp = sandbox.set_rsvp_status(str(body.get("rsvp_id", "")), str(body.get("status")))
        except KeyError as exc:
            return control_error(str(exc.args[0]), 404)
        except ValueError as exc:
            return control_error(str(exc), 400)
        return jsonify({"rsvp": rsvp})

    @app.post("/_sandbox/oauth/revoke")
    def revoke() -> Response:
        body = request.get_json(force=True, silent=True) or {}
        return jsonify({"revoked": sandbox.revoke(str(body.get("refresh_token", "")))})

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Meetup sandbox emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8801)
    parser.add_argument("--state", default=None, help="SQLite file (default: in memory)")
    parser.add_argument("--access-token-ttl", type=int, default=3600)
    args = parser.parse_args(argv)
    serve_forever(
        create_app(args.state, access_token_ttl=args.access_token_ttl), args.host, args.port
    )


if __name__ == "__main__":
    main()
