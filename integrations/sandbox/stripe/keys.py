"""The sandbox account's API key, shaped like a Stripe test-mode secret key.

Not a secret (the emulator runs on loopback); the hub still keeps it in its settings
(``HUB_STRIPE_SECRET_KEY``) or the vault entry ``stripe`` like a real key, so sandbox mode
runs the same code as live mode.
"""

STRIPE_SECRET_KEY = "sk_test_51HubSandbox0000000000000000000000000000sandboxKey7c1e9a4f"
