"""The WeCom adapter: honest capabilities, commands → documented API calls, errcodes →
SendResult, and the outbox recording them (against the loopback fake server)."""

import datetime as dt

import pytest
from django.utils import timezone

from siyu.channels.base import Capability, Command, CommandKind, UnsupportedCommand
from siyu.channels.models import OutboxMessage, OutboxStatus
from siyu.channels.outbox import deliver, do_enqueue
from siyu.channels.registry import adapter_for
from siyu.channels.wecom.adapter import WeComAdapter
from siyu.channels.wecom.testing import api_fixture

pytestmark = pytest.mark.django_db

WELCOME_PATH = "/cgi-bin/externalcontact/send_welcome_msg"


def welcome(code="WC1", *, expires_in=15.0, text="你好"):
    expires = (timezone.now() + dt.timedelta(seconds=expires_in)).isoformat()
    return Command(
        CommandKind.SEND_WELCOME, f"welcome:{code}", "wmCustomer", {"welcome_code": code, "text": text, "expires_at": expires}
    )


@pytest.fixture
def adapter(connect_wecom, fake):
    return WeComAdapter(connect_wecom(), transport=fake.transport(), sleep=lambda s: None)


def test_the_registry_serves_wecom_accounts_with_the_wecom_adapter(connect_wecom):
    assert isinstance(adapter_for(connect_wecom()), WeComAdapter)


def test_capabilities_are_what_a_self_built_app_can_really_do(adapter):
    assert adapter.capabilities == frozenset(
        {
            Capability.SEND_WELCOME,
            Capability.MASS_MESSAGE_TASK,
            Capability.CREATE_CONTACT_CODE,
            Capability.CREATE_GROUP_CODE,
            Capability.SYNC_TAGS,
            Capability.TRANSFER_CUSTOMERS,
        }
    )
    for missing in (
        Capability.SEND_DIRECT_MESSAGE,
        Capability.SEND_GROUP_MESSAGE,
        Capability.REMOVE_MEMBER,
        Capability.DELETE_MESSAGE,
        Capability.READ_GROUP_MESSAGES,
        Capability.BAN_MEMBER,
    ):
        assert not adapter.can(missing)
    with pytest.raises(UnsupportedCommand):
        adapter.check(Command(CommandKind.REMOVE_MEMBER, "k", "wrChat", {"member": "wm1"}))


def test_send_welcome_calls_send_welcome_msg_with_the_code_and_text(adapter, fake):
    result = adapter.send(welcome("CALLBACK_CODE", text="文本消息内容"))
    assert result.ok
    assert [call.body for call in fake.calls(WELCOME_PATH)] == [
        {"welcome_code": "CALLBACK_CODE", "text": {"content": "文本消息内容"}}
    ]


def test_an_expired_welcome_code_is_refused_without_calling_wecom(adapter, fake):
    result = adapter.send(welcome(expires_in=-1))
    assert (result.ok, result.error_code, result.transient) == (False, "welcome_code_expired", False)
    assert fake.requests == []


def test_mass_message_task_creates_a_template_and_keeps_its_msgid(adapter, fake):
    command = Command(
        CommandKind.MASS_MESSAGE_TASK,
        "mass:1",
        "zhangsan",
        {"external_userids": ["woAJ2GCAAAXtWyujaWJHDDGi0mACAAAA"], "text": "周六 20:00 抢购"},
    )
    result = adapter.send(command)
    assert (result.ok, result.external_id) == (True, api_fixture("add_msg_template")["response"]["msgid"])
    assert fake.calls("/cgi-bin/externalcontact/add_msg_template")[0].body == {
        "chat_type": "single",
        "external_userid": ["woAJ2GCAAAXtWyujaWJHDDGi0mACAAAA"],
        "sender": "zhangsan",
        "text": {"content": "周六 20:00 抢购"},
    }


def test_mark_tags_calls_mark_tag_for_the_customer(adapter, fake):
    result = adapter.send(Command(CommandKind.MARK_TAGS, "tags:1", "wmCustomer", {"userid": "zhangsan", "add_tag": ["etVIP"]}))
    assert result.ok
    assert fake.calls("/cgi-bin/externalcontact/mark_tag")[0].body == {
        "userid": "zhangsan",
        "external_userid": "wmCustomer",
        "add_tag": ["etVIP"],
    }


