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
    #: a short-term group is dismissed on its channel (not only archived) once its end date passed
    dismiss_at_end = models.BooleanField(default=False)
    #: posted before that dismissal (到期告别语)
    end_farewell = models.CharField(max_length=500, blank=True, default="")
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
    #: dismissed on the platform too (解散群, :func:`siyu.communities.actions.do_dismiss_group`), not only archived here
    dismissed_at = models.DateTimeField(null=True, blank=True)

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
    # Inferred roles (siyu.communities.roles): a candidate must hold for several daily
    # evaluations before it replaces ``role`` (anti-flapping).
    role_reason = models.CharField(max_length=300, blank=True, default="", help_text="why the current inferred role")
    role_candidate = models.CharField(max_length=16, blank=True, default="")
    role_candidate_reason = models.CharField(max_length=300, blank=True, default="")
    role_candidate_since = models.DateField(null=True, blank=True)
    role_candidate_streak = models.PositiveSmallIntegerField(default=0)
    role_evaluated_on = models.DateField(null=True, blank=True)

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

    # indexed first in ``(group, external_id)`` and ``(group, sent_at)``: no index of its own
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="messages", db_index=False)
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

    # both lead an index below (``(group, contact, day)``/``(group, day)``, ``(contact, day)``)
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="member_days", db_index=False)
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="group_days", db_index=False)
    day = models.DateField()
    messages = models.PositiveIntegerField(default=0)
    replies_received = models.PositiveIntegerField(default=0)
    mentions = models.PositiveIntegerField(default=0, help_text="times this member was @-mentioned")
    links = models.PositiveIntegerField(default=0, help_text="links and cards shared")

    class Meta:
        ordering = ["-day", "group_id", "contact_id"]
        constraints = [models.UniqueConstraint(fields=["group", "contact", "day"], name="member_day_activity_unique")]
        indexes = [models.Index(fields=["group", "day"]), models.Index(fields=["contact", "day"])]


class HealthState(models.TextChoices):
    THRIVING = "thriving", _("Thriving")
    STEADY = "steady", _("Steady")
    FADING = "fading", _("Fading")
    SILENT = "silent", _("Silent")


class GroupHealthDay(WorkspaceOwned):
    """One group's health on one local day (workspace time zone), computed by
    :mod:`siyu.communities.health` so trends are one cheap read. ``*_avg7`` are daily
    averages over the 7 days ending on ``day``; ``*_base`` over the 21 days before those."""

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="health_days")
    day = models.DateField()
    messages = models.PositiveIntegerField(default=0)
    talkers = models.PositiveIntegerField(default=0, help_text="members who sent at least one message that day")
    members = models.PositiveIntegerField(default=0, help_text="open memberships at the end of the day")
    active_ratio = models.FloatField(default=0.0, help_text="talkers / members that day")
    messages_avg7 = models.FloatField(default=0.0)
    talkers_avg7 = models.FloatField(default=0.0)
    messages_base = models.FloatField(null=True, blank=True)
    talkers_base = models.FloatField(null=True, blank=True)
    newcomers = models.PositiveIntegerField(default=0, help_text="members who joined 7–14 days before")
    newcomer_retention = models.FloatField(null=True, blank=True, help_text="share of those newcomers still in and who spoke")
    silence_days = models.PositiveIntegerField(default=0, help_text="days since the last message")
    ads_caught = models.PositiveIntegerField(default=0, help_text="moderation cases that day")
    state = models.CharField(max_length=16, choices=HealthState.choices, default=HealthState.STEADY)
    reasons = models.JSONField(default=list, blank=True)
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["-day", "group_id"]
        constraints = [models.UniqueConstraint(fields=["group", "day"], name="group_health_day_unique")]


class AlertKind(models.TextChoices):
    FADING = "group_fading", _("Group is fading")
    SILENT = "group_silent", _("Group fell silent")


