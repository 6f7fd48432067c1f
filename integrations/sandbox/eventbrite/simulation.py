"""What buyers and door staff do on Eventbrite itself, simulated for the sandbox:
orders with realistic people, refunds, cancellations and check-ins, each sending the
webhooks Eventbrite would send (``order.placed``, ``order.refunded``, ``attendee.*``).

A mixin of :class:`~integrations.sandbox.eventbrite.state.EventbriteSandbox`: it works on
the same store and uses its lookups (``event``, ``attendee``, ``order``, ``notify``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from integrations.sandbox.common import PeopleFactory, SandboxStore, WebhookSender
from integrations.sandbox.eventbrite.validation import ApiError, bad_argument, money, now_z


class SimulationMixin:
    """Sandbox-only behaviour; the HTTP API never calls it (``/_sandbox/simulate`` does)."""

    # Provided by EventbriteSandbox.
    store: SandboxStore
    sender: WebhookSender
    organization_id: str
    event: Callable[[str], dict[str, Any]]
    order: Callable[[str], dict[str, Any]]
    attendee: Callable[[str | None, str], dict[str, Any]]
    notify: Callable[[str, str, str | None], None]
    deliveries: Callable[[str, str, str | None], list]
    render_order: Callable[..., dict[str, Any]]
    render_attendee: Callable[[dict[str, Any]], dict[str, Any]]
    _new_id: Callable[[str], str]
    _sold: Callable[[str], int]
    _ticket_classes: Callable[[str], list[dict[str, Any]]]

    def simulate_registrations(
        self,
        event_id: str,
        count: int,
        seed: int | None = None,
        paid_ratio: float | None = None,
        *,
        access_code: str | None = None,
    ) -> list[str]:
        """Place up to ``count`` orders (1 attendee, sometimes 2) and send ``order.placed``.

        Orders go to the event's visible ticket classes that are on sale; ``paid_ratio``
        is the chance an order picks a paid class when the event has free and paid ones.
        ``access_code`` (an access discount) unlocks its hidden ticket classes instead.
        Stops early when the event sells out; returns the ids of the orders placed.
        """
        rng = random.Random(seed)
        people = PeopleFactory(seed)
        order_ids: list[str] = []
        deliveries: list = []
        for _ in range(max(int(count), 0)):
            buyer = people.person()
            quantity = 2 if rng.random() < 0.15 else 1
            extra = people.person() if quantity == 2 else None
            placed = self._place_order(event_id, rng, buyer, extra, paid_ratio, access_code)
            if placed is None:
                break
            order_ids.append(placed)
            deliveries.extend(self.deliveries("order.placed", f"orders/{placed}", event_id))
        self.sender.send(deliveries)
        return order_ids

    def _sellable_classes(
        self, event: dict[str, Any], access_code: str | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        classes = self._ticket_classes(event["id"])
        discount = None
        if access_code:
            for doc in self.store.all("discount", scope=self.organization_id):
                if doc["code"] == access_code and doc["event_id"] == event["id"]:
                    discount = doc
            if discount is None:
                raise bad_argument("access_code")
            if discount["quantity_available"] is not None and (
                discount["quantity_sold"] >= discount["quantity_available"]
            ):
                return [], discount
            allowed = set(discount["ticket_class_ids"])
            classes = [tc for tc in classes if tc["id"] in allowed]
        else:
            classes = [tc for tc in classes if not tc["hidden"]]
        now = now_z()
        sellable = [
            tc
            for tc in classes
            if int(tc["capacity"]) > int(tc["quantity_sold"])
            and (not tc.get("sales_end") or now < tc["sales_end"])
            and (not tc.get("sales_start") or now >= tc["sales_start"])
        ]
        return sellable, discount

    def _place_order(
        self,
        event_id: str,
        rng: random.Random,
        buyer: Any,
        extra: Any,
        paid_ratio: float | None,
        access_code: str | None,
    ) -> str | None:
        with self.store.atomic():
            event = self.event(event_id)
            if event["status"] != "live":
                return None
            classes, discount = self._sellable_classes(event, access_code)
            if not classes:
                return None
            paid = [tc for tc in classes if not tc["free"]]
            free = [tc for tc in classes if tc["free"]]
            if paid and free and paid_ratio is not None:
                pool = paid if rng.random() < paid_ratio else free
            else:
                pool = classes
            tc = rng.choice(pool)
            quantity = 2 if extra is not None else 1
            quantity = min(quantity, int(tc["capacity"]) - int(tc["quantity_sold"]))
            if event.get("capacity_is_custom"):
                quantity = min(quantity, int(event["capacity"] or 0) - self._sold(event_id))
            if quantity <= 0:
                return None
            order_id = self._new_id("order")
            now = now_z()
            currency = event["currency"]
            price = 0 if tc["free"] else int(tc["cost"]["value"])
            attendee_ids = []
            for index, person in enumerate([buyer, extra][:quantity]):
                attendee_id = self._new_id("attendee")
                attendee_ids.append(attendee_id)
                attendee = {
                    "id": attendee_id,
                    "created": now,
                    "changed": now,
                    "ticket_class_id": tc["id"],
                    "ticket_class_name": tc["name"],
                    "variant_id": None,
                    "profile": {
                        "first_name": person.first_name,
                        "last_name": person.last_name,
                        "name": person.full_name,
                        "email": person.email,
                        "cell_phone": person.phone,
                        "addresses": {},
                    },
                    "questions": [],
                    "answers": [],
                    "barcodes": [
                        {
                            "status": "unused",
                            "barcode": f"{order_id}{attendee_id[-6:]}{index + 1:03d}",
                            "checkin_type": 0,
                            "created": now,
                            "changed": now,
                        }
                    ],
                    "team": None,
                    "affiliate": "api",
                    "checked_in": False,
                    "cancelled": False,
                    "refunded": False,
                    "costs": _costs(price, currency),
                    "status": "Attending",
                    "event_id": event_id,
                    "order_id": order_id,
                    "guestlist_id": None,
                    "invited_by": None,
                    "delivery_method": "electronic",
                    "quantity": 1,
                }
                self.store.insert("attendee", attendee_id, attendee, scope=event_id)
            order = {
                "id": order_id,
                "created": now,
                "changed": now,
                "name": buyer.full_name,
                "first_name": buyer.first_name,
                "last_name": buyer.last_name,
                "email": buyer.email,
                "costs": _costs(price * quantity, currency),
                "event_id": event_id,
                "time_remaining": None,
                "status": "placed",
                "promo_code": discount["code"] if discount else None,
                "_attendee_ids": attendee_ids,
            }
            self.store.insert("order", order_id, order, scope=event_id)
            tc["quantity_sold"] = int(tc["quantity_sold"]) + quantity
            self.store.update("ticket_class", tc["id"], tc)
            if discount is not None:
                discount["quantity_sold"] = int(discount["quantity_sold"]) + quantity
                self.store.update("discount", discount["id"], discount)
        return order_id

    def _release(self, attendee: dict[str, Any]) -> None:
        tc = self.store.get("ticket_class", attendee["ticket_class_id"])
        if tc is not None:
            tc["quantity_sold"] = max(int(tc["quantity_sold"]) - 1, 0)
            self.store.update("ticket_class", tc["id"], tc)

    def refund(self, order_id: str) -> dict[str, Any]:
        with self.store.atomic():
            order = self.order(order_id)
            now = now_z()
            for attendee_id in order["_attendee_ids"]:
                attendee = self.store.get("attendee", attendee_id)
                if attendee is None:
                    continue
                if not attendee["cancelled"] and not attendee["refunded"]:
                    self._release(attendee)
                attendee.update(refunded=True, cancelled=True, status="Not Attending", changed=now)
                self.store.update("attendee", attendee_id, attendee)
            order.update(status="refunded", changed=now)
            self.store.update("order", order_id, order)
        self.notify("order.refunded", f"orders/{order_id}", order["event_id"])
        return self.render_order(order, expand={"attendees"})

    def cancel_attendee(self, attendee_id: str) -> dict[str, Any]:
        with self.store.atomic():
            attendee = self.attendee(None, attendee_id)
            if not attendee["cancelled"] and not attendee["refunded"]:
                self._release(attendee)
            attendee.update(cancelled=True, status="Not Attending", changed=now_z())
            self.store.update("attendee", attendee_id, attendee)
            order = self.store.get("order", attendee["order_id"])
            if order is not None:
                order["changed"] = attendee["changed"]
                self.store.update("order", order["id"], order)
        path = f"events/{attendee['event_id']}/attendees/{attendee_id}"
        self.notify("attendee.updated", path, attendee["event_id"])
        return self.render_attendee(attendee)

    def check_in(self, attendee_id: str) -> dict[str, Any]:
        with self.store.atomic():
            attendee = self.attendee(None, attendee_id)
            if attendee["cancelled"] or attendee["refunded"]:
                raise ApiError(400, "ATTENDEE_NOT_ATTENDING", "This attendee has no valid ticket.")
            now = now_z()
            for barcode in attendee["barcodes"]:
                barcode.update(status="used", changed=now)
            attendee.update(checked_in=True, status="Checked In", changed=now)
            self.store.update("attendee", attendee_id, attendee)
        path = f"events/{attendee['event_id']}/attendees/{attendee_id}"
        self.notify("attendee.checked_in", path, attendee["event_id"])
        return self.render_attendee(attendee)


def _costs(price: int, currency: str) -> dict[str, Any]:
    """Attendee/order costs with the fee absorbed by the organizer (gross = ticket price)."""
    fee = round(price * 0.035) + (0 if price == 0 else 59)
    payment_fee = round(price * 0.029)
    return {
        "base_price": money(price, currency),
        "eventbrite_fee": money(min(fee, price), currency),
        "gross": money(price, currency),
        "payment_fee": money(min(payment_fee, price), currency),
        "tax": money(0, currency),
    }
