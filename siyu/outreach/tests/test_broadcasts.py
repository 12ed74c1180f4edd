"""Broadcasts (群发): audience, preview before sending, the plan through the ledger,
WeCom tasks per staff member, A/B variants, stats and the automatic winner."""

from __future__ import annotations

import datetime as dt

import pytest

from siyu.channels.models import StaffTask
from siyu.contacts.actions import do_record_event
from siyu.core.errors import Conflict, ValidationFailed
from siyu.core.testing import make_contact, make_staff
from siyu.outreach.actions import (
    do_create_broadcast,
    do_create_group_set,
    do_send_broadcast,
    do_send_due_deliveries,
    do_send_to_contact,
)
from siyu.outreach.models import Delivery
from siyu.outreach.planning import (
    PlanResult,
    assign_variant,
    broadcast_stats,
    do_pick_due_winners,
    plan_broadcast,
    preview_broadcast,
)

from .conftest import shanghai

pytestmark = pytest.mark.django_db

NOW = shanghai(2030, 11, 8, 10)
TEXT_A = {"content": {"kind": "text", "text": "{name}，周末抢购 A"}}
TEXT_B = {"content": {"kind": "text", "text": "{name}，周末抢购 B"}}


@pytest.fixture
def mixed_audience(workspace, sandbox, reachable):
    """Three reachable contacts, one without consent, one without a channel, one whose
    two weekly marketing slots are used."""
    ok = [reachable(sandbox, name=f"客户{i}") for i in range(3)]
    no_consent = reachable(sandbox, consent=False)
    unreachable = make_contact(workspace)
    capped = reachable(sandbox)
    for day in (4, 6):
        do_send_to_contact(workspace, contact=capped, content={"kind": "text", "text": "hi"}, message_class="marketing", source="earlier",
                           idempotency_key=f"earlier{day}", at=shanghai(2030, 11, day, 10))
    return [*ok, no_consent, unreachable, capped]


def test_the_preview_counts_reach_consent_quota_and_variants_without_writing(workspace, owner, mixed_audience):
    broadcast = do_create_broadcast(workspace, actor=owner, name="周末抢购", audience={"contacts": [c.pk for c in mixed_audience]}, variants=[TEXT_A])
    before = Delivery.objects.count()

    preview = preview_broadcast(broadcast, now=NOW)

    assert preview.as_dict() == {
        "reach": 6, "excluded_by_consent": 1, "planned": 3, "deferred": 1, "skipped": 2,
        "deferred_by_reason": {"brand.weekly_cap": 1}, "skipped_by_reason": {"consent": 1, "no_channel": 1},
        "by_variant": {"A": 6}, "staff_tasks": [], "direct": 3,
    }
    assert Delivery.objects.count() == before


def test_sending_writes_the_plan_once_and_a_second_send_is_refused(workspace, owner, mixed_audience):
    broadcast = do_create_broadcast(workspace, actor=owner, name="周末抢购", audience={"contacts": [c.pk for c in mixed_audience]},
                                    variants=[TEXT_A], schedule={"mode": "at", "at": "2030-11-08T10:00:00+08:00"})

    result = do_send_broadcast(broadcast, owner, now=shanghai(2030, 11, 7, 10))

    assert result == PlanResult(planned=3, deferred=1, skipped=2, by_reason={"brand.weekly_cap": 1, "consent": 1, "no_channel": 1})
    rows = Delivery.objects.filter(broadcast=broadcast)
    assert sorted(rows.values_list("status", flat=True)) == ["deferred", "queued", "queued", "queued", "skipped", "skipped"]
    assert set(rows.filter(status="queued").values_list("planned_for", flat=True)) == {NOW}
    assert rows.get(contact=mixed_audience[0]).content == {"kind": "text", "text": "客户0，周末抢购 A"}
    assert rows.get(contact=mixed_audience[5]).planned_for == shanghai(2030, 11, 11, 10)
    with pytest.raises(Conflict):
        do_send_broadcast(broadcast, owner, now=NOW)
    # planning again (a retried worker) adds nothing
    assert plan_broadcast(broadcast, now=NOW) == PlanResult(0, 0, 0, {})
    assert rows.count() == 6


