"""Luma public API emulator (sandbox mode), validated by Luma's own OpenAPI documents.

- :mod:`.openapi`: the three documents (``contracts/luma-openapi-*.json``), request and
  response validation, projection onto a response schema;
- :mod:`.state`: events, ticket types, guests, capacity and approval;
- :mod:`.views`: the stored documents as each generation names them;
- :mod:`.webhooks`: subscriptions and deliveries;
- :mod:`.routes`: the Flask app (faults from :mod:`integrations.sandbox.common`).
"""

from integrations.sandbox.luma.routes import create_app
from integrations.sandbox.luma.state import LumaSandbox

__all__ = ["LumaSandbox", "create_app"]
