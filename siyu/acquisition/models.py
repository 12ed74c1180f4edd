"""Acquisition (引流): channels with their cost, live codes (活码) and the scans they route.

A **scan reserves**: routing a scan of a group code takes one seat of the chosen group
(``LiveCodeGroup.seats_taken``) and a scan of a staff code takes one add of the chosen
staff member's daily and total allowance, inside one serialised transaction. The cap is
checked before the reservation, so no group or staff member is ever routed more people
than its cap, even if some of the reserved people never finish joining (a wasted seat is
the price of never overfilling: the platform would refuse the 201st member anyway) —
until :func:`~siyu.acquisition.actions.do_release_stale_seats` gives back the seats of
scans that did not turn into an add/join within the TTL (default 30 minutes).
When people do join, the channel's add/join event closes the loop via the code's
``state`` and is counted in the reports as an add / a join, not as a second seat.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from siyu.accounts.models import Staff
from siyu.channels.models import ChannelAccount
from siyu.communities.models import Group
from siyu.contacts.models import Contact, Tag
from siyu.core.models import WorkspaceOwned

MONEY: dict[str, Any] = {"max_digits": 12, "decimal_places": 2}

#: WeCom: a 「联系我」/join-way ``state`` holds at most 30 characters
STATE_MAX = 30
#: WeCom: one join way lists at most 5 groups
JOIN_WAY_MAX_GROUPS = 5
#: the most members an external group holds on WeCom (not verified officially)
GROUP_CAPACITY_MAX = 500


class SourceKind(models.TextChoices):
    PARCEL_CARD = "parcel_card", _("Parcel card (包裹卡)")
    STORE_POSTER = "store_poster", _("Store poster (门店海报)")
    TILL = "till", _("At the till (收银台)")
    LIVE_STREAM = "live_stream", _("Live stream (直播)")
    XIAOHONGSHU = "xiaohongshu", _("Xiaohongshu note (小红书)")
    DOUYIN = "douyin", _("Douyin (抖音)")
    PARTNER_SHOP = "partner_shop", _("Partner shop (异业合作)")
    STAFF_REFERRAL = "staff_referral", _("Staff referral (员工推荐)")
    FISSION = "fission", _("Fission campaign (裂变)")
    OTHER = "other", _("Other")


class CostModel(models.TextChoices):
    NONE = "none", _("No cost")
    PER_ADD = "per_add", _("Per add")
    PER_PERIOD = "per_period", _("Per period (spend entries)")


class AcquisitionChannel(WorkspaceOwned):
    """A source of new contacts (包裹卡, 门店海报, 直播...). ``key`` is what contacts keep as
    their first-touch ``source_channel``."""

    key = models.SlugField(max_length=32)
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=SourceKind.choices, default=SourceKind.OTHER)
    owner = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    cost_model = models.CharField(max_length=12, choices=CostModel.choices, default=CostModel.NONE)
    cost_per_add = models.DecimalField(**MONEY, default=Decimal("0"))
    tags = models.ManyToManyField(Tag, blank=True, related_name="+", help_text="applied to contacts who arrive through it")
    welcome_message = models.TextField(blank=True, default="")
    groups = models.ManyToManyField(Group, blank=True, related_name="+", help_text="groups new contacts are routed into")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["key"]
        constraints = [models.UniqueConstraint(fields=["workspace", "key"], name="acq_channel_unique_key")]

    def __str__(self) -> str:
        return self.key


class ChannelSpend(WorkspaceOwned):
    """Money spent on a channel for one period (per-period cost), e.g. a month of parcel cards."""

    channel = models.ForeignKey(AcquisitionChannel, on_delete=models.CASCADE, related_name="spends")
    starts_on = models.DateField()
    ends_on = models.DateField()
    amount = models.DecimalField(**MONEY)
    note = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-starts_on", "-id"]
        constraints = [models.CheckConstraint(condition=Q(ends_on__gte=models.F("starts_on")), name="acq_spend_period_order")]


class SyncStatus(models.TextChoices):
    """Where a live code target stands with the platform's own QR (WeCom 「联系我」/join way)."""

    NONE = "", _("Not synced (no platform code)")
    PENDING = "pending", _("Sync pending")
    SYNCED = "synced", _("Synced")
    FAILED = "failed", _("Sync failed")


class LiveCodeKind(models.TextChoices):
    STAFF = "staff", _("Staff (联系我)")
    GROUP = "group", _("Group (加入群聊)")


class LiveCodeStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    PAUSED = "paused", _("Paused")


