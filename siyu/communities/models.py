"""Customer groups (社群) and their memberships."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from siyu.accounts.models import Staff
from siyu.channels.models import ChannelAccount
from siyu.contacts.models import Contact
from siyu.core.models import WorkspaceOwned


class GroupType(models.TextChoices):
    TRAFFIC = "traffic", _("Traffic (福利群)")
    CONVERSION = "conversion", _("Conversion (转化群)")
    ORGANISATIONAL = "organisational", _("Organisational (组织群)")


class Horizon(models.TextChoices):
    LONG_TERM = "long_term", _("Long-term")
    SHORT_TERM = "short_term", _("Short-term")


class Threshold(models.TextChoices):
    NONE = "none", _("None")
    PRICE = "price", _("Price (paid)")
    IDENTITY = "identity", _("Identity")
    ACTION = "action", _("Action")


class MemberRole(models.TextChoices):
    OWNER = "owner", _("Owner (群主)")
    ADMIN = "admin", _("Admin (大管家)")
    EXPERT = "expert", _("Hidden expert (隐藏大佬)")
    CORE = "core", _("Core contributor (骨干精英)")
    MASCOT = "mascot", _("Mascot (团宠)")
    ONLOOKER = "onlooker", _("Onlooker (吃瓜群众)")
    LURKER = "lurker", _("Lurker (潜水党)")
    REBEL = "rebel", _("Rebel (反动派)")


class Group(WorkspaceOwned):
    channel_account = models.ForeignKey(ChannelAccount, null=True, blank=True, on_delete=models.SET_NULL, related_name="groups")
    external_id = models.CharField(max_length=200, blank=True, default="")
    name = models.CharField(max_length=100)
    group_type = models.CharField(max_length=16, choices=GroupType.choices, default=GroupType.TRAFFIC)
    horizon = models.CharField(max_length=16, choices=Horizon.choices, default=Horizon.LONG_TERM)
    ends_on = models.DateField(null=True, blank=True)
    vision = models.CharField(max_length=200, blank=True, default="")
    rights = models.TextField(blank=True, default="")
    threshold = models.CharField(max_length=16, choices=Threshold.choices, default=Threshold.NONE)
    threshold_detail = models.CharField(max_length=200, blank=True, default="")
    rules_text = models.TextField(blank=True, default="")
    welcome_message = models.TextField(
        blank=True, default="", help_text="posted when someone joins; {name} and {group} are filled in"
    )
    capacity = models.PositiveIntegerField(default=200)
    owner = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="owned_groups")
    admins = models.ManyToManyField(Staff, blank=True, related_name="admin_groups")
    created_at = models.DateTimeField()
    archived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel_account", "external_id"], condition=~Q(external_id=""), name="group_unique_external_id"
            )
        ]

    def __str__(self) -> str:
        return self.name


class Membership(WorkspaceOwned):
    """A contact's stay in a group. Leaving closes the row; rejoining opens a new one."""

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="memberships")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=MemberRole.choices, default=MemberRole.ONLOOKER)
    role_assigned = models.BooleanField(default=False, help_text="set by hand; wins over inferred roles")
    join_source = models.CharField(max_length=64, blank=True, default="")
    joined_at = models.DateTimeField()
    left_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-joined_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["group", "contact"], condition=Q(left_at__isnull=True), name="membership_one_open_per_contact"
            )
        ]
        indexes = [models.Index(fields=["group", "left_at"])]


class GroupMessage(WorkspaceOwned):
    """A message seen in a group (from the channel's inbound pipeline)."""

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="messages")
    sender = models.ForeignKey(Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="group_messages")
    external_id = models.CharField(max_length=255)
    msgtype = models.CharField(max_length=32, default="text")
    text = models.TextField(blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    sent_at = models.DateTimeField(db_index=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-sent_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["group", "external_id"], name="group_message_unique_external_id")]
        indexes = [models.Index(fields=["group", "sent_at"])]


class MemberDayActivity(WorkspaceOwned):
    """One member's activity in one group on one local day (the group's workspace time
    zone). The inbound pipeline adds to these counters; roles and health read them."""

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="member_days")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="group_days")
    day = models.DateField()
    messages = models.PositiveIntegerField(default=0)
    replies_received = models.PositiveIntegerField(default=0)
    mentions = models.PositiveIntegerField(default=0, help_text="times this member was @-mentioned")
    links = models.PositiveIntegerField(default=0, help_text="links and cards shared")

    class Meta:
        ordering = ["-day", "group_id", "contact_id"]
        constraints = [models.UniqueConstraint(fields=["group", "contact", "day"], name="member_day_activity_unique")]
        indexes = [models.Index(fields=["group", "day"]), models.Index(fields=["contact", "day"])]
