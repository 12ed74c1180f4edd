"""What each role may do. Checked by the API, console and CLI before calling an action,
and by queries that decide which contacts a staff member sees (data scope)."""

from __future__ import annotations

from enum import StrEnum

from siyu.accounts.models import Role, Staff
from siyu.core.errors import Forbidden


class Perm(StrEnum):
    VIEW_ALL_CONTACTS = "contacts.view_all"  # otherwise: only contacts the staff member owns
    VIEW_PII = "contacts.view_pii"  # unmasked phone numbers
    EDIT_CONTACTS = "contacts.edit"
    EXPORT_CONTACTS = "contacts.export"
    IMPORT_CONTACTS = "contacts.import"
    MERGE_CONTACTS = "contacts.merge"
    MANAGE_TAGS = "tags.manage"
    TAG_CONTACTS = "tags.apply"
    MANAGE_RULES = "rules.manage"
    MANAGE_GROUPS = "groups.manage"
    VIEW_GROUPS = "groups.view"
    MANAGE_STAFF = "staff.manage"
    VIEW_AUDIT = "audit.view"
    MANAGE_WORKSPACE = "workspace.manage"
    OPERATE_CHANNELS = "channels.operate"  # inbox/outbox retry, staff tasks
    MANAGE_OUTREACH = "outreach.manage"  # materials, quota policy, broadcasts, columns
    VIEW_SEGMENTS = "segments.view"  # members still limited to the contacts one may see
    MANAGE_SEGMENTS = "segments.manage"
    VIEW_JOURNEYS = "journeys.view"  # journeys, runs, per-step counts (contacts still scoped)
    MANAGE_JOURNEYS = "journeys.manage"  # define, publish, enrol, playbooks


_OPERATOR = {
    Perm.VIEW_ALL_CONTACTS,
    Perm.EDIT_CONTACTS,
    Perm.EXPORT_CONTACTS,
    Perm.IMPORT_CONTACTS,
    Perm.MERGE_CONTACTS,
    Perm.MANAGE_TAGS,
    Perm.TAG_CONTACTS,
    Perm.MANAGE_RULES,
    Perm.MANAGE_GROUPS,
    Perm.VIEW_GROUPS,
    Perm.OPERATE_CHANNELS,
    Perm.MANAGE_OUTREACH,
    Perm.VIEW_SEGMENTS,
    Perm.MANAGE_SEGMENTS,
    Perm.VIEW_JOURNEYS,
    Perm.MANAGE_JOURNEYS,
}

ROLE_PERMISSIONS: dict[str, frozenset[Perm]] = {
    Role.OWNER: frozenset(Perm),
    Role.ADMIN: frozenset(Perm) - {Perm.MANAGE_WORKSPACE},
    Role.OPERATOR: frozenset(_OPERATOR),
    Role.ANALYST: frozenset({Perm.VIEW_ALL_CONTACTS, Perm.EXPORT_CONTACTS, Perm.VIEW_GROUPS, Perm.VIEW_AUDIT, Perm.VIEW_SEGMENTS, Perm.VIEW_JOURNEYS}),
    # Agents (导购/客服) work their own customers: they may edit and tag those, no more.
    Role.AGENT: frozenset({Perm.EDIT_CONTACTS, Perm.TAG_CONTACTS, Perm.VIEW_GROUPS, Perm.VIEW_SEGMENTS}),
}


def has_perm(staff: Staff | None, perm: Perm) -> bool:
    if staff is None:  # system actor (worker, scheduled pass, demo seeding)
        return True
    return staff.is_active and perm in ROLE_PERMISSIONS.get(staff.role, frozenset())


def require(staff: Staff | None, perm: Perm) -> None:
    if not has_perm(staff, perm):
        raise Forbidden(f"your role does not allow {perm.value}", code="permission_denied")
