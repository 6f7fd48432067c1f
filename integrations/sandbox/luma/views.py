"""The stored documents as each generation of the API names them.

These functions build a superset (every field any generation can show, under both the
legacy and the later names); the route then keeps only what the operation's response
schema declares
(:func:`integrations.sandbox.luma.openapi.project`) and validates the result. ``root`` is
the sandbox's own base URL: public event pages and check-in codes point at the sandbox,
never at lu.ma.
"""

from __future__ import annotations

from typing import Any

from integrations.sandbox.luma.state import SANDBOX_HOST

_RENAMES = {
    "api_id": "id",
    "event_api_id": "event_id",
    "user_api_id": "user_id",
    "calendar_api_id": "calendar_id",
    "event_ticket_type_api_id": "event_ticket_type_id",
}


def renamed(obj: Any, *, keep_legacy: bool = False) -> Any:
    """Legacy names (``api_id``) to the later ones (``id``), recursively; with
    ``keep_legacy`` both (the transitional documents list both, the old ones deprecated)."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            value = renamed(value, keep_legacy=keep_legacy)
            if key in _RENAMES:
                out[_RENAMES[key]] = value
                if keep_legacy:
                    out[key] = value
            else:
                out[key] = value
        return out
    if isinstance(obj, list):
        return [renamed(v, keep_legacy=keep_legacy) for v in obj]
    return obj


def public_url(event: dict[str, Any], root: str) -> str:
    return f"{root.rstrip('/')}/{event['slug']}"


# --------------------------------------------------------------------------- events


def _location_type(event: dict[str, Any]) -> str:
    if event.get("geo_address_json"):
        return "offline"
    url = event.get("meeting_url") or ""
    for kind in ("zoom", "meet", "youtube", "twitch", "discord"):
        if kind in url:
            return kind
    return "unknown" if url else "missing"


def event_view(event: dict[str, Any], root: str) -> dict[str, Any]:
    """An event with every field of every generation, under both names (``api_id`` and
    ``id``); each operation's schema keeps its own (e.g. the legacy ``geo_address_json``
    keeps only ``address``)."""
    geo = event.get("geo_address_json")
    shown = renamed({**event, "url": public_url(event, root)}, keep_legacy=True)
    shown.update(
        platform="luma",
        geo_address_json=(
            None
            if geo is None
            else {
                "address": geo["address"],
                "city": None,
                "region": None,
                "country": None,
                "city_state": None,
                "full_address": geo["address"],
                "google_maps_place_id": None,
                "apple_maps_place_id": None,
                "description": None,
            }
        ),
        coordinate=None,
        location_type=_location_type(event),
        location_visibility="public",
        waitlist_status="enabled" if event.get("max_capacity") is not None else "disabled",
        feedback_email={"enabled": False},
        hosts=[host_view()],
        tags=[],
    )
    return shown


# --------------------------------------------------------------------------- guests


def guest_view(guest: dict[str, Any], root: str) -> dict[str, Any]:
    """A guest under both names; the check-in code points at the sandbox."""
    shown = {k: v for k, v in guest.items() if k != "proxy_key"}
    shown["check_in_qr_code"] = (
        f"{root.rstrip('/')}/check-in/{guest['event_api_id']}?pk={guest['proxy_key']}"
    )
    tickets = guest.get("event_tickets") or []
    shown["event_ticket"] = tickets[0] if tickets else None
    return renamed(shown, keep_legacy=True)


# --------------------------------------------------------------------------- ticket types


def ticket_type_view(ticket_type: dict[str, Any]) -> dict[str, Any]:
    return renamed(ticket_type)


def ticket_type_transitional(ticket_type: dict[str, Any]) -> dict[str, Any]:
    """The transitional document names a paid ticket type ``fiat-price``."""
    shown = renamed(ticket_type, keep_legacy=True)
    shown["ethereum_token_requirements"] = []
    shown["membership_restriction"] = None
    if ticket_type["type"] == "paid":
        shown["type"] = "fiat-price"
    return shown


# --------------------------------------------------------------------------- the key's user


def host_view() -> dict[str, Any]:
    """The API key's user (``get-self``) and the events' host."""
    return renamed(SANDBOX_HOST, keep_legacy=True)
