"""Playbooks: the flash-sale playbook instantiated for a date posts the documented
schedule of notices in the sandbox channel at the right local times."""

import datetime as dt
import zoneinfo

import pytest

from siyu.channels.models import OutboxMessage, StaffTask
from siyu.commerce.actions import do_record_order
from siyu.communities.actions import do_add_member, do_create_group, do_record_group_message
from siyu.communities.models import Membership
from siyu.core.errors import NotFound, ValidationFailed
from siyu.core.testing import make_contact
from siyu.journeys import engine
from siyu.journeys.models import Journey, JourneyRun, RunState
from siyu.journeys.playbooks import do_instantiate_playbook, list_playbooks, render
from siyu.outreach.actions import do_send_due_deliveries
from siyu.outreach.models import Delivery

from .conftest import shanghai

pytestmark = pytest.mark.django_db

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")

FLASH_SALE_SCHEDULE = [
    ("12-09 10:00", "marketing", "【限时抢购预告】12月12日 20:00 开抢，限时 2 小时，群内专享价，记得来！"),
    ("12-10 10:00", "marketing", "【限时抢购预告】还有 2 天！12月12日 20:00 准时开抢，想要的宝贝先加购。"),
    ("12-11 10:00", "marketing", "【限时抢购预告】明天 20:00 开抢！回复「抢」进抢购群，第一时间收到开抢提醒。"),
    ("12-11 20:00", "marketing", "【红包雨预告】明晚 20:00 开抢前有红包雨，准时来群里抢！"),
    ("12-12 09:30", "reminder", "【今天开抢】限时抢购今晚 20:00 开始，回复「抢」进抢购群。"),
    ("12-12 19:00", "reminder", "【还有 1 小时】限时抢购 20:00 开抢，抢购群已开，回复过的朋友已拉进群。"),
    ("12-12 20:00", "reminder", "【开抢了】限时抢购现在开始，限时 2 小时！"),
    ("12-12 22:00", "notice", "【限时抢购结束】感谢大家参与，没抢到的朋友下次早点来～"),
]


@pytest.fixture
def groups(workspace, sandbox):
    return [
        do_create_group(workspace, None, name=name, channel_account=sandbox, external_id=f"room-{i}")
        for i, name in enumerate(["福利一群", "福利二群"], start=1)
    ]


def _drive(start: dt.datetime, end: dt.datetime, step=dt.timedelta(minutes=30)) -> None:
    """The minute sweep, every half hour of simulated time: due runs advance, due
    deliveries go out."""
    t = start
    while t <= end:
        engine.run_due(t)
        do_send_due_deliveries(t)
        t += step


def test_flash_sale_playbook_posts_the_documented_schedule_at_local_times(workspace, sandbox, groups):
    # given two groups on the sandbox channel, a member who answers a notice and orders in the sale window
    fan = make_contact(workspace, "小红")
    do_add_member(groups[0], fan, None)
    instantiated_at = shanghai(2026, 12, 1, 12, 0)
    # when the flash-sale playbook is instantiated for 12 December 20:00 (Asia/Shanghai)
    result = do_instantiate_playbook(
        workspace, None, "flash_sale", event_at="2026-12-12T20:00", group_ids=[g.pk for g in groups], time_zone="Asia/Shanghai",
        now=instantiated_at,
    )
    do_record_group_message(groups[0], fan, external_id="m1", text="抢！", sent_at=shanghai(2026, 12, 11, 10, 5))
    do_record_order(workspace, None, external_id="FS-1", contact=fan, placed_at=shanghai(2026, 12, 12, 20, 30), gross_amount="99.00")
    do_record_order(workspace, None, external_id="OUT-1", contact=fan, placed_at=shanghai(2026, 12, 12, 23, 0), gross_amount="10.00")
    # and the runner is driven through the days before and the evening of the sale
    _drive(shanghai(2026, 12, 8, 0, 0), shanghai(2026, 12, 13, 1, 0))
    # then each group got exactly the documented posts, at the documented local times
    posts = [
        (d.group.name, d.slot_at.astimezone(SHANGHAI).strftime("%m-%d %H:%M"), d.message_class, d.outbox.payload["text"])
        for d in Delivery.objects.filter(outbox__isnull=False).select_related("group", "outbox").order_by("slot_at", "group_id")
    ]
    assert posts == [(g.name, at, cls, text) for at, cls, text in FLASH_SALE_SCHEDULE for g in groups]
    assert sorted(OutboxMessage.objects.filter(command="send_message").values_list("target", flat=True)) == sorted(
        ["room-1", "room-2"] * len(FLASH_SALE_SCHEDULE)
    )
    # and the one who answered was moved into the temporary sale group, which ends the day after
    sale_group = groups[0].__class__.objects.get(pk=result["sale_group"])
    assert (sale_group.name, sale_group.horizon, sale_group.ends_on) == ("限时抢购 12-12 抢购群", "short_term", dt.date(2026, 12, 13))
    assert list(Membership.objects.filter(group=sale_group).values_list("contact__name", flat=True)) == ["小红"]
    # and the results report counts the orders of the sale window only
    reports = StaffTask.objects.filter(kind="journey_report").order_by("id")
    assert [t.title for t in reports] == ["限时抢购 2026-12-12 战报：1 单，1 位买家，实收 ¥99.00"] * 2
    assert set(JourneyRun.objects.values_list("state", flat=True)) == {RunState.COMPLETED}


