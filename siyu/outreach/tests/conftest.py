"""Outreach test set-up: a workspace with a sandbox channel (direct sends), a sandbox
imitating WeCom (mass-message tasks and WeCom's limits), and reachable contacts."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from typing import Any

import pytest

from siyu.accounts.models import Role, Staff
from siyu.channels.actions import do_create_channel_account
from siyu.channels.models import ChannelAccount
from siyu.communities.actions import do_create_group
from siyu.communities.models import Group
from siyu.contacts.actions import do_add_identity, do_set_consent
from siyu.contacts.models import Contact
from siyu.core.models import Workspace
from siyu.core.testing import make_contact, make_staff, make_workspace

_ids = itertools.count(1)
SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def shanghai(*args: int) -> dt.datetime:
    """An aware datetime given in Asia/Shanghai wall time (UTC+8, no DST)."""
    return dt.datetime(*args, tzinfo=SHANGHAI)  # type: ignore[misc, arg-type]


@pytest.fixture
def workspace() -> Workspace:
    return make_workspace()


@pytest.fixture
def owner(workspace: Workspace) -> Staff:
    return make_staff(workspace, role=Role.OWNER, display_name="店长")


@pytest.fixture
def sandbox(workspace: Workspace, owner: Staff) -> ChannelAccount:
    return do_create_channel_account(workspace, owner, kind="sandbox", name="sandbox")


@pytest.fixture
def wecomish(workspace: Workspace, owner: Staff) -> ChannelAccount:
    """A sandbox account that behaves as WeCom: no direct sends, mass-message tasks, and
    WeCom's platform limits."""
    return do_create_channel_account(workspace, owner, kind="sandbox", name="wecom-like", config={"imitate": "wecom"})


@pytest.fixture
def reachable(workspace: Workspace, owner: Staff) -> Callable[..., Contact]:
    """``reachable(account, consent=True, **fields)`` → a contact with an identity on
    ``account`` and (by default) marketing consent, owned by the workspace owner."""

    def make(account: ChannelAccount, consent: bool = True, **fields: Any) -> Contact:
        fields.setdefault("owner", owner)
        contact = make_contact(workspace, **fields)
        do_add_identity(contact, None, account=account, external_id=f"ext-{next(_ids)}")
        if consent:
            do_set_consent(contact, None, purpose="marketing", granted=True)
        return contact

    return make


@pytest.fixture
def connected_group(workspace: Workspace, owner: Staff) -> Callable[[ChannelAccount], Group]:
    def make(account: ChannelAccount, name: str = "会员群") -> Group:
        return do_create_group(workspace, owner, name=name, channel_account=account, external_id=f"room-{next(_ids)}", owner=owner)

    return make


@pytest.fixture
def awake(workspace: Workspace) -> None:
    """No quiet hours, for tests that send "now" whatever the clock says."""
    from siyu.outreach.actions import do_set_quota_policy

    do_set_quota_policy(workspace, None, quiet_start="00:00", quiet_end="00:00")
