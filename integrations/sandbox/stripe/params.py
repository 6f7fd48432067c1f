"""What each emulated endpoint accepts, read from the official SDK's typed parameters
(``stripe/params/...``: generated from Stripe's OpenAPI document), not from the hub's code.

:func:`check` walks decoded form parameters against a ``TypedDict`` such as
``SessionCreateParams``: an unknown key is ``parameter_unknown``, a value that is not an
integer where one is expected ``parameter_invalid_integer``, a value outside a closed enum
an ``invalid_request_error`` naming the accepted values, as Stripe answers. Values are
converted (integers, booleans) on the way. Anything the walker cannot read from the SDK's
annotations is accepted as is (the handler still checks what it uses).
"""

from __future__ import annotations

import sys
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any, ForwardRef

from typing_extensions import is_typeddict

from integrations.sandbox.stripe.forms import param_name


class ParamError(ValueError):
    def __init__(self, param: str, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.code = code


@dataclass(frozen=True)
class Node:
    kind: str  # object | list | map | int | bool | enum | any
    fields: tuple[tuple[str, Any], ...] = ()  # object: (name, lazy node source)
    item: Any = None  # list / map: node source of the items
    values: tuple[str, ...] = ()  # enum
    empty_ok: bool = False  # Literal[''] is accepted (unset)
    module: str = ""


ANY = Node("any")


def _request_option_names() -> set[str]:
    from stripe._request_options import RequestOptions

    return set(getattr(RequestOptions, "__annotations__", {}))


def _resolve(annotation: Any, module: str) -> Any:
    if isinstance(annotation, str):
        annotation = ForwardRef(annotation)
    if isinstance(annotation, ForwardRef):
        namespace = dict(vars(typing))
        namespace.update(vars(sys.modules[module]))
        try:
            return eval(annotation.__forward_arg__, namespace)
        except Exception:
            return Any
    return annotation


def node_for(annotation: Any, module: str) -> Node:
    """The parameter node of one annotation of the SDK's params modules."""
    annotation = _resolve(annotation, module)
    origin = typing.get_origin(annotation)
    name = getattr(origin, "__name__", "") or getattr(origin, "_name", "") or ""
    if name in ("NotRequired", "Required") or str(origin).endswith(("NotRequired", "Required")):
        return node_for(typing.get_args(annotation)[0], module)
    if is_typeddict(annotation):
        owner = annotation.__module__
        skip = _request_option_names()
        fields = tuple(
            (key, (value, owner))
            for key, value in annotation.__annotations__.items()
            if key not in skip
        )
        return Node("object", fields=fields, module=owner)
    if origin in (list, typing.List):  # noqa: UP006
        return Node("list", item=(typing.get_args(annotation)[0], module))
    if origin in (dict, typing.Dict):  # noqa: UP006
        return Node("map", item=(typing.get_args(annotation)[1], module))
    if origin is typing.Literal:
        return Node("enum", values=tuple(str(v) for v in typing.get_args(annotation)))
    if origin is typing.Union or type(annotation).__name__ == "UnionType":
        members = [node_for(a, module) for a in typing.get_args(annotation)]
        empty_ok = any(m.kind == "enum" and m.values == ("",) for m in members)
        structured = [m for m in members if m.kind in ("object", "list", "map")]
        if structured:
            best = structured[0]
            return Node(best.kind, best.fields, best.item, best.values, empty_ok, best.module)
        enums = [m for m in members if m.kind == "enum" and m.values != ("",)]
        if any(m.kind == "any" for m in members) or not enums:
            scalars = [m for m in members if m.kind in ("int", "bool")]
            if scalars and len(scalars) == len([m for m in members if m.values != ("",)]):
                return Node(scalars[0].kind, empty_ok=empty_ok)
            return Node("any", empty_ok=empty_ok)
        return Node("enum", values=tuple(v for m in enums for v in m.values), empty_ok=empty_ok)
    if annotation is bool:
        return Node("bool")
    if annotation is int:
        return Node("int")
    if getattr(annotation, "__name__", "") == "UntypedStripeObject":
        return Node("map", item=(Any, module))
    if getattr(origin, "__name__", "") == "UntypedStripeObject":
        return Node("map", item=(Any, module))
    return ANY


@cache
def _cached(source: Any) -> Node:
    annotation, module = source
    return node_for(annotation, module)


def _child(source: Any) -> Node:
    try:
        return _cached(source)
    except TypeError:  # an unhashable annotation
        return node_for(*source)


def check(value: Any, node: Node, path: tuple[str | int, ...] = ()) -> Any:
    """``value`` converted along ``node``; raises :class:`ParamError` like Stripe."""
    name = param_name(path) if path else "request"
    if node.empty_ok and value == "":
        return ""
    if node.kind == "object":
        if not isinstance(value, dict):
            raise ParamError(name, f"Invalid object: {name}", "parameter_invalid_object")
        fields = dict(node.fields)
        out = {}
        for key, sub in value.items():
            if key not in fields:
                raise ParamError(
                    param_name((*path, key)),
                    f"Received unknown parameter: {param_name((*path, key))}",
                    "parameter_unknown",
                )
            out[key] = check(sub, _child(fields[key]), (*path, key))
        return out
    if node.kind == "list":
        if isinstance(value, dict) and not value:
            value = []
        if not isinstance(value, list):
            raise ParamError(name, f"Invalid array: {name}", "parameter_invalid_array")
        item = _child(node.item)
        return [check(v, item, (*path, i)) for i, v in enumerate(value)]
    if node.kind == "map":
        if not isinstance(value, dict):
            raise ParamError(name, f"Invalid object: {name}", "parameter_invalid_object")
        item = _child(node.item)
        return {k: check(v, item, (*path, k)) for k, v in value.items()}
    if isinstance(value, dict | list):
        raise ParamError(name, f"Invalid value for {name}: expected a scalar")
    if node.kind == "int":
        try:
            return int(str(value), 10)
        except ValueError:
            raise ParamError(
                name, f"Invalid integer: {value}", "parameter_invalid_integer"
            ) from None
    if node.kind == "bool":
        if str(value) not in ("true", "false"):
            raise ParamError(name, f"Invalid boolean: {value}")
        return str(value) == "true"
    if node.kind == "enum" and str(value) not in node.values:
        choices = [v for v in node.values if v]
        listed = ", ".join(choices[:-1]) + (f", or {choices[-1]}" if len(choices) > 1 else "")
        raise ParamError(
            name, f"Invalid {path[-1] if path else name}: must be one of {listed or choices}"
        )
    return value


def params_node(typed: type) -> Node:
    """The node of a whole request (``SessionCreateParams``, ``RefundCreateParams``)."""
    return node_for(typed, typed.__module__)
