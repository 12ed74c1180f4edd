"""Reads of the commerce domain: settings, contact matching, scoped order lists, points
balances, memberships and the coupons and promotions that apply to a basket."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal

from django.db.models import Q, Sum
from django.utils import timezone

from siyu.accounts.models import Staff
from siyu.accounts.permissions import Perm, has_perm
from siyu.commerce import promotions as calc
from siyu.commerce.errors import ErrorCode
from siyu.commerce.models import (
    CardStatus,
    CommerceSettings,
    Coupon,
    CouponStatus,
    MemberCard,
    Order,
    OrderQuerySet,
    PointsEntry,
    Promotion,
    PromotionMode,
)
from siyu.contacts.models import ChannelIdentity, Contact
from siyu.contacts.queries import visible_contacts
from siyu.core import crypto
from siyu.core.errors import ValidationFailed
from siyu.core.models import Workspace
from siyu.core.phones import normalize_phone


def settings_for(workspace: Workspace | int) -> CommerceSettings:
    """The workspace's commerce settings, or the defaults (unsaved) when none were stored."""
    ws_id = workspace if isinstance(workspace, int) else workspace.pk
    return CommerceSettings.objects.in_workspace(ws_id).first() or CommerceSettings(workspace_id=ws_id)


def webhook_secret(workspace: Workspace) -> str:
    """The decrypted webhook secret, or "" when none was set (the webhook then refuses)."""
    row = CommerceSettings.objects.in_workspace(workspace).first()
    return crypto.decrypt(row.webhook_secret_encrypted) if row else ""


def _live(contact: Contact) -> Contact:
    while contact.merged_into_id is not None:
        contact = Contact.objects.get(pk=contact.merged_into_id)
    return contact


def _only(found: Sequence[Contact], what: str) -> Contact | None:
    if len(found) > 1:
        raise ValidationFailed(f"{what} matches several contacts; merge them first", code=ErrorCode.CONTACT_AMBIGUOUS)
    return found[0] if found else None


def match_contact(workspace: Workspace, *, external_id: str = "", phone: str = "", identity: str = "") -> Contact:
    """The contact an order belongs to, found by the brand's customer number, then by
    phone, then by a channel identity (WeCom external_userid, Matrix id). Never creates
    one: an unknown customer is an error with the reason, so nothing is dropped silently.
    A merged duplicate resolves to the contact it was merged into."""
    external_id, phone, identity = external_id.strip(), phone.strip(), identity.strip()
    if not (external_id or phone or identity):
        raise ValidationFailed("the order names no customer: give contact_external_id, phone or identity", code=ErrorCode.CONTACT_NOT_FOUND)
    base = Contact.objects.in_workspace(workspace).filter(merged_into__isnull=True)
    tried: list[str] = []
    if external_id:
        contact = _only(list(base.filter(external_ref=external_id)[:2]), f"external id {external_id!r}")
        if contact is not None:
            return contact
        tried.append(f"external id {external_id!r}")
    if phone:
        contact = _only(list(base.filter(phone_hash=crypto.lookup_hash(normalize_phone(phone)))[:2]), f"phone {phone!r}")
        if contact is not None:
            return contact
        tried.append(f"phone {phone!r}")
    if identity:
        holders = ChannelIdentity.objects.in_workspace(workspace).filter(external_id=identity).select_related("contact")
        live = {c.pk: c for c in (_live(i.contact) for i in holders)}
        contact = _only(list(live.values()), f"identity {identity!r}")
        if contact is not None:
            return contact
        tried.append(f"identity {identity!r}")
    raise ValidationFailed(f"no contact with {' or '.join(tried)}", code=ErrorCode.CONTACT_NOT_FOUND)


def visible_orders(workspace: Workspace, staff: Staff | None) -> OrderQuerySet:
    """Orders of the workspace that ``staff`` may see: all for roles that see all
    contacts; for agents, the orders of their own contacts."""
    qs: OrderQuerySet = Order.objects.in_workspace(workspace)
    if staff is not None and not has_perm(staff, Perm.VIEW_ALL_CONTACTS):
        qs = qs.filter(contact__in=visible_contacts(workspace, staff))
    return qs


def points_balance(contact: Contact) -> int:
    return PointsEntry.objects.in_workspace(contact.workspace_id).filter(contact=contact).balance()


def active_card(contact: Contact, at: dt.datetime | None = None) -> MemberCard | None:
    """The contact's current membership card (valid now), if any."""
    at = at or timezone.now()
    return (
        MemberCard.objects.in_workspace(contact.workspace_id)
        .filter(contact=contact, status=CardStatus.ACTIVE, valid_from__lte=at)
        .filter(Q(valid_until__isnull=True) | Q(valid_until__gt=at))
        .select_related("tier")
        .first()
    )


def card_at(contact: Contact, at: dt.datetime) -> MemberCard | None:
    """The card the contact held at ``at`` (whatever became of it since)."""
    return (
        MemberCard.objects.in_workspace(contact.workspace_id)
        .filter(contact=contact, valid_from__lte=at)
        .filter(Q(valid_until__isnull=True) | Q(valid_until__gt=at), Q(closed_at__isnull=True) | Q(closed_at__gt=at))
        .select_related("tier")
        .order_by("-valid_from", "-id")
        .first()
    )


def lifetime_spend(contact: Contact) -> Decimal:
    total = Order.objects.in_workspace(contact.workspace_id).buying().filter(contact=contact).aggregate(s=Sum("net_amount"))["s"]
    return calc.cents(total or 0)  # SQLite sums lose the scale


def promotion_rule(promotion: Promotion) -> calc.Promotion:
    """The pure calculator's view of a stored promotion."""
    return calc.Promotion(
        name=promotion.name,
        tiers=tuple(calc.Tier(Decimal(t), Decimal(d)) for t, d in promotion.tiers),
        stackable=promotion.mode == PromotionMode.STACKABLE,
        cap=promotion.cap,
        stacks_with_coupons=promotion.stacks_with_coupons,
        key=str(promotion.pk),
    )


def active_promotions(workspace: Workspace, at: dt.datetime | None = None) -> list[Promotion]:
    at = at or timezone.now()
    return list(
        Promotion.objects.in_workspace(workspace)
        .filter(is_active=True)
        .filter(Q(starts_at__isnull=True) | Q(starts_at__lte=at), Q(ends_at__isnull=True) | Q(ends_at__gt=at))
        .order_by("id")
    )


def coupon_offer(coupon: Coupon) -> calc.CouponOffer:
    template = coupon.template
    return calc.CouponOffer(
        code=coupon.code, kind=template.kind, value=template.value, threshold=template.threshold_amount, percent_cap=template.percent_cap
    )


def usable_coupons(contact: Contact, at: dt.datetime | None = None, codes: Sequence[str] = ()) -> list[Coupon]:
    """Issued coupons of the contact that are valid at ``at`` (optionally only these codes)."""
    at = at or timezone.now()
    qs = (
        Coupon.objects.in_workspace(contact.workspace_id)
        .filter(contact=contact, status=CouponStatus.ISSUED)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=at), Q(valid_from__isnull=True) | Q(valid_from__lte=at))
        .select_related("template")
        .order_by("expires_at", "id")
    )
    if codes:
        qs = qs.filter(code__in=[c.strip().upper() for c in codes])
    return list(qs)
