"""The identity resolution of the dbt project, in Python, from hub.members' rules.

dbt resolves members in SQL (models/intermediate/int_identity__*). This is the same
resolution written with hub.members' own functions, so a test can prove both agree on
the same inputs, member ids included:

* keys: ``identity_email(email)`` (normalize_email, then provider folding),
  ``normalize_phone(phone)`` (E.164), and the platform account (Meetup member id, Luma
  user id) from the platform JSON;
* records sharing any key are one member, transitively (union-find);
* a member's id is md5 of its earliest record's label: first seen (UTC, microseconds),
  platform, platform registration id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hub.members import identity_email, normalize_phone


@dataclass(frozen=True)
class IdentityRecord:
    record_id: int
    platform: str
    platform_registration_id: str
    first_seen_at: datetime
    email: str | None = None
    phone: str | None = None
    raw: Mapping[str, Any] | None = None


def account_key(platform: str, raw: Mapping[str, Any] | None) -> str | None:
    raw = raw or {}
    if platform == "meetup":
        member = raw.get("member") if isinstance(raw.get("member"), Mapping) else {}
        value = member.get("id")
        return f"meetup:{value}" if value not in (None, "") else None
    if platform == "luma":
        value = raw.get("user_api_id")
        return f"luma:{value}" if value not in (None, "") else None
    return None


def record_keys(record: IdentityRecord) -> list[tuple[str, str]]:
    keys = []
    email = identity_email(record.email)
    if email:
        keys.append(("email", email))
    phone = normalize_phone(record.phone)
    if phone:
        keys.append(("phone", phone))
    account = account_key(record.platform, record.raw)
    if account:
        keys.append(("account", account))
    return keys


def record_label(record: IdentityRecord) -> str:
    when = record.first_seen_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return f"{when}|{record.platform}|{record.platform_registration_id}"


def resolve_members(records: Iterable[IdentityRecord]) -> dict[int, str]:
    """record id -> member id (md5 hex of the component's smallest label)."""
    records = list(records)
    parent = {r.record_id: r.record_id for r in records}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    owner: dict[tuple[str, str], int] = {}
    for r in records:
        for key in record_keys(r):
            if key in owner:
                a, b = find(owner[key]), find(r.record_id)
                if a != b:
                    parent[a] = b
            else:
                owner[key] = r.record_id
    smallest: dict[int, str] = {}
    for r in records:
        root = find(r.record_id)
        label = record_label(r)
        if root not in smallest or label < smallest[root]:
            smallest[root] = label
    return {
        r.record_id: hashlib.md5(smallest[find(r.record_id)].encode()).hexdigest() for r in records
    }
