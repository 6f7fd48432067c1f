"""The hosted payment page (``session.url`` -> ``GET /pay/<cs_id>``): plain, accessible
HTML with a "Pay" button (``id="pay"``) and a "Decline" button (``id="decline"``) that a
person or a headless browser can press. Pay completes the session and answers 303 to the
``success_url`` with ``{CHECKOUT_SESSION_ID}`` replaced; Decline shows the card error
(``role="alert"``) and keeps the session open."""

from __future__ import annotations

from html import escape
from typing import Any

from integrations.sandbox.stripe.state import format_amount

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem;
color:#1a1a1a}
h1{font-size:1.4rem}.amount{font-size:2rem;font-weight:600;margin:.5rem 0 1.5rem}
label{display:block;margin:.75rem 0 .25rem}input{width:100%;padding:.5rem;font-size:1rem;
box-sizing:border-box}
.actions{display:flex;gap:.75rem;margin-top:1.5rem}
button{flex:1;padding:.75rem;font-size:1rem;border-radius:.4rem;border:1px solid #635bff;
cursor:pointer}
#pay{background:#635bff;color:#fff}#decline{background:#fff;color:#635bff}
button:focus-visible{outline:3px solid #1a1a1a;outline-offset:2px}
.error{background:#fdecea;color:#8a1c1c;padding:.75rem;border-radius:.4rem}
.note{color:#555;font-size:.9rem}
"""


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )


def pay_page(session: dict[str, Any], items: list[dict[str, Any]], error: str | None = None) -> str:
    name = items[0]["description"] if items else "Payment"
    amount = format_amount(session["amount_total"] or 0, session["currency"] or "usd")
    email = session.get("customer_email") or ""
    alert = f'<p id="payment-error" class="error" role="alert">{escape(error)}</p>' if error else ""
    cancel = session.get("cancel_url")
    back = f'<p><a id="cancel" href="{escape(cancel)}">Back</a></p>' if cancel else ""
    body = f"""
<h1>{escape(name)}</h1>
<p class="amount" id="amount">{escape(amount)}</p>
{alert}
<form method="post" action="/pay/{escape(session["id"])}">
  <label for="email">E-mail</label>
  <input id="email" name="email" type="email" autocomplete="email" value="{escape(email)}">
  <label for="name">Name on card</label>
  <input id="name" name="name" type="text" autocomplete="cc-name" value="">
  <p class="note">Sandbox: no card is charged. Pay succeeds, Decline fails like a declined
  card.</p>
  <div class="actions">
    <button type="submit" id="pay" name="action" value="pay">Pay {escape(amount)}</button>
    <button type="submit" id="decline" name="action" value="decline">Decline</button>
  </div>
</form>
{back}
"""
    return _page(f"Pay {name}", body)


def closed_page(session: dict[str, Any]) -> str:
    if session["status"] == "complete":
        text = "This payment is complete."
    else:
        text = "This checkout session has expired. Go back to the site to start again."
    body = f'<h1>Checkout</h1><p id="status" role="status">{escape(text)}</p>'
    return _page("Checkout", body)


def not_found_page() -> str:
    return _page("Not found", '<h1>Not found</h1><p role="status">No such checkout session.</p>')