class LiveCode(WorkspaceOwned):
    """One QR / link (活码) that routes each scan to a staff member or a group.

    ``code`` is global (the public URL ``/c/<code>`` carries no workspace) and short, so
    that the channel ``state`` ``lc:<code>`` fits WeCom's 30 characters."""

    channel = models.ForeignKey(AcquisitionChannel, on_delete=models.CASCADE, related_name="live_codes")
    code = models.CharField(max_length=16, unique=True)
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=8, choices=LiveCodeKind.choices)
    status = models.CharField(max_length=8, choices=LiveCodeStatus.choices, default=LiveCodeStatus.ACTIVE)
    expires_at = models.DateTimeField(null=True, blank=True)
    channel_account = models.ForeignKey(ChannelAccount, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # staff codes
    backup_staff = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # group codes
    group_capacity = models.PositiveIntegerField(default=200)
    window_size = models.PositiveSmallIntegerField(default=JOIN_WAY_MAX_GROUPS)
    low_watermark = models.PositiveSmallIntegerField(default=2, help_text="open a new group when fewer open groups remain")
    auto_create_groups = models.BooleanField(default=True)
    group_name_template = models.CharField(max_length=80, default="{channel}{n}群")
    groups_created = models.PositiveIntegerField(default=0)
    scan_count = models.PositiveIntegerField(default=0)
    # group codes on WeCom: the one join way (加入群聊) over the window of open groups
    join_config_id = models.CharField(max_length=100, blank=True, default="", help_text="WeCom join way config_id")
    join_qr_url = models.URLField(blank=True, default="", help_text="WeCom join way qr_code")
    join_chat_ids = models.JSONField(default=list, blank=True, help_text="the chat ids last sent to the join way")
    sync_status = models.CharField(max_length=8, choices=SyncStatus.choices, default=SyncStatus.NONE, blank=True)
    sync_error = models.CharField(max_length=300, blank=True, default="")
    synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.code

    @property
    def state(self) -> str:
        return f"lc:{self.code}"


class LiveCodeStaff(WorkspaceOwned):
    """A staff member a staff code may route to, with their caps and schedule.

    ``schedule`` (workspace time zone): ``{"weekly": {"0": [["09:00", "18:00"]], ...},
    "dates": {"2026-02-10": [], "2026-02-14": [["10:00", "22:00"]]}}`` — weekday 0 is
    Monday; a listed date replaces its weekday (``[]`` = off that day); no schedule =
    always. Caps of 0 mean "no cap"."""

    live_code = models.ForeignKey(LiveCode, on_delete=models.CASCADE, related_name="staff_slots")
    staff = models.ForeignKey(Staff, on_delete=models.CASCADE, related_name="+")
    weight = models.PositiveSmallIntegerField(default=1)
    daily_cap = models.PositiveIntegerField(default=0)
    total_cap = models.PositiveIntegerField(default=0, help_text="friend limit: adds through this code in all")
    is_online = models.BooleanField(default=True)
    schedule = models.JSONField(default=dict, blank=True)
    day = models.DateField(null=True, blank=True, help_text="the local day day_count counts")
    day_count = models.PositiveIntegerField(default=0)
    total_count = models.PositiveIntegerField(default=0)
    config_id = models.CharField(max_length=100, blank=True, default="", help_text="WeCom contact way config_id")
    qr_url = models.URLField(blank=True, default="", help_text="the platform's QR for this target (WeCom 联系我 qr_code)")
    sync_status = models.CharField(max_length=8, choices=SyncStatus.choices, default=SyncStatus.NONE, blank=True)
    sync_error = models.CharField(max_length=300, blank=True, default="")
    synced_at = models.DateTimeField(null=True, blank=True)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        constraints = [models.UniqueConstraint(fields=["live_code", "staff"], name="acq_livecode_staff_once")]


class LiveCodeGroup(WorkspaceOwned):
    """A group a group code fills. ``seats_taken`` starts at the group's members when the
    group is added and grows by one per routed scan; it never passes ``capacity``."""

    live_code = models.ForeignKey(LiveCode, on_delete=models.CASCADE, related_name="group_slots")
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="+")
    capacity = models.PositiveIntegerField()
    seats_taken = models.PositiveIntegerField(default=0)
    position = models.PositiveIntegerField(default=0)
    filled_at = models.DateTimeField(null=True, blank=True)
    config_id = models.CharField(max_length=100, blank=True, default="", help_text="WeCom join way config_id")
    qr_url = models.URLField(blank=True, default="", help_text="the platform's QR for this target (WeCom join way qr_code)")

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["live_code", "group"], name="acq_livecode_group_once"),
            models.CheckConstraint(condition=Q(seats_taken__lte=models.F("capacity")), name="acq_group_seats_within_capacity"),
        ]


class ScanOutcome(models.TextChoices):
    STAFF = "staff", _("Routed to staff")
    BACKUP = "backup", _("Routed to backup staff")
    GROUP = "group", _("Routed to group")
    REPEAT = "repeat", _("Repeat scan (same target)")
    EXHAUSTED = "exhausted", _("No target available")


class Scan(WorkspaceOwned):
    """One scan of a live code: when, who (visitor key from a signed cookie), where it went."""

    live_code = models.ForeignKey(LiveCode, on_delete=models.CASCADE, related_name="scans")
    scanned_at = models.DateTimeField(db_index=True)
    visitor_key = models.CharField(max_length=64, db_index=True)
    user_agent = models.CharField(max_length=300, blank=True, default="")
    outcome = models.CharField(max_length=10, choices=ScanOutcome.choices)
    staff = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    group = models.ForeignKey(Group, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    invite_code = models.CharField(max_length=16, blank=True, default="", help_text="fission: the sharer's invite code")
    contact = models.ForeignKey(Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    released_at = models.DateTimeField(null=True, blank=True, help_text="when its unused seat went back to the pool (never arrived)")

    class Meta:
        ordering = ["-scanned_at", "-id"]
        indexes = [models.Index(fields=["live_code", "scanned_at"]), models.Index(fields=["live_code", "visitor_key"])]
