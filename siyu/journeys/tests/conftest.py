"""Journey test set-up: a workspace with a sandbox channel, reachable contacts that
consented to marketing, and a helper to publish a journey from YAML."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable
from typing import Any

import pytest

from siyu.accounts.models import Staff
from siyu.channels.actions import do_create_channel_account
from siyu.channels.models import ChannelAccount
from siyu.contacts.actions import do_add_identity, do_set_consent
from siyu.contacts.models import Contact
from siyu.core.models import Workspace
from siyu.core.testing import make_contact, make_staff, make_workspace
from siyu.journeys.actions import do_publish_journey, do_save_journey
from siyu.journeys.models import Journey

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def shanghai(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


@pytest.fixture
def workspace() -> Workspace:
    return make_workspace()


@pytest.fixture
def owner(workspace: Workspace) -> Staff:
    return make_staff(workspace)


@pytest.fixture
def sandbox(workspace: Workspace) -> ChannelAccount:
    return do_create_channel_account(workspace, None, kind="sandbox", name="sbx")


@pytest.fixture
def reachable(workspace: Workspace, sandbox: ChannelAccount) -> Callable[..., Contact]:
    """``reachable(name)`` → a contact on the sandbox channel who consented to marketing."""

    def make(name: str | None = None, **kw: Any) -> Contact:
        contact = make_contact(workspace, name, **kw)
        do_add_identity(contact, None, account=sandbox, external_id=f"ext-{contact.pk}")
        do_set_consent(contact, None, purpose="marketing", granted=True)
        return contact

    return make


@pytest.fixture
def publish(workspace: Workspace) -> Callable[[str], Journey]:
    def make(text: str) -> Journey:
        journey = do_save_journey(workspace, None, text)
        do_publish_journey(journey, None)
        journey.refresh_from_db()
        return journey

    return make


@pytest.fixture
def commit(django_capture_on_commit_callbacks: Any) -> Callable[[], Any]:
    """``with commit(): ...`` runs the after-commit work of the block (worker tasks,
    event fan-out) as a real commit would, inside the test's transaction."""

    def make() -> Any:
        return django_capture_on_commit_callbacks(execute=True)

    return make
