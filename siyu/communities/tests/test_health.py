import datetime as dt
import zoneinfo
from typing import Any

import pytest
from django.utils import translation

from siyu.accounts.models import AuditEntry
from siyu.channels.models import StaffTask
from siyu.communities.actions import (
    do_add_member,
    do_create_group,
    do_daily_group_care,
    do_record_group_health,
    do_record_group_message,
    do_refresh_group_health,
    do_resolve_alert,
)
from siyu.communities.health import HealthFigures, health_series, state_for
from siyu.communities.models import Alert, GroupHealthDay, HealthState
from siyu.contacts.actions import do_add_identity
from siyu.core.errors import Forbidden
from siyu.core.testing import make_contact, make_staff, make_workspace

pytestmark = pytest.mark.django_db
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
LAST = dt.date(2026, 6, 4)


def _at(day, hour=20, minute=30):
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=SHANGHAI)


def fading_group(ws, owner=None, *, members=30, account=None, external_id="", last=LAST):
    """A 30-member group: six members talk every evening for 28 days, then only two for
    the last 7 days (ending on ``last``)."""
    LAST = last
    start = LAST - dt.timedelta(days=34)
    group = do_create_group(ws, None, name="静安福利群", owner=owner, created_at=_at(start, 8, 0), channel_account=account,
                            external_id=external_id)
    contacts = [make_contact(ws, name=f"成员{i}") for i in range(members)]
    if account is not None:
        for c in contacts:
            do_add_identity(c, None, account=account, external_id=f"wm-{c.pk}")
    for c in contacts:
        do_add_member(group, c, None, joined_at=_at(start, 9, 0))
    day = start
    while day <= LAST:
        talkers = contacts[:6] if day <= LAST - dt.timedelta(days=7) else contacts[:2]
        for i, c in enumerate(talkers):
            do_record_group_message(group, c, external_id=f"{day}-{i}", text="今天的福利是什么？", sent_at=_at(day, 20, 30 + i),
                                    data={"sender_external_id": f"wm-{c.pk}"})
        day += dt.timedelta(days=1)
    return group, contacts


def test_state_rules():
    base: dict[str, Any] = {"day": LAST, "members": 100}
    # reasons in the active language: the workspace's (zh-hans) when the worker stores them
    assert state_for(HealthFigures(**base, talkers_avg7=1.5)) == (HealthState.FADING, ["每天仅 1.5% 的成员发言（底线 2%）"])
    with translation.override("en"):
        _state_rules_in_english(base)


def _state_rules_in_english(base):
    assert state_for(HealthFigures(**base, silence_days=7)) == (HealthState.SILENT, ["no messages for 7 days"])
    fading = HealthFigures(**base, messages_avg7=6, messages_base=10, talkers_avg7=5, talkers_base=5)
    assert state_for(fading) == (HealthState.FADING, ["messages 6.0/day vs 10.0/day before (−40%)"])
    assert state_for(HealthFigures(**base, messages_avg7=6.1, messages_base=10, talkers_avg7=12, talkers_base=12))[0] == HealthState.THRIVING
    assert state_for(HealthFigures(**base, talkers_avg7=1.5)) == (HealthState.FADING, ["only 1.5% of members talk on a day (floor 2%)"])
    assert state_for(HealthFigures(**base, talkers_avg7=5)) == (HealthState.STEADY, ["5.0% of members talk on a day"])
    # a tiny group is not judged by its ratio, nor a group observed for less than a week
    assert state_for(HealthFigures(day=LAST, members=10, talkers_avg7=0.1))[0] == HealthState.STEADY
    assert state_for(HealthFigures(**base, talkers_avg7=0, observed_days=3))[0] == HealthState.STEADY


def test_daily_figures_of_a_group():
    # given the fading group
    ws = make_workspace()
    group, _contacts = fading_group(ws)
    # plus a newcomer 10 days before LAST who spoke, and one who joined and left
    newcomer, leaver = make_contact(ws, name="新人"), make_contact(ws, name="过客")
    do_add_member(group, newcomer, None, joined_at=_at(LAST - dt.timedelta(days=10), 10, 0))
    do_record_group_message(group, newcomer, external_id="hello", text="大家好", sent_at=_at(LAST - dt.timedelta(days=9), 11, 0))
    membership, _ = do_add_member(group, leaver, None, joined_at=_at(LAST - dt.timedelta(days=9), 10, 0))
    membership.left_at = _at(LAST - dt.timedelta(days=5), 10, 0)
    membership.save(update_fields=["left_at"])

    # when the series is read for the last two days
    series = health_series(group, LAST - dt.timedelta(days=1), LAST)

    # then
    last = series[-1].as_dict()
    assert last == {
        "day": "2026-06-04", "messages": 2, "talkers": 2, "members": 31, "active_ratio": round(2 / 31, 4),
        "messages_avg7": 2.0, "talkers_avg7": 2.0, "messages_base": 6.048, "talkers_base": 6.048,  # the newcomer's hello
        "newcomers": 2, "newcomer_retention": 0.5, "silence_days": 0, "ads_caught": 0,
        "state": "fading",
        "reasons": ["日均消息 2.0 条，此前 6.0 条（下降 67%）", "日均发言人数 2.0 人，此前 6.0 人（下降 67%）"],
        "observed_days": 7,
    }
    assert [f.day for f in series] == [dt.date(2026, 6, 3), LAST]


