"""GraphQL execution for the Meetup emulator: graphql-core over the real schema.

``run_graphql`` parses the document, validates it against Meetup's schema (every rule of
the GraphQL spec: unknown fields and arguments, wrong input types, enum values, nested
input objects, variables), coerces the variables, and only then executes. Request-level
errors are answered the way Meetup's graphql-java server answers them: HTTP 200 with
``errors[{message, locations, extensions:{classification}}]`` and no ``data``
(``InvalidSyntax`` for a parse error, ``ValidationError`` for validation and variable
coercion). An error while resolving a field is a ``DataFetchingException`` with its
``path``, next to the ``data`` that could be resolved.

Objects are plain dicts: a value is the field's value, a callable is called as
``value(info, **arguments)``. A field of the schema that the emulator does not model is
answered with an error naming it ("not emulated"), never with an invented value.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable, Mapping
from typing import Any

from graphql import (
    ExecutionResult,
    GraphQLError,
    GraphQLResolveInfo,
    GraphQLSyntaxError,
    OperationDefinitionNode,
    OperationType,
    execute,
    get_operation_ast,
    parse,
    validate,
)
from graphql.execution.values import get_variable_values

from integrations.sandbox.meetup.schema import meetup_schema
from integrations.sandbox.meetup.state import (
    DEFAULT_RSVP_FILTER,
    GROUP_ID,
    GROUP_TIMEZONE,
    ORGANIZER,
    RSVP_STATUSES,
    MeetupSandbox,
)
from integrations.sandbox.meetup.timefmt import meetup_datetime, parse_start

log = logging.getLogger("hub.sandbox.meetup")

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 20  # Event.rsvps.first: "Defaults to 20 rsvps"


class FetchError(Exception):
    """A resolver refusing a value (bad cursor, hidden field): a DataFetchingException."""


# =========================================================================== helpers


def cursor(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode()


def decode_cursor(value: str | None) -> int:
    """The offset *after* which the next page starts (-1 when there is no cursor)."""
    if value in (None, ""):
        return -1
    try:
        offset = int(base64.b64decode(str(value).encode(), validate=True).decode())
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise FetchError(f"Invalid cursor '{value}'") from None
    if offset < 0:
        raise FetchError(f"Invalid cursor '{value}'")
    return offset


def page_size(first: int | None) -> int:
    if first is None:
        return DEFAULT_PAGE_SIZE
    if first < 0:
        raise FetchError(f"first must not be negative (got {first})")
    return min(first, MAX_PAGE_SIZE)


def page_info(offset: int, size: int, total: int) -> dict[str, Any]:
    return {
        "hasNextPage": offset + size < total,
        "hasPreviousPage": offset > 0,
        "startCursor": cursor(offset) if size else None,
        "endCursor": cursor(offset + size - 1) if size else None,
    }


def base_url(info: GraphQLResolveInfo) -> str:
    return info.context["base_url"]


def field_resolver(source: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
    """Dict lookup; callables are called with the arguments; absent keys are refused."""
    if not isinstance(source, Mapping):
        return getattr(source, info.field_name, None)
    if info.field_name not in source:
        raise FetchError(
            f"{info.parent_type.name}.{info.field_name} is not emulated by the Meetup sandbox"
        )
    value = source[info.field_name]
    return value(info, **args) if callable(value) else value


# =========================================================================== objects


class Objects:
    """Builds the GraphQL objects of one sandbox."""

    def __init__(self, sandbox: MeetupSandbox) -> None:
        self.sb = sandbox

    # ----------------------------------------------------------------- members, group
    @staticmethod
    def member(member: dict[str, str], *, is_self: bool = False) -> dict[str, Any]:
        def email(_info: GraphQLResolveInfo) -> str:
            if is_self:
                return "organizer@sandbox.meetup.invalid"
            # Meetup never shows organizers their members' e-mail addresses.
            raise FetchError("Not authorized to access Member.email")

        return {
            "id": member["id"],
            "name": member["name"],
            "email": email,
            "memberUrl": lambda info: f"{base_url(info)}/members/{member['id']}/",
            "bio": None,
            "isOrganizer": is_self,
            "isLeader": is_self,
        }

    def group(self) -> dict[str, Any]:
        urlname = self.sb.group_urlname
        return {
            "id": GROUP_ID,
            "name": urlname.replace("-", " ").title(),
            "urlname": urlname,
            "timezone": GROUP_TIMEZONE,
            "country": self.sb.group_country,
            "city": "İstanbul",
            "isPrivate": False,
            "link": lambda info: f"{base_url(info)}/{urlname}/",
            "organizer": self.member(ORGANIZER, is_self=True),
            "events": self.event_connection,
        }

    def event_connection(
        self,
        _info: GraphQLResolveInfo,
        first: int | None = None,
        after: str | None = None,
        filter: dict[str, Any] | None = None,
        sort: str | None = None,
        status: str | None = None,
    ) -> dict[str, Any]:
        size = page_size(first)
        offset = decode_cursor(after) + 1
        flt = filter or {}
        wanted = set(flt.get("status") or []) | ({status} if status else set())
        after_at = parse_start(flt.get("afterDateTime")) if flt.get("afterDateTime") else None
        before_at = parse_start(flt.get("beforeDateTime")) if flt.get("beforeDateTime") else None
        title = (flt.get("title") or "").casefold()
        matched = []
        for event in self.sb.events():
            start = self.sb.starts(event)
            if wanted and self.sb.status(event) not in wanted:
                continue
            if after_at and start < after_at:
                continue
            if before_at and start > before_at:
                continue
            if title and title not in event["title"].casefold():
                continue
            matched.append(event)
        if sort == "DESC":
            matched.reverse()
        page = matched[offset : offset + size]
        return {
            "totalCount": len(matched),
            "pageInfo": page_info(offset, len(page), len(matched)),
            "edges": [
                {"cursor": cursor(offset + i), "node": self.event(e)} for i, e in enumerate(page)
            ],
        }

    # ----------------------------------------------------------------- events
    def event(self, event: dict[str, Any]) -> dict[str, Any]:
        sb, eid = self.sb, event["id"]
        fee = event.get("fee")
        venue_id = event.get("venueId")
        online = venue_id == "online"
        venues = []
        if online:
            venues = [{"id": "online", "name": "Online event", "venueType": "online"}]
        elif venue_id:
            venues = [{"id": venue_id, "name": None, "venueType": ""}]
        return {
            "id": eid,
            "token": event["token"],
            "title": event["title"],
            "description": event["description"],
            "eventUrl": lambda info: f"{base_url(info)}/{event['groupUrlname']}/events/{eid}/",
            "status": sb.status(event),
            "dateTime": event["dateTime"],
            "endTime": meetup_datetime(sb.ends(event)),
            "duration": event["duration"],
            "createdTime": event["createdTime"],
            "eventType": "ONLINE" if online else "PHYSICAL",
            "howToFindUs": event.get("howToFindUs"),
            "maxTickets": event.get("rsvpLimit") or 0,
            "waitlistMode": sb.waitlist_mode(event),
            "guestLimit": event.get("guestLimit", 0),
            "numberOfAllowedGuests": event.get("guestLimit", 0),
            "guestsAllowed": bool(event.get("guestLimit")),
            "isAttending": False,
            "isSaved": False,
            "rsvpQuestions": [],
            "group": lambda _info: self.group(),
            "venues": venues,
            "rsvpSettings": {
                "rsvpOpenTime": event.get("rsvpOpenTime"),
                "rsvpCloseTime": event.get("rsvpCloseTime"),
                "rsvpsClosed": event["rsvpsClosed"],
            },
            "feeSettings": (
                {
                    "amount": float(fee["amount"]),
                    "currency": fee["currency"],
                    "accepts": fee["paymentMethod"],
                    "required": True,
                    "hasPromoCodes": False,
                    "earlyBirdDiscount": None,
                    "refundPolicy": (
                        {"notes": fee["refundPolicy"], "days": None}
                        if fee.get("refundPolicy")
                        else None
                    ),
                }
                if fee
                else None
            ),
            "rsvps": lambda info, **args: self.rsvp_connection(eid, **args),
            "hostRsvps": lambda info, **args: self.host_rsvps(eid, **args),
        }

    def _event_by_id(self, event_id: Any) -> dict[str, Any] | None:
        event = self.sb.get_event(event_id)
        return self.event(event) if event else None

    # ----------------------------------------------------------------- RSVPs
    def rsvp(self, rsvp: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": rsvp["id"],
            "status": rsvp["status"],
            "guestsCount": rsvp["guestsCount"],
            "updated": rsvp["updated"],
            "isHost": rsvp["isHost"],
            "isFirstEvent": False,
            "member": self.member(rsvp["member"], is_self=rsvp["member"]["id"] == ORGANIZER["id"]),
            "event": lambda _info: self._event_by_id(rsvp["eventId"]),
        }

    def rsvp_connection(
        self,
        event_id: str,
        first: int | None = None,
        after: str | None = None,
        filter: dict[str, Any] | None = None,
        sort: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        size = page_size(first)
        offset = decode_cursor(after) + 1
        statuses = tuple((filter or {}).get("rsvpStatus") or DEFAULT_RSVP_FILTER)
        if "HAVENT" in statuses:  # "A filter containing HAVENT will only return HAVENT"
            statuses = ("HAVENT",)
        statuses = tuple(s for s in statuses if s in RSVP_STATUSES)
        count = self.sb.count
        total = count(event_id, statuses)
        rows = self.sb.rsvps(event_id, statuses, offset, size)
        return {
            "totalCount": total,
            "yesCount": count(event_id, ("YES",)),
            "waitlistCount": count(event_id, ("WAITLIST",)),
            "noCount": count(event_id, ("NO",)),
            "attendedCount": count(event_id, ("ATTENDED",)),
            "noShowCount": count(event_id, ("NO_SHOW",)),
            "absentCount": count(event_id, ("EXCUSED_ABSENCE",)),
            "pageInfo": page_info(offset, len(rows), total),
            "edges": [
                {"cursor": cursor(offset + i), "node": self.rsvp(r)} for i, r in enumerate(rows)
            ],
        }

    def host_rsvps(
        self, event_id: str, first: int | None = None, after: str | None = None
    ) -> dict[str, Any]:
        hosts = [r for r in self.sb.store.all("rsvp", scope=event_id) if r["isHost"]]
        size, offset = page_size(first), decode_cursor(after) + 1
        page = hosts[offset : offset + size]
        return {
            "totalCount": len(hosts),
            "pageInfo": page_info(offset, len(page), len(hosts)),
            "edges": [
                {"cursor": cursor(offset + i), "node": self.rsvp(r)} for i, r in enumerate(page)
            ],
        }

    # ----------------------------------------------------------------- roots
    def _payload(self, result: dict[str, Any]) -> dict[str, Any]:
        out = dict(result)
        if "event" in out:
            event_id = out["event"]
            out["event"] = (lambda _info: self._event_by_id(event_id)) if event_id else None
        return out

    def query_root(self) -> dict[str, Any]:
        return {
            "event": lambda _info, id: self._event_by_id(id),
            "groupByUrlname": lambda _info, urlname: (
                self.group() if urlname == self.sb.group_urlname else None
            ),
            "self": self.member(ORGANIZER, is_self=True),
        }

    def mutation_root(self) -> dict[str, Any]:
        def mutation(handler: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable:
            return lambda _info, input: self._payload(handler(input))

        sb = self.sb
        return {
            "createEvent": mutation(sb.create_event),
            "editEvent": mutation(sb.edit_event),
            "publishEventDraft": mutation(sb.publish_draft),
            "closeEventRsvps": mutation(lambda d: sb.set_rsvps_closed(d, True)),
            "openEventRsvps": mutation(lambda d: sb.set_rsvps_closed(d, False)),
            "deleteEvent": mutation(sb.delete_event),
        }


# =========================================================================== execution


def request_error(
    message: str, classification: str, locations: list[dict[str, int]] | None = None
) -> dict[str, Any]:
    return {
        "message": message,
        "locations": locations or [],
        "extensions": {"classification": classification},
    }


def _locations(error: GraphQLError) -> list[dict[str, int]]:
    return [{"line": loc.line, "column": loc.column} for loc in error.locations or []]


def _field_error(error: GraphQLError) -> dict[str, Any]:
    path = list(error.path or [])
    original = error.original_error
    if isinstance(original, FetchError | None):
        text = error.message
    else:  # a resolver bug: say so without a traceback, like graphql-java
        log.error("meetup sandbox: error while fetching %s", path, exc_info=original)
        text = f"Internal error: {type(original).__name__}"
    where = "/" + "/".join(str(p) for p in path)
    return {
        "message": f"Exception while fetching data ({where}) : {text}",
        "locations": _locations(error),
        "path": path,
        "extensions": {"classification": "DataFetchingException"},
    }


def run_graphql(
    sandbox: MeetupSandbox,
    query: str,
    variables: dict[str, Any] | None,
    operation_name: str | None,
    *,
    public_base_url: str,
) -> dict[str, Any]:
    """The JSON reply to one GraphQL request (always answered with HTTP 200)."""
    schema = meetup_schema()
    try:
        document = parse(query)
    except GraphQLSyntaxError as exc:
        return {"errors": [request_error(exc.message, "InvalidSyntax", _locations(exc))]}
    problems = validate(schema, document)
    if problems:
        return {
            "errors": [request_error(e.message, "ValidationError", _locations(e)) for e in problems]
        }
    operation = get_operation_ast(document, operation_name)
    if not isinstance(operation, OperationDefinitionNode):
        message = (
            f"Unknown operation named '{operation_name}'."
            if operation_name
            else "Must provide operation name if query contains multiple operations."
        )
        return {"errors": [request_error(message, "ValidationError")]}
    coerced = get_variable_values(schema, operation.variable_definitions or [], variables or {})
    if isinstance(coerced, list):  # graphql-java reports bad variable values as validation
        return {
            "errors": [request_error(e.message, "ValidationError", _locations(e)) for e in coerced]
        }
    objects = Objects(sandbox)
    root = (
        objects.mutation_root()
        if operation.operation is OperationType.MUTATION
        else objects.query_root()
    )
    result = execute(
        schema,
        document,
        root_value=root,
        context_value={"base_url": public_base_url.rstrip("/")},
        variable_values=variables or {},
        operation_name=operation_name,
        field_resolver=field_resolver,
    )
    if not isinstance(result, ExecutionResult):  # pragma: no cover - no async resolvers here
        raise TypeError("unexpected asynchronous execution")
    body: dict[str, Any] = {}
    if result.errors:
        body["errors"] = [_field_error(e) for e in result.errors]
    body["data"] = result.data
    return body
