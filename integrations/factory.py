"""Build ready-to-use adapters from settings and the vault (sandbox or live alike)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from hub.models import Platform
from hub.settings import Settings
from hub.vault import Vault, VaultTokenStore
from integrations.base import ChannelAdapter, ReconnectRequired

if TYPE_CHECKING:
    from integrations.meetup import MeetupOAuth

MEETUP_CLIENT_KEY = "meetup_oauth_client"  # vault entry: {client_id, client_secret, redirect_uri}


def _require(vault: Vault, platform: str, hint: str) -> dict:
    credentials = vault.get(platform)
    if not credentials:
        raise ReconnectRequired(platform, f"no credentials stored; run `{hint}`")
    return credentials


def meetup_oauth(
    settings: Settings, vault: Vault, client: httpx.AsyncClient | None = None
) -> MeetupOAuth:
    from integrations.meetup import MeetupOAuth

    app = _require(
        vault,
        MEETUP_CLIENT_KEY,
        "hub integrations set meetup client_id client_secret redirect_uri (values prompted)",
    )
    return MeetupOAuth(
        settings.base_url("meetup_oauth"),
        app["client_id"],
        app["client_secret"],
        app["redirect_uri"],
        client=client,
    )


def build_adapter(
    platform: Platform | str,
    settings: Settings,
    vault: Vault,
    client: httpx.AsyncClient | None = None,
) -> ChannelAdapter:
    platform = Platform(platform)
    if platform is Platform.MEETUP:
        from integrations.meetup import MeetupAdapter, MeetupTokens

        tokens = MeetupTokens(meetup_oauth(settings, vault, client), VaultTokenStore(vault))
        return MeetupAdapter(
            settings.base_url("meetup"),
            tokens=tokens,
            group_urlname=settings.meetup_group_urlname,
            client=client,
        )
    if platform is Platform.EVENTBRITE:
        from integrations.eventbrite import EventbriteAdapter

        creds = _require(vault, "eventbrite", "hub integrations set eventbrite token")
        return EventbriteAdapter(
            settings.base_url("eventbrite"),
            token=creds["token"],
            organization_id=creds.get("organization_id", settings.eventbrite_organization_id),
            client=client,
            payout_country=creds.get("payout_country"),
        )
    if platform is Platform.LUMA:
        from integrations.luma import LumaAdapter

        creds = _require(vault, "luma", "hub integrations set luma api_key")
        return LumaAdapter(settings.base_url("luma"), api_key=creds["api_key"], client=client)
    raise ValueError(f"{platform.value} has no adapter")


async def connect_sandbox_credentials(settings: Settings, vault: Vault) -> list[str]:
    """Store the sandbox emulators' credentials and run Meetup's OAuth flow against its
    sandbox, exactly as a person would in live mode (authorize -> code -> tokens)."""
    from integrations.meetup import connect, sandbox_authorize
    from integrations.sandbox import credentials as sc
    from integrations.sandbox.netgsm.keys import (
        NETGSM_MSGHEADER,
        NETGSM_PASSWORD,
        NETGSM_USERCODE,
    )
    from integrations.sandbox.stripe.keys import STRIPE_SECRET_KEY
    from integrations.sandbox.whatsapp.keys import (
        WHATSAPP_ACCESS_TOKEN,
        WHATSAPP_PHONE_NUMBER_ID,
    )

    vault.set(
        "eventbrite",
        {
            "token": sc.EVENTBRITE_TOKEN,
            "organization_id": sc.EVENTBRITE_ORGANIZATION_ID,
            "payout_country": sc.EVENTBRITE_PAYOUT_COUNTRY,
        },
    )
    vault.set("luma", {"api_key": sc.LUMA_API_KEY})
    vault.set("stripe", {"secret_key": STRIPE_SECRET_KEY})
    vault.set(
        "netgsm",
        {"usercode": NETGSM_USERCODE, "password": NETGSM_PASSWORD, "msgheader": NETGSM_MSGHEADER},
    )
    vault.set(
        "whatsapp", {"token": WHATSAPP_ACCESS_TOKEN, "phone_number_id": WHATSAPP_PHONE_NUMBER_ID}
    )
    vault.set(
        MEETUP_CLIENT_KEY,
        {
            "client_id": sc.MEETUP_CLIENT_ID,
            "client_secret": sc.MEETUP_CLIENT_SECRET,
            "redirect_uri": sc.MEETUP_REDIRECT_URI,
        },
    )
    async with httpx.AsyncClient(timeout=30) as client:
        oauth = meetup_oauth(settings, vault, client)
        code = await sandbox_authorize(oauth, state="hub-sandbox")
        await connect(oauth, VaultTokenStore(vault), code)
    return ["eventbrite", "luma", "meetup", "netgsm", "stripe", "whatsapp"]
