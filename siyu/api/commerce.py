"""Commerce API: products, orders (record, refund, cancel, import), coupons, 满减
promotions and the calculator, membership tiers and cards, points, lifecycle history and
the commerce settings. Thin: every write is an action of :mod:`siyu.commerce.actions`;
ids of another workspace answer 404. Money is sent and returned as decimal strings."""

import datetime as dt
from decimal import Decimal
from typing import Any, Literal

from django.http import HttpRequest
from ninja import File, Form, Query, Router, Schema, Status, UploadedFile
from ninja.pagination import paginate
from pydantic import Field

from siyu.accounts.models import Staff
from siyu.accounts.permissions import Perm, require
from siyu.api.auth import me, ws
from siyu.api.common import ERRORS, Page
from siyu.commerce import actions
from siyu.commerce import promotions as calc
from siyu.commerce.models import (
    CardStatus,
    Coupon,
    CouponTemplate,
    MemberCard,
    MembershipTier,
    Order,
    PointsEntry,
    Product,
    Promotion,
    StageTransition,
)
from siyu.commerce.queries import (
    active_card,
    active_promotions,
    coupon_offer,
    points_balance,
    promotion_rule,
    settings_for,
    usable_coupons,
    visible_orders,
)
from siyu.communities.models import Group
from siyu.contacts.models import Contact
from siyu.contacts.queries import get_visible_contact
from siyu.core.errors import ValidationFailed

router = Router(tags=["commerce"])


def _contact(request: HttpRequest, contact_id: int) -> Contact:
    return get_visible_contact(ws(request), me(request), contact_id)


def _order(request: HttpRequest, order_id: int) -> Order:
    return visible_orders(ws(request), me(request)).get_in_workspace(ws(request), pk=order_id)  # type: ignore[no-any-return]


def _aware(value: dt.datetime | None, label: str) -> None:
    if value is not None and value.tzinfo is None:
        raise ValidationFailed(f"{label} needs a time zone offset", code="naive_datetime")


# ---------------------------------------------------------------- products


class SkuIn(Schema):
    code: str = Field(min_length=1, max_length=64)
    price: Decimal
    name: str = Field("", max_length=200)
    cost: Decimal | None = None
    is_active: bool = True


class SkuOut(Schema):
    id: int
    code: str
    name: str
    price: Decimal
    cost: Decimal | None
    is_active: bool


class ProductOut(Schema):
    id: int
    name: str
    category: str | None
    description: str
    is_active: bool
    skus: list[SkuOut]
    created_at: dt.datetime

    @staticmethod
    def resolve_category(obj: Product) -> str | None:
        return obj.category.name if obj.category else None

    @staticmethod
    def resolve_skus(obj: Product) -> list[Any]:
        return list(obj.skus.all())


class ProductIn(Schema):
    name: str = Field(min_length=1, max_length=200)
    category: str | None = Field(None, max_length=100)
    description: str = ""
    skus: list[SkuIn] = []


class ProductPatch(Schema):
    name: str | None = Field(None, min_length=1, max_length=200)
    category: str | None = Field(None, max_length=100)
    description: str | None = None
    is_active: bool | None = None
    skus: list[SkuIn] = Field([], description="created or updated by code; SKUs are never deleted")


def _products(request: HttpRequest) -> Any:
    return Product.objects.in_workspace(ws(request)).select_related("category").prefetch_related("skus")


@router.get("/products", response={200: list[ProductOut], **ERRORS})
@paginate(Page)
def list_products(request: HttpRequest, q: str | None = None, category: str | None = None, active: bool | None = None) -> Any:
    qs = _products(request)
    if q:
        qs = qs.filter(name__icontains=q.strip())
    if category:
        qs = qs.filter(category__name=category)
    if active is not None:
        qs = qs.filter(is_active=active)
    return qs.order_by("-created_at", "-id")


@router.post("/products", response={201: ProductOut, **ERRORS})
def create_product(request: HttpRequest, payload: ProductIn) -> Any:
    product = actions.do_create_product(
        ws(request), me(request), name=payload.name, category=payload.category, description=payload.description,
        skus=[actions.SkuSpec(**sku.dict()) for sku in payload.skus],
    )
    return Status(201, _products(request).get(pk=product.pk))


@router.get("/products/{int:product_id}", response={200: ProductOut, **ERRORS})
def get_product(request: HttpRequest, product_id: int) -> Any:
    return _products(request).get_in_workspace(ws(request), pk=product_id)