class Alert(WorkspaceOwned):
    """Something a person should look at, raised once per transition (a group entering
    fading or silent) and resolved by hand or when the group recovers."""

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=32, choices=AlertKind.choices)
    day = models.DateField(help_text="the local day of the transition")
    from_state = models.CharField(max_length=16, blank=True, default="")
    to_state = models.CharField(max_length=16)
    message = models.CharField(max_length=300)
    detail = models.JSONField(default=dict, blank=True)
    staff_task = models.ForeignKey("channels.StaffTask", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    resolution = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["group", "day", "kind"], name="alert_once_per_transition")]


class RepullStatus(models.TextChoices):
    DONE = "done", _("Done")
    WAITING_FOR_STAFF = "waiting_for_staff", _("Waiting for staff")


class GroupRepull(WorkspaceOwned):
    """A re-pull (重新拉群): the active members of ``old_group`` moved into ``new_group``.
    One per old group, which makes the action idempotent."""

    old_group = models.OneToOneField(Group, on_delete=models.CASCADE, related_name="repull")
    new_group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="repulled_from")
    status = models.CharField(max_length=24, choices=RepullStatus.choices, default=RepullStatus.DONE)
    invited = models.JSONField(default=list, help_text="contact ids invited")
    applied = models.JSONField(default=list, help_text="outbox rows and staff tasks")
    created_by = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField()


class GroupSettingsScope(models.TextChoices):
    GROUP = "group", _("Group")
    TEMPLATE = "template", _("Template for a group type")
    DEFAULT = "default", _("Workspace default")


class GroupSettings(WorkspaceOwned):
    """One layer of group settings (群设置): a group's own values, the template for a group
    type, or the workspace default. ``values`` holds only the keys set at this layer;
    :mod:`siyu.communities.group_settings` resolves group → template → default."""

    scope = models.CharField(max_length=16, choices=GroupSettingsScope.choices)
    group = models.OneToOneField(Group, null=True, blank=True, on_delete=models.CASCADE, related_name="settings_layer")
    group_type = models.CharField(max_length=16, blank=True, default="", help_text="the group type a template is for")
    values = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["scope", "group_type", "id"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "scope", "group_type"], condition=~Q(scope="group"), name="group_settings_one_per_layer"),
        ]


class AutoReplyMatch(models.TextChoices):
    EXACT = "exact", _("Exact")
    CONTAINS = "contains", _("Contains")
    REGEX = "regex", _("Regular expression")


class AutoReplyRule(WorkspaceOwned):
    """A keyword auto-reply (关键词自动回复): for one group, or workspace-wide when
    ``group`` is empty. ``cooldown_seconds`` keeps the bot from answering the same rule in
    the same group again too soon."""

    group = models.ForeignKey(Group, null=True, blank=True, on_delete=models.CASCADE, related_name="auto_replies")
    name = models.CharField(max_length=100)
    match = models.CharField(max_length=16, choices=AutoReplyMatch.choices, default=AutoReplyMatch.CONTAINS)
    pattern = models.CharField(max_length=500)
    reply = models.TextField()
    cooldown_seconds = models.PositiveIntegerField(default=300)
    priority = models.IntegerField(default=100, help_text="lower answers first; one reply per message")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["priority", "id"]


class AutoReplyFiring(WorkspaceOwned):
    """When a rule last answered in a group: the cool-down state (one row per rule and
    group, keyed by the triggering message's time so replays decide the same)."""

    rule = models.ForeignKey(AutoReplyRule, on_delete=models.CASCADE, related_name="firings")
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="+")
    last_fired_at = models.DateTimeField()
    fired = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["rule", "group"], name="auto_reply_firing_unique")]


class OnboardingNudge(WorkspaceOwned):
    """The first-days nudge (自我介绍邀请) sent to a member who had not spoken yet: at most
    one per membership."""

    membership = models.OneToOneField(Membership, on_delete=models.CASCADE, related_name="nudge")
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="+")
    outbox_key = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField()
