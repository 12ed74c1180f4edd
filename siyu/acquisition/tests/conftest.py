from __future__ import annotations

import pytest

from siyu.acquisition.actions import do_create_channel
from siyu.core.testing import make_staff, make_workspace


@pytest.fixture
def workspace():
    return make_workspace("acq")


@pytest.fixture
def owner(workspace):
    return make_staff(workspace, email="boss@acq.test", display_name="老板")


@pytest.fixture
def channel(workspace, owner):
    return do_create_channel(workspace, owner, key="parcel", name="包裹卡", kind="parcel_card", cost_model="per_add", cost_per_add="1.50")
