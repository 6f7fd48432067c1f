"""The emulated WhatsApp Business Account: approved templates, customer-service windows,
sent messages and their statuses (SQLite through SandboxStore, so a restart keeps them).

Rules (CONTRACTS.md Part 2 §4; pywa ``errors.py`` and its docs):

- A template is addressed by name and ``language.code``; a name/language pair that is not
  an approved translation -> 132001; paused / disabled -> 132015 / 132016; the number of
  ``{"type": "text"}`` parameters per component (header, body) must equal the template's
  -> else 132000; a parameter without its value -> 131008.
- Free-form ``text`` only within 24 hours of the recipient's last inbound message. Meta
  reports a closed window asynchronously as a ``failed`` status with 131047 (pywa docs,
  "Message Status Errors"); some integrators see it as an immediate HTTP 400. The
  emulator does the asynchronous form by default and the synchronous one with
  ``window_errors="sync"``.
- A number marked undeliverable (``/_sandbox/undeliverable``) is accepted, then fails
  with 131026, as Meta reports it (asynchronously).
- Types other than text and template -> 131051 (the emulator supports only those two).
"""

from __future__ import annotations

import base64
import os
import re
import time
from dataclasses import dataclass
from typing import Any

from integrations.sandbox.common import SandboxStore
from integrations.sandbox.whatsapp.errors import GraphError

WINDOW_SECONDS = 24 * 3600
TO_PATTERN = re.compile(r"^\+?[1-9]\d{7,14}$")

# name -> language -> {"body": n, "header": n, "status": APPROVED|PAUSED|DISABLED,
# "category": UTILITY|MARKETING|AUTHENTICATION}
DEFAULT_TEMPLATES: dict[str, dict[str, dict[str, Any]]] = {
    "odeme_alindi": {  # "payment received: {{1}}"
        "tr": {"body": 1, "category": "UTILITY"},
        "en": {"body": 1, "category": "UTILITY"},
    },
    "kayit_onaylandi": {  # "{{1}}, your place at {{2}} on {{3}} is confirmed"
        "tr": {"body": 3, "category": "UTILITY"},
        "en": {"body": 3, "category": "UTILITY"},
    },
    "bilet_hazir": {  # header {{1}} = event; body {{1}} name, {{2}} ticket link
        "tr": {"header": 1, "body": 2, "category": "UTILITY"},
        "en": {"header": 1, "body": 2, "category": "UTILITY"},
    },
    "eksik_odeme": {  # "{{1}}, we received {{2}}; {{3}} is still missing"
        "tr": {"body": 3, "category": "UTILITY"},
    },
}


def new_wamid() -> str:
    """``wamid.`` + base64, the shape of Cloud API message ids."""
    return "wamid." + base64.b64encode(b"\x15\x02\x00\x11\x18" + os.urandom(28)).decode()


def digits(number: str) -> str:
    return number.lstrip("+")


@dataclass
class Accepted:
    message: dict[str, Any]
    reply: dict[str, Any]


