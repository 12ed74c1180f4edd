"""Factories for tests (given/when/then set-up), shared by every domain's tests.

Each factory writes through the real actions so tests exercise what production does.
"""

from __future__ import annotations

import itertools
from typing import Any

from siyu.accounts.actions import do_create_api_token, do_create_staff, do_create_workspace
from siyu.accounts.models import Role, Staff
from siyu.contacts.actions import do_create_contact, do_create_tag, do_create_tag_group
from siyu.contacts.models import Contact, Tag, TagGroup
from siyu.core.models import Workspace

_seq = itertools.count(1)


def make_workspace(slug: str | None = None, **kw: Any) -> Workspace:
    n = next(_seq)
    return do_create_workspace(slug=slug or f"ws{n}", name=kw.pop("name", f"Workspace {n}"), **kw)


def make_staff(workspace: Workspace, role: str = Role.OWNER, email: str | None = None, **kw: Any) -> Staff:
    n = next(_seq)
    return do_create_staff(
        workspace, None, email=email or f"staff{n}@example.com", role=role, password=kw.pop("password", "pass-1234"), **kw
    )


def make_token(staff: Staff) -> str:
    return do_create_api_token(staff, None)[1]


def make_contact(workspace: Workspace, name: str | None = None, **kw: Any) -> Contact:
    return do_create_contact(workspace, None, name=name or f"客户{next(_seq)}", **kw)


def make_tag(workspace: Workspace, name: str, group: str = "兴趣", exclusive: bool = False, kind: str = "business") -> Tag:
    tag_group = TagGroup.objects.in_workspace(workspace).filter(name=group).first() or do_create_tag_group(
        workspace, None, name=group, exclusive=exclusive, kind=kind
    )
    return do_create_tag(workspace, None, group=tag_group, name=name)