@pytest.mark.parametrize(
    ("errcode", "transient", "retry_after"),
    [(-1, True, None), (45009, True, 60.0), (45033, True, 60.0), (40003, False, None), (41051, False, None)],
)
def test_errcodes_become_send_results(adapter, fake, errcode, transient, retry_after):
    fake.script(WELCOME_PATH, *[{"errcode": errcode, "errmsg": f"err {errcode}"}] * 3)
    result = adapter.send(welcome())
    assert (result.ok, result.error_code, result.error, result.transient, result.retry_after) == (
        False,
        str(errcode),
        f"err {errcode}",
        transient,
        retry_after,
    )


def test_an_unreachable_wecom_is_a_transient_network_error(connect_wecom):
    adapter = WeComAdapter(connect_wecom(api_base="http://127.0.0.1:9/cgi-bin"), sleep=lambda s: None)
    result = adapter.send(welcome())
    assert (result.ok, result.error_code, result.transient) == (False, "network_error", True)


def test_an_account_whose_secret_cannot_be_decrypted_fails_permanently(connect_wecom, fake):
    account = connect_wecom()
    account.config = {**account.config, "secret_enc": "not-a-fernet-token"}
    result = WeComAdapter(account, transport=fake.transport()).send(welcome())
    assert (result.ok, result.error_code, result.transient) == (False, "wecom_not_configured", False)
    assert "secret" in result.error


def test_fetch_group_normalises_groupchat_get(adapter, fake):
    group = adapter.fetch_group("wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA")
    assert fake.calls("/cgi-bin/externalcontact/groupchat/get")[0].body == {
        "chat_id": "wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA",
        "need_name": 1,
    }
    joined = dt.datetime.fromtimestamp(1572505491, tz=dt.UTC)
    assert group == {
        "group_id": "wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA",
        "name": "销售客服群",
        "owner": "ZhuShengBen",
        "members": [
            {
                "member_id": "abel",
                "name": "张三丰",
                "is_staff": True,
                "joined_at": joined,
                "join_source": "invited",
                "state": "",
                "unionid": "",
            },
            {
                "member_id": "wmOgQhDgAAuXFJGwbve4g4iyTAAAAAAA",
                "name": "王语嫣",
                "is_staff": False,
                "joined_at": joined,
                "join_source": "invited",
                "state": "",
                "unionid": "ozynqsulJFCZ2z1aYeS8h-nuasdAAA",
            },
        ],
    }


def test_live_codes_and_transfers_go_through_the_documented_apis(adapter, fake):
    code = adapter.create_contact_code(state="parcel_card:spring", users=["zhangsan"])
    assert code == {
        "config_id": "42b34949e138eb6e027c123cba77fAAA",
        "qr_code": "http://p.qpic.cn/wwhead/duc2TvpEgSdicZ9RrdUtBkv2UiaA/0",
    }
    assert fake.calls("/cgi-bin/externalcontact/add_contact_way")[0].body == {
        "type": 1,
        "scene": 2,
        "skip_verify": True,
        "state": "parcel_card:spring",
        "user": ["zhangsan"],
    }
    assert adapter.create_group_code(state="flash", chat_ids=["wr1", "wr2"]) == "9ad7fa5cdaa6511298498f979c472aaa"
    results = adapter.transfer_customers("zhangsan", "lisi", ["woAJ2GCAAAXtWyujaWJHDDGi0mACAAAA"], resigned=True)
    assert results == api_fixture("resigned_transfer_customer")["response"]["customer"]


@pytest.mark.django_db(transaction=True)
def test_the_outbox_records_a_permanent_wecom_error_with_its_code(connect_wecom, fake):
    with fake.serve() as api_base:
        account = connect_wecom(api_base=api_base)
        fake.script(WELCOME_PATH, {"errcode": 40003, "errmsg": "invalid external userid"})
        row, _ = do_enqueue(account, welcome("WC9"))
    row.refresh_from_db()
    assert (row.status, row.error_code, row.error, row.attempts) == (OutboxStatus.FAILED, "40003", "invalid external userid", 1)


@pytest.mark.django_db(transaction=True)
def test_the_outbox_retries_a_rate_limited_send_later(connect_wecom, fake):
    with fake.serve() as api_base:
        account = connect_wecom(api_base=api_base)
        fake.script(WELCOME_PATH, *[{"errcode": 45009, "errmsg": "api freq out of limit"}] * 3)
        row, _ = do_enqueue(account, welcome("WC10"))
        row.refresh_from_db()
        assert (row.status, row.error_code, row.attempts) == (OutboxStatus.PENDING, "45009", 1)
        assert row.next_attempt_at >= timezone.now() + dt.timedelta(seconds=55)  # WeCom blocks for 60 s
        OutboxMessage.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())
        assert deliver(row.pk) == OutboxStatus.SENT
    assert len(fake.calls(WELCOME_PATH)) == 4
