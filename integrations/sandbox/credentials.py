"""Credentials the sandbox emulators accept, shaped like the real ones.

They are not secrets (the sandboxes run on loopback) but the hub still stores them in the
vault like real ones, so the sandbox path exercises the same code as live mode.
"""

# Eventbrite private tokens are 20 upper-case letters/digits.
EVENTBRITE_TOKEN = "SANDBOXEBTOKEN7Q2XW4"
EVENTBRITE_ORGANIZATION_ID = "1000000001"
# Country the sandbox organization's Eventbrite payouts go to (checkout settings).
EVENTBRITE_PAYOUT_COUNTRY = "TR"

# Luma API keys are "secret-" + a random string.
LUMA_API_KEY = "secret-sandbox-luma-9f3c2e7a1b"
LUMA_CALENDAR_ID = "cal-sandboxhub01"

# Meetup OAuth2 consumer (client) registered with the sandbox.
MEETUP_CLIENT_ID = "sandbox-meetup-client"
MEETUP_CLIENT_SECRET = "sandbox-meetup-secret-4b1d"
MEETUP_REDIRECT_URI = "http://127.0.0.1:5000/integrations/meetup/callback"
MEETUP_GROUP_URLNAME = "istanbul-python"

# Receiver secrets used in sandbox mode when the HUB_* variable is unset (`hub up` and
# the demo pass them to the receiver they start, and sign their requests with them).
RECEIVER_SECRETS = {
    "stripe_webhook_secret": "whsec_sandbox_3f9a1c7e5b2d4a6c8e0f",
    "mailgun_signing_key": "key-sandbox-mailgun-5e8c1a",
    "sendgrid_inbound_token": "sandbox-sendgrid-inbound-7d2b",
    "whatsapp_app_secret": "sandbox-whatsapp-app-secret-91c4",
    "whatsapp_verify_token": "sandbox-whatsapp-verify-token",
    "netgsm_report_token": "sandbox-netgsm-report-token",
}
