"""Sending through the ledger: direct sends (sandbox), staff-confirmed WeCom tasks,
deferrals with the reason, skips, idempotency, and the race for the last slot."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection

from siyu.channels.actions import do_close_staff_task
from siyu.channels.models import OutboxMessage, SandboxDelivery, StaffTask
from siyu.contacts.models import Contact
from siyu.core.errors import NotFound, ValidationFailed
from siyu.core.testing import make_contact, make_workspace
from siyu.outreach.actions import (
    do_create_material,
    do_send_due_deliveries,
    do_send_to_contact,
    do_send_to_group,
    do_set_quota_policy,
    do_sync_mass_tasks,
)
from siyu.outreach.models import Delivery
from siyu.outreach.quota import check

from .conftest import shanghai

pytestmark = pytest.mark.django_db

HELLO = {"kind": "text", "text": "{name}，您好！本周新品上架"}


def test_a_sandbox_send_goes_out_at_once_with_the_variables_filled(workspace, owner, sandbox, reachable, awake, django_capture_on_commit_callbacks):
    contact = reachable(sandbox, name="王小明")

    with django_capture_on_commit_callbacks(execute=True):
        delivery = do_send_to_contact(workspace, contact=contact, content=HELLO, message_class="marketing", source="test", idempotency_key="k1")

    assert (delivery.status, delivery.rule, delivery.reason) == ("sent", "", "")
    assert delivery.content == {"kind": "text", "text": "王小明，您好！本周新品上架"}
    sent = SandboxDelivery.objects.get(workspace=workspace)
    assert (sent.command, sent.payload) == ("send_message", {"kind": "text", "text": "王小明，您好！本周新品上架", "to": "contact"})
    assert delivery.slot_at == delivery.requested_at


def test_the_same_idempotency_key_twice_sends_once(workspace, sandbox, reachable, awake, django_capture_on_commit_callbacks):
    contact = reachable(sandbox)

    with django_capture_on_commit_callbacks(execute=True):
        first = do_send_to_contact(workspace, contact=contact, content=HELLO, message_class="marketing", source="test", idempotency_key="same")
    with django_capture_on_commit_callbacks(execute=True):
        second = do_send_to_contact(workspace, contact=contact, content=HELLO, message_class="marketing", source="test", idempotency_key="same")

    assert second.pk == first.pk
    assert Delivery.objects.filter(workspace=workspace).count() == 1
    assert OutboxMessage.objects.filter(workspace=workspace).count() == 1
    assert SandboxDelivery.objects.filter(workspace=workspace).count() == 1


def test_on_wecom_a_send_becomes_a_mass_message_task_for_the_owner_until_it_is_confirmed(
    workspace, owner, wecomish, reachable, awake, django_capture_on_commit_callbacks
):
    contact = reachable(wecomish, name="李雷")

    with django_capture_on_commit_callbacks(execute=True):
        delivery = do_send_to_contact(workspace, contact=contact, content=HELLO, message_class="marketing", source="test", idempotency_key="w1")

    # queued: the slot is taken, the staff member must confirm the task in WeCom
    assert delivery.status == "queued"
    task = StaffTask.objects.get(workspace=workspace, kind="mass_message")
    assert task.assignee == owner
    assert task.detail["external_ids"] == [contact.identities.get().external_id]
    assert task.detail["content"] == {"kind": "text", "text": "李雷，您好！本周新品上架"}
    assert task.detail["chat_type"] == "single"
    mass = SandboxDelivery.objects.get(workspace=workspace)
    assert (mass.command, mass.target) == ("mass_message_task", f"staff:{owner.pk}")
    assert mass.payload == {"chat_type": "single", "text": "李雷，您好！本周新品上架", "external_userids": task.detail["external_ids"]}

    # when the staff member marks it done, the pull-back marks the delivery sent
    do_close_staff_task(task, owner)
    assert do_sync_mass_tasks(workspace) == {"sent": 1, "cancelled": 0}
    delivery.refresh_from_db()
    assert delivery.status == "sent"
    assert delivery.sent_at == StaffTask.objects.get(pk=task.pk).done_at


def test_a_dismissed_mass_task_releases_the_slot(workspace, owner, wecomish, reachable, awake):
    contact = reachable(wecomish)
    delivery = do_send_to_contact(workspace, contact=contact, content=HELLO, message_class="marketing", source="test", idempotency_key="w2")

    do_close_staff_task(StaffTask.objects.get(workspace=workspace), owner, status="dismissed")
    do_sync_mass_tasks(workspace)

    delivery.refresh_from_db()
    assert (delivery.status, delivery.slot_at, delivery.rule) == ("cancelled", None, "staff_dismissed")


def test_a_contact_at_the_wecom_monthly_limit_is_deferred_with_the_reason(workspace, wecomish, reachable):
    # given 30 notices counted for one customer in November 2030 (a 30-day month)
    contact = reachable(wecomish)
    for day in range(1, 31):
        do_send_to_contact(workspace, contact=contact, content={"kind": "text", "text": "订单通知"}, message_class="notice",
                           source="orders", idempotency_key=f"n{day}", at=shanghai(2030, 11, day, 10))

    # when a marketing message is asked for on 30 November
    delivery = do_send_to_contact(workspace, contact=contact, content=HELLO, message_class="marketing", source="broadcast:1",
                                  idempotency_key="m1", at=shanghai(2030, 11, 30, 10))

    # then it is deferred to 1 December at 08:00 (midnight is inside the quiet hours)
    assert delivery.status == "deferred"
    assert delivery.rule == "wecom.monthly_mass"
    assert delivery.reason == "wecom allows 30 mass messages per customer per month (2030-11-01–2030-11-30); 30 already counted"
    assert delivery.planned_for == shanghai(2030, 12, 1, 8)
    assert delivery.slot_at is None
    assert check(workspace, contact=contact, message_class="marketing", at=shanghai(2030, 11, 30, 11)).rule == "wecom.monthly_mass"

    # and when it is due, the ledger lets it through and it joins a staff task
    assert do_send_due_deliveries(now=shanghai(2030, 12, 1, 8)) == {"dispatched": 30, "sent": 1, "deferred": 0, "skipped": 0}
    delivery.refresh_from_db()
    assert (delivery.status, delivery.slot_at) == ("queued", shanghai(2030, 12, 1, 8))
    assert delivery.staff_task is not None
    assert [d["rule"] for d in delivery.decisions] == ["wecom.monthly_mass", ""]


def test_a_contact_at_the_brand_cap_is_deferred_with_the_reason(workspace, sandbox, reachable):
    contact = reachable(sandbox)
    for day, key in ((4, "a"), (6, "b")):
        do_send_to_contact(workspace, contact=contact, content=HELLO, message_class="marketing", source="s", idempotency_key=key,
                           at=shanghai(2030, 11, day, 10))

    delivery = do_send_to_contact(workspace, contact=contact, content=HELLO, message_class="marketing", source="s", idempotency_key="c",
                                  at=shanghai(2030, 11, 8, 10))

    assert (delivery.status, delivery.rule, delivery.planned_for) == ("deferred", "brand.weekly_cap", shanghai(2030, 11, 11, 10))
    assert delivery.reason == "brand cap per contact: at most 2 in 7 days; 2 in the last 7 days"


def test_a_send_whose_next_slot_comes_after_it_expires_is_skipped_not_dropped(workspace, sandbox, reachable):
    contact = reachable(sandbox)
    do_set_quota_policy(workspace, None, contact_marketing_cap=1)
    do_send_to_contact(workspace, contact=contact, content=HELLO, message_class="marketing", source="s", idempotency_key="a",
                       at=shanghai(2030, 11, 4, 10))

    delivery = do_send_to_contact(workspace, contact=contact, content=HELLO, message_class="marketing", source="s", idempotency_key="b",
                                  at=shanghai(2030, 11, 5, 10), expires_at=shanghai(2030, 11, 5, 12))

    assert (delivery.status, delivery.rule, delivery.planned_for) == ("skipped", "brand.weekly_cap", None)
    assert delivery.reason == (
        "brand cap per contact: at most 1 in 7 days; 1 in the last 7 days; no slot before 2030-11-05 04:00 UTC"
    )


def test_without_consent_or_a_channel_the_send_is_skipped_with_the_reason(workspace, sandbox, reachable):
    no_consent = reachable(sandbox, consent=False)
    unreachable = make_contact(workspace)

    a = do_send_to_contact(workspace, contact=no_consent, content=HELLO, message_class="marketing", source="s", idempotency_key="a")
    b = do_send_to_contact(workspace, contact=unreachable, content=HELLO, message_class="marketing", source="s", idempotency_key="b")

    assert (a.status, a.rule, a.reason) == ("skipped", "consent", "no marketing consent from this contact")
    assert (b.status, b.rule, b.reason) == ("skipped", "no_channel", "the contact has no identity on an active channel")
    assert SandboxDelivery.objects.count() == 0


def test_a_group_post_goes_out_directly_on_the_sandbox_and_as_an_owner_task_on_wecom(
    workspace, owner, sandbox, wecomish, connected_group, django_capture_on_commit_callbacks
):
    direct_group = connected_group(sandbox, name="福利群")
    wecom_group = connected_group(wecomish, name="会员群")
    post = {"kind": "text", "text": "{group} 早报"}

    direct = do_send_to_group(workspace, group=direct_group, content=post, message_class="marketing", source="s", idempotency_key="g1",
                              at=shanghai(2030, 11, 4, 9))
    task = do_send_to_group(workspace, group=wecom_group, content=post, message_class="marketing", source="s", idempotency_key="g2",
                            at=shanghai(2030, 11, 4, 9))

    # a future time: both hold their slot until it comes
    assert (direct.status, task.status) == ("queued", "queued")
    with django_capture_on_commit_callbacks(execute=True):
        do_send_due_deliveries(now=shanghai(2030, 11, 4, 9))
    direct.refresh_from_db()
    task.refresh_from_db()
    assert direct.status == "sent"
    assert SandboxDelivery.objects.get(target=direct_group.external_id).payload == {"kind": "text", "text": "福利群 早报", "to": "group"}
    assert task.status == "queued"
    staff_task = StaffTask.objects.get(kind="mass_message")
    assert (staff_task.assignee, staff_task.detail["chat_type"], staff_task.detail["external_ids"]) == (owner, "group", [wecom_group.external_id])


def test_unknown_message_classes_and_other_workspaces_contacts_are_refused(workspace, sandbox, reachable):
    contact = reachable(sandbox)
    other = make_workspace()

    with pytest.raises(ValidationFailed, match="unknown message class 'spam'"):
        do_send_to_contact(workspace, contact=contact, content=HELLO, message_class="spam", source="s", idempotency_key="x")
    with pytest.raises(NotFound):
        do_send_to_contact(other, contact=contact, content=HELLO, message_class="marketing", source="s", idempotency_key="x")


def test_a_material_is_rendered_per_contact(workspace, owner, sandbox, reachable, awake):
    material = do_create_material(workspace, owner, name="新品", kind="link", text="{name}，{staff}给您挑了新品",
                                  data={"title": "{name}的专属推荐", "url": "https://shop.example.com/new", "desc": "限时"})
    contact = reachable(sandbox, name="韩梅梅")

    delivery = do_send_to_contact(workspace, contact=contact, content=material, message_class="marketing", source="s", idempotency_key="m")

    assert delivery.content == {
        "kind": "link", "text": "韩梅梅，店长给您挑了新品", "material_id": material.pk,
        "link": {"title": "韩梅梅的专属推荐", "desc": "限时", "url": "https://shop.example.com/new", "cover": ""},
    }


@pytest.mark.django_db(transaction=True)
def test_two_senders_racing_for_the_last_slot_of_a_contact_send_exactly_one(workspace, sandbox, reachable):
    # given a contact with one of its two weekly marketing slots used
    contact = reachable(sandbox)
    do_send_to_contact(workspace, contact=contact, content=HELLO, message_class="marketing", source="s", idempotency_key="first",
                       at=shanghai(2030, 11, 4, 10))
    errors: list[BaseException] = []

    def send(i: int) -> None:
        try:
            fresh = Contact.objects.get(pk=contact.pk)
            do_send_to_contact(workspace, contact=fresh, content=HELLO, message_class="marketing", source=f"sender{i}",
                               idempotency_key=f"race{i}", at=shanghai(2030, 11, 5, 10), expires_at=shanghai(2030, 12, 1))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    # when eight senders race for the last slot
    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # then exactly one takes it and the others are deferred
    assert errors == []
    statuses = sorted(Delivery.objects.filter(idempotency_key__startswith="race").values_list("status", flat=True))
    assert statuses == ["deferred"] * 7 + ["queued"]
    assert dt.timedelta(0) <= Delivery.objects.get(status="queued", idempotency_key__startswith="race").slot_at - shanghai(2030, 11, 5, 10) < dt.timedelta(seconds=1)


@pytest.mark.django_db(transaction=True)
def test_on_real_wecom_the_task_is_created_through_the_api_and_the_results_are_pulled_back(workspace, owner):
    # given a WeCom account (answering like the documentation) that knows the owner's userid
    from siyu.channels.wecom.actions import do_connect_wecom
    from siyu.channels.wecom.testing import FakeWeCom
    from siyu.contacts.actions import do_add_identity, do_set_consent
    from siyu.outreach.actions import do_pull_wecom_mass_results

    fake = FakeWeCom()
    with fake.serve() as api_base:
        account = do_connect_wecom(workspace, None, corp_id="ID", agent_id=1000002, secret="SECRET", token="QDG6eK",
                                   aes_key="jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", api_base=api_base)
        account.config = {**account.config, "staff_userids": {str(owner.pk): "zhangsan"}}
        account.save(update_fields=["config"])
        do_set_quota_policy(workspace, None, quiet_start="00:00", quiet_end="00:00")
        contact = make_contact(workspace, owner=owner)
        do_add_identity(contact, None, account=account, external_id="wmqfasd1e19278asdasAAAA")
        do_set_consent(contact, None, purpose="marketing", granted=True)

        # when a marketing message is sent: WeCom gets a mass-message task for zhangsan
        delivery = do_send_to_contact(workspace, contact=contact, content=HELLO, message_class="marketing", source="s", idempotency_key="real")
        [call] = fake.calls("/cgi-bin/externalcontact/add_msg_template")
        assert call.body == {"chat_type": "single", "external_userid": ["wmqfasd1e19278asdasAAAA"], "sender": "zhangsan",
                             "text": {"content": f"{contact.name}，您好！本周新品上架"}}
        delivery.refresh_from_db()
        assert delivery.status == "queued"

        # and after staff confirmed it in WeCom, the result comes back from the API
        fake.script("/cgi-bin/externalcontact/get_groupmsg_send_result", {
            "errcode": 0, "errmsg": "ok", "next_cursor": "",
            "send_list": [{"external_userid": "wmqfasd1e19278asdasAAAA", "userid": "zhangsan", "status": 1, "send_time": 1552536375}],
        })
        assert do_pull_wecom_mass_results(workspace) == {"sent": 1, "skipped": 0, "waiting": 0}

    delivery.refresh_from_db()
    assert (delivery.status, delivery.sent_at) == ("sent", dt.datetime.fromtimestamp(1552536375, tz=dt.UTC))
    [result_call] = fake.calls("/cgi-bin/externalcontact/get_groupmsg_send_result")
    assert result_call.body == {"msgid": "msgGCAAAXtWyujaWJHDDGi0mAAAA", "userid": "zhangsan", "limit": 1000}


def test_the_audit_finds_no_breach_after_sending_and_names_one_after_a_stricter_policy(workspace, sandbox, reachable):
    from siyu.outreach.quota import audit

    contact = reachable(sandbox)
    for day in (4, 6, 8, 9):
        do_send_to_contact(workspace, contact=contact, content=HELLO, message_class="marketing", source="s", idempotency_key=f"a{day}",
                           at=shanghai(2030, 11, day, 10), expires_at=shanghai(2030, 12, 31))
    assert audit(workspace) == []

    do_set_quota_policy(workspace, None, contact_marketing_cap=1)

    assert audit(workspace) == [f"contact {contact.pk}: brand cap 2 > 1 from 2030-11-04T02:00:00+00:00"]
