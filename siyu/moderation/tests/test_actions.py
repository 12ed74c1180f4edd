"""Moderation through the real inbound pipeline on the sandbox channel (real commits)."""

import pytest
from django.utils import timezone

from siyu.accounts.models import AuditEntry
from siyu.channels.actions import do_create_channel_account
from siyu.channels.base import InboundEvent, InboundKind
from siyu.channels.inbox import do_receive
from siyu.channels.models import OutboxMessage, SandboxDelivery, StaffTask
from siyu.communities.actions import do_add_member, do_create_group
from siyu.communities.models import Membership
from siyu.contacts.actions import do_ensure_contact_for_identity, do_tag_contacts
from siyu.contacts.models import Contact
from siyu.core.errors import Conflict, ValidationFailed
from siyu.core.testing import make_staff, make_tag, make_workspace
from siyu.moderation.actions import check_message, do_save_word_list, do_set_policy, do_undo_case
from siyu.moderation.models import BlacklistEntry, ModerationCase, Strike
from siyu.moderation.tests.test_detectors import normal_chat

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ws():
    return make_workspace()


@pytest.fixture
def account(ws):
    return do_create_channel_account(ws, None, kind="sandbox", name="sbx")


@pytest.fixture
def group(ws, account):
    return do_create_group(ws, None, name="福利1群", channel_account=account, external_id="room1")


_n = iter(range(1, 10**6))


def say(account, room, member, text, **extra):
    key = f"m{next(_n)}"
    do_receive(account, [InboundEvent(InboundKind.MESSAGE, key, timezone.now(),
                                      {"group_id": room, "sender_id": member, "sender_name": member, "message_id": key, "text": text, **extra})])
    return ModerationCase.objects.filter(message__external_id=key).first()


def test_word_list_hit_is_stored_with_the_rule_that_fired(ws, account, group):
    # given a competitor list graded "remove"
    do_save_word_list(ws, None, name="竞品", words=["竞品宝", "某某优选"], kind="competitor")
    # when a member names the competitor with evasion
    case = say(account, "room1", "u1", "去 竞 品 寶 买更便宜")
    # then the member is removed and the case names the list
    assert (case.verdict, case.rule, case.reasons) == ("remove", "竞品", [{"detector": "competitor", "evidence": "竞品宝"}])
    assert Strike.objects.filter(case=case, cleared_at__isnull=True).count() == 1


def test_group_policy_overrides_the_workspace_default(ws, account, group):
    other = do_create_group(ws, None, name="学员群", channel_account=account, external_id="room2")
    do_set_policy(ws, None, {"actions": {"url": "warn"}})
    do_set_policy(ws, None, {"actions": {"url": "allow"}}, group=other)
    assert say(account, "room1", "u1", "看 www.example.com").verdict == "warn"
    assert say(account, "room2", "u2", "看 www.example.com") is None
    with pytest.raises(ValidationFailed):
        do_set_policy(ws, None, {"actions": {"url": "explode"}})


def test_repeat_offender_escalates_to_blacklist_across_all_groups(ws, account, group):
    other = do_create_group(ws, None, name="二群", channel_account=account, external_id="room2")
    assert say(account, "room1", "spammer", "看 www.a.com").verdict == "delete"
    assert say(account, "room2", "spammer", "看 www.b.com").verdict == "remove"
    contact = Contact.objects.get(name="spammer")
    do_add_member(other, contact, None)  # re-invited by someone
    do_add_member(group, contact, None)
    case = say(account, "room1", "spammer", "看 www.c.com")
    assert (case.verdict, case.note) == ("blacklist", "屡次违规：此前已有 2 次记录")
    assert BlacklistEntry.objects.filter(contact=contact, lifted_at__isnull=True).count() == 1
    assert Membership.objects.filter(contact=contact, left_at__isnull=True).count() == 0
    removals = SandboxDelivery.objects.filter(command="remove_member").values_list("target", flat=True)
    assert sorted(removals) == ["room1", "room2", "room2"]  # 2nd offence in room2; then room1 and room2 again


def test_staff_vip_and_group_admins_are_allow_listed(ws, account, group):
    contact, _ = do_ensure_contact_for_identity(account, "vip1", name="大客户")
    do_tag_contacts(ws, None, [contact], [make_tag(ws, "VIP", group="等级")])
    assert say(account, "room1", "vip1", "我的微信 lily_2020") is None
    assert say(account, "room1", "staff1", "官网 www.example.com", sender_is_staff=True) is None


def test_undo_clears_the_strike_and_reinvites_where_the_channel_can(ws, account, group):
    owner = make_staff(ws)
    case = say(account, "room1", "bob", "加我vx：lily_2020")
    assert case.verdict == "remove"
    undone = do_undo_case(case, owner, note="误判：是老师的账号")
    assert undone.undone_at is not None and undone.note == "undone: 误判：是老师的账号"
    assert Strike.objects.get(case=case).cleared_at is not None
    invite = OutboxMessage.objects.get(idempotency_key=f"undo:{case.pk}:invite")
    assert (invite.command, invite.payload, invite.status) == ("invite_member", {"member": "bob"}, "sent")
    assert Membership.objects.filter(group=group, contact=case.contact, left_at__isnull=True).count() == 1
    assert AuditEntry.objects.filter(action="moderation.undone", actor=owner).count() == 1
    with pytest.raises(Conflict):
        do_undo_case(case, owner)


def test_undo_on_a_channel_that_cannot_invite_becomes_a_staff_task(ws, account, group):
    account.config = {"imitate": "wecom"}
    account.save(update_fields=["config"])
    case = say(account, "room1", "bob", "加我vx：lily_2020")
    do_undo_case(case, None)
    assert StaffTask.objects.filter(kind="moderation_invite_member").count() == 1


def test_flooding_the_same_text_is_deleted(ws, account, group):
    verdicts = [getattr(say(account, "room1", "u9", "速来速来"), "verdict", None) for _ in range(3)]
    assert verdicts == [None, None, "delete"]


def test_normal_chatter_through_the_pipeline_creates_no_case(ws, account, group):
    for i, text in enumerate(normal_chat()[:120]):
        say(account, "room1", f"member{i % 40}", text)
    assert ModerationCase.objects.count() == 0


def test_check_message_reads_the_workspace_policy_and_words(ws, group):
    do_save_word_list(ws, None, name="敏感", words=["刷单"])
    assert check_message("招人刷单日结", workspace_id=ws.pk).as_dict() == {
        "verdict": "delete", "reasons": [{"detector": "sensitive_word", "evidence": "刷单"}]}
    assert check_message("招人刷单日结").as_dict() == {"verdict": "allow", "reasons": []}
