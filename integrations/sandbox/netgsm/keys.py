"""The sandbox Netgsm account, shaped like a real one: a usercode (the subscriber number,
10 digits), an API password and an approved message header (at most 11 characters).

Not secrets (the emulator runs on loopback); the hub still keeps them in the vault entry
``netgsm`` like real ones, so sandbox mode runs the same code as live mode.
"""

NETGSM_USERCODE = "8508400000"
NETGSM_PASSWORD = "sandbox-netgsm-Pa55"
NETGSM_MSGHEADER = "HUBSANDBOX"
