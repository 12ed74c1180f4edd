"""Commerce (成交 / 复购): catalogue, orders and refunds, coupons, 满减 promotions,
membership tiers and cards, the points ledger, lifecycle stage history, and the
per-workspace commerce settings.

Money is ``Decimal`` with two places (CNY by default); time is aware UTC. ``Order`` is a
contract other domains read (analytics: BG/NBD, RFM, sales formula): its amounts are kept
in sync by the actions, always ``net = gross − discount − refunded``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from django.db import models
from django.db.models import Q, Sum
from django.utils.translation import gettext_lazy as _

from siyu.accounts.models import Staff
from siyu.contacts.models import Contact, LifecycleStage
from siyu.core.models import WorkspaceOwned, WorkspaceQuerySet

ZERO = Decimal("0.00")


class CommerceSettings(WorkspaceOwned):
    """One row per workspace (created by the first action that needs it): the webhook
    secret, points rate and the lifecycle thresholds. The currency is the workspace's."""

    webhook_secret_encrypted = models.TextField(blank=True, default="")
    webhook_secret_rotated_at = models.DateTimeField(null=True, blank=True)
    points_per_yuan = models.DecimalField(max_digits=8, decimal_places=4, default=Decimal("1.0000"))
    # Lifecycle thresholds (see siyu.commerce.lifecycle).
    new_days = models.PositiveIntegerField(default=14, help_text="a contact without orders is new for this many days")
    churn_days = models.PositiveIntegerField(default=180, help_text="no order and no activity for this long: churned")
    at_risk_min_days = models.PositiveIntegerField(default=45, help_text="never at risk sooner than this after the last order")
    at_risk_factor = models.DecimalField(
        max_digits=5, decimal_places=2, default=Decimal("2.00"), help_text="at risk after this many usual purchase intervals"
    )
    default_interval_days = models.PositiveIntegerField(default=60, help_text="usual interval assumed after a single order")
    vip_min_orders = models.PositiveIntegerField(default=5)
    vip_min_spend = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("5000.00"))
    p_alive_threshold = models.DecimalField(max_digits=4, decimal_places=3, default=Decimal("0.300"))
    reminder_days_ahead = models.PositiveIntegerField(default=3, help_text="birthday/anniversary reminders this many days ahead")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace"], name="commerce_settings_one_per_workspace")]
        verbose_name_plural = "commerce settings"


# ---------------------------------------------------------------- catalogue


class ProductCategory(WorkspaceOwned):
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="product_category_unique_name")]
        verbose_name_plural = "product categories"

    def __str__(self) -> str:
        return self.name


class Product(WorkspaceOwned):
    name = models.CharField(max_length=200)
    category = models.ForeignKey(ProductCategory, null=True, blank=True, on_delete=models.SET_NULL, related_name="products")
    description = models.TextField(blank=True, default="")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name