def test_on_wecom_the_preview_and_the_send_make_one_task_per_staff_member(workspace, owner, wecomish, reachable):
    jia = make_staff(workspace, display_name="甲")
    yi = make_staff(workspace, display_name="乙")
    contacts = [reachable(wecomish, owner=jia), reachable(wecomish, owner=jia), reachable(wecomish, owner=yi)]
    broadcast = do_create_broadcast(workspace, actor=owner, name="会员日", audience={"contacts": [c.pk for c in contacts]},
                                    variants=[{"content": {"kind": "text", "text": "会员日快乐"}}])

    preview = preview_broadcast(broadcast, now=NOW)
    assert preview.staff_tasks == [
        {"staff_id": jia.pk, "tasks": 1, "members": 2, "staff": "甲"},
        {"staff_id": yi.pk, "tasks": 1, "members": 1, "staff": "乙"},
    ]
    assert preview.direct == 0

    do_send_broadcast(broadcast, owner, now=NOW)
    # NOW is in the future of the real clock: the deliveries hold their slots until the minute task hands them over
    do_send_due_deliveries(now=NOW)
    tasks = {t.assignee.display_name: len(t.detail["delivery_ids"]) for t in StaffTask.objects.filter(workspace=workspace, kind="mass_message")}
    assert tasks == {"甲": 2, "乙": 1}
    assert set(Delivery.objects.filter(broadcast=broadcast).values_list("status", flat=True)) == {"queued"}


def test_variants_split_by_a_stable_hash_of_the_recipient(workspace, owner, sandbox, reachable):
    contacts = [reachable(sandbox) for _ in range(30)]
    broadcast = do_create_broadcast(workspace, actor=owner, name="AB", audience={"contacts": [c.pk for c in contacts]}, variants=[TEXT_A, TEXT_B])
    variants = list(broadcast.variants.order_by("label"))
    expected = {"A": 0, "B": 0}
    for c in contacts:
        expected[assign_variant(variants, broadcast.pk, c.pk).label] += 1

    assert preview_broadcast(broadcast, now=NOW).by_variant == {k: v for k, v in expected.items() if v}
    assert preview_broadcast(broadcast, now=NOW).by_variant == preview_broadcast(broadcast, now=NOW).by_variant
    assert 5 <= expected["A"] <= 25  # both variants are used


def test_stats_count_replies_within_48_hours_and_orders_within_7_days(workspace, owner, sandbox, reachable, awake):
    contacts = [reachable(sandbox) for _ in range(3)]
    broadcast = do_create_broadcast(workspace, actor=owner, name="复购", audience={"contacts": [c.pk for c in contacts]}, variants=[TEXT_A])
    do_send_broadcast(broadcast, owner)
    sent_at = Delivery.objects.filter(broadcast=broadcast).first().sent_at  # type: ignore[union-attr]
    do_record_event(contacts[0], "message", idempotency_key="r0", occurred_at=sent_at + dt.timedelta(hours=3))
    do_record_event(contacts[1], "message", idempotency_key="r1", occurred_at=sent_at + dt.timedelta(hours=49))  # too late
    do_record_event(contacts[2], "order", idempotency_key="o2", occurred_at=sent_at + dt.timedelta(days=6))

    [stats] = broadcast_stats(broadcast)

    assert {k: stats[k] for k in ("variant", "recipients", "sent", "queued", "deferred", "skipped", "replied", "converted", "read")} == {
        "variant": "A", "recipients": 3, "sent": 3, "queued": 0, "deferred": 0, "skipped": 0, "replied": 1, "converted": 1, "read": None,
    }
    assert (stats["reply_rate"], stats["conversion_rate"]) == (0.3333, 0.3333)


