"""Outgoing e-mail over SMTP (RFC 5321/5322), stdlib only (``smtplib``, ``email``).

- :func:`build_message`: a multipart/alternative message (text + HTML) in UTF-8, headers
  with Turkish letters encoded per RFC 2047 by the stdlib; ``Message-ID`` derived from
  the effect key (``<sha256(effect key)[:32]@domain>``), so a resend of the same effect
  is recognisably the same message (mail clients and archives collapse it), and the key
  itself (which may name an order) never shows.
- :class:`SmtpConfig` / :class:`SmtpMailer`: where and how to send (vault entry
  ``smtp``: ``{"host", "port", "from_address", "from_name"?, "username"?, "password"?,
  "security": "none"|"starttls"|"ssl"}``); without it the mailer refuses (fail closed).
  SMTP has no idempotency either: a 2xx after DATA is the only proof of acceptance.

Errors: a 5xx reply (refused recipient, refused message) is permanent
(:class:`hub.errors.ValidationFailed`); 4xx and connection problems are retryable
(:class:`hub.errors.ServerError`); refused credentials are :class:`hub.errors.AuthError`.
Messages never contain the password.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr

from hub.errors import AuthError, ReconnectRequired, ServerError, ValidationFailed

PLATFORM = "smtp"


def message_id_for(effect_key: str, domain: str) -> str:
    digest = hashlib.sha256(effect_key.encode("utf-8")).hexdigest()[:32]
    return f"<{digest}@{domain}>"


def build_message(
    *,
    to: str,
    subject: str,
    text: str,
    html: str | None,
    effect_key: str,
    from_address: str,
    from_name: str | None = None,
    to_name: str | None = None,
    language: str | None = None,
) -> EmailMessage:
    """The message for one effect (same key -> same Message-ID)."""
    msg = EmailMessage()
    domain = from_address.rpartition("@")[2] or "localhost"
    msg["Message-ID"] = message_id_for(effect_key, domain)
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["From"] = formataddr((from_name, from_address)) if from_name else from_address
    msg["To"] = formataddr((to_name, to)) if to_name else to
    msg["Subject"] = subject
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
    msg.set_content(text, charset="utf-8")
    if html is not None:
        msg.add_alternative(html, subtype="html", charset="utf-8")
    if language:  # after the bodies: set_content drops Content-* headers
        msg["Content-Language"] = language
    return msg


class SmtpConfig(BaseModel):
    host: str
    port: int = Field(default=587, gt=0, lt=65536)
    from_address: str
    from_name: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    security: Literal["none", "starttls", "ssl"] = "starttls"
    timeout: float = 20.0


class SmtpMailer:
    def __init__(self, config: SmtpConfig) -> None:
        self.config = config

    @classmethod
    def from_vault(cls, vault: Any) -> SmtpMailer:
        try:
            creds = vault.get(PLATFORM)
        except Exception as exc:
            raise ReconnectRequired(
                PLATFORM, f"credentials unreadable ({type(exc).__name__})"
            ) from None
        if not creds:
            raise ReconnectRequired(
                PLATFORM, "no SMTP settings stored; run `hub integrations set smtp host port "
                "from_address ...`",
            )  # fmt: skip
        try:
            return cls(SmtpConfig(**creds))
        except ValueError:
            raise ReconnectRequired(PLATFORM, "stored SMTP settings are invalid") from None

    def send(self, msg: EmailMessage) -> dict[str, Any]:
        """Deliver one message (blocking; call it in a thread from async code). Returns
        ``{"message_id", "accepted": [...], "refused": {...}}``."""
        cfg = self.config
        try:
            if cfg.security == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    cfg.host, cfg.port, timeout=cfg.timeout,
                    context=ssl.create_default_context(),
                )  # fmt: skip
            else:
                smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
            with smtp:
                smtp.ehlo()
                if cfg.security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if cfg.username and cfg.password is not None:
                    smtp.login(cfg.username, cfg.password.get_secret_value())
                refused = smtp.send_message(msg)
        except smtplib.SMTPAuthenticationError as exc:
            raise AuthError(PLATFORM, f"login refused ({exc.smtp_code})") from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = {r: c for r, (c, _) in exc.recipients.items()}
            retry = all(400 <= c < 500 for c in codes.values())
            cls_ = ServerError if retry else ValidationFailed
            raise cls_(PLATFORM, f"recipient refused ({sorted(set(codes.values()))})") from None
        except smtplib.SMTPResponseException as exc:
            if 400 <= exc.smtp_code < 500:
                raise ServerError(PLATFORM, f"temporary failure ({exc.smtp_code})") from None
            raise ValidationFailed(PLATFORM, f"message refused ({exc.smtp_code})") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise ServerError(PLATFORM, f"SMTP unavailable ({type(exc).__name__})") from None
        return {
            "message_id": msg["Message-ID"],
            "accepted": [a for a in _recipients(msg) if a not in refused],
            "refused": {k: v[0] for k, v in refused.items()},
        }


def _recipients(msg: EmailMessage) -> list[str]:
    from email.utils import getaddresses

    return [addr for _, addr in getaddresses(msg.get_all("To", []) + msg.get_all("Cc", []))]
