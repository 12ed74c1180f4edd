"""Columns (栏目): recurring group posts with a material rotation, posted once per
occurrence; and the best send time (heatmap, own hours, workspace peaks)."""

from __future__ import annotations

import datetime as dt

import pytest

from siyu.channels.models import SandboxDelivery
from siyu.communities.actions import do_record_group_message
from siyu.contacts.actions import do_record_event
from siyu.core.errors import ValidationFailed
from siyu.outreach.actions import do_create_column, do_create_group_set, do_create_material, do_run_due_columns
from siyu.outreach.models import Delivery
from siyu.outreach.timing import best_send_time

from .conftest import shanghai

pytestmark = pytest.mark.django_db


@pytest.fixture
def briefs(workspace, owner):
    return [
        do_create_material(workspace, owner, name=f"早报{i}", text=f"{{group}} 早报第{i}期") for i in (1, 2)
    ]


def test_a_daily_column_posts_each_occurrence_once_with_the_rotation(workspace, owner, sandbox, connected_group, briefs, django_capture_on_commit_callbacks):
    # given a morning brief at 08:30 to two groups (dates in the past: posts go out at once)
    groups = [connected_group(sandbox, name="一群"), connected_group(sandbox, name="二群")]
    column = do_create_column(workspace, owner, name="早报", time_of_day="08:30", material_ids=[m.pk for m in briefs],
                              group_ids=[g.pk for g in groups], starts_on=dt.date(2026, 11, 1))

    # when the minute task runs at 08:31 on 2 November, twice (an overlapping restart)
    with django_capture_on_commit_callbacks(execute=True):
        first = do_run_due_columns(now=shanghai(2026, 11, 2, 8, 31))
    column.last_run_at = None
    column.save(update_fields=["last_run_at"])
    with django_capture_on_commit_callbacks(execute=True):
        again = do_run_due_columns(now=shanghai(2026, 11, 2, 8, 32))

    # then each group got the brief once: occurrence 1 of the rotation (the second material)
    assert first == {"sent": 2}
    assert again == {"sent": 2}  # the same deliveries, found by their keys
    assert sorted(SandboxDelivery.objects.filter(workspace=workspace).values_list("payload__text", flat=True)) == ["一群 早报第2期", "二群 早报第2期"]
    keys = sorted(Delivery.objects.filter(column=column).values_list("idempotency_key", flat=True))
    assert keys == [f"column:{column.pk}:group:{g.pk}:2026-11-02" for g in sorted(groups, key=lambda g: g.pk)]

    # and the next day's run posts the next material
    with django_capture_on_commit_callbacks(execute=True):
        do_run_due_columns(now=shanghai(2026, 11, 3, 8, 30))
    assert SandboxDelivery.objects.filter(workspace=workspace, payload__text="一群 早报第1期").count() == 1


def test_a_weekly_column_posts_only_on_its_weekday(workspace, owner, sandbox, connected_group, briefs):
    group = connected_group(sandbox)
    group_set = do_create_group_set(workspace, owner, name="学员群", group_ids=[group.pk])
    column = do_create_column(workspace, owner, name="分享会", time_of_day="20:00", weekdays=[3], material_ids=[briefs[0].pk],
                              group_set_id=group_set.pk, starts_on=dt.date(2026, 11, 1))

    assert do_run_due_columns(now=shanghai(2026, 11, 4, 20, 1)) == {}  # a Wednesday
    assert do_run_due_columns(now=shanghai(2026, 11, 5, 20, 1)) == {"sent": 1}  # Thursday
    assert Delivery.objects.get(column=column).planned_for == shanghai(2026, 11, 5, 20)


def test_a_column_inside_its_groups_quiet_hours_is_deferred_to_their_end(workspace, owner, sandbox, connected_group, briefs):
    group = connected_group(sandbox)
    column = do_create_column(workspace, owner, name="晨读", time_of_day="07:00", material_ids=[briefs[0].pk], group_ids=[group.pk],
                              quiet_start="22:00", quiet_end="08:00", starts_on=dt.date(2026, 11, 1))

    do_run_due_columns(now=shanghai(2026, 11, 2, 7, 1))

    delivery = Delivery.objects.get(column=column)
    assert (delivery.status, delivery.rule, delivery.planned_for) == ("deferred", "quiet_hours", shanghai(2026, 11, 2, 8))


def test_a_column_needs_materials_and_groups(workspace, owner, briefs):
    with pytest.raises(ValidationFailed, match="a column posts to groups or a group set"):
        do_create_column(workspace, owner, name="x", time_of_day="08:00", material_ids=[briefs[0].pk])
    with pytest.raises(ValidationFailed, match="weekdays: 0 \\(Monday\\) to 6"):
        do_create_column(workspace, owner, name="x", time_of_day="08:00", material_ids=[briefs[0].pk], weekdays=[7])


def test_best_time_for_a_group_is_its_busiest_coming_hour(workspace, owner, sandbox, connected_group, reachable):
    group = connected_group(sandbox)
    talker = reachable(sandbox)
    # Tuesdays at 21:00 are busy (three weeks), Monday 13:00 once
    for i, day in enumerate((5, 12, 19)):
        for k in range(3):
            do_record_group_message(group, talker, external_id=f"t{i}{k}", text="哈哈", sent_at=shanghai(2030, 11, day, 21, 10 + k))
    do_record_group_message(group, talker, external_id="m", text="在吗", sent_at=shanghai(2030, 11, 18, 13, 5))

    assert best_send_time(workspace, group=group, after=shanghai(2030, 11, 25, 9)) == shanghai(2030, 11, 26, 21)


def test_best_time_for_a_contact_is_the_hour_they_usually_write(workspace, sandbox, reachable):
    contact = reachable(sandbox)
    for day in (1, 2, 3):
        do_record_event(contact, "message", idempotency_key=f"m{day}", occurred_at=shanghai(2030, 11, day, 19, 40))

    assert best_send_time(workspace, contact=contact, after=shanghai(2030, 11, 10, 9, 15)) == shanghai(2030, 11, 10, 19)


def test_without_history_the_workspace_peaks_are_used(workspace, sandbox, reachable):
    contact = reachable(sandbox)

    assert best_send_time(workspace, contact=contact, after=shanghai(2030, 11, 10, 9, 15)) == shanghai(2030, 11, 10, 9, 30)
    assert best_send_time(workspace, after=shanghai(2030, 11, 10, 12, 1)) == shanghai(2030, 11, 10, 20)
    assert best_send_time(workspace, after=shanghai(2030, 11, 10, 20, 1)) == shanghai(2030, 11, 11, 9, 30)