def test_the_automatic_winner_takes_the_remainder_after_the_test(workspace, owner, sandbox, reachable, awake):
    contacts = [reachable(sandbox) for _ in range(40)]
    broadcast = do_create_broadcast(workspace, actor=owner, name="AB", audience={"contacts": [c.pk for c in contacts]},
                                    variants=[TEXT_A, TEXT_B], auto_winner=True, test_fraction=0.5, winner_wait_hours=24)

    test_result = do_send_broadcast(broadcast, owner)
    test_rows = list(Delivery.objects.filter(broadcast=broadcast))
    assert 0 < test_result.planned == len(test_rows) < 40
    # B's recipients answer
    for row in test_rows:
        if row.variant.label == "B":  # type: ignore[union-attr]
            do_record_event(row.contact, "message", idempotency_key=f"reply{row.pk}", occurred_at=row.sent_at + dt.timedelta(hours=1))  # type: ignore[arg-type, operator]

    assert do_pick_due_winners(now=broadcast.planned_at + dt.timedelta(hours=23)) == []
    assert do_pick_due_winners(now=broadcast.planned_at + dt.timedelta(hours=25)) == [broadcast.pk]

    broadcast.refresh_from_db()
    assert broadcast.winner.label == "B"  # type: ignore[union-attr]
    assert Delivery.objects.filter(broadcast=broadcast).count() == 40
    remainder = Delivery.objects.filter(broadcast=broadcast).exclude(pk__in=[r.pk for r in test_rows])
    assert set(remainder.values_list("variant__label", flat=True)) == {"B"}


def test_a_group_set_with_best_time_falls_back_to_the_next_workspace_peak(workspace, owner, sandbox, connected_group):
    groups = [connected_group(sandbox, name=f"{i}群") for i in range(2)]
    group_set = do_create_group_set(workspace, owner, name="福利群", group_ids=[g.pk for g in groups])
    broadcast = do_create_broadcast(workspace, actor=owner, name="早报", audience={"group_set": group_set.pk},
                                    variants=[{"content": {"kind": "text", "text": "{group} 今日福利"}}], schedule={"mode": "best_time"})

    do_send_broadcast(broadcast, owner, now=shanghai(2030, 11, 4, 10))

    rows = Delivery.objects.filter(broadcast=broadcast).order_by("group_id")
    assert [(r.status, r.planned_for, r.content["text"]) for r in rows] == [
        ("queued", shanghai(2030, 11, 4, 12), "0群 今日福利"),
        ("queued", shanghai(2030, 11, 4, 12), "1群 今日福利"),
    ]


def test_a_segment_audience_uses_its_stored_membership(workspace, owner, sandbox, reachable):
    from siyu.segments.actions import do_create_segment, do_set_static_members

    members = [reachable(sandbox) for _ in range(2)]
    reachable(sandbox)  # not in the segment
    segment = do_create_segment(workspace, owner, name="VIP", kind="static")
    do_set_static_members(segment, owner, [c.pk for c in members])
    broadcast = do_create_broadcast(workspace, actor=owner, name="VIP", audience={"segment": segment.pk}, variants=[TEXT_A])

    assert preview_broadcast(broadcast, now=NOW).reach == 2


def test_bad_audiences_and_variants_are_refused_with_the_path(workspace, owner, sandbox, reachable):
    contact = reachable(sandbox)

    with pytest.raises(ValidationFailed, match="audience: give exactly one of"):
        do_create_broadcast(workspace, actor=owner, name="x", audience={}, variants=[TEXT_A])
    with pytest.raises(ValidationFailed, match=r"audience\.contacts: contact 999999 not found"):
        do_create_broadcast(workspace, actor=owner, name="x", audience={"contacts": [contact.pk, 999999]}, variants=[TEXT_A])
    with pytest.raises(ValidationFailed, match=r"variants\[1\]\.content\.text: unknown variable \{nmae\}"):
        do_create_broadcast(workspace, actor=owner, name="x", audience={"contacts": [contact.pk]},
                            variants=[TEXT_A, {"content": {"kind": "text", "text": "{nmae} 你好"}}])
    with pytest.raises(ValidationFailed, match="variants: give 1 to 5"):
        do_create_broadcast(workspace, actor=owner, name="x", audience={"contacts": [contact.pk]}, variants=[TEXT_A] * 6)