@router.patch("/products/{int:product_id}", response={200: ProductOut, **ERRORS})
def update_product(request: HttpRequest, product_id: int, payload: ProductPatch) -> Any:
    product = Product.objects.get_in_workspace(ws(request), pk=product_id)
    actions.do_update_product(
        product, me(request), name=payload.name, category=payload.category, description=payload.description,
        is_active=payload.is_active, skus=[actions.SkuSpec(**sku.dict()) for sku in payload.skus],
    )
    return _products(request).get(pk=product_id)


# ---------------------------------------------------------------- orders


class OrderOut(Schema):
    id: int
    external_id: str
    contact_id: int | None
    placed_at: dt.datetime
    status: str
    currency: str
    gross_amount: Decimal
    discount_amount: Decimal
    refunded_amount: Decimal
    net_amount: Decimal
    margin_amount: Decimal | None
    store: str
    staff_id: int | None
    source_channel: str
    source_campaign: str
    source_live_code: str
    group_id: int | None
    coupon_code: str | None

    @staticmethod
    def resolve_coupon_code(obj: Order) -> str | None:
        return obj.coupon.code if obj.coupon_id and obj.coupon else None


class LineOut(Schema):
    sku_code: str
    name: str
    quantity: int
    unit_price: Decimal
    line_total: Decimal
    product_id: int | None


class RefundOut(Schema):
    id: int
    amount: Decimal
    reason: str
    external_id: str
    created_at: dt.datetime


class OrderDetailOut(OrderOut):
    lines: list[LineOut]
    refunds: list[RefundOut]

    @staticmethod
    def resolve_lines(obj: Order) -> list[Any]:
        return list(obj.lines.order_by("id"))

    @staticmethod
    def resolve_refunds(obj: Order) -> list[Any]:
        return list(obj.refunds.order_by("id"))


class LineIn(Schema):
    sku: str = Field("", max_length=64)
    product: str = Field("", max_length=200, description="line name (defaults to the SKU's product)")
    quantity: int = Field(1, ge=1)
    unit_price: Decimal


class OrderIn(Schema):
    external_id: str = Field(min_length=1, max_length=100, description="the shop's order id (idempotency key)")
    contact_id: int
    placed_at: dt.datetime
    lines: list[LineIn] = []
    amount: Decimal | None = Field(None, description="gross; defaults to the sum of the lines")
    discount: Decimal = Decimal("0")
    refunded: Decimal | None = None
    status: Literal["paid", "partially_refunded", "refunded", "cancelled"] | None = None
    currency: str = ""
    store: str = Field("", max_length=100)
    staff_id: int | None = None
    source_channel: str = Field("", max_length=64)
    source_campaign: str = Field("", max_length=64)
    live_code: str = Field("", max_length=64)
    group_id: int | None = None
    coupon_code: str = ""
    margin: Decimal | None = None


class OrderFilters(Schema):
    contact: int | None = None
    status: str | None = None
    store: str | None = None
    since: dt.datetime | None = Field(None, description="placed at or after")
    until: dt.datetime | None = Field(None, description="placed before")


def _orders(request: HttpRequest) -> Any:
    return visible_orders(ws(request), me(request)).select_related("coupon")


@router.get("/orders", response={200: list[OrderOut], **ERRORS})
@paginate(Page)
def list_orders(request: HttpRequest, filters: Query[OrderFilters]) -> Any:
    qs = _orders(request)
    if filters.contact is not None:
        qs = qs.filter(contact_id=filters.contact)
    if filters.status:
        qs = qs.filter(status=filters.status)
    if filters.store:
        qs = qs.filter(store=filters.store)
    _aware(filters.since, "since")
    _aware(filters.until, "until")
    if filters.since:
        qs = qs.filter(placed_at__gte=filters.since)
    if filters.until:
        qs = qs.filter(placed_at__lt=filters.until)
    return qs.order_by("-placed_at", "-id")


@router.get("/orders/{int:order_id}", response={200: OrderDetailOut, **ERRORS})
def get_order(request: HttpRequest, order_id: int) -> Any:
    return _order(request, order_id)


