"""Outreach (触达): the material library (素材库), the quota ledger (发送配额), deliveries,
broadcasts (群发) and columns (栏目).

Every message siyu sends to a customer or a group on behalf of a campaign, a journey or
a column is a :class:`Delivery` first. The ledger counts deliveries that hold a slot
(``queued`` or ``sent``, at ``slot_at``); a deferred delivery holds no slot until it is
due and the ledger lets it through.
"""

from __future__ import annotations

import datetime as dt

from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.accounts.models import Staff
from siyu.channels.models import ChannelAccount, OutboxMessage, StaffTask
from siyu.communities.models import Group
from siyu.contacts.models import Contact
from siyu.core.models import WorkspaceOwned


class MaterialKind(models.TextChoices):
    TEXT = "text", _("Text")
    IMAGE = "image", _("Image")
    LINK = "link", _("Link")
    MINIPROGRAM = "miniprogram", _("Mini-program card")


class Material(WorkspaceOwned):
    """One reusable piece of content (素材). ``text`` may hold variables such as
    ``{name}``; ``data`` holds what the kind needs (image url/file, link title/desc/url/
    cover, mini-program appid/page/title/cover)."""

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=MaterialKind.choices, default=MaterialKind.TEXT)
    text = models.TextField(blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    folder = models.CharField(max_length=100, blank=True, default="")
    tags = models.JSONField(default=list, blank=True)
    variables = models.JSONField(default=list, blank=True, help_text="variables used, found when saved")
    created_by = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    archived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["folder", "name", "id"]
        indexes = [models.Index(fields=["workspace", "folder"])]

    def __str__(self) -> str:
        return self.name


class ConsentMode(models.TextChoices):
    OPT_IN = "opt_in", _("Marketing only to contacts who consented")
    OPT_OUT = "opt_out", _("Marketing to everyone except those who refused or asked not to be disturbed")


class QuotaPolicy(WorkspaceOwned):
    """The brand's own rules (one row per workspace); platform rules live in code as data
    (:mod:`siyu.outreach.quota`) and in each channel account's config."""

    contact_marketing_cap = models.PositiveIntegerField(default=2, help_text="marketing messages per contact per window")
    contact_window_days = models.PositiveIntegerField(default=7)
    group_marketing_cap = models.PositiveIntegerField(default=3, help_text="marketing posts per group per window")
    group_window_days = models.PositiveIntegerField(default=1)
    reminder_cap = models.PositiveIntegerField(default=3, help_text="reminders per contact per window")
    reminder_window_hours = models.PositiveIntegerField(default=24)
    quiet_start = models.TimeField(default=dt.time(22, 0))
    quiet_end = models.TimeField(default=dt.time(8, 0))
    consent_mode = models.CharField(max_length=8, choices=ConsentMode.choices, default=ConsentMode.OPT_IN)
    default_expiry_hours = models.PositiveIntegerField(default=72, help_text="how long a deferred send may wait before it is skipped")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace"], name="quota_policy_one_per_workspace")]


class GroupSet(WorkspaceOwned):
    """A named set of groups (群组合) that broadcasts and columns address at once."""

    name = models.CharField(max_length=100)
    groups = models.ManyToManyField(Group, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="group_set_unique_name")]

    def __str__(self) -> str:
        return self.name


class BroadcastStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    SCHEDULED = "scheduled", _("Scheduled")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    CANCELLED = "cancelled", _("Cancelled")


class ScheduleMode(models.TextChoices):
    NOW = "now", _("Now")
    AT = "at", _("At a time")
    BEST_TIME = "best_time", _("Best time per recipient")


