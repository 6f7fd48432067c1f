"""Stripe API emulator (sandbox mode), built from Stripe's own fixtures
(``contracts/stripe-fixtures3.json``) and the official SDK's typed parameters, never from
the hub's Stripe client:

- :mod:`.forms`: form bodies with bracket keys (``line_items[0][price_data][currency]``);
- :mod:`.params`: what each endpoint accepts (``stripe/params/...``), refusals as Stripe;
- :mod:`.objects`: sessions, intents, charges, refunds, events shaped from the fixtures;
- :mod:`.state`: the account (SQLite), Checkout's rules, expiry;
- :mod:`.webhooks`: signed event deliveries with retries;
- :mod:`.pages`: the hosted pay page (``id="pay"``, ``id="decline"``);
- :mod:`.routes`: the HTTP surface and the ``/_sandbox`` test controls (``create_app``).
"""

from integrations.sandbox.stripe.keys import STRIPE_SECRET_KEY
from integrations.sandbox.stripe.routes import create_app
from integrations.sandbox.stripe.state import StripeSandbox
from integrations.sandbox.stripe.webhooks import signature_header

__all__ = ["STRIPE_SECRET_KEY", "StripeSandbox", "create_app", "signature_header"]
