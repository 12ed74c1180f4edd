"""Read-side helpers for moderation, shared by the API and the console."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from siyu.accounts.models import Staff
from siyu.accounts.permissions import Perm, has_perm
from siyu.contacts.queries import visible_contacts
from siyu.core.lookups import every_one
from siyu.core.models import Workspace
from siyu.moderation.models import BlacklistEntry


def visible_blacklist(workspace: Workspace, staff: Staff | None) -> Any:
    """The workspace's blacklist entries this staff member may see: an agent (who may
    not see every contact) only their own contacts'."""
    qs = BlacklistEntry.objects.in_workspace(workspace)
    if not has_perm(staff, Perm.VIEW_ALL_CONTACTS):
        qs = qs.filter(contact__in=visible_contacts(workspace, staff))
    return qs


#: the blacklist's states: standing entries (the default), lifted ones, or both
BLACKLIST_STATES = ("standing", "lifted", "all")


def find_blacklist(workspace: Workspace, staff: Staff | None, *, q: str = "", state: str = "standing",
                   contact_id: int | None = None) -> Any:
    """The blacklist entries ``staff`` may see, newest first, as the API, the console and
    the CLI filter them: by state, by contact, and by a search that finds the contact as
    the contacts list does (name, city, external reference, phone number) or by a channel
    id they used (exactly: a WeCom external id or WeChat unionid, a Matrix id copied from the chat), or part
    of the entry's reason."""
    from django.db.models import Exists, OuterRef, Q

    from siyu.contacts.models import ChannelIdentity
    from siyu.contacts.queries import contact_matches
    from siyu.core.errors import ValidationFailed

    if state not in BLACKLIST_STATES:
        raise ValidationFailed(f"unknown state {state!r}; expected {', '.join(BLACKLIST_STATES)}", code="invalid_state")
    qs = visible_blacklist(workspace, staff)
    if state == "standing":
        qs = qs.filter(lifted_at__isnull=True)
    elif state == "lifted":
        qs = qs.filter(lifted_at__isnull=False)
    if contact_id is not None:
        qs = qs.filter(contact_id=contact_id)
    q = q.strip()
    if q:
        used = ChannelIdentity.objects.filter(Q(external_id=q) | Q(unionid=q), workspace=workspace, contact_id=OuterRef("contact_id"))
        qs = qs.filter(contact_matches(q, "contact__") | Q(reason__icontains=q) | Exists(used))
    return qs.order_by("-created_at", "-id")


def get_visible_entries(workspace: Workspace, staff: Staff | None, entry_ids: Iterable[int]) -> list[BlacklistEntry]:
    """The entries behind these ids, in the order given (a repeated id once), all visible
    to ``staff``; otherwise :class:`NotFound` naming the ids that are not."""
    return every_one(visible_blacklist(workspace, staff).select_related("contact"), entry_ids, noun="blacklist entries")