@router.post("/orders", response={201: OrderDetailOut, 200: OrderDetailOut, **ERRORS})
def record_order(request: HttpRequest, payload: OrderIn) -> Any:
    """Record an order, idempotent by ``external_id``: a replay answers 200 with the
    stored order (updated when its content changed)."""
    _aware(payload.placed_at, "placed_at")
    workspace = ws(request)
    result = actions.do_record_order(
        workspace, me(request),
        external_id=payload.external_id,
        contact=_contact(request, payload.contact_id),
        placed_at=payload.placed_at,
        lines=[actions.LineSpec(unit_price=line.unit_price, quantity=line.quantity, sku_code=line.sku, name=line.product)
               for line in payload.lines],
        gross_amount=payload.amount,
        discount=payload.discount,
        refunded=payload.refunded,
        status=payload.status,
        currency=payload.currency,
        store=payload.store,
        staff=Staff.objects.get_in_workspace(workspace, pk=payload.staff_id) if payload.staff_id else None,
        source_channel=payload.source_channel,
        source_campaign=payload.source_campaign,
        source_live_code=payload.live_code,
        group=Group.objects.get_in_workspace(workspace, pk=payload.group_id) if payload.group_id else None,
        coupon_code=payload.coupon_code,
        margin=payload.margin,
    )
    return Status(201 if result.created else 200, _order(request, result.order.pk))


class RefundIn(Schema):
    amount: Decimal
    reason: str = Field("", max_length=200)
    external_id: str = Field("", max_length=100, description="the shop's refund id: a replay is a no-op")


@router.post("/orders/{int:order_id}/refund", response={200: OrderDetailOut, **ERRORS})
def refund_order(request: HttpRequest, order_id: int, payload: RefundIn) -> Any:
    order = _order(request, order_id)
    actions.do_refund_order(order, me(request), payload.amount, payload.reason, external_id=payload.external_id)
    return _order(request, order_id)


class CancelIn(Schema):
    reason: str = Field("", max_length=200)


@router.post("/orders/{int:order_id}/cancel", response={200: OrderDetailOut, **ERRORS})
def cancel_order(request: HttpRequest, order_id: int, payload: CancelIn) -> Any:
    actions.do_cancel_order(_order(request, order_id), me(request), payload.reason)
    return _order(request, order_id)


class ImportRowError(Schema):
    row: int
    reason: str


class ImportOut(Schema):
    imported: int
    updated: int
    unchanged: int
    rejected: list[ImportRowError]
    dry_run: bool
    encoding: str
    unknown_columns: list[str]


@router.post("/orders/import", response={200: ImportOut, **ERRORS})
def import_orders(request: HttpRequest, file: File[UploadedFile], dry_run: Form[bool] = False) -> Any:
    """Import an orders CSV (UTF-8 or GB18030; columns in :mod:`siyu.commerce.importing`).
    Rows that cannot be imported are reported with their row number and reason."""
    from siyu.commerce.importing import import_orders as run_import

    require(me(request), Perm.IMPORT_CONTACTS)
    if file.size and file.size > 50 * 1024 * 1024:
        raise ValidationFailed("file is larger than 50 MB", code="file_too_large")
    return run_import(ws(request), me(request), file.read(), dry_run=dry_run).as_dict()


# ---------------------------------------------------------------- coupons


class TemplateOut(Schema):
    id: int
    name: str
    kind: str
    value: Decimal
    threshold_amount: Decimal
    percent_cap: Decimal | None
    validity_days: int | None
    valid_from: dt.datetime | None
    valid_until: dt.datetime | None
    per_contact_limit: int
    total_stock: int | None
    issued_count: int
    is_active: bool


class TemplateIn(Schema):
    name: str = Field(min_length=1, max_length=100)
    kind: Literal["fixed", "percent", "threshold"]
    value: Decimal = Field(description="yuan; percent off for percentage coupons (20 = 20% off)")
    threshold_amount: Decimal = Decimal("0")
    percent_cap: Decimal | None = None
    validity_days: int | None = Field(None, ge=1, le=3650)
    valid_from: dt.datetime | None = None
    valid_until: dt.datetime | None = None
    per_contact_limit: int = Field(1, ge=0)
    total_stock: int | None = Field(None, ge=1)


class TemplatePatch(Schema):
    is_active: bool


class CouponOut(Schema):
    id: int
    code: str
    template_id: int
    template: str
    contact_id: int
    status: str
    source: str
    issued_at: dt.datetime
    valid_from: dt.datetime | None
    expires_at: dt.datetime | None
    redeemed_at: dt.datetime | None
    order_id: int | None
    discount_amount: Decimal | None

    @staticmethod
    def resolve_template(obj: Coupon) -> str:
        return obj.template.name


