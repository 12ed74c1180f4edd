import datetime as dt
import threading

import pytest
from django.db import connection

from siyu.acquisition.actions import (
    do_add_code_group,
    do_add_code_staff,
    do_create_live_code,
    do_route_scan,
    do_set_live_code_status,
    do_update_code_staff,
    on_duty,
)
from siyu.acquisition.errors import CodeUnavailable
from siyu.acquisition.models import LiveCodeGroup, LiveCodeStaff, Scan
from siyu.channels.actions import do_create_channel_account
from siyu.channels.models import StaffTask
from siyu.communities.actions import do_add_member, do_create_group
from siyu.communities.models import Group
from siyu.core.errors import NotFound
from siyu.core.testing import make_contact, make_staff

pytestmark = pytest.mark.django_db

# 2026-11-23 is a Monday; 02:00 UTC is 10:00 in Shanghai
MONDAY_10 = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)


def _group_name(scan: Scan) -> str:
    assert scan.group is not None
    return scan.group.name


def _staff_name(scan: Scan) -> str:
    assert scan.staff is not None
    return scan.staff.display_name


def _group_code(workspace, owner, channel, **kw):
    return do_create_live_code(workspace, owner, channel=channel, name="包裹卡进群", kind="group", **kw)


def _staff_code(workspace, owner, channel, **kw):
    return do_create_live_code(workspace, owner, channel=channel, name="包裹卡加好友", kind="staff", **kw)


def test_a_group_code_fills_the_first_group_to_capacity_then_moves_on(workspace, owner, channel):
    code = _group_code(workspace, owner, channel, group_capacity=3, auto_create_groups=False)
    first = do_create_group(workspace, owner, name="一群")
    second = do_create_group(workspace, owner, name="二群")
    do_add_code_group(code, owner, group=first)
    do_add_code_group(code, owner, group=second)

    targets = [_group_name(do_route_scan(code.code, visitor_key=f"v{i}")) for i in range(5)]

    assert targets == ["一群", "一群", "一群", "二群", "二群"]
    seats = list(LiveCodeGroup.objects.filter(live_code=code).values_list("group__name", "seats_taken", "capacity"))
    assert seats == [("一群", 3, 3), ("二群", 2, 3)]
    assert LiveCodeGroup.objects.get(group=first).filled_at is not None


def test_members_already_in_a_group_take_seats_when_it_is_added(workspace, owner, channel):
    code = _group_code(workspace, owner, channel, group_capacity=3, auto_create_groups=False)
    group = do_create_group(workspace, owner, name="老群")
    for name in ("甲", "乙"):
        do_add_member(group, make_contact(workspace, name), owner)

    slot = do_add_code_group(code, owner, group=group)
    do_route_scan(code.code, visitor_key="new")

    assert (slot.seats_taken, LiveCodeGroup.objects.get(pk=slot.pk).seats_taken) == (2, 3)
    with pytest.raises(CodeUnavailable) as exc:
        do_route_scan(code.code, visitor_key="late")
    assert (exc.value.code, exc.value.status) == ("live_code_exhausted", 503)


def test_a_repeat_scan_by_the_same_visitor_keeps_its_seat_without_taking_another(workspace, owner, channel):
    code = _group_code(workspace, owner, channel, group_capacity=5, auto_create_groups=False)
    do_add_code_group(code, owner, group=do_create_group(workspace, owner, name="一群"))

    first = do_route_scan(code.code, visitor_key="same")
    again = do_route_scan(code.code, visitor_key="same")

    assert (first.outcome, again.outcome, again.group_id) == ("group", "repeat", first.group_id)
    assert LiveCodeGroup.objects.get(live_code=code).seats_taken == 1


def test_when_the_window_runs_low_a_sandbox_code_opens_the_next_group(workspace, owner, channel):
    account = do_create_channel_account(workspace, owner, kind="sandbox", name="sbx")
    code = _group_code(workspace, owner, channel, group_capacity=2, channel_account=account, low_watermark=1)
    do_add_code_group(code, owner, group=do_create_group(workspace, owner, name="种子群", channel_account=account, external_id="r0"))

    names = [_group_name(do_route_scan(code.code, visitor_key=f"v{i}")) for i in range(5)]

    assert names == ["种子群", "种子群", "包裹卡1群", "包裹卡1群", "包裹卡2群"]
    opened = Group.objects.in_workspace(workspace).filter(name="包裹卡1群").get()
    assert (opened.channel_account_id, opened.external_id, opened.capacity) == (account.pk, f"sbx-{code.code}-1", 2)


def test_on_wecom_a_low_window_becomes_a_staff_task_to_create_the_group(workspace, owner, channel):
    account = do_create_channel_account(workspace, owner, kind="sandbox", name="like-wecom", config={"imitate": "wecom"})
    code = _group_code(workspace, owner, channel, group_capacity=2, channel_account=account, low_watermark=1)
    do_add_code_group(code, owner, group=do_create_group(workspace, owner, name="一群"))

    do_route_scan(code.code, visitor_key="a")
    do_route_scan(code.code, visitor_key="b")

    task = StaffTask.objects.in_workspace(workspace).get()
    # the code already holds one group, so the group asked for is its second
    assert (task.kind, task.title) == ("live_code_open_group", "活码「包裹卡进群」的群快满了：请新建客户群「包裹卡2群」并加入活码")
    with pytest.raises(CodeUnavailable):
        do_route_scan(code.code, visitor_key="c")
    assert StaffTask.objects.in_workspace(workspace).count() == 1


