"""Timeline kinds and audit snapshots of the commerce domain.

Timeline events go through :func:`siyu.contacts.actions.do_record_event` (idempotent by
key, schedules tag-rule evaluation), so tag rules such as
``{"event": "order", "min_count": 2, "within_days": 90}`` and segments see them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from siyu.commerce.models import Coupon, MemberCard, Order
from siyu.contacts.events import EventKind
from siyu.contacts.models import Contact


class CommerceEvent:
    ORDER = EventKind.ORDER  # data: order_id, external_id, net_amount (str), gross_amount, currency, store, points
    REFUND = "refund"  # data: ... amount, refunded_amount, net_amount, reason, points (the reversal)
    ORDER_CANCELLED = "order_cancelled"
    COUPON_ISSUED = "coupon_issued"
    COUPON_REDEEMED = "coupon_redeemed"
    POINTS = "points"  # manual earn/spend (order points ride on the order/refund events); data: delta, reason, balance
    MEMBERSHIP_JOINED = "membership_joined"
    MEMBERSHIP_RENEWED = "membership_renewed"
    MEMBERSHIP_EXPIRED = "membership_expired"
    STAGE_CHANGED = "stage_changed"  # data: from, to, reason

    ALL = (
        ORDER, REFUND, ORDER_CANCELLED, COUPON_ISSUED, COUPON_REDEEMED, POINTS,
        MEMBERSHIP_JOINED, MEMBERSHIP_RENEWED, MEMBERSHIP_EXPIRED, STAGE_CHANGED,
    )


def record_contact_event(
    contact: Contact, kind: str, *, key: str, data: dict[str, Any], occurred_at: dt.datetime | None = None
) -> None:
    """Append a commerce fact to the contact's timeline (once per key)."""
    from siyu.contacts.actions import do_record_event

    do_record_event(contact, kind, idempotency_key=key, data=data, occurred_at=occurred_at)


def order_snapshot(order: Order) -> dict[str, Any]:
    """The order as audited and compared on replay (amounts as strings)."""
    return {
        "external_id": order.external_id,
        "contact": order.contact_id,
        "placed_at": order.placed_at.isoformat(),
        "status": order.status,
        "currency": order.currency,
        "gross_amount": str(order.gross_amount),
        "discount_amount": str(order.discount_amount),
        "refunded_amount": str(order.refunded_amount),
        "net_amount": str(order.net_amount),
        "margin_amount": None if order.margin_amount is None else str(order.margin_amount),
        "store": order.store,
        "staff": order.staff_id,
        "source_channel": order.source_channel,
        "source_campaign": order.source_campaign,
        "source_live_code": order.source_live_code,
        "group": order.group_id,
        "coupon": order.coupon_id,
    }


def order_event_data(order: Order) -> dict[str, Any]:
    return {
        "order_id": order.pk,
        "external_id": order.external_id,
        "net_amount": str(order.net_amount),
        "gross_amount": str(order.gross_amount),
        "currency": order.currency,
        "store": order.store,
    }


def coupon_snapshot(coupon: Coupon) -> dict[str, Any]:
    return {
        "code": coupon.code,
        "template": coupon.template_id,
        "contact": coupon.contact_id,
        "status": coupon.status,
        "source": coupon.source,
        "expires_at": coupon.expires_at.isoformat() if coupon.expires_at else None,
        "order": coupon.order_id,
        "discount_amount": None if coupon.discount_amount is None else str(coupon.discount_amount),
    }


def card_snapshot(card: MemberCard) -> dict[str, Any]:
    return {
        "tier": card.tier_id,
        "status": card.status,
        "valid_from": card.valid_from.isoformat(),
        "valid_until": card.valid_until.isoformat() if card.valid_until else None,
        "source": card.source,
    }
