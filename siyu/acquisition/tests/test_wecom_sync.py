"""WeCom 「联系我」 / join way (加入群聊) sync of live codes, against the fake WeCom server
over loopback HTTP: the exact request bodies, idempotent retries, the join way window
following the groups as they fill, and failures that stay visible on the slot."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client

from siyu.accounts.models import StaffChannelIdentity
from siyu.acquisition.actions import (
    do_add_code_group,
    do_add_code_staff,
    do_create_live_code,
    do_map_staff_identity,
    do_remove_code_group,
    do_remove_code_staff,
    do_route_scan,
    do_sync_live_code,
    do_update_code_group,
)
from siyu.acquisition.models import LiveCodeStaff, SyncStatus
from siyu.channels.models import StaffTask
from siyu.channels.wecom.actions import do_connect_wecom
from siyu.channels.wecom.testing import FakeWeCom
from siyu.communities.actions import do_create_group
from siyu.core.errors import Conflict, ValidationFailed
from siyu.core.testing import make_staff
from siyu.worker.tasks import live_code_sync_sweep_periodic

pytestmark = pytest.mark.django_db

ADD_WAY = "/cgi-bin/externalcontact/add_contact_way"
UPDATE_WAY = "/cgi-bin/externalcontact/update_contact_way"
DEL_WAY = "/cgi-bin/externalcontact/del_contact_way"
ADD_JOIN = "/cgi-bin/externalcontact/groupchat/add_join_way"
UPDATE_JOIN = "/cgi-bin/externalcontact/groupchat/update_join_way"
GET_JOIN = "/cgi-bin/externalcontact/groupchat/get_join_way"
FIXTURE_CONFIG = "42b34949e138eb6e027c123cba77fAAA"
FIXTURE_QR = "http://p.qpic.cn/wwhead/duc2TvpEgSdicZ9RrdUtBkv2UiaA/0"
JOIN_CONFIG = "9ad7fa5cdaa6511298498f979c472aaa"
JOIN_QR = "https://p.qpic.cn/wwhead/join-way-qr/0"


@pytest.fixture(autouse=True)
def _clean_token_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def fake():
    fake = FakeWeCom()
    with fake.serve() as api_base:
        fake.api_base = api_base  # type: ignore[attr-defined]
        yield fake


@pytest.fixture
def account(workspace, fake):
    return do_connect_wecom(workspace, None, corp_id="ID", agent_id=1000002, secret="SECRET", token="QDG6eK",
                            aes_key="jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", api_base=fake.api_base)


@pytest.fixture
def seller(workspace):
    return make_staff(workspace, role="agent", email="li@acq.test", display_name="小李")


@pytest.fixture
def staff_code(workspace, owner, channel, account):
    return do_create_live_code(workspace, owner, channel=channel, name="门店加好友", kind="staff", channel_account=account)


def _bodies(fake: FakeWeCom, path: str) -> list[dict]:
    return [r.body for r in fake.calls(path)]


# ---------------------------------------------------------------- staff ↔ userid


def test_mapping_a_userid_is_per_account_and_one_staff_per_userid(workspace, owner, seller, account):
    # when
    identity = do_map_staff_identity(account, seller, owner, userid="lisi")

    # then
    assert identity is not None
    assert list(StaffChannelIdentity.objects.values_list("staff_id", "account_id", "external_id")) == [(seller.pk, account.pk, "lisi")]
    with pytest.raises(Conflict) as taken:
        do_map_staff_identity(account, owner, owner, userid="lisi")
    assert taken.value.code == "userid_taken"
    with pytest.raises(ValidationFailed) as bad:
        do_map_staff_identity(account, owner, owner, userid="has space")
    assert bad.value.code == "invalid_userid"
    assert do_map_staff_identity(account, seller, owner, userid="") is None
    assert StaffChannelIdentity.objects.count() == 0


# ---------------------------------------------------------------- 「联系我」 per staff slot


def test_adding_a_mapped_staff_creates_one_contact_way_with_the_code_state(
    workspace, owner, seller, account, staff_code, fake, django_capture_on_commit_callbacks
):
    # given
    do_map_staff_identity(account, seller, owner, userid="lisi")

    # when
    with django_capture_on_commit_callbacks(execute=True):
        slot = do_add_code_staff(staff_code, owner, staff=seller)

    # then
    assert _bodies(fake, ADD_WAY) == [{"type": 1, "scene": 2, "state": f"lc:{staff_code.code}", "user": ["lisi"]}]
    slot.refresh_from_db()
    assert (slot.config_id, slot.qr_url, slot.sync_status, slot.sync_error) == (FIXTURE_CONFIG, FIXTURE_QR, SyncStatus.SYNCED, "")
    assert len(staff_code.state) <= 30


def test_the_public_page_of_a_synced_staff_slot_redirects_to_the_wecom_qr(
    workspace, owner, seller, account, staff_code, fake, django_capture_on_commit_callbacks
):
    # given
    do_map_staff_identity(account, seller, owner, userid="lisi")
    with django_capture_on_commit_callbacks(execute=True):
        do_add_code_staff(staff_code, owner, staff=seller)

    # when
    response = Client().get(f"/c/{staff_code.code}")

    # then
    assert (response.status_code, response["Location"]) == (302, FIXTURE_QR)


def test_a_retry_of_a_synced_slot_sends_nothing_and_a_pending_one_updates_not_adds(
    workspace, owner, seller, account, staff_code, fake, django_capture_on_commit_callbacks
):
    # given
    do_map_staff_identity(account, seller, owner, userid="lisi")
    with django_capture_on_commit_callbacks(execute=True):
        slot = do_add_code_staff(staff_code, owner, staff=seller)

    # when: the task runs again (a Huey retry), then the userid changes
    again = do_sync_live_code(staff_code.pk)
    with django_capture_on_commit_callbacks(execute=True):
        do_map_staff_identity(account, seller, owner, userid="lisi2")

    # then
    assert again == {"synced": 0, "failed": 0}
    assert len(fake.calls(ADD_WAY)) == 1
    assert _bodies(fake, UPDATE_WAY) == [{"config_id": FIXTURE_CONFIG, "state": f"lc:{staff_code.code}", "user": ["lisi2"]}]
    slot.refresh_from_db()
    assert (slot.config_id, slot.sync_status) == (FIXTURE_CONFIG, SyncStatus.SYNCED)


def test_a_slot_whose_config_was_stored_by_a_concurrent_sync_deletes_its_duplicate(
    workspace, owner, seller, account, staff_code, fake, django_capture_on_commit_callbacks
):
    # given: a slot still pending, but another worker stores its config id while ours is in flight
    do_map_staff_identity(account, seller, owner, userid="lisi")
    slot = do_add_code_staff(staff_code, owner, staff=seller)  # no commit callbacks run: still pending
    fake.script(ADD_WAY, {"errcode": 0, "errmsg": "ok", "config_id": "second-config", "qr_code": "https://qr.example/2"})
    LiveCodeStaff.objects.filter(pk=slot.pk).update(config_id="")
    original_update = LiveCodeStaff.objects.filter(pk=slot.pk)
    # the winner's row: written before our conditional store
    fake_winner = {"config_id": "first-config", "qr_url": "https://qr.example/1"}

    import siyu.acquisition.actions as actions

    real = actions.LiveCodeStaff.objects.filter

    def filter_then_win(*args, **kwargs):
        if kwargs.get("config_id") == "" and "pk" in kwargs:
            original_update.update(**fake_winner)
        return real(*args, **kwargs)

    # when
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(actions.LiveCodeStaff.objects, "filter", filter_then_win)
        do_sync_live_code(staff_code.pk)

    # then: one config survives on WeCom's side too
    slot.refresh_from_db()
    assert (slot.config_id, slot.qr_url) == ("first-config", "https://qr.example/1")
    assert _bodies(fake, DEL_WAY) == [{"config_id": "second-config"}]


def test_a_staff_without_a_userid_is_marked_failed_with_a_staff_task_then_synced_once_mapped(
    workspace, owner, seller, account, staff_code, fake, django_capture_on_commit_callbacks
):
    # when
    with django_capture_on_commit_callbacks(execute=True):
        slot = do_add_code_staff(staff_code, owner, staff=seller)

    # then
    slot.refresh_from_db()
    assert (slot.sync_status, slot.sync_error) == (SyncStatus.FAILED, f"小李 has no WeCom userid on account {account.name}: map it first")
    assert fake.calls(ADD_WAY) == []
    task = StaffTask.objects.get(kind="staff_userid_missing")
    assert task.detail == {"staff": seller.pk, "live_code": staff_code.pk, "code": staff_code.code}

    # when
    with django_capture_on_commit_callbacks(execute=True):
        do_map_staff_identity(account, seller, owner, userid="lisi")

    # then
    slot.refresh_from_db()
    assert (slot.sync_status, slot.config_id) == (SyncStatus.SYNCED, FIXTURE_CONFIG)
    assert _bodies(fake, ADD_WAY) == [{"type": 1, "scene": 2, "state": f"lc:{staff_code.code}", "user": ["lisi"]}]


def test_an_errcode_leaves_the_slot_failed_with_the_error_and_the_sweep_retries_it(
    workspace, owner, seller, account, staff_code, fake, django_capture_on_commit_callbacks
):
    # given
    do_map_staff_identity(account, seller, owner, userid="lisi")
    fake.script(ADD_WAY, {"errcode": 40098, "errmsg": "the member has not been verified"})

    # when
    with django_capture_on_commit_callbacks(execute=True):
        slot = do_add_code_staff(staff_code, owner, staff=seller)

    # then
    slot.refresh_from_db()
    assert (slot.sync_status, slot.sync_error, slot.config_id) == (
        SyncStatus.FAILED, "WeCom errcode 40098: the member has not been verified", "")

    # when
    swept = live_code_sync_sweep_periodic.call_local()

    # then
    slot.refresh_from_db()
    assert swept == {"synced": 1, "failed": 0}
    assert (slot.sync_status, slot.sync_error, slot.config_id) == (SyncStatus.SYNCED, "", FIXTURE_CONFIG)
    assert len(fake.calls(ADD_WAY)) == 2


def test_removing_a_staff_slot_deletes_its_contact_way(
    workspace, owner, seller, account, staff_code, fake, django_capture_on_commit_callbacks
):
    # given
    do_map_staff_identity(account, seller, owner, userid="lisi")
    with django_capture_on_commit_callbacks(execute=True):
        slot = do_add_code_staff(staff_code, owner, staff=seller)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        do_remove_code_staff(LiveCodeStaff.objects.get(pk=slot.pk), owner)

    # then
    assert _bodies(fake, DEL_WAY) == [{"config_id": FIXTURE_CONFIG}]


# ---------------------------------------------------------------- join way per group code


def _group(workspace, owner, account, n: int):
    return do_create_group(workspace, owner, name=f"福利{n}群", channel_account=account, external_id=f"wrChat{n}", capacity=200)


def test_a_group_code_keeps_one_join_way_over_the_open_window_and_moves_it_when_a_group_fills(
    workspace, owner, channel, account, fake, django_capture_on_commit_callbacks
):
    # given: six groups of 1 seat each, a window of 5
    code = do_create_live_code(workspace, owner, channel=channel, name="福利群", kind="group", channel_account=account,
                               group_capacity=2, window_size=5, low_watermark=0, auto_create_groups=False)
    fake.script(GET_JOIN, {"errcode": 0, "errmsg": "ok", "join_way": {"config_id": JOIN_CONFIG, "qr_code": JOIN_QR}})
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(1, 7):
            do_add_code_group(code, owner, group=_group(workspace, owner, account, n), capacity=1)

    # then: the six syncs after the commit made one join way over the window (group 6 is outside it)
    assert _bodies(fake, ADD_JOIN) == [
        {"scene": 2, "chat_id_list": ["wrChat1", "wrChat2", "wrChat3", "wrChat4", "wrChat5"], "state": f"lc:{code.code}"}
    ]
    assert fake.calls(UPDATE_JOIN) == []
    code.refresh_from_db()
    assert (code.join_config_id, code.join_qr_url, code.sync_status) == (JOIN_CONFIG, JOIN_QR, SyncStatus.SYNCED)

    # when: a scan fills group 1
    with django_capture_on_commit_callbacks(execute=True):
        scan = do_route_scan(code.code, visitor_key="v1")

    # then
    assert scan.group is not None and scan.group.external_id == "wrChat1"
    assert _bodies(fake, UPDATE_JOIN)[-1] == {
        "config_id": JOIN_CONFIG, "scene": 2, "chat_id_list": ["wrChat2", "wrChat3", "wrChat4", "wrChat5", "wrChat6"],
        "state": f"lc:{code.code}",
    }
    assert all(len(b["chat_id_list"]) <= 5 for b in _bodies(fake, UPDATE_JOIN))
    assert len(fake.calls(ADD_JOIN)) == 1
    assert Client().get(f"/c/{code.code}")["Location"] == JOIN_QR


def test_removing_a_group_slot_and_widening_one_update_the_join_way(
    workspace, owner, channel, account, fake, django_capture_on_commit_callbacks
):
    # given
    code = do_create_live_code(workspace, owner, channel=channel, name="福利群", kind="group", channel_account=account,
                               group_capacity=2, window_size=2, low_watermark=0, auto_create_groups=False)
    fake.script(GET_JOIN, {"errcode": 0, "errmsg": "ok", "join_way": {"config_id": JOIN_CONFIG, "qr_code": JOIN_QR}})
    with django_capture_on_commit_callbacks(execute=True):
        first = do_add_code_group(code, owner, group=_group(workspace, owner, account, 1), capacity=1)
        do_add_code_group(code, owner, group=_group(workspace, owner, account, 2), capacity=1)
        do_add_code_group(code, owner, group=_group(workspace, owner, account, 3), capacity=1)
        do_route_scan(code.code, visitor_key="v1")  # fills group 1

    # when
    with django_capture_on_commit_callbacks(execute=True):
        do_update_code_group(first, owner, capacity=3)  # room again: back in the window
    reopened = _bodies(fake, UPDATE_JOIN)[-1]["chat_id_list"]
    with django_capture_on_commit_callbacks(execute=True):
        do_remove_code_group(first, owner)

    # then
    assert reopened == ["wrChat1", "wrChat2"]
    assert _bodies(fake, UPDATE_JOIN)[-1]["chat_id_list"] == ["wrChat2", "wrChat3"]


def test_a_join_way_errcode_marks_the_code_failed_with_the_error(
    workspace, owner, channel, account, fake, django_capture_on_commit_callbacks
):
    # given
    code = do_create_live_code(workspace, owner, channel=channel, name="福利群", kind="group", channel_account=account,
                               auto_create_groups=False)
    fake.script(ADD_JOIN, {"errcode": 41054, "errmsg": "the group is not a customer group"})

    # when
    with django_capture_on_commit_callbacks(execute=True):
        do_add_code_group(code, owner, group=_group(workspace, owner, account, 1), capacity=1)

    # then
    code.refresh_from_db()
    assert (code.sync_status, code.sync_error, code.join_config_id) == (
        SyncStatus.FAILED, "WeCom errcode 41054: the group is not a customer group", "")


def test_a_wecom_window_running_low_asks_staff_for_a_new_group_once_per_missing_group(
    workspace, owner, channel, account, fake, django_capture_on_commit_callbacks
):
    # given: two groups of one seat, watermark 2 (WeCom cannot create customer groups)
    code = do_create_live_code(workspace, owner, channel=channel, name="福利群", kind="group", channel_account=account,
                               group_capacity=2, window_size=5, low_watermark=2, auto_create_groups=True)
    fake.script(GET_JOIN, {"errcode": 0, "errmsg": "ok", "join_way": {"config_id": JOIN_CONFIG, "qr_code": JOIN_QR}})
    with django_capture_on_commit_callbacks(execute=True):
        do_add_code_group(code, owner, group=_group(workspace, owner, account, 1), capacity=1)
        do_add_code_group(code, owner, group=_group(workspace, owner, account, 2), capacity=1)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        do_route_scan(code.code, visitor_key="v1")
        do_route_scan(code.code, visitor_key="v2")

    # then
    tasks = list(StaffTask.objects.filter(kind="live_code_open_group").values_list("dedupe_key", "detail"))
    assert tasks == [(f"livecode:{code.pk}:open:3", {"live_code": code.pk, "code": code.code, "group_name": "包裹卡3群"})]

    # when: staff add the group they created, then it fills too
    with django_capture_on_commit_callbacks(execute=True):
        do_add_code_group(code, owner, group=_group(workspace, owner, account, 3), capacity=1)
        do_route_scan(code.code, visitor_key="v3")

    # then: a second task, for the fourth group
    assert list(StaffTask.objects.filter(kind="live_code_open_group").order_by("id").values_list("dedupe_key", flat=True)) == [
        f"livecode:{code.pk}:open:3", f"livecode:{code.pk}:open:4"]
    code.refresh_from_db()
    assert (code.sync_status, code.sync_error) == (SyncStatus.FAILED, "no open group with a WeCom chat id: add a group to the code")
