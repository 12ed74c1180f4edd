"""Given-helpers for the commerce tests."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from siyu.accounts.models import Role
from siyu.commerce.actions import LineSpec, RecordResult, do_record_order
from siyu.contacts.models import Contact
from siyu.core.models import Workspace
from siyu.core.testing import make_staff, make_workspace

D = Decimal


def days_ago(days: float) -> dt.datetime:
    return timezone.now() - dt.timedelta(days=days)


def record(workspace: Workspace, contact: Contact | None, external_id: str, amount: str | None = None, **kw: Any) -> RecordResult:
    """Record an order of one line (``amount``) placed ``kw['placed_at']`` (default: an hour ago)."""
    lines = kw.pop("lines", None)
    if lines is None and amount is not None:
        lines = [LineSpec(unit_price=D(amount), quantity=1, name="商品")]
    return do_record_order(workspace, None, external_id=external_id, contact=contact, placed_at=kw.pop("placed_at", days_ago(1 / 24)),
                           lines=lines or [], **kw)


@pytest.fixture
def workspace():
    return make_workspace("shop")


@pytest.fixture
def owner(workspace):
    return make_staff(workspace, Role.OWNER, email="owner@shop.test")