def test_staff_code_spreads_by_weight_and_switches_before_a_daily_cap_is_passed(workspace, owner, channel):
    code = _staff_code(workspace, owner, channel)
    anna = make_staff(workspace, display_name="安娜")
    bo = make_staff(workspace, display_name="波波")
    do_add_code_staff(code, owner, staff=anna, weight=2, daily_cap=4)
    do_add_code_staff(code, owner, staff=bo, weight=1, daily_cap=3)

    names = [_staff_name(do_route_scan(code.code, visitor_key=f"v{i}", now=MONDAY_10)) for i in range(7)]

    assert names == ["安娜", "波波", "安娜", "安娜", "波波", "安娜", "波波"]
    assert list(LiveCodeStaff.objects.filter(live_code=code).values_list("day_count", "daily_cap")) == [(4, 4), (3, 3)]
    with pytest.raises(CodeUnavailable):
        do_route_scan(code.code, visitor_key="v8", now=MONDAY_10)
    next_day = do_route_scan(code.code, visitor_key="v9", now=MONDAY_10 + dt.timedelta(days=1))
    assert (next_day.staff_id, LiveCodeStaff.objects.get(staff=anna).day_count) == (anna.pk, 1)


def test_total_cap_schedule_offline_and_backup(workspace, owner, channel):
    backup = make_staff(workspace, display_name="值班")
    code = _staff_code(workspace, owner, channel, backup_staff=backup)
    day = make_staff(workspace, display_name="白班")
    full = make_staff(workspace, display_name="满员")
    day_slot = do_add_code_staff(code, owner, staff=day, schedule={"weekly": {"0": [["09:00", "18:00"]]}, "dates": {"2026-11-24": []}})
    do_add_code_staff(code, owner, staff=full, total_cap=1)

    assert do_route_scan(code.code, visitor_key="a", now=MONDAY_10).staff == day
    assert do_route_scan(code.code, visitor_key="b", now=MONDAY_10).staff == full
    assert do_route_scan(code.code, visitor_key="c", now=MONDAY_10).staff == day  # full reached its friend limit
    evening = do_route_scan(code.code, visitor_key="d", now=MONDAY_10 + dt.timedelta(hours=9))  # 19:00 local
    assert (evening.outcome, evening.staff) == ("backup", backup)
    day_off = do_route_scan(code.code, visitor_key="e", now=MONDAY_10 + dt.timedelta(days=1))  # Tuesday: listed as off
    assert day_off.outcome == "backup"
    do_update_code_staff(day_slot, owner, is_online=False)
    assert do_route_scan(code.code, visitor_key="f", now=MONDAY_10).outcome == "backup"


def test_schedule_dates_replace_their_weekday():
    schedule = {"weekly": {"5": []}, "dates": {"2026-11-28": [["10:00", "12:00"]]}}
    saturday = dt.datetime(2026, 11, 28, 11, 0)
    assert (on_duty(schedule, saturday), on_duty(schedule, saturday + dt.timedelta(days=7))) == (True, False)
    assert on_duty({}, saturday) is True


def test_unknown_paused_and_expired_codes_are_refused_with_their_status(workspace, owner, channel):
    code = _staff_code(workspace, owner, channel)
    with pytest.raises(NotFound):
        do_route_scan("nosuchcode", visitor_key="a")
    do_set_live_code_status(code, owner, status="paused")
    with pytest.raises(CodeUnavailable) as paused:
        do_route_scan(code.code, visitor_key="a")
    do_set_live_code_status(code, owner, status="active", expires_at=MONDAY_10)
    with pytest.raises(CodeUnavailable) as expired:
        do_route_scan(code.code, visitor_key="a", now=MONDAY_10)
    assert [(e.value.code, e.value.status) for e in (paused, expired)] == [("live_code_paused", 503), ("live_code_expired", 410)]
    assert Scan.objects.count() == 0


def _race(code: str, n: int, prefix: str) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def scan(i: int) -> None:
        try:
            barrier.wait()
            do_route_scan(code, visitor_key=f"{prefix}{i}")
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=scan, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


@pytest.mark.django_db(transaction=True)
def test_64_concurrent_scans_racing_for_the_last_5_seats_put_exactly_5_in_the_group(workspace, owner, channel):
    # given a group with 195 of its 200 seats taken and an empty next group
    code = _group_code(workspace, owner, channel, auto_create_groups=False)
    almost_full = do_create_group(workspace, owner, name="一群")
    next_group = do_create_group(workspace, owner, name="二群")
    do_add_code_group(code, owner, group=almost_full)
    do_add_code_group(code, owner, group=next_group)
    for i in range(195):
        do_route_scan(code.code, visitor_key=f"early{i}")

    # when 64 scans race for the last 5 seats
    errors = _race(code.code, 64, "race")

    # then exactly 5 are routed into the first group and 59 into the next
    assert errors == []
    routed = {name: Scan.objects.filter(live_code=code, group__name=name).count() for name in ("一群", "二群")}
    assert routed == {"一群": 200, "二群": 59}
    assert Scan.objects.filter(live_code=code, visitor_key__startswith="race", group=almost_full).count() == 5
    assert list(LiveCodeGroup.objects.filter(live_code=code).values_list("seats_taken", flat=True)) == [200, 59]


@pytest.mark.django_db(transaction=True)
def test_concurrent_scans_never_pass_a_staff_daily_cap(workspace, owner, channel):
    code = _staff_code(workspace, owner, channel)
    for name, cap in (("甲", 7), ("乙", 5)):
        do_add_code_staff(code, owner, staff=make_staff(workspace, display_name=name), daily_cap=cap)

    errors = _race(code.code, 20, "s")

    assert sorted(type(e).__name__ for e in errors) == ["CodeUnavailable"] * 8
    assert list(LiveCodeStaff.objects.filter(live_code=code).values_list("day_count", flat=True)) == [7, 5]
    assert Scan.objects.filter(live_code=code).exclude(outcome="exhausted").count() == 12