@router.get("/coupon-templates", response={200: list[TemplateOut], **ERRORS})
@paginate(Page)
def list_templates(request: HttpRequest, active: bool | None = None) -> Any:
    qs = CouponTemplate.objects.in_workspace(ws(request))
    if active is not None:
        qs = qs.filter(is_active=active)
    return qs.order_by("-created_at", "-id")


@router.post("/coupon-templates", response={201: TemplateOut, **ERRORS})
def create_template(request: HttpRequest, payload: TemplateIn) -> Any:
    _aware(payload.valid_from, "valid_from")
    _aware(payload.valid_until, "valid_until")
    return Status(201, actions.do_create_coupon_template(ws(request), me(request), **payload.dict()))


@router.patch("/coupon-templates/{int:template_id}", response={200: TemplateOut, **ERRORS})
def update_template(request: HttpRequest, template_id: int, payload: TemplatePatch) -> Any:
    template = CouponTemplate.objects.get_in_workspace(ws(request), pk=template_id)
    return actions.do_set_coupon_template_active(template, me(request), is_active=payload.is_active)


class BulkIssueIn(Schema):
    contact_ids: list[int] = Field(min_length=1, max_length=20000)
    source: Literal["manual", "segment", "fission", "reward"] = "segment"
    source_ref: str = Field("", max_length=100)


class SkippedOut(Schema):
    contact: int
    code: str
    reason: str


class BulkIssueOut(Schema):
    issued: list[CouponOut]
    skipped: list[SkippedOut]


@router.post("/coupon-templates/{int:template_id}/issue", response={200: BulkIssueOut, **ERRORS})
def issue_bulk(request: HttpRequest, template_id: int, payload: BulkIssueIn) -> Any:
    """Issue to many contacts (a segment, fission winners); those over the per-contact
    limit or beyond the stock are listed as skipped. Every id must be a contact you can
    see, or nothing is issued."""
    from siyu.contacts.queries import get_visible_contacts

    template = CouponTemplate.objects.get_in_workspace(ws(request), pk=template_id)
    result = actions.do_issue_coupons_bulk(
        template, get_visible_contacts(ws(request), me(request), payload.contact_ids), me(request), source=payload.source,
        source_ref=payload.source_ref,
    )
    return {"issued": result.issued, "skipped": result.skipped}


class IssueIn(Schema):
    template_id: int
    source: Literal["manual", "segment", "fission", "reward"] = "manual"
    source_ref: str = Field("", max_length=100)


@router.get("/contacts/{int:contact_id}/coupons", response={200: list[CouponOut], **ERRORS})
@paginate(Page)
def contact_coupons(request: HttpRequest, contact_id: int, status: str | None = None) -> Any:
    contact = _contact(request, contact_id)
    qs = Coupon.objects.in_workspace(ws(request)).filter(contact=contact).select_related("template")
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("-issued_at", "-id")


@router.post("/contacts/{int:contact_id}/coupons", response={201: CouponOut, **ERRORS})
def issue_coupon(request: HttpRequest, contact_id: int, payload: IssueIn) -> Any:
    contact = _contact(request, contact_id)
    template = CouponTemplate.objects.get_in_workspace(ws(request), pk=payload.template_id)
    return Status(201, actions.do_issue_coupon(template, contact, me(request), source=payload.source, source_ref=payload.source_ref))


class RedeemIn(Schema):
    code: str = Field(min_length=1, max_length=32)
    contact_id: int
    basket_amount: Decimal
    order_id: int | None = None


@router.post("/coupons/redeem", response={200: CouponOut, **ERRORS})
def redeem_coupon(request: HttpRequest, payload: RedeemIn) -> Any:
    """Redeem (核销) a coupon for a basket. Errors: ``coupon_not_found`` (404),
    ``coupon_used`` (409), ``coupon_expired``, ``coupon_not_yet_valid``,
    ``coupon_void``, ``coupon_not_owner``, ``below_threshold`` (422)."""
    contact = _contact(request, payload.contact_id)
    order = _order(request, payload.order_id) if payload.order_id else None
    return actions.do_redeem_coupon(payload.code, contact, payload.basket_amount, order, actor=me(request))


# ---------------------------------------------------------------- promotions


class PromotionOut(Schema):
    id: int
    name: str
    mode: str
    tiers: list[list[str]]
    cap: Decimal | None
    stacks_with_coupons: bool
    starts_at: dt.datetime | None
    ends_at: dt.datetime | None
    is_active: bool


