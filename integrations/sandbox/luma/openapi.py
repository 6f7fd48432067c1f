"""Luma's published OpenAPI documents (``contracts/luma-openapi-*.json``), loaded once and
used to validate what the emulator accepts and what it answers.

Three generations are served, each from its own document:

- ``legacy``: ``/public/v1/...`` (server ``https://public-api.lu.ma``);
- ``transitional``: ``/v1/event/...`` (server ``https://public-api.luma.com``);
- ``current``: ``/v1/events/...``, ``/v1/calendars/...``, webhooks (same server).

Loading normalises two things and nothing else (the files themselves are never edited):

- The legacy document says ``openapi: 3.1.0`` but is written in the 3.0 dialect:
  ``nullable: true`` next to ``type``. JSON Schema 2020-12 ignores ``nullable``, which would
  make every nullable field reject ``null``; it is read as 3.0 reads it (``anyOf`` with
  ``{"type": "null"}``).
- In the legacy document ``checked_in_at``, ``invited_at`` and ``joined_at`` are required
  non-nullable date-times and a calendar entry's ``geo_address_json`` a non-nullable object,
  although a guest who has not checked in has no check-in time and an online event has no
  address. The transitional document, describing the same objects, types all of them
  ``...|null`` (and the legacy ``event/get`` types ``geo_address_json`` nullable itself), so
  :data:`LEGACY_NULLABLE` makes those properties nullable in the legacy document.

:class:`Contract` answers three questions per request: which operation (generation, method,
path) it is, whether the request validates (:meth:`Contract.request_errors`), and whether a
response body validates (:meth:`Contract.response_errors`). :func:`project` keeps of an
object only the properties its schema declares, so an emulator-internal field can never
reach a client.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

CONTRACTS_DIR = Path(__file__).resolve().parents[3] / "contracts"
GENERATIONS = ("legacy", "transitional", "current")
LEGACY_NULLABLE = frozenset({"checked_in_at", "invited_at", "joined_at", "geo_address_json"})
_FORMATS = FormatChecker(["date-time"])


def document_path(generation: str) -> Path:
    return CONTRACTS_DIR / f"luma-openapi-{generation}.json"


@cache
def raw_document(generation: str) -> dict[str, Any]:
    """The document exactly as published (read once)."""
    return json.loads(document_path(generation).read_text(encoding="utf-8"))


@cache
def document(generation: str) -> dict[str, Any]:
    """The document as validated against: the legacy one normalised as described above."""
    doc = raw_document(generation)
    if generation != "legacy":
        return doc
    return _nullable_as_30(copy.deepcopy(doc), force=LEGACY_NULLABLE)


def _nullable_as_30(node: Any, *, force: frozenset[str], name: str | None = None) -> Any:
    if isinstance(node, list):
        return [_nullable_as_30(item, force=force) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            out[key] = {
                prop: _nullable_as_30(sub, force=force, name=prop) for prop, sub in value.items()
            }
        elif key in ("example", "examples", "enum", "default", "const"):
            out[key] = value
        else:
            out[key] = _nullable_as_30(value, force=force)
    nullable = out.pop("nullable", False) or (name in force and "type" in out)
    if nullable and "type" in out:
        return {"anyOf": [out, {"type": "null"}]}
    return out


# --------------------------------------------------------------------------- operations


@dataclass(frozen=True)
class Operation:
    generation: str
    method: str  # upper case
    path: str
    spec: dict[str, Any]

    @property
    def parameters(self) -> list[dict[str, Any]]:
        return list(self.spec.get("parameters") or [])

    def body_schema(self) -> dict[str, Any] | None:
        body = self.spec.get("requestBody") or {}
        return (body.get("content") or {}).get("application/json", {}).get("schema")

    def body_required(self) -> bool:
        return bool((self.spec.get("requestBody") or {}).get("required"))

    def response_schema(self, status: int = 200) -> dict[str, Any] | None:
        response = (self.spec.get("responses") or {}).get(str(status)) or {}
        return (response.get("content") or {}).get("application/json", {}).get("schema")


@dataclass(frozen=True)
class Problem:
    """One reason a request or response does not validate; ``field`` names where."""

    field: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class Contract:
    """All three documents, indexed by (method, path)."""

    def __init__(self, generations: Iterable[str] = GENERATIONS) -> None:
        self.operations: dict[tuple[str, str], Operation] = {}
        self.servers: dict[str, list[str]] = {}
        for generation in generations:
            doc = document(generation)
            self.servers[generation] = [s["url"] for s in doc.get("servers") or []]
            for path, item in doc["paths"].items():
                for method, spec in item.items():
                    if method in ("get", "post", "put", "patch", "delete"):
                        # A path in both the transitional and the current document (same
                        # server, e.g. /v1/entity/lookup) is served as the current one says.
                        key = (method.upper(), path)
                        self.operations[key] = Operation(generation, method.upper(), path, spec)

    def operation(self, method: str, path: str) -> Operation | None:
        return self.operations.get((method.upper(), path))

    def has_path(self, path: str) -> bool:
        return any(p == path for _, p in self.operations)

    # -- requests ------------------------------------------------------------------------
    def request_errors(
        self, op: Operation, query: Mapping[str, list[str]], body: Any, *, has_body: bool
    ) -> list[Problem]:
        """What is wrong with a request: missing or mistyped query parameters, a missing
        body, a body that does not match the operation's schema."""
        problems: list[Problem] = []
        for param in op.parameters:
            if param.get("in") != "query":
                continue
            name = param["name"]
            values = query.get(name) or []
            if not values:
                if param.get("required"):
                    problems.append(Problem(name, "is required"))
                continue
            schema = param.get("schema") or {}
            value = coerce_query(values, schema)
            problems += _errors(schema, value, name)
        schema = op.body_schema()
        if schema is not None:
            if not has_body:
                if op.body_required():
                    problems.append(Problem(None, "a JSON request body is required"))
            else:
                problems += _errors(schema, body, None)
        return problems

    # -- responses -----------------------------------------------------------------------
    def response_errors(self, op: Operation, body: Any, status: int = 200) -> list[Problem]:
        schema = op.response_schema(status)
        if schema is None:
            return []
        return _errors(schema, body, None)

    def webhook_schema(self, event_type: str) -> dict[str, Any] | None:
        """The payload schema of a webhook type (the current document's ``webhooks``)."""
        hook = (document("current").get("webhooks") or {}).get(event_type) or {}
        body = (hook.get("post") or {}).get("requestBody") or {}
        return (body.get("content") or {}).get("application/json", {}).get("schema")