class WhatsAppSandbox:
    def __init__(self, store: SandboxStore, *, window_errors: str = "async") -> None:
        self.store = store
        self.window_errors = window_errors
        if store.count("template") == 0:
            self.set_templates(DEFAULT_TEMPLATES)

    # ------------------------------------------------------------------ templates
    def set_templates(self, templates: dict[str, dict[str, dict[str, Any]]]) -> None:
        with self.store.atomic():
            for name, languages in templates.items():
                for language, spec in languages.items():
                    doc = {
                        "name": name,
                        "language": language,
                        "header": int(spec.get("header", 0)),
                        "body": int(spec.get("body", 0)),
                        "status": spec.get("status", "APPROVED"),
                        "category": spec.get("category", "UTILITY"),
                    }
                    key = f"{name}:{language}"
                    if self.store.get("template", key) is None:
                        self.store.insert("template", key, doc)
                    else:
                        self.store.update("template", key, doc)

    def templates(self) -> list[dict[str, Any]]:
        return self.store.all("template")

    # ------------------------------------------------------------------ windows
    def record_inbound(self, wa_id: str, at: float) -> None:
        key = digits(wa_id)
        doc = self.store.get("window", key)
        last = max(at, doc["last_inbound_at"]) if doc else at
        if doc is None:
            self.store.insert("window", key, {"wa_id": key, "last_inbound_at": last})
        else:
            self.store.update("window", key, {"wa_id": key, "last_inbound_at": last})

    def window_open(self, wa_id: str, now: float | None = None) -> bool:
        doc = self.store.get("window", digits(wa_id))
        now = time.time() if now is None else now
        return bool(doc) and now - doc["last_inbound_at"] < WINDOW_SECONDS

    # ------------------------------------------------------------------ sending
    def undeliverable(self) -> set[str]:
        doc = self.store.get("sandbox.config", "undeliverable") or {"numbers": []}
        return set(doc["numbers"])

    def set_undeliverable(self, numbers: list[str]) -> None:
        doc = {"numbers": sorted({digits(n) for n in numbers})}
        if self.store.get("sandbox.config", "undeliverable") is None:
            self.store.insert("sandbox.config", "undeliverable", doc)
        else:
            self.store.update("sandbox.config", "undeliverable", doc)

    def accept(self, body: Any, phone_number_id: str) -> tuple[Accepted, dict | None]:
        """Validate a ``/messages`` body; returns the stored message and, when Meta would
        report a failure later, the error (code, details) its ``failed`` status carries."""
        if not isinstance(body, dict):
            raise GraphError(100, "The request body must be a JSON object.")
        if body.get("messaging_product") != "whatsapp":
            raise GraphError(
                100, "The parameter messaging_product is required.",
                message="(#100) The parameter messaging_product is required.",
            )  # fmt: skip
        to = body.get("to")
        if not isinstance(to, str) or not to:
            raise GraphError(100, "The parameter to is required.",
                             message="(#100) The parameter to is required.")  # fmt: skip
        if not TO_PATTERN.match(to):
            raise GraphError(131009, f"Invalid WhatsApp phone number: {to}")
        if body.get("recipient_type", "individual") != "individual":
            raise GraphError(131009, "recipient_type must be individual")
        kind = body.get("type", "text")
        wa_id = digits(to)
        later: dict | None = None
        if kind == "template":
            content = self._check_template(body.get("template"))
        elif kind == "text":
            text = body.get("text")
            if not isinstance(text, dict) or not isinstance(text.get("body"), str):
                raise GraphError(131008, "text.body is required")
            if not text["body"].strip() or len(text["body"]) > 4096:
                raise GraphError(131009, "text.body must be 1 to 4096 characters")
            content = {"body": text["body"], "preview_url": bool(text.get("preview_url"))}
            if not self.window_open(wa_id):
                if self.window_errors == "sync":
                    raise GraphError(131047)
                later = {"code": 131047}
        else:
            raise GraphError(131051, f"Message type {kind} is not supported by the sandbox")
        if later is None and wa_id in self.undeliverable():
            later = {"code": 131026}
        opaque = body.get("biz_opaque_callback_data")
        if opaque is not None and (not isinstance(opaque, str) or len(opaque) > 512):
            raise GraphError(131009, "biz_opaque_callback_data must be a string of <= 512")
        wamid = new_wamid()
        message = {
            "id": wamid,
            "phone_number_id": phone_number_id,
            "to": to,
            "wa_id": wa_id,
            "type": kind,
            kind: content,
            "biz_opaque_callback_data": opaque,
            "created": time.time(),
            "statuses": [],
            "request": body,
        }
        self.store.insert("message", wamid, message, scope=wa_id)
        reply_message: dict[str, Any] = {"id": wamid}
        if kind == "template":  # Meta adds message_status (pacing) to template replies
            reply_message["message_status"] = "accepted"
        reply = {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": wa_id}],
            "messages": [reply_message],
        }
        return Accepted(message, reply), later

    def _check_template(self, template: Any) -> dict[str, Any]:
        if not isinstance(template, dict) or not isinstance(template.get("name"), str):
            raise GraphError(131008, "template.name is required")
        language = template.get("language")
        code = language.get("code") if isinstance(language, dict) else None
        if not isinstance(code, str) or not code:
            raise GraphError(131008, "template.language.code is required")
        name = template["name"]
        spec = self.store.get("template", f"{name}:{code}")
        if spec is None:
            raise GraphError(132001, f"template name ({name}) does not exist in {code}")
        if spec["status"] == "PAUSED":
            raise GraphError(132015, f"template {name} is paused")
        if spec["status"] == "DISABLED":
            raise GraphError(132016, f"template {name} is disabled")
        given = {"header": 0, "body": 0}
        values: dict[str, list[str]] = {"header": [], "body": []}
        components = template.get("components") or []
        if not isinstance(components, list):
            raise GraphError(131009, "template.components must be a list")
        for component in components:
            if not isinstance(component, dict):
                raise GraphError(131009, "a component must be an object")
            part = str(component.get("type", "")).lower()
            if part not in given:
                continue  # buttons etc. are not modelled
            for parameter in component.get("parameters") or []:
                if not isinstance(parameter, dict) or parameter.get("type") != "text":
                    raise GraphError(131009, f"{part}: only text parameters are supported")
                if not isinstance(parameter.get("text"), str) or parameter["text"] == "":
                    raise GraphError(131008, f"{part}: parameter text is required")
                given[part] += 1
                values[part].append(parameter["text"])
        for part in ("header", "body"):
            if given[part] != spec[part]:
                raise GraphError(
                    132000,
                    f"{part}: number of localizable_params ({given[part]}) does not match the "
                    f"expected number of params ({spec[part]})",
                )
        return {"name": name, "language": code, "parameters": values}

    # ------------------------------------------------------------------ statuses
    def add_status(self, wamid: str, status: dict[str, Any]) -> dict[str, Any]:
        with self.store.atomic():
            message = self.store.get("message", wamid)
            if message is None:
                raise KeyError(wamid)
            message["statuses"].append(status)
            self.store.update("message", wamid, message)
        return message

    def get_message(self, wamid: str) -> dict[str, Any] | None:
        return self.store.get("message", wamid)

    def messages(self, *, to: str | None = None, opaque: str | None = None) -> list[dict]:
        found = self.store.all("message", scope=digits(to) if to else None)
        if opaque is not None:
            found = [m for m in found if m.get("biz_opaque_callback_data") == opaque]
        return found

    def reset(self) -> None:
        with self.store.atomic():
            for kind in ("message", "window", "template"):
                for doc in self.store.all(kind):
                    key = doc.get("id") or doc.get("wa_id") or f"{doc['name']}:{doc['language']}"
                    self.store.delete(kind, key)
            self.store.delete("sandbox.config", "undeliverable")
        self.set_templates(DEFAULT_TEMPLATES)
