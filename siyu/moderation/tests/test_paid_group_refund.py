"""A member removed by moderation from a paid group (门槛: price) is owed their fee (seed:
"remove, and refund in paid groups"): the group owner gets a refund task with the
evidence — from the per-event path and from a batch alike —, and only for removals in
paid groups."""

import datetime as dt

import pytest

from siyu.channels.actions import do_create_channel_account
from siyu.channels.inbox import process, process_batch
from siyu.channels.models import InboxEvent, StaffTask
from siyu.communities.actions import do_create_group
from siyu.communities.models import Membership, Threshold
from siyu.core.testing import make_staff, make_workspace
from siyu.moderation.actions import do_blacklist_contact
from siyu.moderation.models import ModerationCase

pytestmark = pytest.mark.django_db
T0 = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _fresh_caches():
    from siyu.communities import autoreply
    from siyu.moderation import engine

    engine.invalidate()
    autoreply.invalidate()


def _world():
    ws = make_workspace()
    owner = make_staff(ws)
    account = do_create_channel_account(ws, None, kind="sandbox", name="sbx")
    paid = do_create_group(ws, None, name="读书会会员群", channel_account=account, external_id="paid", owner=owner,
                           threshold=Threshold.PRICE, threshold_detail="年费 ¥199")
    free = do_create_group(ws, None, name="福利1群", channel_account=account, external_id="free", owner=owner)
    return ws, owner, account, paid, free


def _rows(account, *events):
    return [InboxEvent.objects.create(workspace_id=account.workspace_id, account=account, dedupe_key=key, kind=kind,
                                      occurred_at=T0 + dt.timedelta(minutes=i), data=data).pk
            for i, (key, kind, data) in enumerate(events)]


def _join(room, member):
    return (f"j-{room}-{member}", "member_joined", {"group_id": room, "member_id": member, "member_name": member.upper()})


def _say(key, room, member, text):
    return (key, "message", {"group_id": room, "sender_id": member, "sender_name": member.upper(), "message_id": key, "text": text})


@pytest.mark.parametrize("path", ["per_event", "batch"])
def test_an_advertiser_removed_from_a_paid_group_is_owed_a_refund_but_not_from_a_free_one(path):
    ws, owner, account, paid, _free = _world()
    ids = _rows(account, _join("paid", "bob"), _join("free", "eve"), _join("paid", "ann"),
                _say("m1", "paid", "bob", "需要的加我微信 13812345678"),
                _say("m2", "free", "eve", "需要的加我微信 13912345678"),
                _say("m3", "paid", "ann", "今晚几点开始共读？"))

    if path == "batch":
        process_batch(ids)
    else:
        for pk in ids:
            assert process(pk) == "processed"

    assert sorted(ModerationCase.objects.values_list("group__external_id", "verdict")) == [("free", "remove"), ("paid", "remove")]
    [task] = StaffTask.objects.filter(workspace=ws, kind="moderation_refund")
    assert (task.title, task.assignee_id) == ("为BOB退还「读书会会员群」的入群费用（年费 ¥199）", owner.pk)
    assert task.detail["group_id"] == paid.pk and task.detail["threshold_detail"] == "年费 ¥199"
    assert task.detail["contact_id"] == Membership.objects.get(group=paid, contact__name="BOB").contact_id
    assert task.detail["reasons"]  # the evidence: what the bot saw
    case = ModerationCase.objects.get(group=paid)
    assert {"staff_task": task.pk, "command": "refund", "reason": "paid group"} in case.applied
    # the removal itself happened on the channel, as in any group
    assert Membership.objects.get(group=paid, contact__name="BOB").left_at is not None
    assert Membership.objects.get(group=paid, contact__name="ANN").left_at is None


def test_blacklisting_asks_for_a_refund_for_each_paid_group_left_and_only_once():
    ws, owner, account, paid, _free = _world()
    process_batch(_rows(account, _join("paid", "bob"), _join("free", "bob")))
    bob = Membership.objects.filter(group=paid).get().contact

    do_blacklist_contact(bob, owner, reason="多群发广告")
    do_blacklist_contact(bob, owner)

    [task] = StaffTask.objects.filter(workspace=ws, kind="moderation_refund")
    assert task.detail["group_id"] == paid.pk
    assert not Membership.objects.filter(contact=bob, left_at__isnull=True).exists()


@pytest.mark.parametrize("layer", ["group", "template", "default"])
@pytest.mark.parametrize("path", ["per_event", "batch"])
def test_no_refund_task_where_the_settings_say_fees_are_not_refunded(path, layer):
    """``refund_on_removal`` off — on the group, its type's template or the workspace
    default — and the removal happens as before, with no refund task; the case says why."""
    from siyu.communities.actions import do_set_group_settings, do_set_settings_layer
    from siyu.communities.group_settings import effective

    ws, owner, account, paid, _free = _world()
    if layer == "group":
        do_set_group_settings(paid, owner, {"refund_on_removal": False})
    else:
        do_set_settings_layer(ws, owner, {"refund_on_removal": False}, group_type=paid.group_type if layer == "template" else "")
    paid.refresh_from_db()
    assert effective(paid).as_dict()["refund_on_removal"] == {"value": False, "source": layer if layer != "template" else f"template:{paid.group_type}"}
    ids = _rows(account, _join("paid", "bob"), _say("m1", "paid", "bob", "需要的加我微信 13812345678"))

    if path == "batch":
        process_batch(ids)
    else:
        for pk in ids:
            assert process(pk) == "processed"

    assert not StaffTask.objects.filter(workspace=ws, kind="moderation_refund").exists()
    case = ModerationCase.objects.get(group=paid)
    assert case.verdict == "remove" and {"refund": "not asked: the group's settings say fees are not refunded"} in case.applied
    assert Membership.objects.get(group=paid, contact__name="BOB").left_at is not None


def test_refund_on_removal_must_be_true_or_false():
    from siyu.communities.actions import do_set_group_settings
    from siyu.core.errors import ValidationFailed

    _ws, owner, _account, paid, _free = _world()
    with pytest.raises(ValidationFailed, match="refund_on_removal must be true or false"):
        do_set_group_settings(paid, owner, {"refund_on_removal": "no"})
