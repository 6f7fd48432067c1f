"""Meetup sandbox: a local emulator of Meetup's GraphQL API (``/gql-ext``) and OAuth2 server.

Built from Meetup's own published schema (``contracts/meetup-gql-ext.introspection.json``):
graphql-core builds the schema from the introspection reply and validates and executes
every document against it, so the emulator accepts exactly the fields, arguments, input
fields and enum values the live API has, and answers introspection for standard GraphQL
clients. Wire format: ../shared/CONTRACTS.md (Part 1, section 1).

Modules:

- ``schema``: the real schema (``build_client_schema``);
- ``resolvers``: parsing, validation, variable coercion and execution, errors as Meetup's
  graphql-java server answers them (HTTP 200, ``extensions.classification``);
- ``state``: events, RSVPs, waitlist, the schema's prose rules as payload ``errors``;
- ``oauth``: the OAuth2 authorize/access endpoints (registered redirect URI only);
- ``app``: the Flask app, faults (``integrations.sandbox.common``), public event pages.

Meetup sends no webhooks, so neither does this sandbox: RSVPs are polled.

Sandbox-only controls (besides the common ``/_sandbox/config|reset|health``):

- ``POST /_sandbox/simulate/registrations`` ``{"event_id", "count", "seed"}`` -> ``{"ids"}``
- ``POST /_sandbox/simulate/status`` ``{"rsvp_id", "status"}`` -> ``{"rsvp"}``
- ``POST /_sandbox/oauth/revoke`` ``{"refresh_token"}`` -> ``{"revoked": n}``

Run standalone: ``python -m integrations.sandbox.meetup --port 8801 --state meetup.sqlite``
(or ``hub sandbox serve meetup``).
"""

from __future__ import annotations

from graphql import parse

from integrations.sandbox.meetup.app import create_app, main
from integrations.sandbox.meetup.resolvers import run_graphql
from integrations.sandbox.meetup.schema import meetup_schema
from integrations.sandbox.meetup.state import MeetupSandbox

__all__ = ["MeetupSandbox", "create_app", "main", "meetup_schema", "parse", "run_graphql"]
