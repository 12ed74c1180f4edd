"""Welcome on join with variables, join-source tags, the first-days nudge (once, not at night)."""

import datetime as dt

import pytest

from siyu.channels.actions import do_create_channel_account
from siyu.channels.inbox import process
from siyu.channels.models import InboxEvent, OutboxMessage
from siyu.communities.actions import do_create_group, do_send_first_days_nudges, do_set_group_settings
from siyu.communities.models import Membership, OnboardingNudge
from siyu.contacts.models import ContactTag
from siyu.core.testing import make_workspace

pytestmark = pytest.mark.django_db
T0 = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai


@pytest.fixture
def group():
    ws = make_workspace()
    account = do_create_channel_account(ws, None, kind="sandbox", name="sbx")
    return do_create_group(ws, None, name="宝妈群", channel_account=account, external_id="room")


def _event(group, key, kind, at, **data):
    row = InboxEvent.objects.create(workspace_id=group.workspace_id, account=group.channel_account, dedupe_key=key, kind=kind,
                                    occurred_at=at, data={"group_id": "room", **data})
    process(row.pk)


def test_welcome_fills_variables_and_tags_the_join_source(group):
    do_set_group_settings(group, None, {"welcome_message": "欢迎{member}加入{group}！群规：{rules_link}", "rules_link": "https://r.cn/1",
                                        "tag_join_source": True})
    _event(group, "j1", "member_joined", T0, member_id="ann", member_name="小安", join_source="poster")
    welcome = OutboxMessage.objects.get(idempotency_key__startswith="group-welcome:")
    assert welcome.payload == {"to": "group", "text": "欢迎小安加入宝妈群！群规：https://r.cn/1", "mention": "ann"}
    assert list(ContactTag.objects.filter(contact__name="小安").values_list("tag__group__name", "tag__name")) == [("入群来源", "poster")]


def test_nudge_once_to_silent_newcomers_and_never_in_quiet_hours(group):
    do_set_group_settings(group, None, {"nudge_after_hours": 24, "quiet_hours": {"start": "22:00", "end": "08:00"}})
    _event(group, "j1", "member_joined", T0, member_id="ann", member_name="小安")
    _event(group, "j2", "member_joined", T0, member_id="bob", member_name="小博")
    _event(group, "m1", "message", T0 + dt.timedelta(hours=1), sender_id="bob", message_id="m1", text="大家好")

    assert do_send_first_days_nudges(T0 + dt.timedelta(hours=23))["nudged"] == 0  # too early
    night = dt.datetime(2026, 3, 3, 15, 0, tzinfo=dt.UTC)  # 23:00 in Shanghai, 37 h after joining
    assert do_send_first_days_nudges(night) == {"nudged": 0, "spoke": 1, "quiet": 1, "skipped": 0}
    morning = night + dt.timedelta(hours=10)
    assert do_send_first_days_nudges(morning) == {"nudged": 1, "spoke": 0, "quiet": 0, "skipped": 0}
    assert do_send_first_days_nudges(morning + dt.timedelta(hours=1)) == {"nudged": 0, "spoke": 0, "quiet": 0, "skipped": 0}
    nudge = OutboxMessage.objects.get(idempotency_key__startswith="nudge:")
    assert nudge.payload == {"to": "group", "text": "@小安 欢迎加入宝妈群！来和大家做个自我介绍吧～", "mention": "ann"}
    ann = Membership.objects.get(contact__name="小安")
    assert OnboardingNudge.objects.get(membership=ann).outbox_key == nudge.idempotency_key
