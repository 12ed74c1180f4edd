"""Activity counters from the pipeline equal the ones rebuilt from stored messages."""

import datetime as dt
from typing import Any

import pytest

from siyu.channels.actions import do_create_channel_account
from siyu.channels.inbox import process_batch
from siyu.channels.models import InboxEvent
from siyu.communities.actions import do_create_group, do_rebuild_activity
from siyu.communities.models import MemberDayActivity
from siyu.core.testing import make_workspace

pytestmark = pytest.mark.django_db


def _counters(ws):
    return sorted(MemberDayActivity.objects.in_workspace(ws).values_list("contact__name", "day", "messages", "replies_received", "mentions", "links"))


def test_counters_follow_local_days_and_rebuild_gives_the_same_numbers():
    ws = make_workspace()
    account = do_create_channel_account(ws, None, kind="sandbox", name="sbx")
    do_create_group(ws, None, name="群", channel_account=account, external_id="room")
    late = dt.datetime(2026, 3, 1, 15, 59, tzinfo=dt.UTC)  # 23:59 on 1 March in Shanghai
    script: list[tuple[str, str, dt.datetime, dict[str, Any]]] = [
        ("ann", "晚安", late, {}),
        ("bob", "早 @ann", late + dt.timedelta(minutes=2), {"mentions": ["ann"], "reply_to": "m0"}),  # 00:01 on 2 March
        ("ann", "https://x.cn/a", late + dt.timedelta(minutes=3), {}),
        ("ann", "小程序", late + dt.timedelta(minutes=4), {"msgtype": "miniprogram"}),
    ]
    ids = [
        InboxEvent.objects.create(workspace=ws, account=account, dedupe_key=f"k{i}", kind="message", occurred_at=at,
                                  data={"group_id": "room", "sender_id": who, "sender_name": who, "message_id": f"m{i}", "text": text, **extra}).pk
        for i, (who, text, at, extra) in enumerate(script)
    ]
    process_batch(ids)
    counted = _counters(ws)
    assert counted == [
        ("ann", dt.date(2026, 3, 1), 1, 0, 0, 0),
        ("ann", dt.date(2026, 3, 2), 2, 1, 1, 2),
        ("bob", dt.date(2026, 3, 2), 1, 0, 0, 0),
    ]
    MemberDayActivity.objects.in_workspace(ws).update(messages=0)
    assert do_rebuild_activity(ws) == 3
    assert _counters(ws) == counted
    assert do_rebuild_activity(ws, since=dt.date(2026, 3, 2)) == 2
    assert _counters(ws) == counted
