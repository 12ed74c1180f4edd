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


def test_a_short_term_group_that_asks_for_it_is_dismissed_on_its_channel_at_the_end(django_capture_on_commit_callbacks):
    # given two ended short-term groups on a sandbox channel; one asks to be dismissed (到期自动解散)
    from siyu.channels.actions import do_create_channel_account
    from siyu.channels.models import OutboxMessage, OutboxStatus

    ws = make_workspace()
    account = do_create_channel_account(ws, None, kind="sandbox", name="sbx", config={})
    now = dt.datetime(2026, 6, 19, 2, 0, tzinfo=dt.UTC)  # 10:00 on the 19th in Shanghai
    dismissed = do_create_group(ws, None, name="618快闪群", horizon="short_term", ends_on="2026-06-18", dismiss_at_end=True,
                                end_farewell="  活动结束，感谢参与！  ", channel_account=account, external_id="room-618")
    archived = do_create_group(ws, None, name="618预热群", horizon="short_term", ends_on="2026-06-18",
                               channel_account=account, external_id="room-618-warm")
    do_add_member(dismissed, make_contact(ws), None)

    # when the periodic pass runs twice
    with django_capture_on_commit_callbacks(execute=True):
        first = do_close_ended_short_term_groups(now)
    second = do_close_ended_short_term_groups(now)

    # then the one that asked is dismissed on its channel with its (trimmed) farewell, once
    assert (first, second) == ([dismissed.pk, archived.pk], [])
    row = OutboxMessage.objects.get(workspace=ws)
    assert (row.command, row.target, row.payload["farewell"], row.payload["reason"], row.status) == (
        "dismiss_group", "room-618", "活动结束，感谢参与！", "短期群已到期", OutboxStatus.SENT)
    dismissed.refresh_from_db()
    archived.refresh_from_db()
    assert dismissed.dismissed_at is not None and dismissed.archived_at is not None
    assert not Membership.objects.filter(group=dismissed, left_at__isnull=True).exists()
    # and the other is only archived, as before
    assert archived.archived_at is not None and archived.dismissed_at is None
    assert AuditEntry.objects.filter(action="group.dismissed").count() == 1


def test_dismissing_at_the_end_is_for_short_term_groups_with_a_short_farewell():
    from siyu.communities.actions import do_update_group
    from siyu.core.errors import ValidationFailed

    ws = make_workspace()
    with pytest.raises(ValidationFailed) as long_term:
        do_create_group(ws, None, name="福利群", dismiss_at_end=True)
    group = do_create_group(ws, None, name="快闪群", horizon="short_term", ends_on="2026-06-18", dismiss_at_end=True)
    with pytest.raises(ValidationFailed) as back_to_long:
        do_update_group(group, None, horizon="long_term")
    with pytest.raises(ValidationFailed) as too_long:
        do_update_group(group, None, end_farewell="再见" * 251)
    with pytest.raises(ValidationFailed) as not_a_bool:
        do_update_group(group, None, dismiss_at_end="yes")

    assert (long_term.value.code, back_to_long.value.code, too_long.value.code, not_a_bool.value.code) == (
        "dismiss_needs_short_term", "dismiss_needs_short_term", "invalid_dismissal", "invalid_dismiss_at_end")
    group.refresh_from_db()
    assert (group.horizon, group.dismiss_at_end, group.end_farewell) == ("short_term", True, "")
    # both together are one valid change
    do_update_group(group, None, horizon="long_term", dismiss_at_end=False, ends_on=None)
    group.refresh_from_db()
    assert (group.horizon, group.dismiss_at_end) == ("long_term", False)
