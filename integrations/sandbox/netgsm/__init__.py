"""Netgsm SMS emulator (sandbox mode), built from Netgsm's own published description
(``contracts/netgsm-openapi.json``, ``contracts/netgsm-enums.ts``) and CONTRACTS.md
"3. Netgsm SMS", never from the hub's Netgsm adapter:

- :mod:`.keys`: the sandbox account (usercode, password, message header);
- :mod:`.wire`: the OpenAPI document (request validation), result and status codes;
- :mod:`.charset`: GSM-7 / Turkish single shift / UCS-2 segments, counted on its own;
- :mod:`.state`: the account, jobs and delivery statuses (SQLite);
- :mod:`.reports`: delivery reports pushed to the receiver, with retries;
- :mod:`.routes`: the HTTP surface and the ``/_sandbox`` test controls (``create_app``).
"""

from integrations.sandbox.netgsm.keys import NETGSM_MSGHEADER, NETGSM_PASSWORD, NETGSM_USERCODE
from integrations.sandbox.netgsm.routes import create_app, default_report_url
from integrations.sandbox.netgsm.state import NetgsmSandbox

__all__ = [
    "NETGSM_MSGHEADER",
    "NETGSM_PASSWORD",
    "NETGSM_USERCODE",
    "NetgsmSandbox",
    "create_app",
    "default_report_url",
]
