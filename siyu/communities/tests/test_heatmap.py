import datetime as dt
import zoneinfo

import pytest

from siyu.communities.actions import do_create_group, do_record_group_message
from siyu.communities.heatmap import best_hours, group_heatmap
from siyu.core.testing import make_contact, make_workspace

pytestmark = pytest.mark.django_db
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def _say(group, sender, when, n=1, tag="m"):
    for i in range(n):
        do_record_group_message(group, sender, external_id=f"{tag}-{when.isoformat()}-{i}", text="在吗", sent_at=when)


def test_heatmap_counts_messages_by_weekday_and_hour_in_the_workspace_zone(django_assert_num_queries):
    # given a Shanghai workspace and messages at known local times in the week of Monday 2026-06-15
    ws = make_workspace()
    group = do_create_group(ws, None, name="福利群")
    member = make_contact(ws)
    _say(group, member, dt.datetime(2026, 6, 15, 20, 30, tzinfo=SHANGHAI))  # Monday 20:30 local = 12:30 UTC
    _say(group, member, dt.datetime(2026, 6, 15, 1, 0, tzinfo=SHANGHAI), n=2)  # Monday 01:00 local = Sunday 17:00 UTC
    _say(group, member, dt.datetime(2026, 6, 21, 23, 30, tzinfo=SHANGHAI))  # Sunday 23:30 local
    _say(group, member, dt.datetime(2026, 5, 1, 9, 0, tzinfo=SHANGHAI))  # outside the 30-day window
    other = do_create_group(ws, None, name="别的群")
    _say(other, member, dt.datetime(2026, 6, 15, 20, 10, tzinfo=SHANGHAI), tag="other")

    # when the heatmap of the last 30 days is read (one aggregate query)
    with django_assert_num_queries(1):
        grid = group_heatmap(group, days=30, now=dt.datetime(2026, 6, 22, 12, 0, tzinfo=SHANGHAI))

    # then the counts sit in local (weekday, hour) cells and nothing else is counted
    assert len(grid) == 7 and all(len(row) == 24 for row in grid)
    assert grid[0][20] == 1
    assert grid[0][1] == 2
    assert grid[6][23] == 1
    assert sum(map(sum, grid)) == 4


def test_heatmap_follows_the_workspace_time_zone():
    # given a workspace in Europe/Berlin and a message at Monday 2026-06-15 12:30 UTC (14:30 in Berlin, summer time)
    ws = make_workspace(time_zone="Europe/Berlin")
    group = do_create_group(ws, None, name="Berlin group")
    _say(group, make_contact(ws), dt.datetime(2026, 6, 15, 12, 30, tzinfo=dt.UTC))

    # when / then
    grid = group_heatmap(group, now=dt.datetime(2026, 6, 16, tzinfo=dt.UTC))
    assert grid[0][14] == 1 and sum(map(sum, grid)) == 1


def test_best_hours_ranks_hours_across_the_week_busiest_first():
    # given messages at 20:xx on two days, 09:xx on one day (twice) and 12:xx once
    ws = make_workspace()
    group = do_create_group(ws, None, name="福利群")
    member = make_contact(ws)
    _say(group, member, dt.datetime(2026, 6, 15, 20, 5, tzinfo=SHANGHAI), n=2)
    _say(group, member, dt.datetime(2026, 6, 17, 20, 40, tzinfo=SHANGHAI), n=1)
    _say(group, member, dt.datetime(2026, 6, 16, 9, 30, tzinfo=SHANGHAI), n=2)
    _say(group, member, dt.datetime(2026, 6, 18, 12, 0, tzinfo=SHANGHAI), n=1)
    _say(group, member, dt.datetime(2026, 6, 19, 7, 0, tzinfo=SHANGHAI), n=1)
    now = dt.datetime(2026, 6, 20, tzinfo=SHANGHAI)

    # when / then: 20h (3), 9h (2), then the tie 7h/12h broken by the earlier hour
    assert best_hours(group, k=3, now=now) == [20, 9, 7]
    assert best_hours(group, k=10, now=now) == [20, 9, 7, 12]
    assert best_hours(do_create_group(ws, None, name="空群"), now=now) == []
