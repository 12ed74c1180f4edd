import datetime as dt

import pytest
from django.utils import timezone

from siyu.contacts.actions import do_record_event, do_update_contact
from siyu.contacts.models import ContactTag, TagSource
from siyu.contacts.rules import do_apply_tag_rules, do_create_tag_rule, explain_contact
from siyu.core.errors import ValidationFailed
from siyu.core.testing import make_contact, make_tag, make_workspace

# Rule evaluation runs after commit, as in production: these tests really commit.
pytestmark = pytest.mark.django_db(transaction=True)


def _order(contact, n, days_ago):
    do_record_event(contact, "order", idempotency_key=f"o-{contact.pk}-{n}", occurred_at=timezone.now() - dt.timedelta(days=days_ago))


def test_repeat_buyer_rule_tags_when_second_order_arrives_and_explains_why():
    ws = make_workspace()
    repeat = make_tag(ws, "复购客户", group="购买阶段")
    do_create_tag_rule(ws, None, name="2+ orders in 90 days", tag=repeat, conditions=[{"event": "order", "min_count": 2, "within_days": 90}])
    contact = make_contact(ws)
    _order(contact, 1, days_ago=10)
    assert not ContactTag.objects.filter(contact=contact, tag=repeat).exists()
    _order(contact, 2, days_ago=1)  # the event arrives → the rule runs (immediate Huey in tests)
    link = ContactTag.objects.get(contact=contact, tag=repeat)
    assert link.source == TagSource.RULE
    assert link.reason == "2+ orders in 90 days: 2 × order in the last 90 days (needs ≥ 2)"
    assert [e["met"] for e in explain_contact(contact)] == [True]


def test_orders_outside_the_window_do_not_count_and_scheduled_pass_removes_when_asked():
    ws = make_workspace()
    repeat = make_tag(ws, "复购客户", group="购买阶段")
    rule = do_create_tag_rule(
        ws, None, name="r", tag=repeat, conditions=[{"event": "order", "min_count": 2, "within_days": 90}], remove_when_unmet=True
    )
    old = make_contact(ws, "old")
    _order(old, 1, 200)
    _order(old, 2, 100)
    assert not ContactTag.objects.filter(contact=old, tag=repeat).exists()
    fresh = make_contact(ws, "fresh")
    _order(fresh, 1, 5)
    _order(fresh, 2, 4)
    assert ContactTag.objects.filter(contact=fresh, tag=repeat, rule=rule).exists()
    # time passes: the orders fall out of the window; the scheduled pass takes the tag away
    fresh.events.filter(kind="order").update(occurred_at=timezone.now() - dt.timedelta(days=120))
    assert do_apply_tag_rules(ws.pk) == {"contacts": 2, "added": 0, "removed": 1}
    assert not ContactTag.objects.filter(contact=fresh, tag=repeat).exists()
    # and a second pass changes nothing
    assert do_apply_tag_rules(ws.pk) == {"contacts": 2, "added": 0, "removed": 0}


def test_field_and_tag_conditions_with_any_match():
    ws = make_workspace()
    vip = make_tag(ws, "VIP")
    south = make_tag(ws, "南方", group="地区")
    do_create_tag_rule(
        ws, None, name="south", tag=south, match="any",
        conditions=[{"field": "city", "op": "in", "value": ["广州", "深圳"]}, {"has_tag": "VIP"}],
    )
    gz, bj = make_contact(ws, "gz", city="广州"), make_contact(ws, "bj", city="北京")
    assert ContactTag.objects.filter(contact=gz, tag=south).exists()
    assert not ContactTag.objects.filter(contact=bj, tag=south).exists()
    from siyu.contacts.actions import do_tag_contacts

    do_tag_contacts(ws, None, [bj], [vip])
    assert ContactTag.objects.filter(contact=bj, tag=south).get().reason == "south: has tag 兴趣/VIP"
    do_update_contact(gz, None, city="上海")  # rule tags stay unless remove_when_unmet
    assert ContactTag.objects.filter(contact=gz, tag=south).exists()


@pytest.mark.parametrize(
    ("conditions", "message"),
    [
        ([], "conditions must be a non-empty list"),
        ([{"field": "password"}], "condition 1: unknown field 'password'"),
        ([{"field": "city", "op": "like"}], "condition 1: unknown operator 'like'"),
        ([{"event": "order", "min_count": -1}], "condition 1: min_count must be a whole number ≥ 0"),
        ([{"has_tag": "nope"}], "unknown tag 'nope'"),
        ([{"nothing": 1}], "condition 1 needs one of: field, event, has_tag, lacks_tag"),
    ],
)
def test_invalid_rules_are_refused_with_the_reason(conditions, message):
    ws = make_workspace()
    tag = make_tag(ws, "x")
    with pytest.raises(ValidationFailed) as err:
        do_create_tag_rule(ws, None, name="bad", tag=tag, conditions=conditions)
    assert err.value.message.startswith(message)
