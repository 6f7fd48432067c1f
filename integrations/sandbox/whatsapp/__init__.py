"""WhatsApp Cloud API emulator (sandbox mode), built from CONTRACTS.md Part 2 §4 and the
shapes of pywa (david-lev/pywa: ``errors.py``, ``tests/data/updates``), never from the
hub's adapter:

- :mod:`.errors`: the Graph error envelope and codes;
- :mod:`.state`: approved templates, 24-hour windows, messages (SQLite);
- :mod:`.webhooks`: signed status / inbound-message notifications with retries;
- :mod:`.routes`: the HTTP surface and the ``/_sandbox`` test controls (``create_app``).
"""

from integrations.sandbox.whatsapp.keys import (
    GRAPH_VERSION,
    WHATSAPP_ACCESS_TOKEN,
    WHATSAPP_PHONE_NUMBER_ID,
)
from integrations.sandbox.whatsapp.routes import create_app
from integrations.sandbox.whatsapp.state import WhatsAppSandbox
from integrations.sandbox.whatsapp.webhooks import hub_signature

__all__ = [
    "GRAPH_VERSION",
    "WHATSAPP_ACCESS_TOKEN",
    "WHATSAPP_PHONE_NUMBER_ID",
    "WhatsAppSandbox",
    "create_app",
    "hub_signature",
]
