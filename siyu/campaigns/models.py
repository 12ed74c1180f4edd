"""Fission campaigns (裂变): bait tiers, copy variants, participants and their invite tree,
the honest rewards ledger, and two-level distribution (分销) commissions.

Honesty rules live in the data as well as in the actions: an invitee is counted at most
once per campaign (unique invite per invitee), a tier is rewarded at most once per
participant (unique reward per participant and tier), and a commission is never more
than two levels up (a check constraint on ``level``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from siyu.acquisition.models import LiveCode
from siyu.contacts.models import Contact
from siyu.core.models import WorkspaceOwned

MONEY: dict[str, Any] = {"max_digits": 12, "decimal_places": 2}
#: 分销 legal line: more levels may be pyramid selling (传销) under Chinese law
MAX_DISTRIBUTION_LEVELS = 2


class CampaignKind(models.TextChoices):
    PERSONAL = "personal", _("Personal-contact fission (个人号裂变)")
    GROUP = "group", _("Group fission (社群裂变)")


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    RUNNING = "running", _("Running")
    FINISHED = "finished", _("Finished")


class Campaign(WorkspaceOwned):
    key = models.SlugField(max_length=32)
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=CampaignKind.choices)
    status = models.CharField(max_length=10, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT)
    live_code = models.ForeignKey(LiveCode, null=True, blank=True, on_delete=models.SET_NULL, related_name="campaigns",
                                  help_text="the live code invitees enter through")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    hold_days = models.PositiveSmallIntegerField(default=3, help_text="an invite is confirmed only if the invitee stays this long")
    rules = models.TextField(blank=True, default="")
    # poster
    title = models.CharField(max_length=60, default="")
    benefits = models.TextField(blank=True, default="", help_text="one benefit per line")
    endorsement = models.CharField(max_length=80, blank=True, default="")
    urgency = models.CharField(max_length=60, blank=True, default="")
    background = models.CharField(max_length=200, blank=True, default="", help_text="image path under MEDIA_ROOT")
    # anti-abuse and reminders
    burst_limit = models.PositiveSmallIntegerField(default=3, help_text="invites from one visitor key per hour before review")
    instant_leave_limit = models.PositiveSmallIntegerField(default=3, help_text="invitees leaving within an hour before review")
    progress_template = models.CharField(max_length=200, default="已有 {count} 位好友助力，还差 {missing} 位好友即可领取「{reward}」")
    progress_interval_minutes = models.PositiveIntegerField(default=30)
    # distribution (分销): [level-1 rate, level-2 rate]; empty = off
    commission_rates = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-starts_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["workspace", "key"], name="campaign_unique_key")]

    def __str__(self) -> str:
        return self.key


class RewardKind(models.TextChoices):
    COUPON = "coupon", _("Coupon issued")
    GIFT = "gift", _("Gift to ship")
    POINTS = "points", _("Points")


class RewardTier(WorkspaceOwned):
    """Bait (诱饵): invite ``threshold`` friends, get this."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="tiers")
    threshold = models.PositiveIntegerField()
    kind = models.CharField(max_length=8, choices=RewardKind.choices)
    label = models.CharField(max_length=60)
    value = models.DecimalField(**MONEY, default=Decimal("0"))
    points = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["threshold"]
        constraints = [models.UniqueConstraint(fields=["campaign", "threshold"], name="campaign_tier_unique_threshold")]


class Scene(models.TextChoices):
    MOMENTS = "moments", _("Moments (朋友圈)")
    EXISTING_GROUP = "existing_group", _("Existing groups (老群)")
    TRANSIT_GROUP = "transit_group", _("Transit group (中转群)")
    FORMAL_GROUP = "formal_group", _("Formal group (正式群)")


class CopyVariant(WorkspaceOwned):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="variants")
    key = models.SlugField(max_length=16)
    scene = models.CharField(max_length=16, choices=Scene.choices)
    text = models.TextField()

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["campaign", "key"], name="campaign_variant_unique_key")]


class Participant(WorkspaceOwned):
    """A contact taking part; ``inviter`` and ``depth`` make the invite tree."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="participants")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    invite_code = models.CharField(max_length=16, unique=True)
    inviter = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="invitees")
    depth = models.PositiveIntegerField(default=0)
    variant = models.ForeignKey(CopyVariant, null=True, blank=True, on_delete=models.SET_NULL, related_name="participants")
    joined_at = models.DateTimeField()
    confirmed_count = models.PositiveIntegerField(default=0)
    flagged = models.BooleanField(default=False)
    flag_reason = models.CharField(max_length=200, blank=True, default="")
    last_progress_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-confirmed_count", "joined_at", "id"]
        constraints = [models.UniqueConstraint(fields=["campaign", "contact"], name="participant_once_per_campaign")]


class InviteStatus(models.TextChoices):
    PENDING = "pending", _("Pending (held)")
    CONFIRMED = "confirmed", _("Confirmed")
    CLAWED_BACK = "clawed_back", _("Clawed back (left within the hold)")
    REVIEW = "review", _("Flagged for review")
    REJECTED = "rejected", _("Not counted")


class Invite(WorkspaceOwned):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="invites")
    inviter = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="invites")
    invitee = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=12, choices=InviteStatus.choices)
    reason = models.CharField(max_length=200, blank=True, default="")
    visitor_key = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField()
    hold_until = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["campaign", "invitee"], name="invite_once_per_invitee")]
        indexes = [models.Index(fields=["campaign", "status", "hold_until"])]


class RewardState(models.TextChoices):
    ISSUED = "issued", _("Issued")
    TO_SHIP = "to_ship", _("To ship")
    SHIPPED = "shipped", _("Shipped")
    REVIEW = "review", _("Held for review")
    VOID = "void", _("Void")


class RewardEntry(WorkspaceOwned):
    """One reward in the ledger (coupon issued, gift to ship, points)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="rewards")
    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="rewards")
    tier = models.ForeignKey(RewardTier, on_delete=models.RESTRICT, related_name="+")
    kind = models.CharField(max_length=8, choices=RewardKind.choices)
    label = models.CharField(max_length=60)
    value = models.DecimalField(**MONEY, default=Decimal("0"))
    points = models.PositiveIntegerField(default=0)
    state = models.CharField(max_length=8, choices=RewardState.choices)
    note = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["participant", "tier"], name="reward_once_per_tier")]


class CommissionState(models.TextChoices):
    PENDING = "pending", _("Pending")
    VOID = "void", _("Void (order refunded or cancelled)")


class CommissionEntry(WorkspaceOwned):
    """Distribution commission (分销佣金) on an invitee's order: level 1 = who invited the
    buyer, level 2 = who invited them. Never a third level."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="commissions")
    beneficiary = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="commissions")
    buyer = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    order_id = models.BigIntegerField()
    level = models.PositiveSmallIntegerField()
    rate = models.DecimalField(max_digits=5, decimal_places=4)
    base_amount = models.DecimalField(**MONEY)
    amount = models.DecimalField(**MONEY)
    state = models.CharField(max_length=8, choices=CommissionState.choices, default=CommissionState.PENDING)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(level__gte=1) & Q(level__lte=MAX_DISTRIBUTION_LEVELS), name="commission_two_levels_at_most"),
            models.UniqueConstraint(fields=["campaign", "order_id", "level"], name="commission_once_per_order_level"),
        ]