def test_instantiating_shows_the_schedule_and_refuses_a_past_date_or_unknown_playbook(workspace, groups):
    with pytest.raises(ValidationFailed) as info:
        do_instantiate_playbook(workspace, None, "flash_sale", event_at="2026-01-01T20:00", group_ids=[groups[0].pk],
                                now=shanghai(2026, 2, 1, 0, 0))
    assert info.value.message == "date: 2026-01-01 20:00 has already passed"
    with pytest.raises(NotFound):
        do_instantiate_playbook(workspace, None, "pyramid", event_at="2026-12-12T20:00", group_ids=[groups[0].pk])
    result = do_instantiate_playbook(workspace, None, "flash_sale", event_at="2026-12-12T20:00", group_ids=[groups[0].pk],
                                     now=shanghai(2026, 12, 1, 0, 0))
    schedule = result["journeys"][0]["schedule"]
    assert [(s["at"][5:16], s["step"]) for s in schedule] == [
        ("12-09T10:00", "notice_3"), ("12-10T10:00", "notice_2"), ("12-11T10:00", "notice_1"), ("12-11T20:00", "preview"),
        ("12-12T09:30", "morning"), ("12-12T19:00", "last_call"), ("12-12T19:00", "invite"), ("12-12T20:00", "start"),
        ("12-12T22:00", "close"), ("12-12T22:00", "report"),
    ]


def test_a_late_instantiation_drops_the_notices_whose_time_has_passed(workspace, groups):
    rendered = render("flash_sale", workspace, event_at="2026-12-12T20:00", now=shanghai(2026, 12, 10, 12, 0))
    assert rendered["dropped_steps"] == ["wait_notice_3", "notice_3", "wait_notice_2", "notice_2"]
    assert rendered["journeys"][0]["steps"][0]["id"] == "wait_notice_1"


def test_every_shipped_playbook_renders_to_a_valid_journey(workspace, groups):
    from siyu.commerce.actions import do_create_coupon_template
    from siyu.journeys.definition import validate

    do_create_coupon_template(workspace, None, name="首单券", kind="fixed", value="10", validity_days=7)
    names = [p["name"] for p in list_playbooks()]
    assert names == ["flash_sale", "new_customer_nurture", "qa_clinic", "sharing_session", "vip_care", "win_back"]
    for name in names:
        params = {"coupon_template": "首单券"} if name == "new_customer_nurture" else {}
        rendered = render(name, workspace, event_at="2026-12-12T20:00", params=params, now=shanghai(2026, 12, 1, 0, 0))
        for journey in rendered["journeys"]:
            assert validate(workspace, journey)["name"] == journey["name"]


def test_contact_playbooks_publish_triggered_journeys(workspace):
    from siyu.commerce.actions import do_create_coupon_template

    do_create_coupon_template(workspace, None, name="首单券", kind="fixed", value="10", validity_days=7)
    with pytest.raises(ValidationFailed) as info:
        do_instantiate_playbook(workspace, None, "new_customer_nurture")
    assert info.value.message == "params.coupon_template: is required"
    result = do_instantiate_playbook(workspace, None, "new_customer_nurture", params={"coupon_template": "首单券"})
    journey = Journey.objects.get(pk=result["journeys"][0]["id"])
    assert (journey.status, journey.trigger_kind, journey.playbook, result["runs"]) == ("published", "contact_added", "new_customer_nurture", [])


def test_the_qa_clinic_collects_questions_announces_the_expert_and_posts_the_answers(workspace, groups):
    result = do_instantiate_playbook(workspace, None, "qa_clinic", event_at="2026-12-12T20:00", group_ids=[groups[0].pk],
                                     params={"topic": "敏感肌护理", "expert": "王医生", "summary_url": "https://example.com/qa"},
                                     now=shanghai(2026, 12, 1, 0, 0))
    journey = result["journeys"][0]
    assert [(s["at"][5:16], s["step"]) for s in journey["schedule"]] == [
        ("12-09T20:00", "questions"), ("12-11T20:00", "expert"), ("12-12T19:30", "reminder"), ("12-12T20:00", "clinic"),
        ("12-12T21:30", "close"), ("12-13T10:00", "summary"),
    ]
    texts = {s["id"]: s["content"]["text"] for s in Journey.objects.get(pk=journey["id"]).current_version.definition["steps"] if s["type"] == "send"}
    assert texts["questions"].startswith("【会诊问题征集】12月12日 20:00 社群会诊「敏感肌护理」开诊") and "接龙" in texts["questions"]
    assert "王医生明晚 20:00" in texts["expert"]
    assert texts["summary"].endswith("https://example.com/qa")
