"""Keyword auto-replies: cool-down per rule per group, quiet hours, regex checked at save."""

import datetime as dt

import pytest

from siyu.channels.actions import do_create_channel_account
from siyu.channels.inbox import process
from siyu.channels.models import InboxEvent, OutboxMessage
from siyu.communities.actions import (
    do_create_auto_reply,
    do_create_group,
    do_set_group_settings,
    do_set_settings_layer,
    do_update_auto_reply,
)
from siyu.core.errors import ValidationFailed
from siyu.core.testing import make_workspace

pytestmark = pytest.mark.django_db
T0 = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai


@pytest.fixture
def group():
    ws = make_workspace()
    account = do_create_channel_account(ws, None, kind="sandbox", name="sbx")
    return do_create_group(ws, None, name="福利群", channel_account=account, external_id="room")


def _say(group, n, text, at):
    row = InboxEvent.objects.create(workspace_id=group.workspace_id, account=group.channel_account, dedupe_key=f"k{n}", kind="message",
                                    occurred_at=at, data={"group_id": "room", "sender_id": "ann", "message_id": f"m{n}", "text": text})
    process(row.pk)


def _replies(group):
    return list(OutboxMessage.objects.in_workspace(group.workspace_id).filter(idempotency_key__startswith="autoreply:")
                .order_by("id").values_list("payload__text", "next_attempt_at"))


def test_second_trigger_inside_the_cooldown_gets_no_reply_and_after_it_does(group):
    do_create_auto_reply(group.workspace, None, name="价格", pattern="多少钱", reply="看群公告", cooldown_seconds=300)
    _say(group, 1, "这个多少钱", T0)
    _say(group, 2, "多少钱啊", T0 + dt.timedelta(seconds=299))
    assert len(_replies(group)) == 1
    _say(group, 3, "到底多少钱", T0 + dt.timedelta(seconds=300))
    assert [text for text, _ in _replies(group)] == ["看群公告", "看群公告"]


def test_exact_and_regex_rules_and_group_rules_first(group):
    ws = group.workspace
    do_create_auto_reply(ws, None, name="全局", match="exact", pattern="发货", reply="全局回复", cooldown_seconds=0)
    do_create_auto_reply(ws, None, name="本群", match="regex", pattern=r"(什么时候|几号)发货", reply="本群回复", cooldown_seconds=0, group=group)
    _say(group, 1, "发货", T0)
    _say(group, 2, "什么时候发货？", T0 + dt.timedelta(seconds=1))
    _say(group, 3, "我发货了吗", T0 + dt.timedelta(seconds=2))  # exact: no
    assert [text for text, _ in _replies(group)] == ["全局回复", "本群回复"]


def test_quiet_hours_suppress_or_defer_replies(group):
    do_create_auto_reply(group.workspace, None, name="价格", pattern="多少钱", reply="看群公告", cooldown_seconds=0)
    do_set_group_settings(group, None, {"quiet_hours": {"start": "22:00", "end": "08:00"}})
    night = dt.datetime(2026, 3, 2, 15, 30, tzinfo=dt.UTC)  # 23:30 in Shanghai
    _say(group, 1, "多少钱", night)
    assert _replies(group) == []
    do_set_group_settings(group, None, {"quiet_mode": "defer"})
    _say(group, 2, "多少钱", night + dt.timedelta(minutes=1))
    assert _replies(group) == [("看群公告", dt.datetime(2026, 3, 3, 0, 0, tzinfo=dt.UTC))]  # 08:00 in Shanghai


def test_a_group_can_switch_off_the_quiet_hours_it_would_inherit(group):
    # given workspace-default quiet hours (22:00–08:00) and a price rule
    do_create_auto_reply(group.workspace, None, name="价格", pattern="多少钱", reply="看群公告", cooldown_seconds=0)
    do_set_settings_layer(group.workspace, None, {"quiet_hours": {"start": "22:00", "end": "08:00"}})
    night = dt.datetime(2026, 3, 2, 15, 30, tzinfo=dt.UTC)  # 23:30 in Shanghai
    _say(group, 1, "多少钱", night)
    assert _replies(group) == []  # inherited: suppressed

    # when the group says "no quiet hours here"
    do_set_group_settings(group, None, {"quiet_hours": "off"})
    _say(group, 2, "多少钱", night + dt.timedelta(minutes=1))

    # then the bot answers at night in this group (quiet_mode is "suppress": under quiet
    # hours there would be no reply at all)
    assert [text for text, _ in _replies(group)] == ["看群公告"]


@pytest.mark.parametrize(("pattern", "code"), [("(价格", "invalid_regex"), ("(a+)+$", "unsafe_regex"), ("(\\w*)*x", "unsafe_regex"), ("", "pattern_required")])
def test_bad_regex_is_rejected_at_save(group, pattern, code):
    with pytest.raises(ValidationFailed) as err:
        do_create_auto_reply(group.workspace, None, name="坏", match="regex", pattern=pattern, reply="x")
    assert err.value.code == code


def test_updating_to_a_bad_regex_is_rejected(group):
    rule = do_create_auto_reply(group.workspace, None, name="好", match="contains", pattern="(a+)+", reply="x")
    with pytest.raises(ValidationFailed) as err:
        do_update_auto_reply(rule, None, match="regex")
    assert err.value.code == "unsafe_regex"
