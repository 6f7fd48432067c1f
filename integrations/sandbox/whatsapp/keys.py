"""Credentials the WhatsApp emulator accepts, shaped like Meta's (not secrets: loopback).

A Cloud API access token is an opaque ``EAA...`` string; a phone number id and a WhatsApp
Business Account id are numeric strings. The hub stores the token and phone number id in
the vault entry ``whatsapp`` like live ones.
"""

WHATSAPP_ACCESS_TOKEN = "EAASandboxHubWhatsAppToken0b7d2c9e4f1a"
WHATSAPP_PHONE_NUMBER_ID = "106540352242922"
WHATSAPP_BUSINESS_ACCOUNT_ID = "102290129340398"
WHATSAPP_DISPLAY_PHONE_NUMBER = "908505550101"
GRAPH_VERSION = "v21.0"  # the version the adapter pins (CONTRACTS.md Uncertainties #4)