@cache
def contract() -> Contract:
    return Contract()


def coerce_query(values: list[str], schema: dict[str, Any]) -> Any:
    """Query strings as the parameter's schema types them (OpenAPI form style)."""
    kind = schema.get("type")
    if kind == "array":
        items = schema.get("items") or {}
        return [_coerce_scalar(v, items.get("type")) for v in values]
    return _coerce_scalar(values[-1], kind)


def _coerce_scalar(value: str, kind: Any) -> Any:
    try:
        if kind == "number":
            number = float(value)
            return int(number) if number.is_integer() else number
        if kind == "integer":
            return int(value)
    except ValueError:
        return value
    if kind == "boolean":
        return {"true": True, "false": False}.get(value.lower(), value)
    return value


_VALIDATORS: dict[int, tuple[dict[str, Any], Draft202012Validator]] = {}


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    """A validator per schema object (the documents are loaded once and never change, so
    the object's identity is its key; the schema is kept alive with it)."""
    entry = _VALIDATORS.get(id(schema))
    if entry is None or entry[0] is not schema:
        entry = (schema, Draft202012Validator(schema, format_checker=_FORMATS))
        _VALIDATORS[id(schema)] = entry
    return entry[1]


def schema_errors(schema: dict[str, Any], value: Any) -> list[Problem]:
    """Every way ``value`` fails ``schema`` (empty when it validates)."""
    return _errors(schema, value, None)


def _errors(schema: dict[str, Any], value: Any, prefix: str | None) -> list[Problem]:
    out = []
    for error in sorted(validator(schema).iter_errors(value), key=lambda e: list(e.path)):
        out.append(Problem(_field(prefix, error), _message(error)))
    return out


def _field(prefix: str | None, error: ValidationError) -> str | None:
    parts = [str(p) for p in error.absolute_path]
    if error.validator == "required" and isinstance(error.validator_value, list):
        missing = [r for r in error.validator_value if r not in (error.instance or {})]
        if missing:
            parts.append(missing[0])
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set((error.schema.get("properties") or {}).keys())
        extra = sorted(k for k in error.instance if k not in allowed)
        if extra:
            parts.append(extra[0])
    name = ".".join(parts)
    if prefix:
        return f"{prefix}.{name}" if name else prefix
    return name or None


def _message(error: ValidationError) -> str:
    if error.validator == "additionalProperties":
        return "is not a documented property"
    if error.validator == "required":
        return "is required"
    if error.validator in ("anyOf", "oneOf"):
        return "matches none of the documented shapes"
    return error.message[:300]


# --------------------------------------------------------------------------- projection


def project(value: Any, schema: dict[str, Any] | None) -> Any:
    """``value`` with, in every object, only the properties ``schema`` declares there.

    Objects whose schema declares no properties are kept whole; of ``anyOf``/``oneOf``
    branches the first one the projected value validates against wins.
    """
    if schema is None or value is None:
        return value
    if "allOf" in schema:
        if isinstance(value, dict):
            merged: dict[str, Any] = {}
            for sub in schema["allOf"]:
                part = project(value, sub)
                if isinstance(part, dict):
                    merged.update(part)
            return merged
        return value
    branches = schema.get("anyOf") or schema.get("oneOf")
    if branches:
        candidates = [project(value, branch) for branch in branches]
        for branch, candidate in zip(branches, candidates, strict=True):
            if validator(branch).is_valid(candidate):
                return candidate
        return next((c for c in candidates if c != value), candidates[0])
    if isinstance(value, dict) and "properties" in schema:
        props = schema["properties"]
        return {k: project(v, props[k]) for k, v in value.items() if k in props}
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [project(item, schema["items"]) for item in value]
    return value
