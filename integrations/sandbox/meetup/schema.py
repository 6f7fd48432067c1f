"""Meetup's real GraphQL schema, built from the published introspection reply.

``contracts/meetup-gql-ext.introspection.json`` is Meetup's own gql-ext introspection
(252 types, recorded from the live API; provenance in ``contracts/README.md``). The
emulator builds its schema from it with graphql-core's ``build_client_schema`` and
validates and executes every document against it, so a field, argument, input field or
enum value the live API lacks is refused here exactly as it is there. Nothing in this
module is written by hand from the adapter's point of view.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from graphql import GraphQLSchema, build_client_schema, specified_directives

CONTRACT_PATH = (
    Path(__file__).resolve().parents[3] / "contracts" / "meetup-gql-ext.introspection.json"
)


@lru_cache(maxsize=1)
def introspection() -> dict:
    """The recorded introspection reply's ``data`` (``{"__schema": ...}``)."""
    with CONTRACT_PATH.open(encoding="utf-8") as handle:
        return json.load(handle)["data"]


@lru_cache(maxsize=1)
def meetup_schema() -> GraphQLSchema:
    """The live schema as a graphql-core ``GraphQLSchema`` (built once per process).

    The recording holds no ``directives`` entry (the recorder's introspection query did not
    ask for them), and ``build_client_schema`` then builds a schema with no directives at
    all. Meetup's server (graphql-java) always has the built-in ones, so ``@include``,
    ``@skip``, ``@deprecated`` and ``@specifiedBy`` are put back; nothing else is added.
    """
    built = build_client_schema(introspection())
    kwargs = built.to_kwargs()
    kwargs["directives"] = specified_directives
    return GraphQLSchema(**kwargs)


def enum_values(type_name: str) -> tuple[str, ...]:
    """The names of an enum of the real schema (for example ``EventStatus``)."""
    from graphql import GraphQLEnumType

    enum = meetup_schema().type_map[type_name]
    if not isinstance(enum, GraphQLEnumType):
        raise TypeError(f"{type_name} is not an enum")
    return tuple(enum.values)
