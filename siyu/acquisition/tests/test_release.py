import datetime as dt
import threading

import pytest
from django.db import connection

from siyu.accounts.models import AuditEntry
from siyu.acquisition.actions import (
    do_add_code_group,
    do_add_code_staff,
    do_create_live_code,
    do_record_arrival,
    do_release_stale_seats,
    do_route_scan,
)
from siyu.acquisition.errors import CodeUnavailable
from siyu.acquisition.models import LiveCodeGroup, LiveCodeStaff, Scan
from siyu.communities.actions import do_create_group
from siyu.core.testing import make_contact, make_staff

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)  # Monday 10:00 in Shanghai
TTL = dt.timedelta(minutes=30)


def _full_group_code(workspace, owner, channel, capacity=3):
    code = do_create_live_code(workspace, owner, channel=channel, name="进群码", kind="group", group_capacity=capacity,
                               auto_create_groups=False)
    group = do_create_group(workspace, owner, name="一群")
    do_add_code_group(code, owner, group=group)
    for i in range(capacity):
        do_route_scan(code.code, visitor_key=f"v{i}", now=T0)
    return code, group


def test_seats_of_scans_that_never_joined_go_back_after_the_ttl_and_are_reused(workspace, owner, channel):
    # given: a full group of 3 reservations, one of which joined
    code, group = _full_group_code(workspace, owner, channel)
    with pytest.raises(CodeUnavailable):
        do_route_scan(code.code, visitor_key="late", now=T0 + dt.timedelta(minutes=5))
    joined = make_contact(workspace, "进群了")
    do_record_arrival(joined, state=code.state, occurred_at=T0 + dt.timedelta(minutes=2))

    # when: the pass runs before and after the TTL
    early = do_release_stale_seats(now=T0 + dt.timedelta(minutes=29), ttl=TTL)
    late = do_release_stale_seats(now=T0 + dt.timedelta(minutes=31), ttl=TTL)

    # then: the two who never joined gave their seats back, and new scans take them
    assert early == {"codes": 0, "groups": 0, "staff": 0}
    assert late == {"codes": 1, "groups": 2, "staff": 0}
    slot = LiveCodeGroup.objects.get(live_code=code)
    assert (slot.seats_taken, slot.filled_at) == (1, None)
    after = T0 + dt.timedelta(minutes=40)
    assert [do_route_scan(code.code, visitor_key=f"new{i}", now=after).group_id for i in range(2)] == [group.pk, group.pk]
    with pytest.raises(CodeUnavailable):
        do_route_scan(code.code, visitor_key="new2", now=after)
    slot.refresh_from_db()
    assert slot.seats_taken == slot.capacity == 3
    assert Scan.objects.filter(live_code=code, released_at__isnull=False).count() == 2
    assert Scan.objects.filter(live_code=code, contact=joined, released_at__isnull=True).count() == 1
    entry = AuditEntry.objects.get(action="live_code.seats_released")
    assert entry.after == {"groups": 2, "staff": 0, "scans": 2}
    assert do_release_stale_seats(now=T0 + dt.timedelta(minutes=32), ttl=TTL) == {"codes": 0, "groups": 0, "staff": 0}


def test_a_repeat_scan_after_its_seat_was_released_takes_a_new_seat(workspace, owner, channel):
    # given
    code, _ = _full_group_code(workspace, owner, channel, capacity=2)
    do_release_stale_seats(now=T0 + dt.timedelta(minutes=31), ttl=TTL)

    # when: the same visitor scans again within 24 h
    again = do_route_scan(code.code, visitor_key="v0", now=T0 + dt.timedelta(hours=1))

    # then: a seat of its own, not a free repeat
    assert again.outcome == "group"
    assert LiveCodeGroup.objects.get(live_code=code).seats_taken == 1


def test_a_late_arrival_after_the_release_takes_its_seat_back(workspace, owner, channel):
    # given
    code, _ = _full_group_code(workspace, owner, channel, capacity=2)
    do_release_stale_seats(now=T0 + dt.timedelta(minutes=31), ttl=TTL)

    # when
    scan = do_record_arrival(make_contact(workspace, "迟到"), state=code.state, occurred_at=T0 + dt.timedelta(minutes=45))

    # then
    assert scan is not None and scan.released_at is None
    assert LiveCodeGroup.objects.get(live_code=code).seats_taken == 1


def test_staff_allowance_of_unfinished_adds_is_released(workspace, owner, channel):
    # given: a staff member at her daily cap of 2 through scans nobody finished
    code = do_create_live_code(workspace, owner, channel=channel, name="加好友", kind="staff")
    do_add_code_staff(code, owner, staff=make_staff(workspace, display_name="甲"), daily_cap=2, total_cap=10)
    for i in range(2):
        do_route_scan(code.code, visitor_key=f"s{i}", now=T0)
    with pytest.raises(CodeUnavailable):
        do_route_scan(code.code, visitor_key="s2", now=T0)

    # when
    released = do_release_stale_seats(now=T0 + dt.timedelta(minutes=31), ttl=TTL)

    # then
    assert released == {"codes": 1, "groups": 0, "staff": 2}
    slot = LiveCodeStaff.objects.get(live_code=code)
    assert (slot.day_count, slot.total_count) == (0, 0)
    assert do_route_scan(code.code, visitor_key="s3", now=T0 + dt.timedelta(minutes=32)).outcome == "staff"


@pytest.mark.django_db(transaction=True)
def test_a_release_racing_64_scans_never_lets_the_group_pass_its_capacity(workspace, owner, channel):
    # given: 5 stale reservations fill a group of 5
    code, group = _full_group_code(workspace, owner, channel, capacity=5)
    now = T0 + dt.timedelta(minutes=31)
    errors: list[BaseException] = []
    barrier = threading.Barrier(65)

    def scan(i: int) -> None:
        try:
            barrier.wait()
            do_route_scan(code.code, visitor_key=f"race{i}", now=now)
        except CodeUnavailable:
            pass
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            errors.append(exc)
        finally:
            connection.close()

    def release() -> None:
        try:
            barrier.wait()
            do_release_stale_seats(now=now, ttl=TTL)
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            errors.append(exc)
        finally:
            connection.close()

    # when: the release and 64 scans race
    threads = [threading.Thread(target=scan, args=(i,)) for i in range(64)] + [threading.Thread(target=release)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # then: every seat is held by exactly one unreleased scan, never more than 5 (whichever
    # order the race ran in), and scans after it fill the group to exactly 5
    assert errors == []

    def holding() -> int:
        return Scan.objects.filter(live_code=code, group=group, outcome="group", released_at__isnull=True).count()

    slot = LiveCodeGroup.objects.get(live_code=code)
    assert slot.seats_taken == holding() <= 5
    assert Scan.objects.filter(live_code=code, released_at__isnull=False).count() == 5
    for i in range(6):
        try:
            do_route_scan(code.code, visitor_key=f"after{i}", now=now)
        except CodeUnavailable:
            pass
    slot.refresh_from_db()
    assert slot.seats_taken == holding() == 5
