"""The Meetup emulator's state and behaviour: events, RSVPs, the waitlist.

Inputs arrive here already validated and coerced by graphql-core against Meetup's real
schema (so types, enum values and unknown input fields never reach this module); what is
checked here are the rules the schema states in prose (title <= 80 characters, fee
limits, ...), answered as the mutation payload's own ``errors[{code, field, message}]``.

Internal event ``status`` is one of ``ACTIVE``, ``DRAFT`` or ``CANCELLED`` (values of the
real ``EventStatus`` enum); an ``ACTIVE`` event whose end has passed reads as ``PAST``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from integrations.sandbox.common import (
    PeopleFactory,
    SandboxControls,
    SandboxStore,
    iso_z,
    utcnow,
)
from integrations.sandbox.meetup.oauth import OAuthServer, random_token
from integrations.sandbox.meetup.timefmt import (
    GROUP_TIMEZONE,
    format_duration,
    meetup_datetime,
    parse_duration,
    parse_epoch_or_iso,
    parse_start,
)

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
DEFAULT_RSVP_FILTER = ("YES", "ATTENDED")  # RsvpFilter.rsvpStatus: "defaults to YES and ATTENDED"
SEAT_STATUSES = ("YES", "ATTENDED", "YES_PENDING_PAYMENT")  # statuses holding a seat
TITLE_MAX = 80  # CreateEventInput.title: "may not be longer than 80 characters"
DESCRIPTION_MAX = 50_000  # CreateEventInput.description: "May not be longer than 50000"
QUESTION_MAX = 250  # CreateEventInput.question
REFUND_POLICY_MAX = 250  # EventFeeOption.refundPolicy
# EventFeeOption.amount: "If the group is in the United States, this may not exceed 4999
# (for any currency). Otherwise, this may not exceed 1000000 (for any currency)."
FEE_MAX_US, FEE_MAX_ELSEWHERE = 4999, 1_000_000
DEFAULT_DURATION = timedelta(hours=3)  # EditEventInput.duration: "defaults to ... (3 hours)"

EVENT_ID_START = 310_000_001
RSVP_ID_START = 683_100_001
MEMBER_ID_START = 186_300_001
ORGANIZER = {"id": "186300000", "name": "Sandbox Organizer"}
GROUP_ID = "37000001"
GROUP_COUNTRY = "tr"


def payload_error(code: str, fld: str | None, message: str) -> dict[str, Any]:
    return {"code": code, "field": fld, "message": message}


def upgrade_event(event: dict[str, Any]) -> dict[str, Any]:
    """An event saved by the older hand-written emulator (a state file from a previous
    ``make up``) in today's shape: PUBLISHED -> ACTIVE, rsvpsOpen -> rsvpsClosed, the fee
    as EventFeeOption, times with seconds."""
    if "rsvpsClosed" in event:
        return event
    event["rsvpsClosed"] = not event.pop("rsvpsOpen", True)
    if event.get("status") == "PUBLISHED":
        event["status"] = "ACTIVE"
    fee = event.get("fee")
    if fee:
        event["fee"] = {
            "amount": int(fee.get("amount") or 0),
            "currency": fee.get("currency", "USD"),
            "paymentMethod": "CASH",
            "refundPolicy": None,
        }
    for key in ("dateTime", "createdTime"):
        if event.get(key):
            event[key] = meetup_datetime(datetime.fromisoformat(event[key].replace("Z", "+00:00")))
    return event


class MeetupSandbox:
    """The emulator's state and behaviour; ``app.extensions["sandbox"]`` is one of these."""

    def __init__(
        self,
        store: SandboxStore,
        controls: SandboxControls,
        oauth: OAuthServer,
        *,
        group_urlname: str,
        group_country: str = GROUP_COUNTRY,
    ) -> None:
        self.store = store
        self.controls = controls
        self.oauth = oauth
        self.group_urlname = group_urlname
        self.group_country = group_country

    # ----------------------------------------------------------------- OAuth (delegates)
    def revoke(self, refresh_token: str) -> int:
        return self.oauth.revoke(refresh_token)

    def token_valid(self, access_token: str | None) -> bool:
        return self.oauth.token_valid(access_token)

    # ----------------------------------------------------------------- reading
    def get_event(self, event_id: Any) -> dict[str, Any] | None:
        if not isinstance(event_id, str | int):
            return None
        event = self.store.get("event", str(event_id))
        return upgrade_event(event) if event else None

    def events(self) -> list[dict[str, Any]]:
        return [upgrade_event(e) for e in self.store.all("event", scope=self.group_urlname)]

    @staticmethod
    def starts(event: dict[str, Any]) -> datetime:
        return datetime.fromisoformat(event["dateTime"])

    def ends(self, event: dict[str, Any]) -> datetime:
        return self.starts(event) + (parse_duration(event["duration"]) or DEFAULT_DURATION)

    def status(self, event: dict[str, Any]) -> str:
        """The EventStatus the API shows: ACTIVE turns PAST once the event has ended."""
        if event["status"] == "ACTIVE" and self.ends(event) < utcnow():
            return "PAST"
        return event["status"]

    @staticmethod
    def waitlist_mode(event: dict[str, Any]) -> str:
        """WaitlistMode: "OFF: Waitlists are turned off only in cases where payments are
        required and there is an rsvp limit"; otherwise AUTO."""
        return "OFF" if event.get("fee") and event.get("rsvpLimit") else "AUTO"

    def count(self, event_id: str, statuses: tuple[str, ...]) -> int:
        marks = ",".join("?" * len(statuses))
        return self.store.count(
            "rsvp",
            scope=event_id,
            where=f"json_extract(data, '$.status') in ({marks})",
            params=statuses,
        )

    def rsvps(self, event_id: str, statuses: tuple[str, ...], offset: int, limit: int) -> list:
        marks = ",".join("?" * len(statuses))
        where = f"json_extract(data, '$.status') in ({marks})"
        rows = self.store.page(
            "rsvp", scope=event_id, limit=offset + limit, where=where, params=statuses
        )
        return [r for _, r in rows[offset:]]

    # ----------------------------------------------------------------- input rules
    def _fee(self, fee: dict[str, Any], errors: list[dict[str, Any]], where: str) -> Any:
        """A validated EventFeeOption as stored, None for a free event (amount 0)."""
        if fee.get("enabled") is False:
            return None
        amount = fee.get("amount", 0)
        limit = FEE_MAX_US if self.group_country == "us" else FEE_MAX_ELSEWHERE
        if amount < 0 or amount > limit:
            errors.append(
                payload_error(
                    "INVALID_FEE",
                    f"{where}.amount",
                    f"amount must be between 0 and {limit} for this group",
                )
            )
            return None
        policy = fee.get("refundPolicy")
        if policy is not None and len(policy) > REFUND_POLICY_MAX:
            errors.append(
                payload_error(
                    "FIELD_TOO_LONG",
                    f"{where}.refundPolicy",
                    f"refundPolicy must be at most {REFUND_POLICY_MAX} characters",
                )
            )
        if amount == 0:
            return None
        return {
            "amount": amount,
            "currency": fee.get("currency", "USD"),
            "paymentMethod": fee.get("paymentMethod", "CASH"),
            "refundPolicy": policy,
        }

    def _validate_event_input(
        self, data: dict[str, Any], *, creating: bool
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Payload errors, and the normalized changes."""
        errors: list[dict[str, Any]] = []
        changes: dict[str, Any] = {}
        if creating and data.get("groupUrlname") != self.group_urlname:
            errors.append(
                payload_error(
                    "GROUP_NOT_FOUND",
                    "groupUrlname",
                    f"Group '{data.get('groupUrlname')}' not found or you are not an organizer",
                )
            )
        if data.get("title") is not None:
            title = data["title"].strip()
            if len(title) > TITLE_MAX:
                errors.append(
                    payload_error(
                        "FIELD_TOO_LONG",
                        "title",
                        f"title must be at most {TITLE_MAX} characters (got {len(title)})",
                    )
                )
            elif not title:
                errors.append(
                    payload_error("REQUIRED_FIELD_MISSING", "title", "title must not be empty")
                )
            changes["title"] = title
        if data.get("description") is not None:
            if len(data["description"]) > DESCRIPTION_MAX:
                errors.append(
                    payload_error(
                        "FIELD_TOO_LONG",
                        "description",
                        f"description must be at most {DESCRIPTION_MAX} characters",
                    )
                )
            changes["description"] = data["description"]
        if data.get("startDateTime") is not None:
            start = parse_start(data["startDateTime"])
            if start is None:
                errors.append(
                    payload_error(
                        "INVALID_FORMAT",
                        "startDateTime",
                        "startDateTime must be an ISO-8601 date-time such as "
                        "2026-05-01T19:00:00+03:00",
                    )
                )
            else:
                changes["dateTime"] = meetup_datetime(start)
        if data.get("duration") is not None:
            raw = data["duration"].strip()
            # EditEventInput.duration is described in milliseconds, CreateEventInput's in
            # ISO 8601: both are read.
            delta = (
                timedelta(milliseconds=int(raw))
                if raw.isdigit() and not creating
                else parse_duration(raw)
            )
            if delta is None or delta <= timedelta(0) or delta > timedelta(days=14):
                errors.append(
                    payload_error(
                        "INVALID_DURATION",
                        "duration",
                        "duration must be a positive ISO-8601 duration up to 14 days, e.g. PT2H",
                    )
                )
            else:
                changes["duration"] = format_duration(delta)
        if "venueId" in data:
            venue = data["venueId"]
            changes["venueId"] = None if venue in (None, "0") else venue
        if data.get("howToFindUs") is not None:
            changes["howToFindUs"] = data["howToFindUs"] or None
        if data.get("question") is not None:
            if len(data["question"]) > QUESTION_MAX:
                errors.append(
                    payload_error(
                        "FIELD_TOO_LONG",
                        "question",
                        f"question must be at most {QUESTION_MAX} characters",
                    )
                )
            changes["question"] = data["question"] or None
        if data.get("publishStatus") is not None:
            changes["status"] = "DRAFT" if data["publishStatus"] == "DRAFT" else "ACTIVE"
        settings = data.get("rsvpSettings")
        if settings is not None:
            self._rsvp_settings(settings, errors, changes)
        fee = data.get("feeOption")
        if fee is not None:
            if creating:  # EventFeeOption
                changes["fee"] = self._fee(fee, errors, "feeOption")
            elif not fee["enabled"]:  # EventFeeOptionEdit {enabled, fee}
                changes["fee"] = None
            elif fee.get("fee") is None:
                errors.append(
                    payload_error(
                        "INVALID_FEE", "feeOption.fee", "fee is required when enabled is true"
                    )
                )
            else:
                changes["fee"] = self._fee(fee["fee"], errors, "feeOption.fee")
        return errors, changes

    @staticmethod
    def _rsvp_settings(
        settings: dict[str, Any], errors: list[dict[str, Any]], changes: dict[str, Any]
    ) -> None:
        limit = settings.get("rsvpLimit")
        if limit is not None:
            if limit < 0:
                errors.append(
                    payload_error(
                        "INVALID_VALUE",
                        "rsvpSettings.rsvpLimit",
                        "rsvpLimit must be a positive integer, or 0 to remove the limit",
                    )
                )
            else:
                changes["rsvpLimit"] = limit or None  # "When ... 0, there will be no set limit"
        guests = settings.get("guestLimit")
        if guests is not None:
            if guests < 0:
                errors.append(
                    payload_error(
                        "INVALID_VALUE",
                        "rsvpSettings.guestLimit",
                        "guestLimit must be a non-negative integer",
                    )
                )
            else:
                changes["guestLimit"] = guests
        for key, duration_key in (
            ("rsvpOpenTime", "rsvpOpenDuration"),
            ("rsvpCloseTime", "rsvpCloseDuration"),
        ):
            if settings.get(duration_key) == "PT0S":  # "To remove ... set ... to PT0S"
                changes[key] = None
            elif settings.get(key) is not None:
                when = parse_epoch_or_iso(settings[key])
                if when is None:
                    errors.append(
                        payload_error(
                            "INVALID_FORMAT",
                            f"rsvpSettings.{key}",
                            f"{key} must be milliseconds since the epoch",
                        )
                    )
                else:
                    changes[key] = meetup_datetime(when)

    # ----------------------------------------------------------------- mutations
    def create_event(self, data: dict[str, Any]) -> dict[str, Any]:
        errors, changes = self._validate_event_input(data, creating=True)
        if errors:
            return {"event": None, "errors": errors}
        with self.store.atomic():
            event_id = str(self.store.next_counter("event_id", EVENT_ID_START))
            event = {
                "id": event_id,
                "token": random_token(12),
                "groupUrlname": self.group_urlname,
                "title": changes["title"],
                "description": changes["description"],
                "dateTime": changes["dateTime"],
                "duration": changes.get("duration", format_duration(DEFAULT_DURATION)),
                "venueId": changes.get("venueId"),
                "howToFindUs": changes.get("howToFindUs"),
                "question": changes.get("question"),
                "status": changes.get("status", "ACTIVE"),  # publishStatus defaults PUBLISHED
                "rsvpLimit": changes.get("rsvpLimit"),
                "guestLimit": changes.get("guestLimit", 2),  # "This defaults to 2."
                "rsvpOpenTime": changes.get("rsvpOpenTime"),
                "rsvpCloseTime": changes.get("rsvpCloseTime"),
                "rsvpsClosed": False,
                "fee": changes.get("fee"),
                "createdTime": meetup_datetime(utcnow()),
            }
            self.store.insert("event", event_id, event, scope=self.group_urlname)
            if data.get("selfRsvp", True):  # "This defaults to true."
                self._add_rsvp(event, ORGANIZER, status="YES", is_host=True)
        return {"event": event_id, "errors": None}

    def edit_event(self, data: dict[str, Any]) -> dict[str, Any]:
        with self.store.atomic():
            event = self.get_event(data.get("eventId"))
            if event is None:
                return {"event": None, "errors": [self._not_found(data.get("eventId"))]}
            errors, changes = self._validate_event_input(data, creating=False)
            if errors:
                return {"event": None, "errors": errors}
            event.update(changes)
            self.store.update("event", event["id"], event)
            self._promote_waitlist(event)
        return {"event": event["id"], "errors": None}

    @staticmethod
    def _not_found(event_id: Any) -> dict[str, Any]:
        return payload_error("EVENT_NOT_FOUND", "eventId", f"Event '{event_id}' not found")

    def _simple_mutation(
        self, data: dict[str, Any], change: Callable[[dict[str, Any]], str | None]
    ) -> dict[str, Any]:
        with self.store.atomic():
            event = self.get_event(data.get("eventId"))
            if event is None:
                return {"event": None, "errors": [self._not_found(data.get("eventId"))]}
            problem = change(event)
            if problem:
                return {
                    "event": None,
                    "errors": [payload_error("INVALID_STATE", "eventId", problem)],
                }
            self.store.update("event", event["id"], event)
            return {"event": event["id"], "errors": None}

    def publish_draft(self, data: dict[str, Any]) -> dict[str, Any]:
        def change(event: dict[str, Any]) -> str | None:
            if event["status"] != "DRAFT":
                return f"Event '{event['id']}' is not a draft"
            event["status"] = "ACTIVE"
            return None

        return self._simple_mutation(data, change)

    def set_rsvps_closed(self, data: dict[str, Any], closed: bool) -> dict[str, Any]:
        def change(event: dict[str, Any]) -> str | None:
            event["rsvpsClosed"] = closed
            return None

        return self._simple_mutation(data, change)

    def delete_event(self, data: dict[str, Any]) -> dict[str, Any]:
        """``removeFromCalendar`` (default true) deletes; false cancels the event."""
        with self.store.atomic():
            event = self.get_event(data.get("eventId"))
            if event is None:
                return {"success": False, "errors": [self._not_found(data.get("eventId"))]}
            if data.get("removeFromCalendar") is False:
                event["status"] = "CANCELLED"
                self.store.update("event", event["id"], event)
            else:
                self.store.delete("event", event["id"])
        return {"success": True, "errors": None}

    # ----------------------------------------------------------------- RSVPs
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
                "updated": meetup_datetime(utcnow()),
                "isHost": is_host,
                "member": member,
            },
            scope=event["id"],
        )
        return rsvp_id

    def simulate_registrations(
        self, event_id: str, count: int, seed: int | None = None
    ) -> list[str]:
        """``count`` people RSVP to a published event. Past ``rsvpLimit`` they join the
        waitlist (waitlistMode AUTO) or, for a paid event with a limit (waitlistMode OFF),
        are turned away. Raises KeyError (no event) or ValueError (not open for RSVPs)."""
        people = PeopleFactory(seed).people(max(int(count), 0))
        ids: list[str] = []
        with self.store.atomic():
            event = self.get_event(event_id)
            if event is None:
                raise KeyError(f"event {event_id} not found")
            if self.status(event) != "ACTIVE":
                raise ValueError(f"event {event_id} is {self.status(event)}: nobody can RSVP")
            if event["rsvpsClosed"]:
                raise ValueError(f"RSVPs are closed for event {event_id}")
            taken = self.count(event["id"], SEAT_STATUSES)
            limit = event["rsvpLimit"]
            waitlist = self.waitlist_mode(event) == "AUTO"
            for person in people:
                full = limit is not None and taken >= limit
                if full and not waitlist:
                    break
                member_id = str(self.store.next_counter("member_id", MEMBER_ID_START))
                status = "WAITLIST" if full else "YES"
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
            rsvp["updated"] = meetup_datetime(utcnow())
            self.store.update("rsvp", rsvp_id, rsvp)
            event = self.get_event(rsvp["eventId"])
            if event is not None:
                self._promote_waitlist(event)
        return rsvp

    def _promote_waitlist(self, event: dict[str, Any]) -> None:
        """Meetup moves the waitlist up by itself when seats free (contract Uncertain #3)."""
        limit = event.get("rsvpLimit")
        free = None if limit is None else limit - self.count(event["id"], SEAT_STATUSES)
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
            rsvp["updated"] = meetup_datetime(utcnow())
            self.store.update("rsvp", rsvp["id"], rsvp)


__all__ = [
    "DEFAULT_RSVP_FILTER",
    "GROUP_TIMEZONE",
    "ORGANIZER",
    "RSVP_STATUSES",
    "MeetupSandbox",
    "iso_z",
]