class Sku(WorkspaceOwned):
    """A sellable variant (规格) of a product; ``code`` is the shop's SKU code."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="skus")
    code = models.CharField(max_length=64)
    name = models.CharField(max_length=200, blank=True, default="")
    price = models.DecimalField(max_digits=14, decimal_places=2)
    cost = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True, help_text="unit cost, for margins")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["product_id", "id"]
        constraints = [models.UniqueConstraint(fields=["workspace", "code"], name="sku_unique_code")]
        verbose_name = "SKU"

    def __str__(self) -> str:
        return self.code


# ---------------------------------------------------------------- orders


class OrderStatus(models.TextChoices):
    PAID = "paid", _("Paid")
    PARTIALLY_REFUNDED = "partially_refunded", _("Partially refunded")
    REFUNDED = "refunded", _("Refunded")
    CANCELLED = "cancelled", _("Cancelled")


#: Orders that count as a purchase (a fully refunded or cancelled order does not).
BUYING_STATUSES = (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED)


class OrderQuerySet(WorkspaceQuerySet["Order"]):
    def buying(self) -> OrderQuerySet:
        return self.filter(status__in=BUYING_STATUSES)  # type: ignore[return-value]


class OrderManager(models.Manager.from_queryset(OrderQuerySet)):  # type: ignore[misc]
    pass


class Order(WorkspaceOwned):
    """A shop order (订单), imported or received by webhook, idempotent by the shop's id.

    A cancelled order counts as fully refunded (``refunded_amount = gross − discount``),
    so ``net_amount`` sums to real revenue whatever the status."""

    contact = models.ForeignKey(Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="orders")
    external_id = models.CharField(max_length=100, help_text="the shop's order id")
    placed_at = models.DateTimeField()
    status = models.CharField(max_length=20, choices=OrderStatus.choices, default=OrderStatus.PAID)
    currency = models.CharField(max_length=3, default="CNY")
    gross_amount = models.DecimalField(max_digits=14, decimal_places=2)
    discount_amount = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO)
    refunded_amount = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO)
    net_amount = models.DecimalField(max_digits=14, decimal_places=2)
    margin_amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True, help_text="margin on the net, after refunds")
    booked_margin = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True, help_text="margin as sold, before refunds")
    store = models.CharField(max_length=100, blank=True, default="")
    staff = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="orders")
    source_channel = models.CharField(max_length=64, blank=True, default="")
    source_campaign = models.CharField(max_length=64, blank=True, default="")
    source_live_code = models.CharField(max_length=64, blank=True, default="", help_text="live code (活码) key or state")
    group = models.ForeignKey("communities.Group", null=True, blank=True, on_delete=models.SET_NULL, related_name="orders")
    coupon = models.ForeignKey("Coupon", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects: ClassVar[OrderManager] = OrderManager()

    class Meta:
        ordering = ["-placed_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "external_id"], name="order_unique_external_id"),
            models.CheckConstraint(condition=Q(net_amount__gte=0), name="order_net_not_negative"),
        ]
        indexes = [
            models.Index(fields=["workspace", "placed_at"]),
            models.Index(fields=["contact", "placed_at"]),
            models.Index(fields=["workspace", "status"]),
        ]

    def __str__(self) -> str:
        return self.external_id

    @property
    def paid_amount(self) -> Decimal:
        """What the customer paid before refunds."""
        return self.gross_amount - self.discount_amount


class OrderLine(WorkspaceOwned):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    sku = models.ForeignKey(Sku, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    sku_code = models.CharField(max_length=64, blank=True, default="")
    name = models.CharField(max_length=200, blank=True, default="")
    quantity = models.PositiveIntegerField(default=1)
    unit_price = models.DecimalField(max_digits=14, decimal_places=2)
    line_total = models.DecimalField(max_digits=14, decimal_places=2)

    class Meta:
        ordering = ["order_id", "id"]


class Refund(WorkspaceOwned):
    """One refund (退款) of part or all of an order; ``external_id`` (the shop's refund id)
    makes a replayed refund a no-op."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="refunds")
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    reason = models.CharField(max_length=200, blank=True, default="")
    external_id = models.CharField(max_length=100, blank=True, default="")
    actor = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "external_id"], condition=~Q(external_id=""), name="refund_unique_external_id"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive"),
        ]


# ---------------------------------------------------------------- coupons


class CouponKind(models.TextChoices):
    FIXED = "fixed", _("Fixed amount (无门槛)")
    PERCENT = "percent", _("Percentage off (折扣)")
    THRESHOLD = "threshold", _("Threshold (满减券)")


class CouponTemplate(WorkspaceOwned):
    """What a coupon is worth and how many may be issued. ``value`` is yuan for fixed and
    threshold coupons and *percent off* for percentage coupons (20 = 20% off = 八折)."""

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=CouponKind.choices)
    value = models.DecimalField(max_digits=14, decimal_places=2)
    threshold_amount = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO, help_text="minimum basket to redeem")
    percent_cap = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True, help_text="largest discount of a percentage coupon")
    validity_days = models.PositiveIntegerField(null=True, blank=True, help_text="valid for N days from issue")
    valid_from = models.DateTimeField(null=True, blank=True)
    valid_until = models.DateTimeField(null=True, blank=True)
    per_contact_limit = models.PositiveIntegerField(default=1, help_text="0 = no limit")
    total_stock = models.PositiveIntegerField(null=True, blank=True, help_text="empty = unlimited")
    issued_count = models.PositiveIntegerField(default=0)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(total_stock__isnull=True) | Q(issued_count__lte=models.F("total_stock")), name="coupon_stock_not_exceeded"
            )
        ]

    def __str__(self) -> str:
        return self.name


class CouponStatus(models.TextChoices):
    ISSUED = "issued", _("Issued")
    REDEEMED = "redeemed", _("Redeemed")
    EXPIRED = "expired", _("Expired")
    VOID = "void", _("Void")


class CouponSource(models.TextChoices):
    MANUAL = "manual", _("Manual")
    SEGMENT = "segment", _("Segment")
    FISSION = "fission", _("Fission reward (裂变奖励)")
    REWARD = "reward", _("Reward")