class PromotionIn(Schema):
    name: str = Field(min_length=1, max_length=100)
    mode: Literal["tiered", "stackable"] = "tiered"
    tiers: list[tuple[Decimal, Decimal]] = Field(min_length=1, description="[[threshold, discount], ...]")
    cap: Decimal | None = None
    stacks_with_coupons: bool = True
    starts_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None


class PromotionPatch(Schema):
    is_active: bool


@router.get("/promotions", response={200: list[PromotionOut], **ERRORS})
@paginate(Page)
def list_promotions(request: HttpRequest, active: bool | None = None) -> Any:
    qs = Promotion.objects.in_workspace(ws(request))
    if active is not None:
        qs = qs.filter(is_active=active)
    return qs.order_by("-created_at", "-id")


@router.post("/promotions", response={201: PromotionOut, **ERRORS})
def create_promotion(request: HttpRequest, payload: PromotionIn) -> Any:
    _aware(payload.starts_at, "starts_at")
    _aware(payload.ends_at, "ends_at")
    data = payload.dict()
    data["tiers"] = [list(pair) for pair in payload.tiers]
    return Status(201, actions.do_create_promotion(ws(request), me(request), **data))


@router.patch("/promotions/{int:promotion_id}", response={200: PromotionOut, **ERRORS})
def update_promotion(request: HttpRequest, promotion_id: int, payload: PromotionPatch) -> Any:
    promotion = Promotion.objects.get_in_workspace(ws(request), pk=promotion_id)
    return actions.do_set_promotion_active(promotion, me(request), is_active=payload.is_active)


class CalculateIn(Schema):
    basket_total: Decimal = Field(ge=0)
    contact_id: int | None = Field(None, description="consider this customer's usable coupons")
    coupon_codes: list[str] = Field([], description="only these of the customer's coupons")
    promotion_ids: list[int] = Field([], description="only these promotions (default: all active now)")


class TierUseOut(Schema):
    threshold: Decimal
    discount: Decimal
    count: int


class PlanOut(Schema):
    basket_total: Decimal
    discount: Decimal
    payable: Decimal
    promotion: str | None
    promotion_id: int | None
    promotion_discount: Decimal
    tiers_used: list[TierUseOut]
    coupon: str | None
    coupon_discount: Decimal
    explanation: list[str]


class HintOut(Schema):
    add: Decimal
    to_save: Decimal
    extra: Decimal
    promotion: str
    text: str


class CalculateOut(Schema):
    plan: PlanOut
    hint: HintOut | None


@router.post("/promotions/calculate", response={200: CalculateOut, **ERRORS})
def calculate(request: HttpRequest, payload: CalculateIn) -> Any:
    """The best 满减 + coupon plan for a basket and the anchoring hint for the next tier
    ("再买 ¥37 立减 50"). At most one promotion and one coupon apply."""
    workspace = ws(request)
    stored = active_promotions(workspace)
    if payload.promotion_ids:
        wanted = set(payload.promotion_ids)
        stored = [p for p in stored if p.pk in wanted]
    rules = [promotion_rule(p) for p in stored]
    offers: list[calc.CouponOffer] = []
    if payload.contact_id is not None:
        offers = [coupon_offer(c) for c in usable_coupons(_contact(request, payload.contact_id), codes=payload.coupon_codes)]
    plan = calc.best_promotion(payload.basket_total, rules, offers)
    return {
        "plan": {
            **{k: getattr(plan, k) for k in ("basket_total", "discount", "payable", "promotion", "promotion_discount", "coupon", "coupon_discount")},
            "promotion_id": int(plan.promotion_key) if plan.promotion_key else None,
            "tiers_used": [{"threshold": u.threshold, "discount": u.discount, "count": u.count} for u in plan.tiers_used],
            "explanation": list(plan.explanation),
        },
        "hint": calc.anchoring_hint(payload.basket_total, rules),
    }


# ---------------------------------------------------------------- membership


class TierOut(Schema):
    id: int
    name: str
    kind: str
    rank: int
    price: Decimal
    validity_days: int | None
    points_multiplier: Decimal
    min_spend: Decimal | None
    is_active: bool


