"""Writes of the commerce domain (the only code that changes its rows).

Every function validates, writes inside a transaction, records an audit entry and, where
a contact is concerned, a timeline event, and schedules side effects (lifecycle
recomputation, tag rules) after commit.

Concurrency: counters and one-shot state change through conditional UPDATEs (coupon
stock, coupon redemption), and per-contact invariants (points balance, coupons per
contact, one active membership card) are checked after locking the contact's row with
``select_for_update`` — on SQLite the IMMEDIATE transactions serialise writers instead.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any, NamedTuple

from django.db import IntegrityError, transaction
from django.db.models import F, Min, Q
from django.utils import timezone

from siyu.accounts.events import record_audit
from siyu.accounts.models import Staff
from siyu.accounts.permissions import Perm, has_perm, require
from siyu.commerce import promotions as calc
from siyu.commerce.errors import ErrorCode
from siyu.commerce.events import (
    CommerceEvent,
    card_snapshot,
    coupon_snapshot,
    order_event_data,
    order_snapshot,
    record_contact_event,
)
from siyu.commerce.models import (
    ZERO,
    CardStatus,
    CommerceSettings,
    Coupon,
    CouponKind,
    CouponSource,
    CouponStatus,
    CouponTemplate,
    MemberCard,
    MembershipTier,
    Order,
    OrderLine,
    OrderStatus,
    PointsEntry,
    PointsReason,
    Product,
    ProductCategory,
    Promotion,
    PromotionMode,
    Refund,
    Sku,
    StageTransition,
    TierKind,
)
from siyu.commerce.queries import card_at, coupon_offer, lifetime_spend, points_balance, settings_for
from siyu.communities.models import Group
from siyu.contacts.actions import check_can_edit
from siyu.contacts.models import Contact
from siyu.core import crypto
from siyu.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from siyu.core.models import Workspace
from siyu.core.oncommit import on_commit_batched

MAX_AMOUNT = Decimal("999999999999.99")
COUPON_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: codes are read aloud at the till


# ---------------------------------------------------------------- shared checks


def check_can_manage(actor: Staff | None) -> None:
    """Catalogue, coupon templates, promotions, tiers and bulk issuing: staff who edit
    contacts and see all of them (operators and up), not agents.

    A dedicated ``commerce.manage`` permission would say this better; until the
    permissions table has one, this combination stands in for it."""
    if not (has_perm(actor, Perm.EDIT_CONTACTS) and has_perm(actor, Perm.VIEW_ALL_CONTACTS)):
        raise Forbidden("your role does not allow managing products, coupons, promotions or tiers", code="permission_denied")


def money(value: Any, label: str, *, allow_negative: bool = False) -> Decimal:
    """A money amount in cents, or ValidationFailed naming the field."""
    if isinstance(value, bool) or value is None:
        raise ValidationFailed(f"{label} must be an amount", code=ErrorCode.INVALID_AMOUNT)
    if isinstance(value, float):
        value = repr(value)  # 19.9 stays 19.90, not 19.899999...
    try:
        amount = calc.cents(value)
    except ValueError:
        raise ValidationFailed(f"{label} must be an amount, got {value!r}", code=ErrorCode.INVALID_AMOUNT) from None
    if amount < 0 and not allow_negative:
        raise ValidationFailed(f"{label} cannot be negative", code=ErrorCode.INVALID_AMOUNT)
    if abs(amount) > MAX_AMOUNT:
        raise ValidationFailed(f"{label} is too large", code=ErrorCode.INVALID_AMOUNT)
    return amount


def _text(value: str | None, label: str, size: int) -> str:
    text = (value or "").strip()
    if len(text) > size:
        raise ValidationFailed(f"{label} is longer than {size} characters", code=ErrorCode.INVALID_ORDER)
    return text


def _same_workspace(row: Any, workspace_id: int, what: str, code: str) -> None:
    if row is not None and row.workspace_id != workspace_id:
        raise NotFound(f"{what} not found", code=code)


def _live_contact(contact: Contact) -> Contact:
    while contact.merged_into_id is not None:
        contact = Contact.objects.get(pk=contact.merged_into_id)
    return contact


def _lock_contact(contact: Contact) -> None:
    """Serialise writers of one contact's points, coupons and cards (a no-op read on
    SQLite, where the IMMEDIATE transaction already holds the write lock)."""
    Contact.objects.select_for_update().filter(pk=contact.pk).first()


def schedule_lifecycle_update(contact_ids: Iterable[int | None]) -> None:
    """After commit, recompute the lifecycle stage of these contacts in the worker."""
    ids = {cid for cid in contact_ids if cid}
    if not ids:
        return

    def _enqueue(batch: set[Any]) -> None:
        from siyu.commerce.tasks import update_lifecycle_task

        update_lifecycle_task(sorted(batch))

    # an import of many orders in one transaction queues one recompute, not one per order
    on_commit_batched("lifecycle", None, ids, _enqueue)


# ---------------------------------------------------------------- settings


def _settings_row(workspace: Workspace) -> CommerceSettings:
    row, _ = CommerceSettings.objects.get_or_create(workspace=workspace)
    return row


SETTINGS_FIELDS = (
    "points_per_yuan", "new_days", "churn_days", "at_risk_min_days", "at_risk_factor", "default_interval_days",
    "vip_min_orders", "vip_min_spend", "p_alive_threshold", "reminder_days_ahead",
)


def do_update_commerce_settings(workspace: Workspace, actor: Staff | None, **changes: Any) -> CommerceSettings:
    """Change the workspace's commerce settings (points rate, lifecycle thresholds,
    reminders). Records ``commerce_settings.updated`` with before/after."""
    require(actor, Perm.MANAGE_WORKSPACE)
    for key in changes:
        if key not in SETTINGS_FIELDS:
            raise ValidationFailed(f"unknown setting {key!r}; use one of {', '.join(SETTINGS_FIELDS)}", code=ErrorCode.INVALID_SETTINGS)
    clean: dict[str, Any] = {}
    for key, value in changes.items():
        if key in ("points_per_yuan", "at_risk_factor", "vip_min_spend", "p_alive_threshold"):
            try:
                value = Decimal(str(value))
            except ArithmeticError:
                raise ValidationFailed(f"{key} must be a number", code=ErrorCode.INVALID_SETTINGS) from None
            if not value.is_finite() or value < 0 or value > 10**8 or (key == "p_alive_threshold" and value > 1):
                raise ValidationFailed(f"{key} is out of range", code=ErrorCode.INVALID_SETTINGS)
            column = CommerceSettings._meta.get_field(key)
            places, digits = column.decimal_places, column.max_digits  # type: ignore[union-attr]
            value = value.quantize(Decimal(1).scaleb(-places))
            if len(value.as_tuple().digits) > digits:
                raise ValidationFailed(f"{key} is out of range", code=ErrorCode.INVALID_SETTINGS)
        else:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > 36500:
                raise ValidationFailed(f"{key} must be a whole number of days/orders ≥ 0", code=ErrorCode.INVALID_SETTINGS)
        clean[key] = value
    with transaction.atomic():
        row = _settings_row(workspace)
        before = {k: str(getattr(row, k)) for k in clean}
        for key, value in clean.items():
            setattr(row, key, value)
        if clean:
            row.save(update_fields=[*clean, "updated_at"])
            record_audit(workspace, actor, "commerce_settings.updated", target=row, before=before, after={k: str(v) for k, v in clean.items()})
    return row


def do_rotate_webhook_secret(workspace: Workspace, actor: Staff | None) -> str:
    """Create a new order-webhook secret (the old one stops working at once); returns
    it — the only time it is shown. Stored encrypted. Records ``webhook_secret.rotated``."""
    require(actor, Perm.MANAGE_WORKSPACE)
    secret = "whsec_" + secrets.token_urlsafe(32)
    with transaction.atomic():
        row = _settings_row(workspace)
        row.webhook_secret_encrypted = crypto.encrypt(secret)
        row.webhook_secret_rotated_at = timezone.now()
        row.save(update_fields=["webhook_secret_encrypted", "webhook_secret_rotated_at", "updated_at"])
        record_audit(workspace, actor, "webhook_secret.rotated", target=row, summary="order webhook secret rotated")
    return secret


# ---------------------------------------------------------------- catalogue


@dataclass
class SkuSpec:
    code: str
    price: Decimal | str | int
    name: str = ""
    cost: Decimal | str | int | None = None
    is_active: bool = True


def _category(workspace: Workspace, name: str | None) -> ProductCategory | None:
    name = (name or "").strip()
    if not name:
        return None
    if len(name) > 100:
        raise ValidationFailed("category is longer than 100 characters", code=ErrorCode.INVALID_PRODUCT)
    category, _ = ProductCategory.objects.get_or_create(workspace=workspace, name=name)
    return category


def _upsert_skus(product: Product, specs: Sequence[SkuSpec]) -> list[str]:
    """Create or update SKUs by code; returns the codes changed."""
    changed: list[str] = []
    seen: set[str] = set()
    for spec in specs:
        code = spec.code.strip()
        if not code or len(code) > 64:
            raise ValidationFailed("a SKU code must have 1 to 64 characters", code=ErrorCode.INVALID_PRODUCT)
        if code in seen:
            raise ValidationFailed(f"SKU {code!r} is given twice", code=ErrorCode.INVALID_PRODUCT)
        seen.add(code)
        price = money(spec.price, f"price of {code}")
        cost = None if spec.cost is None else money(spec.cost, f"cost of {code}")
        name = _text(spec.name, f"name of {code}", 200)
        sku = Sku.objects.in_workspace(product.workspace_id).filter(code=code).first()
        if sku is None:
            Sku.objects.create(workspace_id=product.workspace_id, product=product, code=code, name=name, price=price, cost=cost,
                               is_active=spec.is_active)
            changed.append(code)
            continue
        if sku.product_id != product.pk:
            raise Conflict(f"SKU {code!r} belongs to another product (#{sku.product_id})", code=ErrorCode.SKU_EXISTS)
        values = {"name": name, "price": price, "cost": cost, "is_active": spec.is_active}
        fields = [k for k, v in values.items() if getattr(sku, k) != v]
        if fields:
            for key in fields:
                setattr(sku, key, values[key])
            sku.save(update_fields=fields)
            changed.append(code)
    return changed


def do_create_product(
    workspace: Workspace, actor: Staff | None, *, name: str, category: str | None = None, description: str = "",
    skus: Sequence[SkuSpec] = (),
) -> Product:
    """Add a product with its SKUs (a category is created by name when new). Records
    ``product.created``."""
    check_can_manage(actor)
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise ValidationFailed("a product needs a name of 1 to 200 characters", code=ErrorCode.INVALID_PRODUCT)
    with transaction.atomic():
        product = Product.objects.create(workspace=workspace, name=name, category=_category(workspace, category), description=description)
        codes = _upsert_skus(product, skus)
        record_audit(workspace, actor, "product.created", target=product, after={"name": name, "category": category, "skus": codes})
    return product


def do_update_product(
    product: Product, actor: Staff | None, *, name: str | None = None, category: str | None = None,
    description: str | None = None, is_active: bool | None = None, skus: Sequence[SkuSpec] = (),
) -> Product:
    """Change a product; ``skus`` are created or updated by code (never deleted:
    past order lines point at them — deactivate instead). Records ``product.updated``."""
    check_can_manage(actor)
    workspace = Workspace.objects.get(pk=product.workspace_id)
    before = {"name": product.name, "category": product.category.name if product.category else None,
              "description": product.description, "is_active": product.is_active}
    fields: list[str] = []
    with transaction.atomic():
        if name is not None:
            name = name.strip()
            if not name or len(name) > 200:
                raise ValidationFailed("a product needs a name of 1 to 200 characters", code=ErrorCode.INVALID_PRODUCT)
            if name != product.name:
                product.name = name
                fields.append("name")
        if category is not None:
            new_category = _category(workspace, category)
            if (new_category.pk if new_category else None) != product.category_id:
                product.category = new_category
                fields.append("category")
        if description is not None and description != product.description:
            product.description = description
            fields.append("description")
        if is_active is not None and is_active != product.is_active:
            product.is_active = is_active
            fields.append("is_active")
        codes = _upsert_skus(product, skus)
        if fields:
            product.save(update_fields=[*fields, "updated_at"])
        if fields or codes:
            after = {"name": product.name, "category": product.category.name if product.category else None,
                     "description": product.description, "is_active": product.is_active, "skus": codes}
            record_audit(workspace, actor, "product.updated", target=product, before=before, after=after)
    return product


# ---------------------------------------------------------------- orders


@dataclass
class LineSpec:
    """One order line as a caller gives it; ``sku_code`` links it to the catalogue."""

    unit_price: Decimal | str | int | float
    quantity: int = 1
    sku_code: str = ""
    name: str = ""


@dataclass
class _Line:
    sku: Sku | None
    sku_code: str
    name: str
    quantity: int
    unit_price: Decimal
    line_total: Decimal

    def key(self) -> tuple[str, str, int, str, str]:
        return (self.sku_code, self.name, self.quantity, str(self.unit_price), str(self.line_total))


@dataclass
class OrderDraft:
    """A validated order, ready to be compared with the stored one and written."""

    workspace: Workspace
    external_id: str
    contact: Contact | None
    placed_at: dt.datetime
    currency: str
    lines: list[_Line]
    gross: Decimal
    discount: Decimal
    refunded: Decimal | None  # None: the caller says nothing about refunds
    cancelled: bool | None  # None: the caller gives no status
    store: str
    staff: Staff | None
    source_channel: str
    source_campaign: str
    source_live_code: str
    group: Group | None
    coupon: Coupon | None
    booked_margin: Decimal | None
    existing: Order | None = None
    changes: list[str] = field(default_factory=list)

    @property
    def paid(self) -> Decimal:
        return self.gross - self.discount


class RecordResult(NamedTuple):
    order: Order
    created: bool
    updated: bool


def _check_lines(workspace: Workspace, specs: Sequence[LineSpec | dict[str, Any]]) -> list[_Line]:
    lines: list[_Line] = []
    codes = {str(s.sku_code if isinstance(s, LineSpec) else s.get("sku_code", "")).strip() for s in specs} - {""}
    skus = {s.code: s for s in Sku.objects.in_workspace(workspace).filter(code__in=codes).select_related("product")}
    for number, raw in enumerate(specs, start=1):
        try:
            spec = raw if isinstance(raw, LineSpec) else LineSpec(**raw)
        except TypeError:
            raise ValidationFailed(f"line {number} has unknown fields; use unit_price, quantity, sku_code, name",
                                   code=ErrorCode.INVALID_ORDER) from None
        quantity = spec.quantity
        if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= 1_000_000:
            raise ValidationFailed(f"line {number}: quantity must be a whole number from 1", code=ErrorCode.INVALID_ORDER)
        unit_price = money(spec.unit_price, f"line {number}: unit price")
        code = _text(spec.sku_code, f"line {number}: sku", 64)
        sku = skus.get(code) if code else None
        name = _text(spec.name, f"line {number}: name", 200)
        if not name and sku is not None:
            name = f"{sku.product.name} {sku.name}".strip()[:200]
        if not name and not code:
            raise ValidationFailed(f"line {number} needs a sku or a product name", code=ErrorCode.INVALID_ORDER)
        lines.append(_Line(sku, code, name, quantity, unit_price, calc.cents(unit_price * quantity)))
    return lines


def _check_coupon(workspace: Workspace, code: str, contact: Contact | None, existing: Order | None,
                  placed_at: dt.datetime, gross: Decimal) -> Coupon | None:
    code = (code or "").strip().upper()
    if not code:
        return None
    coupon = Coupon.objects.in_workspace(workspace).filter(code=code).select_related("template").first()
    if coupon is None:
        raise ValidationFailed(f"coupon {code!r} not found", code=ErrorCode.COUPON_NOT_FOUND)
    if contact is None or coupon.contact_id != contact.pk:
        raise ValidationFailed(f"coupon {code!r} belongs to another customer", code=ErrorCode.COUPON_NOT_OWNER)
    if existing is not None and coupon.order_id == existing.pk:
        return coupon  # already redeemed by this very order
    # An order records a past sale: the coupon had to be valid when the order was placed,
    # whatever the expiry pass did to it since.
    _check_usable(coupon, placed_at, allow_expired_status=True)
    _check_threshold(coupon, gross)
    return coupon


def check_order(
    workspace: Workspace,
    *,
    external_id: str,
    contact: Contact | None,
    placed_at: dt.datetime,
    lines: Sequence[LineSpec | dict[str, Any]] = (),
    gross_amount: Any = None,
    discount: Any = ZERO,
    refunded: Any = None,
    status: str | None = None,
    currency: str = "",
    store: str = "",
    staff: Staff | None = None,
    source_channel: str = "",
    source_campaign: str = "",
    source_live_code: str = "",
    group: Group | None = None,
    coupon_code: str = "",
    margin: Any = None,
) -> OrderDraft:
    """Validate an order without writing anything; returns the draft with the stored
    order it replays (if any) and the fields that differ. Raises ValidationFailed /
    NotFound / Conflict with a code."""
    external_id = _text(external_id, "order id", 100)
    if not external_id:
        raise ValidationFailed("an order needs the shop's order id", code=ErrorCode.INVALID_ORDER)
    if contact is not None:
        _same_workspace(contact, workspace.pk, "contact", ErrorCode.CONTACT_NOT_FOUND)
        contact = _live_contact(contact)
    if not isinstance(placed_at, dt.datetime):
        raise ValidationFailed("placed_at must be a date and time", code=ErrorCode.INVALID_ORDER)
    if timezone.is_naive(placed_at):
        raise ValidationFailed("placed_at needs a time zone offset", code=ErrorCode.NAIVE_DATETIME)
    currency = (currency or workspace.currency).strip().upper()
    if len(currency) != 3 or not currency.isalpha():
        raise ValidationFailed(f"currency must be a 3-letter code, got {currency!r}", code=ErrorCode.INVALID_ORDER)
    checked = _check_lines(workspace, lines)
    line_sum = calc.cents(sum((line.line_total for line in checked), ZERO))
    if gross_amount is None or gross_amount == "":
        if not checked:
            raise ValidationFailed("an order needs lines or an amount", code=ErrorCode.INVALID_AMOUNT)
        gross = line_sum
    else:
        gross = money(gross_amount, "amount")
        if checked and gross != line_sum:
            raise ValidationFailed(
                f"amount ¥{gross} differs from the sum of the lines ¥{line_sum}", code=ErrorCode.AMOUNT_MISMATCH
            )
    discount_amount = money(discount if discount not in (None, "") else ZERO, "discount")
    if discount_amount > gross:
        raise ValidationFailed(f"discount ¥{discount_amount} exceeds the amount ¥{gross}", code=ErrorCode.DISCOUNT_EXCEEDS_GROSS)
    paid = gross - discount_amount
    if status is not None and status not in OrderStatus.values:
        raise ValidationFailed(f"unknown order status {status!r}; use one of {', '.join(OrderStatus.values)}", code=ErrorCode.INVALID_ORDER)
    refunded_amount = None if refunded in (None, "") else money(refunded, "refunded")
    if refunded_amount is None and status == OrderStatus.REFUNDED:
        refunded_amount = paid
    if refunded_amount is None and status == OrderStatus.PARTIALLY_REFUNDED:
        raise ValidationFailed("a partially refunded order needs the refunded amount", code=ErrorCode.STATUS_MISMATCH)
    if refunded_amount is not None:
        if refunded_amount > paid:
            raise ValidationFailed(f"refunded ¥{refunded_amount} exceeds the ¥{paid} paid", code=ErrorCode.REFUND_EXCEEDS_PAID)
        implied = (
            OrderStatus.PAID if refunded_amount == 0 else OrderStatus.REFUNDED if refunded_amount == paid else OrderStatus.PARTIALLY_REFUNDED
        )
        if status not in (None, OrderStatus.CANCELLED, implied):
            raise ValidationFailed(f"status {status!r} does not match refunded ¥{refunded_amount} of ¥{paid}", code=ErrorCode.STATUS_MISMATCH)
    if staff is not None:
        _same_workspace(staff, workspace.pk, "staff member", ErrorCode.UNKNOWN_STAFF)
    if group is not None:
        _same_workspace(group, workspace.pk, "group", ErrorCode.UNKNOWN_GROUP)
    booked_margin = None if margin in (None, "") else money(margin, "margin", allow_negative=True)
    costs = [line.sku.cost * line.quantity for line in checked if line.sku is not None and line.sku.cost is not None]
    if booked_margin is None and checked and len(costs) == len(checked):
        booked_margin = paid - calc.cents(sum(costs, ZERO))
    existing = Order.objects.in_workspace(workspace).filter(external_id=external_id).first()
    draft = OrderDraft(
        workspace=workspace, external_id=external_id, contact=contact, placed_at=placed_at, currency=currency, lines=checked,
        gross=gross, discount=discount_amount, refunded=refunded_amount,
        cancelled=None if status is None else status == OrderStatus.CANCELLED,
        store=_text(store, "store", 100), staff=staff, source_channel=_text(source_channel, "source channel", 64),
        source_campaign=_text(source_campaign, "source campaign", 64), source_live_code=_text(source_live_code, "live code", 64),
        group=group, coupon=_check_coupon(workspace, coupon_code, contact, existing, placed_at, gross),
        booked_margin=booked_margin, existing=existing,
    )
    if existing is not None:
        draft.changes = _differences(existing, draft)
    return draft


def _differences(order: Order, draft: OrderDraft) -> list[str]:
    """The fields in which a replayed order differs from the stored one."""
    ours = {
        "contact": order.contact_id, "placed_at": order.placed_at, "currency": order.currency, "gross_amount": order.gross_amount,
        "discount_amount": order.discount_amount, "store": order.store, "staff": order.staff_id,
        "source_channel": order.source_channel, "source_campaign": order.source_campaign,
        "source_live_code": order.source_live_code, "group": order.group_id, "coupon": order.coupon_id,
        "booked_margin": order.booked_margin,
    }
    theirs = {
        "contact": draft.contact.pk if draft.contact else None, "placed_at": draft.placed_at, "currency": draft.currency,
        "gross_amount": draft.gross, "discount_amount": draft.discount, "store": draft.store,
        "staff": draft.staff.pk if draft.staff else None, "source_channel": draft.source_channel,
        "source_campaign": draft.source_campaign, "source_live_code": draft.source_live_code,
        "group": draft.group.pk if draft.group else None, "coupon": draft.coupon.pk if draft.coupon else None,
        "booked_margin": draft.booked_margin,
    }
    changes = [key for key in ours if ours[key] != theirs[key]]
    stored_lines = [
        (line.sku_code, line.name, line.quantity, str(line.unit_price), str(line.line_total)) for line in order.lines.order_by("id")
    ]
    if stored_lines != [line.key() for line in draft.lines]:
        changes.append("lines")
    if draft.cancelled is not None and draft.cancelled != (order.status == OrderStatus.CANCELLED):
        changes.append("status")
    if draft.refunded is not None and order.status != OrderStatus.CANCELLED and draft.refunded != order.refunded_amount:
        changes.append("refunded_amount")
    return changes


def _recompute_amounts(order: Order) -> None:
    """net = gross − discount − refunded; status and margin follow."""
    paid = order.gross_amount - order.discount_amount
    order.net_amount = paid - order.refunded_amount
    if order.status != OrderStatus.CANCELLED:
        if order.refunded_amount == 0:
            order.status = OrderStatus.PAID
        elif order.refunded_amount >= paid:
            order.status = OrderStatus.REFUNDED
        else:
            order.status = OrderStatus.PARTIALLY_REFUNDED
    if order.booked_margin is None:
        order.margin_amount = None
    elif paid > 0:
        order.margin_amount = calc.cents(order.booked_margin * order.net_amount / paid)
    else:
        order.margin_amount = order.booked_margin


AMOUNT_FIELDS = ["refunded_amount", "net_amount", "status", "margin_amount", "updated_at"]


def _write_lines(order: Order, lines: Sequence[_Line]) -> None:
    OrderLine.objects.bulk_create(
        [
            OrderLine(
                workspace_id=order.workspace_id, order=order, sku=line.sku, product=line.sku.product if line.sku else None,
                sku_code=line.sku_code, name=line.name, quantity=line.quantity, unit_price=line.unit_price, line_total=line.line_total,
            )
            for line in lines
        ]
    )


def _attach_coupon(order: Order, coupon: Coupon, actor: Staff | None) -> None:
    """Mark the coupon redeemed by this order (a conditional UPDATE: a coupon another
    order took meanwhile is refused)."""
    if coupon.order_id == order.pk and coupon.status == CouponStatus.REDEEMED:
        return
    discount = calc.coupon_discount(coupon_offer(coupon), order.gross_amount)
    taken = Coupon.objects.filter(pk=coupon.pk, status__in=[CouponStatus.ISSUED, CouponStatus.EXPIRED]).update(
        status=CouponStatus.REDEEMED, redeemed_at=order.placed_at, order=order, discount_amount=discount
    )
    if not taken:
        raise Conflict(f"coupon {coupon.code} was already used", code=ErrorCode.COUPON_USED)
    coupon.refresh_from_db()
    record_contact_event(
        coupon.contact, CommerceEvent.COUPON_REDEEMED, key=f"coupon:{coupon.pk}:redeemed:{order.pk}",
        data={"code": coupon.code, "order_id": order.pk, "discount": str(discount)}, occurred_at=order.placed_at,
    )
    record_audit(Workspace.objects.get(pk=order.workspace_id), actor, "coupon.redeemed", target=coupon, after=coupon_snapshot(coupon))


def _release_coupon(order: Order, coupon_id: int | None, actor: Staff | None) -> None:
    """Give the coupon back (the order was cancelled or no longer names it)."""
    if coupon_id is None:
        return
    released = Coupon.objects.filter(pk=coupon_id, order=order, status=CouponStatus.REDEEMED).update(
        status=CouponStatus.ISSUED, redeemed_at=None, order=None, discount_amount=None
    )
    if released:
        record_audit(Workspace.objects.get(pk=order.workspace_id), actor, "coupon.released", target_type="coupon", target_id=coupon_id,
                     summary=f"released by order {order.external_id}")


def _record_order_event(order: Order, points: int) -> None:
    if order.contact is not None:
        record_contact_event(
            order.contact, CommerceEvent.ORDER, key=f"order:{order.pk}:{order.contact_id}",
            data={**order_event_data(order), "points": points}, occurred_at=order.placed_at,
        )


def do_record_order(
    workspace: Workspace,
    actor: Staff | None,
    *,
    external_id: str,
    contact: Contact | None,
    placed_at: dt.datetime,
    lines: Sequence[LineSpec | dict[str, Any]] = (),
    gross_amount: Any = None,
    discount: Any = ZERO,
    refunded: Any = None,
    status: str | None = None,
    currency: str = "",
    store: str = "",
    staff: Staff | None = None,
    source_channel: str = "",
    source_campaign: str = "",
    source_live_code: str = "",
    group: Group | None = None,
    coupon_code: str = "",
    margin: Any = None,
) -> RecordResult:
    """Record a shop order, idempotent by ``(workspace, external_id)``.

    ``lines`` give the gross amount (or ``gross_amount`` does; both must agree);
    ``discount`` covers coupons and promotions; ``refunded`` (the shop's running total)
    and ``status`` are applied as refunds or a cancellation; ``coupon_code`` names a coupon
    of the contact that the order redeems; ``margin`` is the margin as sold (else computed
    from SKU costs when every line has one). See :func:`check_order` for the checks.

    A replay with the same content changes nothing (``created=False, updated=False``);
    a replay with other content updates the order (lines replaced, amounts, points and
    coupon kept in sync) and records ``order.updated`` with before/after. A new order
    records ``order.created``, an ``order`` timeline event (order id, net amount, store),
    earns points, may lift the contact to an automatic membership tier, and schedules the
    contact's lifecycle recomputation after commit."""
    fields: dict[str, Any] = {
        "external_id": external_id, "contact": contact, "placed_at": placed_at, "lines": lines, "gross_amount": gross_amount,
        "discount": discount, "refunded": refunded, "status": status, "currency": currency, "store": store, "staff": staff,
        "source_channel": source_channel, "source_campaign": source_campaign, "source_live_code": source_live_code,
        "group": group, "coupon_code": coupon_code, "margin": margin,
    }
    require(actor, Perm.EDIT_CONTACTS)
    if actor is not None and contact is not None:
        check_can_edit(actor, contact)
    draft = check_order(workspace, **fields)
    with transaction.atomic():
        existing = Order.objects.select_for_update().in_workspace(workspace).filter(external_id=draft.external_id).first()
        if existing is None:
            try:
                with transaction.atomic():
                    order = _create_order(workspace, actor, draft)
                return RecordResult(order, True, False)
            except IntegrityError:
                # A concurrent writer stored the same order first: treat this as its replay.
                existing = Order.objects.select_for_update().in_workspace(workspace).filter(external_id=draft.external_id).first()
                if existing is None:
                    raise
        if draft.existing is None or draft.existing.pk != existing.pk:
            draft = check_order(workspace, **fields)
        elif existing.updated_at != draft.existing.updated_at:
            draft.changes = _differences(existing, draft)  # changed between our check and the lock
        if not draft.changes:
            return RecordResult(existing, False, False)
        _update_order(workspace, actor, existing, draft)
        return RecordResult(existing, False, True)


def _create_order(workspace: Workspace, actor: Staff | None, draft: OrderDraft) -> Order:
    order = Order(
        workspace=workspace, external_id=draft.external_id, contact=draft.contact, placed_at=draft.placed_at, currency=draft.currency,
        gross_amount=draft.gross, discount_amount=draft.discount, refunded_amount=ZERO, store=draft.store, staff=draft.staff,
        source_channel=draft.source_channel, source_campaign=draft.source_campaign, source_live_code=draft.source_live_code,
        group=draft.group, coupon=draft.coupon, booked_margin=draft.booked_margin,
    )
    _recompute_amounts(order)
    order.save()
    _write_lines(order, draft.lines)
    if draft.coupon is not None:
        _attach_coupon(order, draft.coupon, actor)
    _record_order_event(order, _sync_order_points(order, new=True))
    record_audit(workspace, actor, "order.created", target=order, after=order_snapshot(order))
    _apply_shop_state(order, actor, draft)
    if order.contact is not None:
        _apply_auto_tier(order.contact, actor)
    schedule_lifecycle_update([order.contact_id])
    transaction.on_commit(lambda: _commission_task()(order.pk))
    return order


def _commission_task() -> Any:
    from siyu.worker.tasks import order_commission_task

    return order_commission_task


#: Changes that are refunds or a cancellation, applied as such rather than as an edit.
SHOP_STATE_CHANGES = ("refunded_amount", "status")


def _update_order(workspace: Workspace, actor: Staff | None, order: Order, draft: OrderDraft) -> None:
    if order.status == OrderStatus.CANCELLED and draft.cancelled is False:
        raise Conflict(f"order {order.external_id} was cancelled and cannot be paid again", code=ErrorCode.ORDER_CANCELLED)
    edits = [change for change in draft.changes if change not in SHOP_STATE_CHANGES]
    old_contact_id = order.contact_id
    if edits:
        _edit_order(workspace, actor, order, draft, edits)
    _apply_shop_state(order, actor, draft)
    if order.contact is not None:
        _apply_auto_tier(order.contact, actor)
    schedule_lifecycle_update([old_contact_id, order.contact_id])


def _edit_order(workspace: Workspace, actor: Staff | None, order: Order, draft: OrderDraft, edits: list[str]) -> None:
    """Take over the replayed content (lines, amounts, attribution, coupon, customer)."""
    if draft.paid < order.refunded_amount and order.status != OrderStatus.CANCELLED:
        raise ValidationFailed(
            f"the order now comes to ¥{draft.paid}, less than the ¥{order.refunded_amount} already refunded",
            code=ErrorCode.REFUND_EXCEEDS_PAID,
        )
    before = order_snapshot(order)
    old_contact_id, old_coupon_id = order.contact_id, order.coupon_id
    values = {
        "contact": draft.contact, "placed_at": draft.placed_at, "currency": draft.currency, "gross_amount": draft.gross,
        "discount_amount": draft.discount, "store": draft.store, "staff": draft.staff, "source_channel": draft.source_channel,
        "source_campaign": draft.source_campaign, "source_live_code": draft.source_live_code, "group": draft.group,
        "coupon": draft.coupon, "booked_margin": draft.booked_margin,
    }
    for key, value in values.items():
        setattr(order, key, value)
    if order.status == OrderStatus.CANCELLED:
        order.refunded_amount = order.gross_amount - order.discount_amount
    _recompute_amounts(order)
    order.save(update_fields=[*values, *AMOUNT_FIELDS])
    if "lines" in edits:
        order.lines.all().delete()
        _write_lines(order, draft.lines)
    if old_coupon_id != order.coupon_id:
        _release_coupon(order, old_coupon_id, actor)
    if draft.coupon is not None:
        _attach_coupon(order, draft.coupon, actor)
    points = _sync_order_points(order)
    if old_contact_id != order.contact_id:
        _record_order_event(order, points)
    record_audit(workspace, actor, "order.updated", target=order, before=before, after=order_snapshot(order),
                 summary=f"changed: {', '.join(edits)}")


def _apply_shop_state(order: Order, actor: Staff | None, draft: OrderDraft) -> None:
    """The refunds and cancellation the shop reports, applied as our own refunds."""
    if draft.cancelled:
        if order.status != OrderStatus.CANCELLED:
            _cancel(order, actor, "cancelled by the shop")
        return
    if draft.refunded is None or order.status == OrderStatus.CANCELLED:
        return
    if draft.refunded < order.refunded_amount:
        raise ValidationFailed(
            f"refunded ¥{draft.refunded} is less than the ¥{order.refunded_amount} already refunded; refunds cannot be undone",
            code=ErrorCode.REFUND_DECREASE,
        )
    if draft.refunded > order.refunded_amount:
        _refund(order, actor, draft.refunded - order.refunded_amount, reason="refunded by the shop", external_id="")


def do_refund_order(order: Order, actor: Staff | None, amount: Any, reason: str = "", *, external_id: str = "") -> Refund:
    """Refund part or all of an order (退款): ``refunded_amount``, ``net_amount``,
    ``status`` and margin follow, points given for it are reversed in proportion, a
    ``refund`` timeline event and ``order.refunded`` are recorded and the contact's
    lifecycle is recomputed after commit. Never refunds more than is left of what was
    paid. A replay with the same ``external_id`` (the shop's refund id) returns the
    first refund."""
    require(actor, Perm.EDIT_CONTACTS)
    if actor is not None and order.contact is not None:
        check_can_edit(actor, order.contact)
    value = money(amount, "refund amount")
    if value <= 0:
        raise ValidationFailed("a refund must be above zero", code=ErrorCode.INVALID_AMOUNT)
    external_id = _text(external_id, "refund id", 100)
    reason = _text(reason, "reason", 200)
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        if external_id:
            previous = Refund.objects.in_workspace(locked.workspace_id).filter(external_id=external_id).first()
            if previous is not None:
                if previous.order_id != locked.pk or previous.amount != value:
                    raise Conflict(f"refund {external_id!r} was already recorded with other content", code=ErrorCode.INVALID_ORDER)
                return previous
        if locked.status == OrderStatus.CANCELLED:
            raise Conflict(f"order {locked.external_id} is cancelled", code=ErrorCode.ORDER_CANCELLED)
        refund = _refund(locked, actor, value, reason=reason, external_id=external_id)
    order.refresh_from_db()
    return refund


def _refund(order: Order, actor: Staff | None, amount: Decimal, *, reason: str, external_id: str) -> Refund:
    if amount > order.net_amount:
        raise ValidationFailed(
            f"cannot refund ¥{amount}: only ¥{order.net_amount} of the ¥{order.paid_amount} paid is left to refund",
            code=ErrorCode.REFUND_EXCEEDS_PAID,
        )
    before = order_snapshot(order)
    refund = Refund.objects.create(workspace_id=order.workspace_id, order=order, amount=amount, reason=reason, external_id=external_id,
                                   actor=actor)
    order.refunded_amount += amount
    _recompute_amounts(order)
    order.save(update_fields=AMOUNT_FIELDS)
    points = _sync_order_points(order)
    if order.contact is not None:
        record_contact_event(
            order.contact, CommerceEvent.REFUND, key=f"refund:{refund.pk}",
            data={**order_event_data(order), "amount": str(amount), "refunded_amount": str(order.refunded_amount), "reason": reason,
                  "points": points},
        )
    record_audit(Workspace.objects.get(pk=order.workspace_id), actor, "order.refunded", target=order, before=before,
                 after=order_snapshot(order), summary=f"refund ¥{amount} {reason}".strip())
    schedule_lifecycle_update([order.contact_id])
    return refund


def do_cancel_order(order: Order, actor: Staff | None, reason: str = "") -> Order:
    """Cancel an order: it counts as fully refunded (net 0), its points are reversed and
    its coupon is given back. Records ``order.cancelled`` and an ``order_cancelled``
    timeline event; cancelling twice changes nothing."""
    require(actor, Perm.EDIT_CONTACTS)
    if actor is not None and order.contact is not None:
        check_can_edit(actor, order.contact)
    reason = _text(reason, "reason", 200)
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        if locked.status != OrderStatus.CANCELLED:
            _cancel(locked, actor, reason)
    order.refresh_from_db()
    return order


def _cancel(order: Order, actor: Staff | None, reason: str) -> None:
    before = order_snapshot(order)
    order.status = OrderStatus.CANCELLED
    order.refunded_amount = order.gross_amount - order.discount_amount
    _recompute_amounts(order)
    order.save(update_fields=AMOUNT_FIELDS)
    _release_coupon(order, order.coupon_id, actor)
    points = _sync_order_points(order)
    if order.contact is not None:
        record_contact_event(order.contact, CommerceEvent.ORDER_CANCELLED, key=f"order:{order.pk}:cancelled",
                             data={**order_event_data(order), "reason": reason, "points": points})
    record_audit(Workspace.objects.get(pk=order.workspace_id), actor, "order.cancelled", target=order, before=before,
                 after=order_snapshot(order), summary=reason)
    schedule_lifecycle_update([order.contact_id])


# ---------------------------------------------------------------- points


def _points_for(order: Order, rate: Decimal, multiplier: Decimal) -> int:
    return int((order.net_amount * rate * multiplier).to_integral_value(rounding=ROUND_DOWN))


def _sync_order_points(order: Order, *, new: bool = False) -> int:
    """Make the points an order gave match its current net amount: earned when paid,
    reversed in proportion on refunds, moved when the order changes customer; returns
    the change for the order's contact (shown in its order/refund timeline event). The
    rate and tier multiplier of the first earning are kept, so a later refund reverses
    exactly what that money earned. A reversal never takes the balance below zero: the
    part the customer already spent stays spent (noted as ``uncollected``)."""
    earn_key = f"order:{order.pk}:earn"
    entries = [] if new else list(PointsEntry.objects.in_workspace(order.workspace_id).filter(order=order).values(
        "contact_id", "delta", "idempotency_key", "data"))
    have: dict[int, int] = {}
    for entry in entries:
        have[entry["contact_id"]] = have.get(entry["contact_id"], 0) + entry["delta"]
    first = next((e["data"] for e in entries if e["idempotency_key"] == earn_key), None)
    if first is not None:
        rate, multiplier = Decimal(first["rate"]), Decimal(first["multiplier"])
    elif order.contact is not None:
        rate = settings_for(order.workspace_id).points_per_yuan
        card = card_at(order.contact, order.placed_at) if rate else None
        multiplier = card.tier.points_multiplier if card else Decimal("1")
    else:
        rate = multiplier = Decimal("0")
    targets = dict.fromkeys(have, 0)
    if order.contact_id is not None:
        targets[order.contact_id] = _points_for(order, rate, multiplier)
    sequence, change = len(entries), 0
    for contact_id, target in sorted(targets.items()):
        delta = target - have.get(contact_id, 0)
        if delta == 0:
            continue
        contact = Contact.objects.select_for_update().get(pk=contact_id)
        uncollected = 0
        if delta < 0:
            uncollected = max(0, -delta - points_balance(contact))
            delta += uncollected
            if delta == 0:
                continue
        earning = first is None and delta > 0 and contact_id == order.contact_id
        PointsEntry.objects.create(
            workspace_id=order.workspace_id, contact=contact, delta=delta,
            reason=PointsReason.ORDER if delta > 0 else PointsReason.REFUND, order=order,
            idempotency_key=earn_key if earning else f"order:{order.pk}:points:{sequence + 1}", note=f"order {order.external_id}"[:200],
            data={"rate": str(rate), "multiplier": str(multiplier), "net_amount": str(order.net_amount), "uncollected": uncollected},
        )
        if earning:
            first = {"rate": str(rate), "multiplier": str(multiplier)}
        sequence += 1
        if contact_id == order.contact_id:
            change = delta
    return change


def _points_event(contact: Contact, entry: PointsEntry) -> None:
    record_contact_event(
        contact, CommerceEvent.POINTS, key=f"points:{entry.pk}",
        data={"delta": entry.delta, "reason": entry.reason, "balance": points_balance(contact), "order_id": entry.order_id},
    )


def _check_points(points: Any) -> int:
    if isinstance(points, bool) or not isinstance(points, int) or not 1 <= points <= 100_000_000:
        raise ValidationFailed("points must be a whole number from 1", code=ErrorCode.INVALID_POINTS)
    return points


def _replayed_entry(contact: Contact, key: str, delta: int) -> PointsEntry | None:
    previous = PointsEntry.objects.in_workspace(contact.workspace_id).filter(idempotency_key=key).first()
    if previous is None:
        return None
    if previous.contact_id != contact.pk or previous.delta != delta:
        raise Conflict(f"idempotency key {key!r} was already used for another points entry", code=ErrorCode.IDEMPOTENCY_KEY_REUSED)
    return previous


def _write_points(contact: Contact, actor: Staff | None, delta: int, *, reason: str, note: str, key: str) -> tuple[PointsEntry, bool]:
    """Insert one ledger entry under the contact's lock (the caller checked the balance)."""
    try:
        with transaction.atomic():
            entry = PointsEntry.objects.create(
                workspace_id=contact.workspace_id, contact=contact, delta=delta, reason=reason, note=note, idempotency_key=key, actor=actor
            )
    except IntegrityError:
        replay = _replayed_entry(contact, key, delta)
        if replay is None:
            raise
        return replay, False
    _points_event(contact, entry)
    record_audit(Workspace.objects.get(pk=contact.workspace_id), actor, f"points.{'earned' if delta > 0 else 'spent'}", target=contact,
                 after={"delta": delta, "reason": reason, "note": note, "key": key})
    return entry, True


def do_earn_points(
    contact: Contact, actor: Staff | None, *, points: int, idempotency_key: str, reason: str = PointsReason.ADJUST, note: str = ""
) -> tuple[PointsEntry, bool]:
    """Give points outside an order (manual adjustment, reward); returns (entry, created).
    Idempotent by key. Records ``points.earned`` and a ``points`` timeline event.
    Needs the catalogue-level right: points granted from nothing are money."""
    check_can_manage(actor)
    points = _check_points(points)
    if reason not in (PointsReason.ADJUST, PointsReason.REWARD):
        raise ValidationFailed("reason must be adjust or reward", code=ErrorCode.INVALID_POINTS)
    key = _text(idempotency_key, "idempotency key", 200)
    if not key:
        raise ValidationFailed("an idempotency key is required", code=ErrorCode.INVALID_POINTS)
    with transaction.atomic():
        _lock_contact(contact)
        replay = _replayed_entry(contact, key, points)
        if replay is not None:
            return replay, False
        return _write_points(contact, actor, points, reason=reason, note=_text(note, "note", 200), key=key)


def do_spend_points(contact: Contact, actor: Staff | None, *, points: int, idempotency_key: str, note: str = "") -> tuple[PointsEntry, bool]:
    """Spend points (积分兑换); returns (entry, created). The balance (the sum of the
    ledger) is checked after locking the contact, so concurrent spends can never take it
    below zero. Idempotent by key. Records ``points.spent`` and a ``points`` timeline
    event; refuses with ``insufficient_points``."""
    require(actor, Perm.EDIT_CONTACTS)
    if actor is not None:
        check_can_edit(actor, contact)
    points = _check_points(points)
    key = _text(idempotency_key, "idempotency key", 200)
    if not key:
        raise ValidationFailed("an idempotency key is required", code=ErrorCode.INVALID_POINTS)
    with transaction.atomic():
        _lock_contact(contact)
        replay = _replayed_entry(contact, key, -points)
        if replay is not None:
            return replay, False
        balance = points_balance(contact)
        if balance < points:
            raise ValidationFailed(f"needs {points} points; the balance is {balance}", code=ErrorCode.INSUFFICIENT_POINTS,
                                   details={"balance": balance})
        return _write_points(contact, actor, -points, reason=PointsReason.SPEND, note=_text(note, "note", 200), key=key)


# ---------------------------------------------------------------- coupons


def do_create_coupon_template(
    workspace: Workspace,
    actor: Staff | None,
    *,
    name: str,
    kind: str,
    value: Any,
    threshold_amount: Any = ZERO,
    percent_cap: Any = None,
    validity_days: int | None = None,
    valid_from: dt.datetime | None = None,
    valid_until: dt.datetime | None = None,
    per_contact_limit: int = 1,
    total_stock: int | None = None,
) -> CouponTemplate:
    """Define a coupon (fixed amount, percentage off, or 满X减Y threshold coupon) with
    its validity (N days from issue and/or a fixed window), per-contact limit and stock.
    Records ``coupon_template.created``."""
    check_can_manage(actor)
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ValidationFailed("a coupon needs a name of 1 to 100 characters", code=ErrorCode.INVALID_TEMPLATE)
    if kind not in CouponKind.values:
        raise ValidationFailed(f"unknown coupon kind {kind!r}; use one of {', '.join(CouponKind.values)}", code=ErrorCode.INVALID_TEMPLATE)
    amount = money(value, "value")
    threshold = money(threshold_amount if threshold_amount not in (None, "") else ZERO, "threshold")
    cap = None if percent_cap in (None, "") else money(percent_cap, "percent cap")
    if amount <= 0:
        raise ValidationFailed("value must be above zero", code=ErrorCode.INVALID_TEMPLATE)
    if kind == CouponKind.PERCENT and amount >= 100:
        raise ValidationFailed("a percentage coupon takes off less than 100%", code=ErrorCode.INVALID_TEMPLATE)
    if kind == CouponKind.THRESHOLD and (threshold <= 0 or amount > threshold):
        raise ValidationFailed("a threshold coupon needs a threshold above zero and at least its value", code=ErrorCode.INVALID_TEMPLATE)
    if cap is not None and kind != CouponKind.PERCENT:
        raise ValidationFailed("only percentage coupons have a cap", code=ErrorCode.INVALID_TEMPLATE)
    if validity_days is None and valid_until is None:
        raise ValidationFailed("a coupon needs validity_days or valid_until", code=ErrorCode.INVALID_TEMPLATE)
    if validity_days is not None and (isinstance(validity_days, bool) or not 1 <= validity_days <= 3650):
        raise ValidationFailed("validity_days must be from 1 to 3650", code=ErrorCode.INVALID_TEMPLATE)
    for moment in (valid_from, valid_until):
        if moment is not None and timezone.is_naive(moment):
            raise ValidationFailed("validity times need a time zone offset", code=ErrorCode.NAIVE_DATETIME)
    if valid_from is not None and valid_until is not None and valid_from >= valid_until:
        raise ValidationFailed("valid_from must be before valid_until", code=ErrorCode.INVALID_TEMPLATE)
    if per_contact_limit < 0 or (total_stock is not None and total_stock < 1):
        raise ValidationFailed("per_contact_limit must be ≥ 0 and total_stock ≥ 1", code=ErrorCode.INVALID_TEMPLATE)
    with transaction.atomic():
        template = CouponTemplate.objects.create(
            workspace=workspace, name=name, kind=kind, value=amount, threshold_amount=threshold, percent_cap=cap,
            validity_days=validity_days, valid_from=valid_from, valid_until=valid_until, per_contact_limit=per_contact_limit,
            total_stock=total_stock,
        )
        record_audit(workspace, actor, "coupon_template.created", target=template,
                     after={"name": name, "kind": kind, "value": str(amount), "threshold": str(threshold), "stock": total_stock})
    return template


def do_set_coupon_template_active(template: CouponTemplate, actor: Staff | None, *, is_active: bool) -> CouponTemplate:
    """Stop (or resume) issuing a coupon; issued coupons stay valid. Records
    ``coupon_template.updated``."""
    check_can_manage(actor)
    if template.is_active != is_active:
        with transaction.atomic():
            template.is_active = is_active
            template.save(update_fields=["is_active"])
            record_audit(Workspace.objects.get(pk=template.workspace_id), actor, "coupon_template.updated", target=template,
                         after={"is_active": is_active})
    return template


def _new_code() -> str:
    return "".join(secrets.choice(COUPON_ALPHABET) for _ in range(10))


def _issue(template: CouponTemplate, contact: Contact, actor: Staff | None, *, source: str, source_ref: str, now: dt.datetime) -> Coupon:
    """Issue one coupon inside the caller's transaction: per-contact limit under the
    contact's lock, stock through a conditional UPDATE of the counter."""
    _lock_contact(contact)
    if template.per_contact_limit:
        held = Coupon.objects.filter(template=template, contact=contact).exclude(status=CouponStatus.VOID).count()
        if held >= template.per_contact_limit:
            raise Conflict(f"{contact.name} already holds {held} of this coupon (limit {template.per_contact_limit})",
                           code=ErrorCode.PER_CONTACT_LIMIT)
    taken = (
        CouponTemplate.objects.filter(pk=template.pk)
        .filter(Q(total_stock__isnull=True) | Q(issued_count__lt=F("total_stock")))
        .update(issued_count=F("issued_count") + 1)
    )
    if not taken:
        raise Conflict(f"coupon {template.name!r} is out of stock", code=ErrorCode.OUT_OF_STOCK)
    expires = [t for t in (template.valid_until, now + dt.timedelta(days=template.validity_days) if template.validity_days else None) if t]
    for _attempt in range(5):
        try:
            with transaction.atomic():
                coupon = Coupon.objects.create(
                    workspace_id=template.workspace_id, template=template, contact=contact, code=_new_code(), source=source,
                    source_ref=source_ref[:100], issued_at=now, valid_from=template.valid_from, expires_at=min(expires) if expires else None,
                )
            break
        except IntegrityError:
            continue  # a code collision (1 in 10^15): draw another
    else:
        raise Conflict("could not draw a unique coupon code", code=ErrorCode.INVALID_TEMPLATE)
    coupon.template = template
    record_contact_event(
        contact, CommerceEvent.COUPON_ISSUED, key=f"coupon:{coupon.pk}:issued",
        data={"code": coupon.code, "template": template.name, "source": source, "expires_at": coupon.expires_at.isoformat() if coupon.expires_at else None},
        occurred_at=now,
    )
    return coupon


def _check_template(template: CouponTemplate, contact: Contact, source: str, now: dt.datetime) -> None:
    _same_workspace(contact, template.workspace_id, "contact", ErrorCode.CONTACT_NOT_FOUND)
    if source not in CouponSource.values:
        raise ValidationFailed(f"unknown coupon source {source!r}", code=ErrorCode.INVALID_TEMPLATE)
    if not template.is_active:
        raise Conflict(f"coupon {template.name!r} is no longer issued", code=ErrorCode.TEMPLATE_INACTIVE)
    if template.valid_until is not None and template.valid_until <= now:
        raise Conflict(f"coupon {template.name!r} has ended", code=ErrorCode.TEMPLATE_INACTIVE)


def do_issue_coupon(
    template: CouponTemplate, contact: Contact, actor: Staff | None = None, *, source: str = CouponSource.MANUAL, source_ref: str = ""
) -> Coupon:
    """Issue a coupon to a contact (发券), respecting stock and the per-contact limit
    even under concurrent issuing. Records ``coupon.issued`` and a ``coupon_issued``
    timeline event."""
    require(actor, Perm.EDIT_CONTACTS)
    if actor is not None:
        check_can_edit(actor, contact)
    now = timezone.now()
    _check_template(template, contact, source, now)
    with transaction.atomic():
        coupon = _issue(template, contact, actor, source=source, source_ref=source_ref, now=now)
        record_audit(Workspace.objects.get(pk=template.workspace_id), actor, "coupon.issued", target=coupon, after=coupon_snapshot(coupon))
    return coupon


@dataclass
class BulkIssueResult:
    issued: list[Coupon]
    skipped: list[dict[str, Any]]  # {"contact": id, "code": error code, "reason": message}


def do_issue_coupons_bulk(
    template: CouponTemplate, contacts: Sequence[Contact], actor: Staff | None = None, *, source: str = CouponSource.SEGMENT,
    source_ref: str = "",
) -> BulkIssueResult:
    """Issue a coupon to many contacts (a segment, fission winners). Contacts over the
    per-contact limit, or beyond the stock, are skipped with the reason, not failed.
    Records one ``coupons.issued`` with the counts and a timeline event per coupon."""
    check_can_manage(actor)
    now = timezone.now()
    result = BulkIssueResult(issued=[], skipped=[])
    if not contacts:
        return result
    _check_template(template, contacts[0], source, now)
    with transaction.atomic():
        for contact in contacts:
            try:
                _same_workspace(contact, template.workspace_id, "contact", ErrorCode.CONTACT_NOT_FOUND)
                with transaction.atomic():
                    result.issued.append(_issue(template, contact, actor, source=source, source_ref=source_ref, now=now))
            except (Conflict, NotFound) as exc:
                result.skipped.append({"contact": contact.pk, "code": str(exc.code), "reason": exc.message})
        record_audit(
            Workspace.objects.get(pk=template.workspace_id), actor, "coupons.issued", target=template,
            summary=f"{len(result.issued)} issued, {len(result.skipped)} skipped ({source})",
            after={"issued": len(result.issued), "skipped": len(result.skipped), "source": source, "source_ref": source_ref},
        )
    return result


def _check_usable(coupon: Coupon, at: dt.datetime, *, allow_expired_status: bool = False) -> None:
    if coupon.status == CouponStatus.REDEEMED:
        raise Conflict(f"coupon {coupon.code} was already used", code=ErrorCode.COUPON_USED)
    if coupon.status == CouponStatus.VOID:
        raise ValidationFailed(f"coupon {coupon.code} was voided", code=ErrorCode.COUPON_VOID)
    if (coupon.status == CouponStatus.EXPIRED and not allow_expired_status) or (coupon.expires_at is not None and coupon.expires_at <= at):
        raise ValidationFailed(f"coupon {coupon.code} expired", code=ErrorCode.COUPON_EXPIRED)
    if coupon.valid_from is not None and coupon.valid_from > at:
        raise ValidationFailed(f"coupon {coupon.code} is valid from {coupon.valid_from.isoformat()}", code=ErrorCode.COUPON_NOT_YET_VALID)


def _check_threshold(coupon: Coupon, basket: Decimal) -> None:
    threshold = coupon.template.threshold_amount
    if basket < threshold:
        raise ValidationFailed(
            f"coupon {coupon.code} needs a basket of at least ¥{threshold}; this one is ¥{basket} (¥{threshold - basket} short)",
            code=ErrorCode.BELOW_THRESHOLD, details={"threshold": str(threshold), "short": str(threshold - basket)},
        )


def do_redeem_coupon(
    coupon_code: str, contact: Contact, basket_amount: Any, order: Order | None = None, *, actor: Staff | None = None
) -> Coupon:
    """Redeem a coupon (核销) for a basket: refuses with ``coupon_not_found`` (also for
    another workspace's code), ``coupon_not_owner``, ``coupon_used``, ``coupon_expired``,
    ``coupon_not_yet_valid``, ``coupon_void`` or ``below_threshold``. The redemption is a
    single conditional UPDATE (issued → redeemed), so of two concurrent redemptions
    exactly one succeeds. The coupon's ``discount_amount`` is what it takes off this
    basket. Records ``coupon.redeemed`` and a ``coupon_redeemed`` timeline event."""
    require(actor, Perm.EDIT_CONTACTS)
    if actor is not None:
        check_can_edit(actor, contact)
    basket = money(basket_amount, "basket amount")
    code = (coupon_code or "").strip().upper()
    coupon = Coupon.objects.in_workspace(contact.workspace_id).filter(code=code).select_related("template").first() if code else None
    if coupon is None:
        raise NotFound(f"coupon {code!r} not found", code=ErrorCode.COUPON_NOT_FOUND)
    if coupon.contact_id != contact.pk:
        raise ValidationFailed(f"coupon {code} belongs to another customer", code=ErrorCode.COUPON_NOT_OWNER)
    if order is not None:
        _same_workspace(order, contact.workspace_id, "order", ErrorCode.ORDER_NOT_FOUND)
    now = timezone.now()
    _check_usable(coupon, now)
    _check_threshold(coupon, basket)
    discount = calc.coupon_discount(coupon_offer(coupon), basket)
    with transaction.atomic():
        taken = Coupon.objects.filter(pk=coupon.pk, status=CouponStatus.ISSUED).update(
            status=CouponStatus.REDEEMED, redeemed_at=now, order=order, discount_amount=discount
        )
        if not taken:
            raise Conflict(f"coupon {code} was already used", code=ErrorCode.COUPON_USED)
        coupon.refresh_from_db()
        record_contact_event(contact, CommerceEvent.COUPON_REDEEMED, key=f"coupon:{coupon.pk}:redeemed",
                             data={"code": code, "discount": str(discount), "basket": str(basket), "order_id": order.pk if order else None},
                             occurred_at=now)
        record_audit(Workspace.objects.get(pk=contact.workspace_id), actor, "coupon.redeemed", target=coupon, after=coupon_snapshot(coupon))
    return coupon


def do_void_coupon(coupon: Coupon, actor: Staff | None, reason: str = "") -> Coupon:
    """Withdraw an issued coupon (it no longer counts toward the per-contact limit).
    Records ``coupon.voided``."""
    check_can_manage(actor)
    with transaction.atomic():
        voided = Coupon.objects.filter(pk=coupon.pk, status__in=[CouponStatus.ISSUED, CouponStatus.EXPIRED]).update(status=CouponStatus.VOID)
        if not voided:
            raise Conflict(f"coupon {coupon.code} was already used or voided", code=ErrorCode.COUPON_USED)
        coupon.refresh_from_db()
        record_audit(Workspace.objects.get(pk=coupon.workspace_id), actor, "coupon.voided", target=coupon, summary=reason[:300])
    return coupon


def do_expire_coupons(*, workspace_id: int | None = None, now: dt.datetime | None = None) -> int:
    """Mark issued coupons past their expiry as expired (a scheduled pass; redemption
    checks the time itself, this keeps lists and counts honest). Records
    ``coupons.expired`` per workspace."""
    now = now or timezone.now()
    qs = Coupon.objects.filter(status=CouponStatus.ISSUED, expires_at__lte=now)
    if workspace_id is not None:
        qs = qs.filter(workspace_id=workspace_id)
    total = 0
    for ws_id in sorted(set(qs.values_list("workspace_id", flat=True))):
        with transaction.atomic():
            count = qs.filter(workspace_id=ws_id).update(status=CouponStatus.EXPIRED)
            if count:
                record_audit(Workspace.objects.get(pk=ws_id), None, "coupons.expired", target_type="coupon", summary=f"{count} coupons expired",
                             after={"count": count})
        total += count
    return total


# ---------------------------------------------------------------- promotions


def _promotion_tiers(tiers: Any, mode: str, cap: Decimal | None, name: str) -> list[list[str]]:
    if not isinstance(tiers, list | tuple) or not tiers:
        raise ValidationFailed("a promotion needs tiers [[threshold, discount], ...]", code=ErrorCode.INVALID_PROMOTION)
    pairs = []
    for index, tier in enumerate(tiers, start=1):
        if not isinstance(tier, list | tuple) or len(tier) != 2:
            raise ValidationFailed(f"tier {index} must be [threshold, discount]", code=ErrorCode.INVALID_PROMOTION)
        pairs.append((money(tier[0], f"tier {index} threshold"), money(tier[1], f"tier {index} discount")))
    try:
        rule = calc.Promotion(name=name, tiers=tuple(calc.Tier(t, d) for t, d in pairs), stackable=mode == PromotionMode.STACKABLE, cap=cap)
    except ValueError as exc:
        raise ValidationFailed(str(exc), code=ErrorCode.INVALID_PROMOTION) from None
    return [[str(t.threshold), str(t.discount)] for t in rule.tiers]


def do_create_promotion(
    workspace: Workspace,
    actor: Staff | None,
    *,
    name: str,
    tiers: Any,
    mode: str = PromotionMode.TIERED,
    cap: Any = None,
    stacks_with_coupons: bool = True,
    starts_at: dt.datetime | None = None,
    ends_at: dt.datetime | None = None,
) -> Promotion:
    """Define a 满减 promotion (tiered 满200减50/满500减150, or stackable 每满200减50),
    validated by the calculator. Records ``promotion.created``."""
    check_can_manage(actor)
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ValidationFailed("a promotion needs a name of 1 to 100 characters", code=ErrorCode.INVALID_PROMOTION)
    if mode not in PromotionMode.values:
        raise ValidationFailed(f"unknown mode {mode!r}; use tiered or stackable", code=ErrorCode.INVALID_PROMOTION)
    cap_amount = None if cap in (None, "") else money(cap, "cap")
    clean = _promotion_tiers(tiers, mode, cap_amount, name)
    for moment in (starts_at, ends_at):
        if moment is not None and timezone.is_naive(moment):
            raise ValidationFailed("promotion times need a time zone offset", code=ErrorCode.NAIVE_DATETIME)
    if starts_at and ends_at and starts_at >= ends_at:
        raise ValidationFailed("starts_at must be before ends_at", code=ErrorCode.INVALID_PROMOTION)
    with transaction.atomic():
        promotion = Promotion.objects.create(
            workspace=workspace, name=name, mode=mode, tiers=clean, cap=cap_amount, stacks_with_coupons=stacks_with_coupons,
            starts_at=starts_at, ends_at=ends_at,
        )
        record_audit(workspace, actor, "promotion.created", target=promotion,
                     after={"name": name, "mode": mode, "tiers": clean, "cap": None if cap_amount is None else str(cap_amount)})
    return promotion


def do_set_promotion_active(promotion: Promotion, actor: Staff | None, *, is_active: bool) -> Promotion:
    """Switch a promotion on or off. Records ``promotion.updated``."""
    check_can_manage(actor)
    if promotion.is_active != is_active:
        with transaction.atomic():
            promotion.is_active = is_active
            promotion.save(update_fields=["is_active"])
            record_audit(Workspace.objects.get(pk=promotion.workspace_id), actor, "promotion.updated", target=promotion,
                         after={"is_active": is_active})
    return promotion


# ---------------------------------------------------------------- membership


def do_create_tier(
    workspace: Workspace,
    actor: Staff | None,
    *,
    name: str,
    kind: str = TierKind.FREE,
    rank: int = 0,
    price: Any = ZERO,
    validity_days: int | None = None,
    points_multiplier: Any = Decimal("1"),
    min_spend: Any = None,
) -> MembershipTier:
    """Define a membership tier: free (optionally reached automatically at ``min_spend``)
    or paid (a price and ``validity_days``). Records ``membership_tier.created``."""
    check_can_manage(actor)
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ValidationFailed("a tier needs a name of 1 to 100 characters", code=ErrorCode.INVALID_TIER)
    if kind not in TierKind.values:
        raise ValidationFailed("kind must be free or paid", code=ErrorCode.INVALID_TIER)
    amount = money(price, "price")
    spend = None if min_spend in (None, "") else money(min_spend, "min_spend")
    try:
        multiplier = Decimal(str(points_multiplier))
    except ArithmeticError:
        raise ValidationFailed("points_multiplier must be a number", code=ErrorCode.INVALID_TIER) from None
    if not multiplier.is_finite() or not 0 <= multiplier <= 100:
        raise ValidationFailed("points_multiplier must be from 0 to 100", code=ErrorCode.INVALID_TIER)
    if kind == TierKind.PAID and (amount <= 0 or not validity_days or validity_days < 1):
        raise ValidationFailed("a paid tier needs a price and validity_days", code=ErrorCode.INVALID_TIER)
    if kind == TierKind.PAID and spend is not None:
        raise ValidationFailed("a paid tier is bought, not reached by spending: leave min_spend empty", code=ErrorCode.INVALID_TIER)
    if kind == TierKind.FREE and amount != 0:
        raise ValidationFailed("a free tier has no price", code=ErrorCode.INVALID_TIER)
    with transaction.atomic():
        if MembershipTier.objects.in_workspace(workspace).filter(name=name).exists():
            raise Conflict(f"tier {name!r} already exists", code=ErrorCode.INVALID_TIER)
        tier = MembershipTier.objects.create(
            workspace=workspace, name=name, kind=kind, rank=rank, price=amount, validity_days=validity_days,
            points_multiplier=multiplier, min_spend=spend,
        )
        record_audit(workspace, actor, "membership_tier.created", target=tier,
                     after={"name": name, "kind": kind, "price": str(amount), "validity_days": validity_days, "rank": rank})
    return tier


def _active_card_locked(contact: Contact) -> MemberCard | None:
    return MemberCard.objects.filter(contact=contact, status=CardStatus.ACTIVE).select_related("tier").first()


def _open_card(contact: Contact, tier: MembershipTier, actor: Staff | None, *, source: str, at: dt.datetime,
               order: Order | None, price_paid: Decimal) -> MemberCard:
    current = _active_card_locked(contact)
    if current is not None:
        current.status, current.closed_at = CardStatus.REPLACED, at
        current.save(update_fields=["status", "closed_at"])
    until = at + dt.timedelta(days=tier.validity_days) if tier.kind == TierKind.PAID and tier.validity_days else None
    card = MemberCard.objects.create(
        workspace_id=contact.workspace_id, contact=contact, tier=tier, source=source, valid_from=at, valid_until=until,
        price_paid=price_paid, order=order,
    )
    record_contact_event(contact, CommerceEvent.MEMBERSHIP_JOINED, key=f"card:{card.pk}:joined",
                         data={"tier": tier.name, "kind": tier.kind, "valid_until": until.isoformat() if until else None,
                               "replaced": current.tier.name if current else None},
                         occurred_at=at)
    record_audit(Workspace.objects.get(pk=contact.workspace_id), actor, "member_card.created", target=card,
                 before=card_snapshot(current) if current else None, after=card_snapshot(card))
    return card


def do_join_tier(
    contact: Contact, tier: MembershipTier, actor: Staff | None = None, *, source: str = "manual", order: Order | None = None,
    price_paid: Any = None, at: dt.datetime | None = None,
) -> MemberCard:
    """Make the contact a member of ``tier`` (入会 / 开卡). A paid tier lasts its
    validity days; the contact's previous card is closed as replaced. Joining the tier
    the contact already holds is refused (renew instead). Records
    ``member_card.created`` and a ``membership_joined`` timeline event."""
    require(actor, Perm.EDIT_CONTACTS)
    if actor is not None:
        check_can_edit(actor, contact)
    _same_workspace(tier, contact.workspace_id, "tier", ErrorCode.TIER_NOT_FOUND)
    if order is not None:
        _same_workspace(order, contact.workspace_id, "order", ErrorCode.ORDER_NOT_FOUND)
    if not tier.is_active:
        raise ValidationFailed(f"tier {tier.name!r} is not open", code=ErrorCode.INVALID_TIER)
    paid = tier.price if price_paid in (None, "") else money(price_paid, "price paid")
    at = at or timezone.now()
    with transaction.atomic():
        _lock_contact(contact)
        current = _active_card_locked(contact)
        if current is not None and current.tier_id == tier.pk:
            raise Conflict(f"{contact.name} is already a {tier.name} member; renew instead", code=ErrorCode.ALREADY_MEMBER)
        card = _open_card(contact, tier, actor, source=source, at=at, order=order, price_paid=paid)
        schedule_lifecycle_update([contact.pk])
    return card


def do_renew(card: MemberCard, actor: Staff | None = None, *, order: Order | None = None, price_paid: Any = None,
             at: dt.datetime | None = None) -> MemberCard:
    """Extend a paid membership by its tier's validity (续费): from the current end if
    it is still running, else from now (an expired card is reopened as a new card).
    Records ``member_card.renewed`` and a ``membership_renewed`` timeline event."""
    require(actor, Perm.EDIT_CONTACTS)
    contact = card.contact
    if actor is not None:
        check_can_edit(actor, contact)
    tier = card.tier
    if tier.kind != TierKind.PAID or not tier.validity_days:
        raise ValidationFailed(f"{tier.name} is not a paid tier with a validity", code=ErrorCode.NOT_RENEWABLE)
    paid = tier.price if price_paid in (None, "") else money(price_paid, "price paid")
    at = at or timezone.now()
    with transaction.atomic():
        _lock_contact(contact)
        card.refresh_from_db()
        if card.status == CardStatus.REPLACED:
            raise ValidationFailed("this card was replaced by another tier", code=ErrorCode.NOT_RENEWABLE)
        if card.status == CardStatus.EXPIRED:
            if _active_card_locked(contact) is not None:
                raise ValidationFailed("the contact holds another card now", code=ErrorCode.NOT_RENEWABLE)
            card = _open_card(contact, tier, actor, source="renewal", at=at, order=order, price_paid=paid)
        else:
            before = card_snapshot(card)
            start = max(card.valid_until or at, at)
            card.valid_until = start + dt.timedelta(days=tier.validity_days)
            card.price_paid += paid
            card.save(update_fields=["valid_until", "price_paid"])
            record_audit(Workspace.objects.get(pk=contact.workspace_id), actor, "member_card.renewed", target=card, before=before,
                         after=card_snapshot(card))
        record_contact_event(contact, CommerceEvent.MEMBERSHIP_RENEWED, key=f"card:{card.pk}:renewed:{card.valid_until.isoformat() if card.valid_until else ''}",
                             data={"tier": tier.name, "valid_until": card.valid_until.isoformat() if card.valid_until else None},
                             occurred_at=at)
        schedule_lifecycle_update([contact.pk])
    return card


def do_expire_memberships(*, workspace_id: int | None = None, now: dt.datetime | None = None) -> int:
    """Close active cards whose validity ended (a scheduled pass). Records
    ``member_card.expired`` and a ``membership_expired`` timeline event per card, and
    schedules the lifecycle of those contacts (a lapsed paid member may stop being VIP)."""
    now = now or timezone.now()
    qs = MemberCard.objects.filter(status=CardStatus.ACTIVE, valid_until__lte=now).select_related("contact", "tier")
    if workspace_id is not None:
        qs = qs.filter(workspace_id=workspace_id)
    expired = 0
    for card in qs.order_by("id"):
        with transaction.atomic():
            if not MemberCard.objects.filter(pk=card.pk, status=CardStatus.ACTIVE).update(status=CardStatus.EXPIRED, closed_at=card.valid_until):
                continue  # renewed or replaced meanwhile
            record_contact_event(card.contact, CommerceEvent.MEMBERSHIP_EXPIRED, key=f"card:{card.pk}:expired",
                                 data={"tier": card.tier.name}, occurred_at=card.valid_until)
            record_audit(Workspace.objects.get(pk=card.workspace_id), None, "member_card.expired", target=card)
            schedule_lifecycle_update([card.contact_id])
        expired += 1
    return expired


def _apply_auto_tier(contact: Contact, actor: Staff | None) -> MemberCard | None:
    """Lift the contact to the best free tier its lifetime spend reaches (only upward;
    a refund never demotes — that is a decision for a person; a running paid card is
    never replaced)."""
    tiers = list(
        MembershipTier.objects.in_workspace(contact.workspace_id).filter(kind=TierKind.FREE, is_active=True, min_spend__isnull=False)
        .order_by("-rank", "-min_spend")
    )
    if not tiers:
        return None
    spend = lifetime_spend(contact)
    reached = next((t for t in tiers if t.min_spend is not None and t.min_spend <= spend), None)
    if reached is None:
        return None
    _lock_contact(contact)
    current = _active_card_locked(contact)
    if current is not None and (current.tier.rank >= reached.rank or current.tier.kind == TierKind.PAID):
        # a running paid card is something the customer bought: spending never swaps it
        # for a free tier (staff may still change it by hand)
        return None
    return _open_card(contact, reached, actor, source="auto", at=timezone.now(), order=None, price_paid=ZERO)


# ---------------------------------------------------------------- lifecycle


def _transition(contact: Contact, to_stage: str, reason: str, *, actor: Staff | None, data: dict[str, Any], at: dt.datetime) -> StageTransition:
    from_stage = contact.lifecycle_stage
    transition = StageTransition.objects.create(
        workspace_id=contact.workspace_id, contact=contact, from_stage=from_stage, to_stage=to_stage, reason=reason[:300], data=data,
        actor=actor, at=at,
    )
    contact.lifecycle_stage = to_stage
    contact.updated_at = at
    contact.save(update_fields=["lifecycle_stage", "updated_at"])
    record_contact_event(contact, CommerceEvent.STAGE_CHANGED, key=f"stage:{transition.pk}",
                         data={"from": from_stage, "to": to_stage, "reason": reason[:300]}, occurred_at=at)
    record_audit(Workspace.objects.get(pk=contact.workspace_id), actor, "contact.stage_changed", target=contact,
                 before={"lifecycle_stage": from_stage}, after={"lifecycle_stage": to_stage, "reason": reason[:300]})
    return transition


def do_update_lifecycle(
    contact: Contact, *, actor: Staff | None = None, p_alive: float | None = None, now: dt.datetime | None = None,
) -> StageTransition | None:
    """Recompute the contact's lifecycle stage from its orders, activity, membership and
    (optionally) a P(alive) prediction; when it changes, store a
    :class:`StageTransition` (from, to, reason), set ``Contact.lifecycle_stage`` and
    record a ``stage_changed`` timeline event and ``contact.stage_changed``. Returns the
    transition, or None when the stage holds."""
    from siyu.commerce import lifecycle

    if actor is not None:
        check_can_edit(actor, contact)
    now = now or timezone.now()
    thresholds = lifecycle.Thresholds.from_settings(settings_for(contact.workspace_id))
    with transaction.atomic():
        locked = Contact.objects.select_for_update().get(pk=contact.pk)
        if locked.merged_into_id is not None:
            return None
        facts = lifecycle.gather_facts(locked.workspace_id, [locked.pk], {locked.pk: p_alive} if p_alive is not None else None, now=now)
        stage, reason = lifecycle.compute_stage(facts[locked.pk], thresholds, now)
        if stage == locked.lifecycle_stage:
            return None
        transition = _transition(locked, stage, reason, actor=actor, data=facts[locked.pk].as_dict(), at=now)
    contact.lifecycle_stage = stage
    return transition


def do_recompute_lifecycles(workspace_id: int, *, p_alive: dict[int, float] | None = None, now: dt.datetime | None = None) -> dict[str, int]:
    """The daily pass: recompute every live contact of the workspace (facts gathered in
    batches), recording a transition for each change. Returns counts per new stage."""
    from siyu.commerce import lifecycle

    now = now or timezone.now()
    thresholds = lifecycle.Thresholds.from_settings(settings_for(workspace_id))
    counts = {"contacts": 0, "changed": 0}
    ids = list(Contact.objects.in_workspace(workspace_id).filter(merged_into__isnull=True).order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        facts = lifecycle.gather_facts(workspace_id, chunk, p_alive, now=now)
        changes = {}
        for cid, fact in facts.items():
            stage, reason = lifecycle.compute_stage(fact, thresholds, now)
            if stage != fact.stage:
                changes[cid] = (stage, reason)
        counts["contacts"] += len(facts)
        if not changes:
            continue
        with transaction.atomic():
            for contact in Contact.objects.select_for_update().filter(pk__in=list(changes)).order_by("pk"):
                stage, reason = changes[contact.pk]
                if contact.lifecycle_stage != facts[contact.pk].stage:
                    continue  # changed since the facts were read; the next pass sees it
                _transition(contact, stage, reason, actor=None, data=facts[contact.pk].as_dict(), at=now)
                counts["changed"] += 1
                counts[stage] = counts.get(stage, 0) + 1
    return counts


# ---------------------------------------------------------------- reminders


def do_create_birthday_reminders(workspace: Workspace, *, today: dt.date | None = None) -> dict[str, int]:
    """Staff tasks for the owner of every contact whose birthday, or membership
    anniversary (会员周年), falls within the next ``reminder_days_ahead`` days
    (idempotent per contact and year: a daily pass, or a missed day, never duplicates).
    A 29 February birthday is remembered on 28 February in other years."""
    from siyu.channels.actions import do_create_staff_task

    ahead = settings_for(workspace).reminder_days_ahead
    today = today or timezone.now().astimezone(workspace.tz).date()
    window = [today + dt.timedelta(days=n) for n in range(ahead + 1)]
    wanted: dict[tuple[int, int], dt.date] = {}
    for day in window:
        wanted.setdefault((day.month, day.day), day)
        if day.month == 2 and day.day == 28 and not _is_leap(day.year):
            wanted.setdefault((2, 29), day)
    when = Q()
    for month, day_of_month in wanted:
        when |= Q(birthday__month=month, birthday__day=day_of_month)
    created = {"birthdays": 0, "anniversaries": 0}
    live = Contact.objects.in_workspace(workspace).filter(merged_into__isnull=True, owner__isnull=False, owner__is_active=True)
    for contact in live.filter(when).select_related("owner").order_by("pk"):
        if contact.birthday is None:
            continue
        date = wanted[(contact.birthday.month, contact.birthday.day)]
        days = (date - today).days
        _, new = do_create_staff_task(
            workspace.pk, kind="birthday_reminder", assignee=contact.owner,
            title=f"{contact.name} 的生日是 {date.month}月{date.day}日（{_days_text(days)}）",
            detail={"contact_id": contact.pk, "date": date.isoformat(), "days_ahead": days},
            dedupe_key=f"birthday:{contact.pk}:{date.year}",
        )
        created["birthdays"] += new
    since = (
        MemberCard.objects.in_workspace(workspace)
        .filter(contact__merged_into__isnull=True, contact__owner__isnull=False, contact__owner__is_active=True)
        .values("contact_id").annotate(first=Min("valid_from"))
    )
    members = {row["contact_id"]: row["first"] for row in since}
    active = set(MemberCard.objects.in_workspace(workspace).filter(status=CardStatus.ACTIVE, contact_id__in=list(members)).values_list("contact_id", flat=True))
    for contact in Contact.objects.filter(pk__in=sorted(active)).select_related("owner").order_by("pk"):
        start = members[contact.pk].astimezone(workspace.tz).date()
        due = wanted.get((start.month, start.day))
        if due is None or due.year <= start.year:
            continue
        years = due.year - start.year
        _, new = do_create_staff_task(
            workspace.pk, kind="anniversary_reminder", assignee=contact.owner,
            title=f"{contact.name} 入会 {years} 周年：{due.month}月{due.day}日（{_days_text((due - today).days)}）",
            detail={"contact_id": contact.pk, "date": due.isoformat(), "years": years, "member_since": start.isoformat()},
            dedupe_key=f"anniversary:{contact.pk}:{due.year}",
        )
        created["anniversaries"] += new
    return created


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _days_text(days: int) -> str:
    return "今天" if days == 0 else "明天" if days == 1 else f"{days} 天后"
