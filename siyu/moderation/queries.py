"""Read-side helpers for moderation, shared by the API and the console."""

from __future__ import annotations

from typing import Any

from siyu.accounts.models import Staff
from siyu.accounts.permissions import Perm, has_perm
from siyu.contacts.queries import visible_contacts
from siyu.core.models import Workspace
from siyu.moderation.models import BlacklistEntry


def visible_blacklist(workspace: Workspace, staff: Staff | None) -> Any:
    """The workspace's blacklist entries this staff member may see: an agent (who may
    not see every contact) only their own contacts'."""
    qs = BlacklistEntry.objects.in_workspace(workspace)
    if not has_perm(staff, Perm.VIEW_ALL_CONTACTS):
        qs = qs.filter(contact__in=visible_contacts(workspace, staff))
    return qs
