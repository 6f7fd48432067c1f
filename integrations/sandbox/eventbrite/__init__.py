"""Eventbrite REST v3 emulator (CONTRACTS.md Part 1 section 2), one job per module:

- :mod:`.validation`: what it accepts and the documented errors it answers with;
- :mod:`.state`: events, ticket classes, payment options, orders, attendees, webhooks
  (SQLite through :class:`~integrations.sandbox.common.SandboxStore`);
- :mod:`.simulation`: buyers and door staff (orders, refunds, cancels, check-ins);
- :mod:`.webhooks`: content-free deliveries, sent concurrently per endpoint;
- :mod:`.routes`: the HTTP surface (``create_app``); faults come from
  :func:`~integrations.sandbox.common.install_controls`.

Switching the adapter from this sandbox to www.eventbriteapi.com changes only the base URL
and the token. Nothing here imports adapter code: both sides are written from the contract.
"""

from integrations.sandbox.eventbrite.routes import create_app
from integrations.sandbox.eventbrite.state import EventbriteSandbox

__all__ = ["EventbriteSandbox", "create_app"]