class TierIn(Schema):
    name: str = Field(min_length=1, max_length=100)
    kind: Literal["free", "paid"] = "free"
    rank: int = Field(0, ge=0)
    price: Decimal = Decimal("0")
    validity_days: int | None = Field(None, ge=1)
    points_multiplier: Decimal = Decimal("1")
    min_spend: Decimal | None = None


class CardOut(Schema):
    id: int
    tier_id: int
    tier: str
    status: str
    source: str
    valid_from: dt.datetime
    valid_until: dt.datetime | None
    price_paid: Decimal

    @staticmethod
    def resolve_tier(obj: MemberCard) -> str:
        return obj.tier.name


class MembershipOut(Schema):
    current: CardOut | None
    history: list[CardOut]


class JoinIn(Schema):
    tier_id: int
    price_paid: Decimal | None = None
    order_id: int | None = None


class RenewIn(Schema):
    price_paid: Decimal | None = None
    order_id: int | None = None


@router.get("/membership-tiers", response={200: list[TierOut], **ERRORS})
def list_tiers(request: HttpRequest) -> Any:
    return list(MembershipTier.objects.in_workspace(ws(request)).order_by("rank", "id"))


@router.post("/membership-tiers", response={201: TierOut, **ERRORS})
def create_tier(request: HttpRequest, payload: TierIn) -> Any:
    return Status(201, actions.do_create_tier(ws(request), me(request), **payload.dict()))


def _membership(contact: Contact) -> dict[str, Any]:
    cards = list(MemberCard.objects.in_workspace(contact.workspace_id).filter(contact=contact).select_related("tier").order_by("-valid_from", "-id"))
    return {"current": active_card(contact), "history": cards}


@router.get("/contacts/{int:contact_id}/membership", response={200: MembershipOut, **ERRORS})
def contact_membership(request: HttpRequest, contact_id: int) -> Any:
    return _membership(_contact(request, contact_id))


@router.post("/contacts/{int:contact_id}/membership", response={201: MembershipOut, **ERRORS})
def join_tier(request: HttpRequest, contact_id: int, payload: JoinIn) -> Any:
    contact = _contact(request, contact_id)
    tier = MembershipTier.objects.get_in_workspace(ws(request), pk=payload.tier_id)
    order = _order(request, payload.order_id) if payload.order_id else None
    actions.do_join_tier(contact, tier, me(request), price_paid=payload.price_paid, order=order,
                         source="purchase" if order else "manual")
    return Status(201, _membership(contact))


@router.post("/contacts/{int:contact_id}/membership/renew", response={200: MembershipOut, **ERRORS})
def renew_membership(request: HttpRequest, contact_id: int, payload: RenewIn) -> Any:
    """Renew the current paid card, or the last one if it expired."""
    contact = _contact(request, contact_id)
    card = (
        MemberCard.objects.in_workspace(ws(request)).filter(contact=contact).exclude(status=CardStatus.REPLACED)
        .order_by("-valid_from", "-id").first()
    )
    if card is None:
        raise ValidationFailed("the contact holds no membership card to renew", code="not_renewable")
    order = _order(request, payload.order_id) if payload.order_id else None
    actions.do_renew(card, me(request), order=order, price_paid=payload.price_paid)
    return _membership(contact)


# ---------------------------------------------------------------- points


class PointsEntryOut(Schema):
    id: int
    delta: int
    reason: str
    note: str
    order_id: int | None
    idempotency_key: str
    created_at: dt.datetime


class PointsOut(Schema):
    balance: int
    entries: list[PointsEntryOut]


class PointsIn(Schema):
    points: int = Field(ge=1)
    idempotency_key: str = Field(min_length=1, max_length=200)
    note: str = Field("", max_length=200)


class EarnIn(PointsIn):
    reason: Literal["adjust", "reward"] = "adjust"


class PointsResultOut(Schema):
    entry: PointsEntryOut
    balance: int


@router.get("/contacts/{int:contact_id}/points", response={200: PointsOut, **ERRORS})
def contact_points(request: HttpRequest, contact_id: int, limit: int = 50) -> Any:
    """The balance (the sum of the ledger) and the latest ``limit`` (≤ 500) ledger entries."""
    if not 1 <= limit <= 500:
        raise ValidationFailed("limit must be between 1 and 500", code="invalid_pagination")
    contact = _contact(request, contact_id)
    entries = PointsEntry.objects.in_workspace(ws(request)).filter(contact=contact).order_by("-created_at", "-id")[:limit]
    return {"balance": points_balance(contact), "entries": list(entries)}


