import datetime as dt

import pytest

from siyu.accounts.models import AuditEntry
from siyu.communities.actions import do_add_member, do_close_ended_short_term_groups, do_create_group
from siyu.communities.models import Membership
from siyu.core.testing import make_contact, make_workspace

pytestmark = pytest.mark.django_db


def test_short_term_groups_close_after_their_end_date_in_the_workspace_zone():
    # given a Shanghai workspace at 00:30 local time on 2026-06-19
    ws = make_workspace()
    # (still the 18th in UTC: the workspace's zone decides, not the server's)
    now = dt.datetime(2026, 6, 18, 16, 30, tzinfo=dt.UTC)  # = 2026-06-19 00:30 Asia/Shanghai
    ended = do_create_group(ws, None, name="618抢购临时群", horizon="short_term", ends_on="2026-06-18")
    today = do_create_group(ws, None, name="今日活动群", horizon="short_term", ends_on="2026-06-19")
    lasting = do_create_group(ws, None, name="福利群")
    member = make_contact(ws)
    do_add_member(ended, member, None)

    # when the periodic pass runs (twice)
    first = do_close_ended_short_term_groups(now)
    second = do_close_ended_short_term_groups(now)

    # then only the group whose end date has passed locally is archived, once
    assert (first, second) == ([ended.pk], [])
    for group in (ended, today, lasting):
        group.refresh_from_db()
    assert ended.archived_at is not None and today.archived_at is None and lasting.archived_at is None
    assert Membership.objects.get(group=ended).left_at is not None
    assert AuditEntry.objects.filter(action="group.archived", target_id=str(ended.pk)).count() == 1
