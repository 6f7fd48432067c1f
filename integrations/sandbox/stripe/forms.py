"""Stripe's request encoding: ``application/x-www-form-urlencoded`` with bracket keys.

``metadata[order_no]=A1`` is ``{"metadata": {"order_no": "A1"}}``;
``line_items[0][price_data][unit_amount]=5000`` is a list item; ``expand[]=x`` appends.
Values stay strings here (the typed parameter check converts them, see :mod:`.params`).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")


class FormError(ValueError):
    """A key that is not ``name[part][part]...`` or parts that contradict each other."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def _split(key: str) -> list[str]:
    match = _KEY.match(key)
    if not match:
        raise FormError(key, f"Invalid parameter name: {key}")
    return [match.group(1), *_PART.findall(match.group(2))]


def parse_form(body: str | bytes) -> dict[str, Any]:
    """Decode a form body (or query string) into nested dicts and lists.

    Indexed parts become lists in index order (``[0]``, ``[1]``; gaps are closed, as
    Stripe does); an empty part (``[]``) appends. A name used both as a value and as an
    object is refused, naming the parameter.
    """
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    root: dict[str, Any] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        parts = _split(key)
        node: dict[str, Any] = root
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise FormError(_join(parts[: depth + 1]), f"Invalid object: {_join(parts)}")
            node = child
        last = parts[-1]
        if last == "":
            node[f"\0{len(node)}"] = value  # append: a unique index kept in order
        elif isinstance(node.get(last), dict):
            raise FormError(_join(parts), f"Invalid object: {_join(parts)} has sub-keys")
        else:
            node[last] = value
    return _listify(root)


def _listify(node: Any) -> Any:
    """Dicts whose keys are all indexes (``0``, ``1``, or appended) become lists."""
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v) for k, v in node.items()}
    if converted and all(k.isdigit() or k.startswith("\0") for k in converted):
        ordered = sorted(converted.items(), key=lambda kv: _index(kv[0]))
        return [v for _, v in ordered]
    return {k[1:] if k.startswith("\0") else k: v for k, v in converted.items()}


def _index(key: str) -> int:
    return int(key[1:]) if key.startswith("\0") else int(key)


def _join(parts: list[str]) -> str:
    return parts[0] + "".join(f"[{p}]" for p in parts[1:])


def param_name(path: tuple[str | int, ...]) -> str:
    """("line_items", 0, "price_data") -> ``line_items[0][price_data]``, how Stripe names
    a nested parameter in its errors."""
    return _join([str(p) for p in path])
