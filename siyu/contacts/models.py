"""Contacts (客户), their channel identities, tags (标签), profile fields, consent and the
append-only timeline."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.accounts.models import Staff
from siyu.channels.models import ChannelAccount
from siyu.core import crypto
from siyu.core.models import WorkspaceOwned
from siyu.core.phones import mask_phone


class Gender(models.TextChoices):
    UNKNOWN = "unknown", _("Unknown")
    MALE = "male", _("Male")
    FEMALE = "female", _("Female")


class LifecycleStage(models.TextChoices):
    NEW = "new", _("New")
    NURTURED = "nurtured", _("Nurtured")
    FIRST_PURCHASE = "first_purchase", _("First purchase")
    REPEAT = "repeat", _("Repeat")
    VIP = "vip", _("VIP")
    AT_RISK = "at_risk", _("At risk")
    CHURNED = "churned", _("Churned")
    RECALLED = "recalled", _("Recalled")


class Contact(WorkspaceOwned):
    """A customer the brand owns a relationship with."""

    name = models.CharField(max_length=100)
    gender = models.CharField(max_length=8, choices=Gender.choices, default=Gender.UNKNOWN)
    birthday = models.DateField(null=True, blank=True)
    region = models.CharField(max_length=50, blank=True, default="", help_text="province / region")
    city = models.CharField(max_length=50, blank=True, default="")
    # Phone: encrypted at rest, found through a keyed hash, shown masked unless allowed.
    phone_encrypted = models.TextField(blank=True, default="")
    phone_hash = models.CharField(max_length=64, blank=True, default="", db_index=True)
    phone_masked = models.CharField(max_length=20, blank=True, default="")
    owner = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="contacts")
    # First touch: set once when the contact is created, never overwritten.
    source_channel = models.CharField(max_length=64, blank=True, default="", db_index=True)
    source_campaign = models.CharField(max_length=64, blank=True, default="")
    lifecycle_stage = models.CharField(max_length=16, choices=LifecycleStage.choices, default=LifecycleStage.NEW, db_index=True)
    external_ref = models.CharField(max_length=100, blank=True, default="", help_text="id in the brand's own system")
    profile = models.JSONField(default=dict, blank=True)
    merged_into = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="merged_from")
    created_at = models.DateTimeField(db_index=True)
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["workspace", "owner"]),
            models.Index(fields=["workspace", "external_ref"]),
            models.Index(fields=["workspace", "name"]),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def phone(self) -> str:
        return crypto.decrypt(self.phone_encrypted)

    def set_phone(self, e164: str) -> None:
        self.phone_encrypted = crypto.encrypt(e164)
        self.phone_hash = crypto.lookup_hash(e164)
        self.phone_masked = mask_phone(e164)

    @property
    def is_merged(self) -> bool:
        return self.merged_into_id is not None


class ChannelIdentity(WorkspaceOwned):
    """How one person is known on one channel account (WeCom external_userid, Matrix
    user id). A person may have several; an identity belongs to exactly one contact."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="identities")
    account = models.ForeignKey(ChannelAccount, on_delete=models.CASCADE, related_name="identities")
    external_id = models.CharField(max_length=200)
    unionid = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "external_id"], name="identity_unique_per_account")]


class TagKind(models.TextChoices):
    IDENTITY = "identity", _("Identity")
    BUSINESS = "business", _("Business")


class TagGroup(WorkspaceOwned):
    """A dimension of tags (性别, 尺码, 消费力...). In an exclusive group a contact holds at
    most one tag: adding one replaces the other."""

    name = models.CharField(max_length=50)
    kind = models.CharField(max_length=16, choices=TagKind.choices, default=TagKind.BUSINESS)
    exclusive = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="taggroup_unique_name")]

    def __str__(self) -> str:
        return self.name


class Tag(WorkspaceOwned):
    group = models.ForeignKey(TagGroup, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=50)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["group_id", "id"]
        constraints = [models.UniqueConstraint(fields=["group", "name"], name="tag_unique_name_in_group")]

    def __str__(self) -> str:
        return f"{self.group.name}/{self.name}"


class TagSource(models.TextChoices):
    MANUAL = "manual", _("Manual")
    IMPORT = "import", _("Import")
    RULE = "rule", _("Rule")
    CHANNEL = "channel", _("Channel")


class ContactTag(WorkspaceOwned):
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="tag_links")
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="contact_links")
    source = models.CharField(max_length=16, choices=TagSource.choices, default=TagSource.MANUAL)
    rule = models.ForeignKey("TagRule", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.TextField(blank=True, default="", help_text="why a rule gave this tag")
    added_by = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["contact", "tag"], name="contact_tag_unique")]
        indexes = [models.Index(fields=["tag", "contact"])]


class FieldType(models.TextChoices):
    TEXT = "text", _("Text")
    NUMBER = "number", _("Number")
    DATE = "date", _("Date")
    CHOICE = "choice", _("Choice")


class ProfileField(WorkspaceOwned):
    """A custom profile field (尺码, 肤质, 宝宝月龄...) stored in ``Contact.profile``."""

    key = models.SlugField(max_length=50)
    label = models.CharField(max_length=100)
    field_type = models.CharField(max_length=16, choices=FieldType.choices, default=FieldType.TEXT)
    choices = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["workspace", "key"], name="profilefield_unique_key")]


class ConsentPurpose(models.TextChoices):
    MARKETING = "marketing", _("Marketing messages")
    SERVICE = "service", _("Service messages")
    GROUP_ARCHIVE = "group_archive", _("Chat archive (会话存档)")


class Consent(WorkspaceOwned):
    """Consent / do-not-disturb per purpose. No row means "not asked" (treated as no
    consent for marketing by outreach)."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="consents")
    purpose = models.CharField(max_length=32, choices=ConsentPurpose.choices)
    granted = models.BooleanField(default=False)
    do_not_disturb = models.BooleanField(default=False)
    source = models.CharField(max_length=64, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["contact", "purpose"], name="consent_unique_purpose")]


class ContactEvent(WorkspaceOwned):
    """One entry of a contact's timeline. Append-only; ``idempotency_key`` makes a replay
    of the same fact a no-op."""

    # leads the ``(contact, kind, occurred_at)`` index: no index of its own (a random
    # key's index is the costliest one to write, once per timeline event)
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="events", db_index=False)
    kind = models.CharField(max_length=32, db_index=True)
    occurred_at = models.DateTimeField(db_index=True)
    data = models.JSONField(default=dict, blank=True)
    idempotency_key = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["workspace", "idempotency_key"], name="event_unique_key")]
        indexes = [models.Index(fields=["contact", "kind", "occurred_at"])]


class TagRule(WorkspaceOwned):
    """Automatic tagging (自动打标签): when a contact meets the conditions it gets ``tag``.

    ``conditions`` is a list of objects, all of which must hold (or any, with
    ``match="any"``)::

        {"field": "city", "op": "eq", "value": "上海"}
        {"field": "profile.size", "op": "in", "value": ["M", "L"]}
        {"event": "order", "min_count": 2, "within_days": 90}
    """

    name = models.CharField(max_length=100)
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="rules")
    conditions = models.JSONField(default=list)
    match = models.CharField(max_length=3, choices=[("all", "all"), ("any", "any")], default="all")
    remove_when_unmet = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_run_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