class Broadcast(WorkspaceOwned):
    """A mass message (群发) to a segment, contacts, groups or a group set, with 1–5 copy
    variants split by a hash of the recipient id."""

    name = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=BroadcastStatus.choices, default=BroadcastStatus.DRAFT, db_index=True)
    audience = models.JSONField(default=dict)
    message_class = models.CharField(max_length=16, default="marketing")
    schedule_mode = models.CharField(max_length=16, choices=ScheduleMode.choices, default=ScheduleMode.NOW)
    scheduled_at = models.DateTimeField(null=True, blank=True)
    expires_after_hours = models.PositiveIntegerField(default=72)
    auto_winner = models.BooleanField(default=False)
    test_fraction = models.FloatField(default=0.2)
    winner_wait_hours = models.PositiveIntegerField(default=24)
    winner = models.ForeignKey("BroadcastVariant", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    winner_chosen_at = models.DateTimeField(null=True, blank=True)
    plan_summary = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    planned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name


class BroadcastVariant(WorkspaceOwned):
    broadcast = models.ForeignKey(Broadcast, on_delete=models.CASCADE, related_name="variants")
    label = models.CharField(max_length=8)
    material = models.ForeignKey(Material, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    content = models.JSONField(default=dict, blank=True, help_text="inline content when no material is used")
    weight = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["broadcast_id", "label"]
        constraints = [models.UniqueConstraint(fields=["broadcast", "label"], name="variant_unique_label")]


class Column(WorkspaceOwned):
    """A recurring post (栏目) to groups: a morning brief at 08:30 every day, a sharing
    session every Thursday at 20:00. Each occurrence posts the next material of the
    rotation, once (the idempotency key is column + group + occurrence date)."""

    name = models.CharField(max_length=100)
    groups = models.ManyToManyField(Group, blank=True, related_name="+")
    group_set = models.ForeignKey(GroupSet, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    weekdays = models.JSONField(default=list, blank=True, help_text="0=Monday … 6=Sunday; empty = every day")
    time_of_day = models.TimeField()
    time_zone = models.CharField(max_length=64, blank=True, default="", help_text="empty = the workspace's zone")
    quiet_start = models.TimeField(null=True, blank=True)
    quiet_end = models.TimeField(null=True, blank=True)
    materials = models.JSONField(default=list, help_text="material ids, posted in rotation")
    message_class = models.CharField(max_length=16, default="marketing")
    starts_on = models.DateField()
    ends_on = models.DateField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    last_run_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class DeliveryStatus(models.TextChoices):
    QUEUED = "queued", _("Queued (holds a slot; waiting for its time or a staff confirmation)")
    SENT = "sent", _("Sent")
    DEFERRED = "deferred", _("Deferred to the next allowed slot")
    SKIPPED = "skipped", _("Skipped")
    CANCELLED = "cancelled", _("Cancelled")


#: statuses that hold a slot in the ledger
COUNTED = (DeliveryStatus.QUEUED, DeliveryStatus.SENT)


class Delivery(WorkspaceOwned):
    """One message to one contact or one group, through the quota ledger. Unique per
    idempotency key: asking twice returns the first row and sends nothing twice."""

    idempotency_key = models.CharField(max_length=200)
    contact = models.ForeignKey(Contact, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    group = models.ForeignKey(Group, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    channel_account = models.ForeignKey(ChannelAccount, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    platform = models.CharField(max_length=16, blank=True, default="", help_text="whose platform rules count this send")
    message_class = models.CharField(max_length=16)
    source = models.CharField(max_length=100, blank=True, default="")
    content = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, db_index=True)
    reason = models.TextField(blank=True, default="")
    rule = models.CharField(max_length=64, blank=True, default="")
    requested_at = models.DateTimeField()
    planned_for = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    slot_at = models.DateTimeField(null=True, blank=True, help_text="when this send counts in the ledger")
    sent_at = models.DateTimeField(null=True, blank=True)
    decisions = models.JSONField(default=list, blank=True, help_text="every ledger decision about this send")
    broadcast = models.ForeignKey(Broadcast, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries")
    variant = models.ForeignKey(BroadcastVariant, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries")
    column = models.ForeignKey(Column, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries")
    sender = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    outbox = models.ForeignKey(OutboxMessage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    staff_task = models.ForeignKey(StaffTask, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        verbose_name_plural = "deliveries"
        constraints = [models.UniqueConstraint(fields=["workspace", "idempotency_key"], name="delivery_unique_key")]
        indexes = [
            models.Index(fields=["contact", "slot_at"]),
            models.Index(fields=["group", "slot_at"]),
            models.Index(fields=["status", "planned_for"]),
            models.Index(fields=["broadcast", "status"]),
        ]