def test_a_fading_group_raises_one_alert_per_transition_with_a_task_for_its_owner():
    # given the fading group owned by a store manager
    ws = make_workspace()
    owner = make_staff(ws)
    group, _ = fading_group(ws, owner)

    # when its health is recorded day by day over the last two weeks, then again (a repeated run)
    rows = do_record_group_health(group, LAST - dt.timedelta(days=13), LAST)
    do_record_group_health(group, LAST - dt.timedelta(days=13), LAST)

    # then the state went thriving → fading on June 2, and exactly one alert was raised
    assert [(r.day.isoformat(), r.state) for r in rows[-4:]] == [
        ("2026-06-01", "thriving"), ("2026-06-02", "fading"), ("2026-06-03", "fading"), ("2026-06-04", "fading"),
    ]
    assert GroupHealthDay.objects.filter(group=group).count() == 14
    alert = Alert.objects.get(group=group)
    assert (alert.kind, alert.day, alert.from_state, alert.to_state) == ("group_fading", dt.date(2026, 6, 2), "thriving", "fading")
    assert alert.message == (
        "社群「静安福利群」活跃度下滑：日均消息 3.1 条，此前 6.0 条（下降 48%）; 日均发言人数 3.1 人，此前 6.0 人（下降 48%）"
    )
    task = StaffTask.objects.get(pk=alert.staff_task_id)
    assert (task.kind, task.assignee_id, task.status, task.title) == (
        "group_fading", owner.pk, "open", "「静安福利群」活跃度下滑：看看是否需要激活或重新拉群"
    )
    assert AuditEntry.objects.filter(action="group.alert_raised").count() == 1


def test_silence_then_recovery_raises_a_silent_alert_and_recovery_resolves_it():
    # given a group whose members stopped talking 8 days before LAST, then one message on LAST
    ws = make_workspace()
    start = LAST - dt.timedelta(days=30)
    group = do_create_group(ws, None, name="安静群", created_at=_at(start, 8, 0))
    talker = make_contact(ws)
    do_add_member(group, talker, None, joined_at=_at(start, 9, 0))
    for n in range(3):
        do_record_group_message(group, talker, external_id=f"m{n}", text="早", sent_at=_at(LAST - dt.timedelta(days=8 + n)))

    # when health is recorded up to the day before LAST
    do_record_group_health(group, LAST - dt.timedelta(days=3), LAST - dt.timedelta(days=1))

    # then the group is silent with one alert
    alert = Alert.objects.get(group=group)
    assert (alert.kind, alert.day, alert.to_state) == ("group_silent", LAST - dt.timedelta(days=1), "silent")

    # when someone speaks on LAST and that day is recorded
    do_record_group_message(group, talker, external_id="back", text="我回来了", sent_at=_at(LAST))
    rows = do_record_group_health(group, LAST, LAST)

    # then the group is no longer silent and the alert and its task are resolved
    alert.refresh_from_db()
    assert rows[0].state == "steady"
    assert alert.resolved_at is not None and alert.resolution == "recovered: steady on 2026-06-04"
    assert StaffTask.objects.get(pk=alert.staff_task_id).status == "done"


def test_resolving_an_alert_by_hand():
    ws = make_workspace()
    owner = make_staff(ws)
    agent = make_staff(ws, role="agent")
    group, _ = fading_group(ws, owner, members=10)
    do_record_group_health(group, LAST - dt.timedelta(days=3), LAST)
    alert = Alert.objects.get(group=group)

    with pytest.raises(Forbidden):
        do_resolve_alert(alert, agent)
    do_resolve_alert(alert, owner, note="已安排周六分享会")
    do_resolve_alert(alert, owner, note="again")

    alert.refresh_from_db()
    assert (alert.resolution, alert.resolved_by_id) == ("已安排周六分享会", owner.pk)
    assert StaffTask.objects.get(pk=alert.staff_task_id).status == "done"
    assert AuditEntry.objects.filter(action="group.alert_resolved").count() == 1


def test_refresh_fills_missing_days_up_to_yesterday_and_then_does_nothing():
    # given a group created 3 local days ago
    ws = make_workspace()
    now = dt.datetime(2026, 6, 10, 12, 0, tzinfo=SHANGHAI)
    group = do_create_group(ws, None, name="新群", created_at=now - dt.timedelta(days=3))

    # when the periodic pass runs twice
    first = do_daily_group_care(now=now)
    second = do_daily_group_care(now=now)

    # then days 7, 8 and 9 June were recorded once
    assert first == {"groups": 1, "snapshots": 3, "role_changes": 0}
    assert second == {"groups": 1, "snapshots": 0, "role_changes": 0}
    days = list(GroupHealthDay.objects.filter(group=group).order_by("day").values_list("day", flat=True))
    assert days == [dt.date(2026, 6, 7), dt.date(2026, 6, 8), dt.date(2026, 6, 9)]
    assert do_refresh_group_health(group, now=now) == []
