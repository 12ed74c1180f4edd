"""The API and CLI around live code sync: staff ↔ userid mapping, a live code's own
settings, editing and removing group slots."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from siyu.accounts.models import StaffChannelIdentity
from siyu.acquisition.actions import do_add_code_group, do_create_live_code
from siyu.acquisition.models import LiveCodeGroup
from siyu.acquisition.tests.test_api import client
from siyu.channels.models import ChannelAccount, ChannelKind
from siyu.cli.main import app
from siyu.communities.actions import do_create_group
from siyu.core.testing import make_staff, make_workspace

pytestmark = pytest.mark.django_db


@pytest.fixture
def account(workspace):
    return ChannelAccount.objects.create(workspace=workspace, kind=ChannelKind.WECOM, name="企业微信", external_id="ww1")


def test_put_and_get_a_staff_channel_identity(workspace, owner, account):
    # given
    seller = make_staff(workspace, role="agent", email="li@acq.test")
    c = client(owner)

    # when
    put = c.put(f"/acquisition/staff/{seller.pk}/channel-identities", json={"account_id": account.pk, "userid": "lisi"})
    got = c.get(f"/acquisition/staff/{seller.pk}/channel-identities")
    taken = c.put(f"/acquisition/staff/{owner.pk}/channel-identities", json={"account_id": account.pk, "userid": "lisi"})

    # then
    assert (put.status_code, put.json()) == (200, [{"account_id": account.pk, "userid": "lisi"}])
    assert got.json() == [{"account_id": account.pk, "userid": "lisi"}]
    assert (taken.status_code, taken.json()["error"]["code"]) == (409, "userid_taken")


def test_an_agent_cannot_map_userids_and_another_workspace_looks_missing(workspace, owner, account):
    # given
    agent = make_staff(workspace, role="agent", email="agent@acq.test")
    other = make_workspace("other")
    stranger = make_staff(other, email="x@other.test")

    # when
    forbidden = client(agent).put(f"/acquisition/staff/{agent.pk}/channel-identities", json={"account_id": account.pk, "userid": "a"})
    missing = client(stranger).get(f"/acquisition/staff/{agent.pk}/channel-identities")

    # then
    assert forbidden.status_code == 403
    assert missing.status_code == 404
    assert StaffChannelIdentity.objects.count() == 0


def test_patch_a_live_code_settings_and_edit_and_remove_a_group_slot(workspace, owner, channel):
    # given
    code = do_create_live_code(workspace, owner, channel=channel, name="福利群", kind="group", auto_create_groups=False)
    group = do_create_group(workspace, owner, name="一群", capacity=300)
    slot = do_add_code_group(code, owner, group=group, capacity=100)
    c = client(owner)

    # when
    patched = c.patch(f"/acquisition/live-codes/{code.pk}", json={"name": "福利群 2", "group_capacity": 150, "window_size": 3,
                                                                  "low_watermark": 1, "expires_at": "2030-01-01T00:00:00Z"})
    too_wide = c.patch(f"/acquisition/live-codes/{code.pk}", json={"window_size": 6})
    resized = c.patch(f"/acquisition/live-codes/{code.pk}/groups/{slot.pk}", json={"capacity": 250})
    too_big = c.patch(f"/acquisition/live-codes/{code.pk}/groups/{slot.pk}", json={"capacity": 301})
    removed = c.delete(f"/acquisition/live-codes/{code.pk}/groups/{slot.pk}")

    # then
    body = patched.json()
    assert (patched.status_code, body["name"], body["group_capacity"], body["window_size"], body["low_watermark"],
            body["expires_at"]) == (200, "福利群 2", 150, 3, 1, "2030-01-01T00:00:00Z")
    assert (too_wide.status_code, too_wide.json()["error"]["code"]) == (422, "invalid_window")
    assert resized.json() == {"id": slot.pk, "group_id": group.pk, "capacity": 250, "seats_taken": 0, "open": True}
    assert (too_big.status_code, too_big.json()["error"]["code"]) == (422, "invalid_capacity")
    assert removed.status_code == 204
    assert LiveCodeGroup.objects.count() == 0


def test_cli_map_staff_prints_json(workspace, owner, account):
    # when
    result = CliRunner().invoke(app, ["channels", "map-staff", "--workspace", workspace.slug, "--account", str(account.pk),
                                      "--staff", str(owner.pk), "--userid", "boss", "--json"])

    # then
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"account_id": account.pk, "staff_id": owner.pk, "userid": "boss"}
    assert list(StaffChannelIdentity.objects.values_list("external_id", flat=True)) == ["boss"]