class Coupon(WorkspaceOwned):
    template = models.ForeignKey(CouponTemplate, on_delete=models.PROTECT, related_name="coupons")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="coupons")
    code = models.CharField(max_length=32)
    status = models.CharField(max_length=16, choices=CouponStatus.choices, default=CouponStatus.ISSUED, db_index=True)
    source = models.CharField(max_length=16, choices=CouponSource.choices, default=CouponSource.MANUAL)
    source_ref = models.CharField(max_length=100, blank=True, default="", help_text="segment, campaign or reward id")
    issued_at = models.DateTimeField()
    valid_from = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    redeemed_at = models.DateTimeField(null=True, blank=True)
    order = models.ForeignKey(Order, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    discount_amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True, help_text="discount given when redeemed")

    class Meta:
        ordering = ["-issued_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["workspace", "code"], name="coupon_unique_code")]
        indexes = [models.Index(fields=["contact", "template"]), models.Index(fields=["status", "expires_at"])]

    def __str__(self) -> str:
        return self.code


# ---------------------------------------------------------------- promotions


class PromotionMode(models.TextChoices):
    TIERED = "tiered", _("Tiered (满200减50 / 满500减150: the best one tier)")
    STACKABLE = "stackable", _("Stackable (每满200减50: tiers repeat and combine)")


class Promotion(WorkspaceOwned):
    """A 满减 promotion. ``tiers`` is ``[[threshold, discount], ...]`` as strings."""

    name = models.CharField(max_length=100)
    mode = models.CharField(max_length=16, choices=PromotionMode.choices, default=PromotionMode.TIERED)
    tiers = models.JSONField(default=list)
    cap = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True, help_text="largest total discount")
    stacks_with_coupons = models.BooleanField(default=True)
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name


# ---------------------------------------------------------------- membership and points


class TierKind(models.TextChoices):
    FREE = "free", _("Free")
    PAID = "paid", _("Paid (付费会员)")


class MembershipTier(WorkspaceOwned):
    """A membership level. Free tiers with ``min_spend`` are reached automatically by
    spending; paid tiers are bought and last ``validity_days``. ``rank`` orders tiers."""

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=8, choices=TierKind.choices, default=TierKind.FREE)
    rank = models.PositiveIntegerField(default=0)
    price = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO)
    validity_days = models.PositiveIntegerField(null=True, blank=True)
    points_multiplier = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("1.00"))
    min_spend = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True, help_text="free tiers: reached automatically at this spend")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["rank", "id"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="membership_tier_unique_name")]

    def __str__(self) -> str:
        return self.name


class CardStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    EXPIRED = "expired", _("Expired")
    REPLACED = "replaced", _("Replaced by another tier")


class MemberCard(WorkspaceOwned):
    """A contact's membership in one tier for one period (会员卡). A contact holds at most
    one active card; joining another tier closes the old card as ``replaced``."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="member_cards")
    tier = models.ForeignKey(MembershipTier, on_delete=models.PROTECT, related_name="cards")
    status = models.CharField(max_length=16, choices=CardStatus.choices, default=CardStatus.ACTIVE)
    source = models.CharField(max_length=16, default="manual", help_text="manual, purchase, auto (spend)")
    valid_from = models.DateTimeField()
    valid_until = models.DateTimeField(null=True, blank=True)
    price_paid = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO)
    order = models.ForeignKey(Order, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-valid_from", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["contact"], condition=Q(status="active"), name="member_card_one_active_per_contact")
        ]
        indexes = [models.Index(fields=["status", "valid_until"])]


class PointsReason(models.TextChoices):
    ORDER = "order", _("Order")
    REFUND = "refund", _("Refund reversal")
    SPEND = "spend", _("Spent")
    ADJUST = "adjust", _("Manual adjustment")
    REWARD = "reward", _("Reward")


class PointsEntryQuerySet(WorkspaceQuerySet["PointsEntry"]):
    def balance(self) -> int:
        return int(self.aggregate(total=Sum("delta"))["total"] or 0)


class PointsEntryManager(models.Manager.from_queryset(PointsEntryQuerySet)):  # type: ignore[misc]
    pass


class PointsEntry(WorkspaceOwned):
    """One line of a contact's points ledger (积分流水). The balance is the sum of the
    entries; there is no stored balance to drift. ``idempotency_key`` makes a replayed
    earn or spend a no-op."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="points_entries")
    delta = models.IntegerField()
    reason = models.CharField(max_length=16, choices=PointsReason.choices)
    note = models.CharField(max_length=200, blank=True, default="")
    order = models.ForeignKey(Order, null=True, blank=True, on_delete=models.SET_NULL, related_name="points_entries")
    data = models.JSONField(default=dict, blank=True)
    idempotency_key = models.CharField(max_length=200)
    actor = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects: ClassVar[PointsEntryManager] = PointsEntryManager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["workspace", "idempotency_key"], name="points_entry_unique_key")]
        indexes = [models.Index(fields=["contact", "created_at"])]
        verbose_name_plural = "points entries"


# ---------------------------------------------------------------- lifecycle


class StageTransition(WorkspaceOwned):
    """One change of a contact's lifecycle stage, with the reason (history for
    segments, journeys and the contact page)."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="stage_transitions")
    from_stage = models.CharField(max_length=16, choices=LifecycleStage.choices)
    to_stage = models.CharField(max_length=16, choices=LifecycleStage.choices)
    reason = models.CharField(max_length=300)
    data = models.JSONField(default=dict, blank=True)
    actor = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["contact", "at"])]
