"""Lifecycle stages: the rules (table-driven), transitions with history and timeline
events, the daily pass, recall after lapsing, and the optional P(alive) input."""

import datetime as dt
from decimal import Decimal as D

import pytest
from django.utils import timezone

from siyu.accounts.models import AuditEntry
from siyu.commerce.actions import (
    do_create_tier,
    do_join_tier,
    do_recompute_lifecycles,
    do_refund_order,
    do_update_commerce_settings,
    do_update_lifecycle,
)
from siyu.commerce.lifecycle import Facts, Thresholds, compute_stage
from siyu.commerce.models import StageTransition
from siyu.contacts.actions import do_record_event
from siyu.contacts.models import Contact, ContactEvent
from siyu.core.testing import make_contact

from .conftest import days_ago, record

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)


def ago(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


STAGES = [
    # facts → stage, reason
    (Facts(1, "new", created_at=ago(3)), "new", "joined 3 days ago, no order yet"),
    (Facts(1, "new", created_at=ago(30), last_activity_at=ago(2)), "nurtured", "in the pool for 30 days, last active 2 days ago, no order yet"),
    (Facts(1, "nurtured", created_at=ago(200), last_activity_at=ago(179)), "nurtured", "in the pool for 200 days, last active 179 days ago, no order yet"),
    (Facts(1, "nurtured", created_at=ago(200), last_activity_at=ago(180)), "churned", "no order and no activity for 180 days (churned after 180)"),
    (Facts(1, "new", created_at=ago(3), paid_member=True), "vip", "active paid membership"),
    (Facts(1, "new", created_at=ago(40), orders=1, spend=D("99"), first_order_at=ago(10), last_order_at=ago(10)),
     "first_purchase", f"first order on {ago(10).date().isoformat()}"),
    # one order: at risk after max(45, 2 × 60) = 120 days
    (Facts(1, "first_purchase", created_at=ago(200), orders=1, spend=D("99"), first_order_at=ago(119), last_order_at=ago(119)),
     "first_purchase", f"first order on {ago(119).date().isoformat()}"),
    (Facts(1, "first_purchase", created_at=ago(200), orders=1, spend=D("99"), first_order_at=ago(120), last_order_at=ago(120)),
     "at_risk", "no order for 120 days (one order so far, assumed interval 60 days; at risk after 120)"),
    # a weekly buyer is at risk much sooner: max(45, 2 × 7)
    (Facts(1, "repeat", created_at=ago(100), orders=3, spend=D("300"), first_order_at=ago(64), last_order_at=ago(50)),
     "at_risk", "no order for 50 days (usual interval 7 days; at risk after 45)"),
    (Facts(1, "repeat", created_at=ago(100), orders=3, spend=D("300"), first_order_at=ago(44), last_order_at=ago(30)), "repeat", "3 orders"),
    (Facts(1, "repeat", created_at=ago(300), orders=3, spend=D("300"), first_order_at=ago(290), last_order_at=ago(200), last_activity_at=ago(10)),
     "at_risk", "no order for 200 days (usual interval 45 days; at risk after 90)"),
    (Facts(1, "at_risk", created_at=ago(400), orders=3, spend=D("300"), first_order_at=ago(390), last_order_at=ago(200), last_activity_at=ago(190)),
     "churned", "no order and no activity for 190 days (churned after 180)"),
    (Facts(1, "repeat", created_at=ago(100), orders=5, spend=D("500"), first_order_at=ago(90), last_order_at=ago(10)), "vip", "5 orders (VIP from 5)"),
    (Facts(1, "repeat", created_at=ago(100), orders=2, spend=D("5000"), first_order_at=ago(90), last_order_at=ago(10)),
     "vip", "spent ¥5000 (VIP from ¥5000.00)"),
    (Facts(1, "first_purchase", created_at=ago(100), orders=1, spend=D("9"), first_order_at=ago(10), last_order_at=ago(10), paid_member=True),
     "vip", "active paid membership"),
    (Facts(1, "at_risk", created_at=ago(300), orders=4, spend=D("400"), first_order_at=ago(290), last_order_at=ago(5), lapsed_at=ago(30),
           orders_since_lapse=1), "recalled", f"bought again on {ago(5).date().isoformat()} after lapsing on {ago(30).date().isoformat()}"),
    (Facts(1, "recalled", created_at=ago(300), orders=5, spend=D("500"), first_order_at=ago(290), last_order_at=ago(2), lapsed_at=ago(30),
           orders_since_lapse=2), "vip", "5 orders (VIP from 5)"),
    (Facts(1, "repeat", created_at=ago(100), orders=3, spend=D("300"), first_order_at=ago(44), last_order_at=ago(30), p_alive=0.12),
     "at_risk", "P(alive) 0.12 is below 0.300"),
    (Facts(1, "repeat", created_at=ago(100), orders=3, spend=D("300"), first_order_at=ago(44), last_order_at=ago(30), p_alive=0.3), "repeat", "3 orders"),
]


@pytest.mark.parametrize(("facts", "stage", "reason"), STAGES)
def test_the_stage_rules(facts, stage, reason):
    assert compute_stage(facts, Thresholds(), NOW) == (stage, reason)


@pytest.mark.django_db
def test_a_stage_change_is_stored_with_history_a_timeline_event_and_an_audit(workspace):
    contact = make_contact(workspace)
    record(workspace, contact, "T1", "80", placed_at=days_ago(3))

    first = do_update_lifecycle(contact)
    again = do_update_lifecycle(contact)

    assert again is None
    contact.refresh_from_db()
    assert contact.lifecycle_stage == "first_purchase"
    assert first is not None
    assert (first.from_stage, first.to_stage, first.reason) == ("new", "first_purchase", f"first order on {days_ago(3).date().isoformat()}")
    assert first.data["orders"] == 1 and first.data["spend"] == "80.00"
    event = ContactEvent.objects.get(contact=contact, kind="stage_changed")
    assert event.data == {"from": "new", "to": "first_purchase", "reason": first.reason}
    audit = AuditEntry.objects.get(action="contact.stage_changed")
    assert (audit.before, audit.after) == ({"lifecycle_stage": "new"}, {"lifecycle_stage": "first_purchase", "reason": first.reason})


@pytest.mark.django_db
def test_a_lapsed_customer_who_buys_again_is_recalled_then_repeat(workspace):
    # given a customer whose only order was 150 days ago: at risk
    contact = make_contact(workspace, created_at=days_ago(300))
    record(workspace, contact, "T1", "80", placed_at=days_ago(150))
    do_update_lifecycle(contact, now=days_ago(5))

    # when she buys again, and once more later
    record(workspace, contact, "T2", "80", placed_at=days_ago(2))
    do_update_lifecycle(contact)
    contact.refresh_from_db()
    recalled = contact.lifecycle_stage
    record(workspace, contact, "T3", "80", placed_at=days_ago(1))
    do_update_lifecycle(contact)

    # then the history tells the story
    assert recalled == "recalled"
    assert list(StageTransition.objects.filter(contact=contact).order_by("at", "id").values_list("from_stage", "to_stage")) == [
        ("new", "at_risk"), ("at_risk", "recalled"), ("recalled", "repeat"),
    ]


@pytest.mark.django_db
def test_a_fully_refunded_order_is_not_a_purchase(workspace):
    contact = make_contact(workspace, created_at=days_ago(60))
    order = record(workspace, contact, "T1", "80").order
    do_update_lifecycle(contact)

    do_refund_order(order, None, "80")
    do_update_lifecycle(contact)

    assert list(StageTransition.objects.filter(contact=contact).order_by("id").values_list("to_stage", flat=True)) == ["first_purchase", "nurtured"]


@pytest.mark.django_db
def test_paid_membership_and_a_p_alive_prediction_feed_the_stage(workspace):
    contact = make_contact(workspace, created_at=days_ago(60))
    record(workspace, contact, "T1", "80", placed_at=days_ago(20))
    record(workspace, contact, "T2", "80", placed_at=days_ago(10))
    gold = do_create_tier(workspace, None, name="付费会员", kind="paid", price="99", validity_days=365)

    predicted = do_update_lifecycle(contact, p_alive=0.05)
    do_join_tier(contact, gold)
    member = do_update_lifecycle(contact)

    assert predicted is not None and (predicted.to_stage, predicted.reason) == ("at_risk", "P(alive) 0.05 is below 0.300")
    assert member is not None and (member.from_stage, member.to_stage, member.reason) == ("at_risk", "vip", "active paid membership")


@pytest.mark.django_db
def test_the_daily_pass_recomputes_everyone_with_the_workspace_thresholds(workspace):
    do_update_commerce_settings(workspace, None, new_days=7, churn_days=90)
    fresh = make_contact(workspace, created_at=days_ago(2))
    engaged = make_contact(workspace, created_at=days_ago(30))
    do_record_event(engaged, "message", idempotency_key="m1", occurred_at=days_ago(1))
    gone = make_contact(workspace, created_at=days_ago(120))
    buyer = make_contact(workspace, created_at=days_ago(30))
    record(workspace, buyer, "T1", "10", placed_at=days_ago(1))

    counts = do_recompute_lifecycles(workspace.pk)
    again = do_recompute_lifecycles(workspace.pk)

    stages = dict(Contact.objects.filter(pk__in=[fresh.pk, engaged.pk, gone.pk, buyer.pk]).values_list("pk", "lifecycle_stage"))
    assert stages == {fresh.pk: "new", engaged.pk: "nurtured", gone.pk: "churned", buyer.pk: "first_purchase"}
    assert counts == {"contacts": 4, "changed": 3, "nurtured": 1, "churned": 1, "first_purchase": 1}
    assert again == {"contacts": 4, "changed": 0}
    assert StageTransition.objects.count() == 3


@pytest.mark.django_db
def test_merged_contacts_are_left_alone(workspace):
    from siyu.contacts.actions import do_merge_contacts

    primary, duplicate = make_contact(workspace), make_contact(workspace, created_at=timezone.now() - dt.timedelta(days=400))
    do_merge_contacts(primary, duplicate, None)

    assert do_update_lifecycle(duplicate) is None
    assert do_recompute_lifecycles(workspace.pk)["contacts"] == 1


@pytest.mark.django_db
def test_the_scheduled_pass_runs_with_or_without_a_prediction(workspace):
    from siyu.commerce.tasks import recompute_lifecycles_task

    buyer = make_contact(workspace, created_at=days_ago(30))
    record(workspace, buyer, "T1", "10", placed_at=days_ago(1))

    result = recompute_lifecycles_task.call_local(workspace.pk)

    buyer.refresh_from_db()
    assert (result["contacts"], buyer.lifecycle_stage) == (1, "first_purchase")