@router.post("/contacts/{int:contact_id}/points/spend", response={201: PointsResultOut, 200: PointsResultOut, **ERRORS})
def spend_points(request: HttpRequest, contact_id: int, payload: PointsIn) -> Any:
    """Spend points; ``insufficient_points`` (422) when the balance is short. A replay
    with the same idempotency key answers 200 with the first entry."""
    contact = _contact(request, contact_id)
    entry, created = actions.do_spend_points(contact, me(request), points=payload.points, idempotency_key=payload.idempotency_key,
                                             note=payload.note)
    return Status(201 if created else 200, {"entry": entry, "balance": points_balance(contact)})


@router.post("/contacts/{int:contact_id}/points/earn", response={201: PointsResultOut, 200: PointsResultOut, **ERRORS})
def earn_points(request: HttpRequest, contact_id: int, payload: EarnIn) -> Any:
    contact = _contact(request, contact_id)
    entry, created = actions.do_earn_points(contact, me(request), points=payload.points, idempotency_key=payload.idempotency_key,
                                            reason=payload.reason, note=payload.note)
    return Status(201 if created else 200, {"entry": entry, "balance": points_balance(contact)})


# ---------------------------------------------------------------- lifecycle


class TransitionOut(Schema):
    id: int
    from_stage: str
    to_stage: str
    reason: str
    at: dt.datetime
    actor_id: int | None


class LifecycleOut(Schema):
    stage: str
    transitions: list[TransitionOut]


def _lifecycle(contact: Contact) -> dict[str, Any]:
    transitions = StageTransition.objects.in_workspace(contact.workspace_id).filter(contact=contact).order_by("-at", "-id")[:200]
    return {"stage": contact.lifecycle_stage, "transitions": list(transitions)}


@router.get("/contacts/{int:contact_id}/lifecycle", response={200: LifecycleOut, **ERRORS})
def contact_lifecycle(request: HttpRequest, contact_id: int) -> Any:
    """The current stage and its transition history, newest first."""
    return _lifecycle(_contact(request, contact_id))


@router.post("/contacts/{int:contact_id}/lifecycle/recompute", response={200: LifecycleOut, **ERRORS})
def recompute_lifecycle(request: HttpRequest, contact_id: int) -> Any:
    contact = _contact(request, contact_id)
    actions.do_update_lifecycle(contact, actor=me(request))
    contact.refresh_from_db()
    return _lifecycle(contact)


# ---------------------------------------------------------------- settings


class SettingsOut(Schema):
    points_per_yuan: Decimal
    new_days: int
    churn_days: int
    at_risk_min_days: int
    at_risk_factor: Decimal
    default_interval_days: int
    vip_min_orders: int
    vip_min_spend: Decimal
    p_alive_threshold: Decimal
    reminder_days_ahead: int
    webhook_configured: bool
    webhook_secret_rotated_at: dt.datetime | None

    @staticmethod
    def resolve_webhook_configured(obj: Any) -> bool:
        return bool(obj.webhook_secret_encrypted)


class SettingsPatch(Schema):
    points_per_yuan: Decimal | None = None
    new_days: int | None = None
    churn_days: int | None = None
    at_risk_min_days: int | None = None
    at_risk_factor: Decimal | None = None
    default_interval_days: int | None = None
    vip_min_orders: int | None = None
    vip_min_spend: Decimal | None = None
    p_alive_threshold: Decimal | None = None
    reminder_days_ahead: int | None = None


class SecretOut(Schema):
    secret: str = Field(description="shown once: store it in the shop's webhook settings")
    url: str


@router.get("/commerce/settings", response={200: SettingsOut, **ERRORS})
def get_settings(request: HttpRequest) -> Any:
    return settings_for(ws(request))


@router.patch("/commerce/settings", response={200: SettingsOut, **ERRORS})
def update_settings(request: HttpRequest, payload: SettingsPatch) -> Any:
    return actions.do_update_commerce_settings(ws(request), me(request), **payload.dict(exclude_unset=True, exclude_none=True))


@router.post("/commerce/webhook-secret", response={201: SecretOut, **ERRORS})
def rotate_secret(request: HttpRequest) -> Any:
    """Create a new order-webhook secret (the old one stops working at once)."""
    secret = actions.do_rotate_webhook_secret(ws(request), me(request))
    return Status(201, {"secret": secret, "url": request.build_absolute_uri(f"/hooks/orders/{ws(request).slug}")})
