"""The API client against the recorded fixtures (fixtures/api): every method sends the
documented method, path, query and body, and reads the documented answer. Token
handling, retries and the documented limits are exercised through the fake server."""

import logging

import httpx
import pytest

from siyu.channels.wecom.client import RateLimiter, WeComApiError, WeComClient, WeComNetworkError
from siyu.channels.wecom.limits import LIMITS, RateLimit, limit
from siyu.channels.wecom.testing import FakeWeCom, api_fixture, api_fixture_names
from siyu.core.errors import ValidationFailed

ATTACHMENTS = api_fixture("send_welcome_msg")["request"]["attachments"]
CONCLUSIONS = api_fixture("add_contact_way")["request"]["conclusions"]
TRANSFER_TO_LISI = "您好，您的服务已升级，后续将由我的同事李四@腾讯接替我的工作，继续为您服务。"


def make_client(fake: FakeWeCom, sleeps: list[float] | None = None, **kw) -> WeComClient:
    # corp id "ID" and secret "SECRET" are the documented gettoken example values
    recorded = sleeps if sleeps is not None else []
    return WeComClient("ID", "SECRET", transport=fake.transport(), sleep=recorded.append, **kw)


#: fixture name → (call reproducing the documented request, what the method returns)
CALLS = {
    "get_corp_tag_list": (
        lambda c: c.get_corp_tag_list(
            tag_ids=["etXXXXXXXXXX", "etYYYYYYYYYY"], group_ids=["etZZZZZZZZZZZZZ", "etYYYYYYYYYYYYYY"]
        ),
        lambda r: r["tag_group"],
    ),
    "add_corp_tag": (
        lambda c: c.add_corp_tag(
            group_id="GROUP_ID",
            group_name="GROUP_NAME",
            order=1,
            agentid=1000014,
            tags=[{"name": "TAG_NAME_1", "order": 1}, {"name": "TAG_NAME_2", "order": 2}],
        ),
        lambda r: r["tag_group"],
    ),
    "edit_corp_tag": (lambda c: c.edit_corp_tag("TAG_ID", name="NEW_TAG_NAME", order=1, agentid=1000014), lambda r: None),
    "del_corp_tag": (
        lambda c: c.del_corp_tag(tag_ids=["TAG_ID_1", "TAG_ID_2"], group_ids=["GROUP_ID_1", "GROUP_ID_2"], agentid=1000014),
        lambda r: None,
    ),
    "mark_tag": (
        lambda c: c.mark_tag(
            "zhangsan", "woAJ2GCAAAd1NPGHKSD4wKmE8Aabj9AAA", add_tag=["TAGID1", "TAGID2"], remove_tag=["TAGID3", "TAGID4"]
        ),
        lambda r: None,
    ),
    "list_external_contacts": (lambda c: c.list_external_contacts("USERID"), lambda r: r["external_userid"]),
    "get_external_contact": (lambda c: c.get_external_contact("EXTERNAL_USERID", cursor="CURSOR"), lambda r: r),
    "add_contact_way": (
        lambda c: c.add_contact_way(
            type=1,
            scene=1,
            style=1,
            remark="渠道客户",
            skip_verify=True,
            state="teststate",
            user=["zhangsan", "lisi", "wangwu"],
            party=[2, 3],
            is_temp=True,
            expires_in=86400,
            chat_expires_in=86400,
            unionid="oxTWIuGaIt6gTKsQRLau2M0AAAA",
            conclusions=CONCLUSIONS,
        ),
        lambda r: {"config_id": r["config_id"], "qr_code": r["qr_code"]},
    ),
    "update_contact_way": (
        lambda c: c.update_contact_way(
            "42b34949e138eb6e027c123cba77fAAA",
            remark="渠道客户",
            skip_verify=True,
            style=1,
            state="teststate",
            user=["UserID1", "UserID2", "UserID3"],
            party=[2, 3],
            expires_in=86400,
            chat_expires_in=86400,
            unionid="oxTWIuGaIt6gTKsQRLau2M0AAAA",
            conclusions=CONCLUSIONS,
        ),
        lambda r: None,
    ),
    "del_contact_way": (lambda c: c.del_contact_way("42b34949e138eb6e027c123cba77fAAA"), lambda r: None),
    "add_join_way": (
        lambda c: c.add_join_way(
            scene=2,
            remark="aa_remark",
            auto_create_room=1,
            room_base_name="销售客服群",
            room_base_id=10,
            chat_id_list=["wrOgQhDgAAH2Yy-CTZ6POca8mlBEdaaa", "wrOgQhDgAALPUthpRAKvl7mgiQRwAAA"],
            state="klsdup3kj3s1",
        ),
        lambda r: r["config_id"],
    ),
    "update_join_way": (
        lambda c: c.update_join_way(
            "9ad7fa5cdaa6511298498f979c472aaa",
            scene=2,
            remark="bbbb",
            auto_create_room=1,
            room_base_name="销售客服群",
            room_base_id=10,
            state="klsdup3kj3s1",
            chat_id_list=["wrOgQhDgAAH2Yy-CTZ6POca8mlBEdaaa", "wrOgQhDgAALPUthpRAKvl7mgiQRwAAA"],
        ),
        lambda r: None,
    ),
    "list_groupchats": (
        lambda c: c.list_groupchats(
            status_filter=0, owner_userids=["abel"], cursor="r9FqSqsI8fgNbHLHE5QoCP50UIg2cFQbfma3l2QsmwI", limit_=10
        ),
        lambda r: (r["group_chat_list"], r["next_cursor"]),
    ),
    "get_groupchat": (lambda c: c.get_groupchat("wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA", need_name=True), lambda r: r["group_chat"]),
    "send_welcome_msg": (
        lambda c: c.send_welcome_msg("CALLBACK_CODE", text="文本消息内容", attachments=ATTACHMENTS),
        lambda r: None,
    ),
    "add_msg_template": (
        lambda c: c.add_msg_template(
            chat_type="single",
            external_userids=["woAJ2GCAAAXtWyujaWJHDDGi0mACAAAA", "wmqfasd1e1927831123109rBAAAA"],
            sender="zhangsan",
            allow_select=False,
            text="文本消息内容",
            attachments=ATTACHMENTS,
        ),
        lambda r: {"msgid": r["msgid"], "fail_list": r["fail_list"]},
    ),
    "get_groupmsg_task": (
        lambda c: c.get_groupmsg_task("msgGCAAAXtWyujaWJHDDGi0mACAAAA", cursor="CURSOR", limit_=50),
        lambda r: (r["task_list"], r["next_cursor"]),
    ),
    "get_groupmsg_send_result": (
        lambda c: c.get_groupmsg_send_result("msgGCAAAXtWyujaWJHDDGi0mACAAAA", "zhangsan", cursor="CURSOR", limit_=50),
        lambda r: (r["send_list"], r["next_cursor"]),
    ),
    "transfer_customer": (
        lambda c: c.transfer_customer(
            "zhangsan",
            "lisi",
            ["woAJ2GCAAAXtWyujaWJHDDGi0mACAAAA", "woAJ2GCAAAXtWyujaWJHDDGi0mACBBBB"],
            transfer_success_msg=TRANSFER_TO_LISI,
        ),
        lambda r: r["customer"],
    ),
    "resigned_transfer_customer": (
        lambda c: c.resigned_transfer_customer(
            "zhangsan", "lisi", ["woAJ2GCAAAXtWyujaWJHDDGi0mACAAAA", "woAJ2GCAAAXtWyujaWJHDDGi0mACBBBB"]
        ),
        lambda r: r["customer"],
    ),
}


def test_every_recorded_api_has_a_client_call():
    assert sorted([*CALLS, "gettoken"]) == api_fixture_names()


@pytest.mark.parametrize("name", sorted(CALLS))
def test_each_method_sends_the_documented_request_and_reads_the_documented_answer(fake, name):
    fixture = api_fixture(name)
    call, expected = CALLS[name]
    with make_client(fake) as client:
        result = call(client)
    assert [(r.method, r.path) for r in fake.requests] == [("GET", "/cgi-bin/gettoken"), (fixture["method"], fixture["path"])]
    sent = fake.requests[1]
    assert sent.query == {**fixture["query"], "access_token": "accesstoken000001"}
    assert sent.body == fixture["request"]
    assert result == expected(fixture["response"])


def test_gettoken_sends_the_documented_query_and_the_token_is_cached(fake):
    with make_client(fake) as client:
        client.list_external_contacts("USERID")
        client.list_external_contacts("USERID")
    assert fake.requests[0].query == api_fixture("gettoken")["query"]
    assert [r.path for r in fake.requests].count("/cgi-bin/gettoken") == 1


def test_the_token_cache_is_shared_by_clients_of_the_same_app(fake):
    with make_client(fake) as first, make_client(fake) as second:
        first.list_external_contacts("USERID")
        second.list_external_contacts("USERID")
    assert [r.path for r in fake.requests].count("/cgi-bin/gettoken") == 1


def test_an_expired_token_is_refreshed_once_and_the_call_retried(fake):
    with make_client(fake) as client:
        client.list_external_contacts("USERID")
        fake.expire_token()
        assert client.list_external_contacts("USERID") == api_fixture("list_external_contacts")["response"]["external_userid"]
    paths = [(r.path, r.query.get("access_token")) for r in fake.requests]
    assert paths == [
        ("/cgi-bin/gettoken", None),
        ("/cgi-bin/externalcontact/list", "accesstoken000001"),
        ("/cgi-bin/externalcontact/list", "accesstoken000001"),  # answered 42001
        ("/cgi-bin/gettoken", None),
        ("/cgi-bin/externalcontact/list", "accesstoken000002"),
    ]


def test_a_token_rejected_twice_is_an_error_not_a_loop(fake):
    fake.script(
        "/cgi-bin/externalcontact/list",
        {"errcode": 40014, "errmsg": "invalid access_token"},
        {"errcode": 40014, "errmsg": "invalid access_token"},
    )
    with make_client(fake) as client, pytest.raises(WeComApiError) as caught:
        client.list_external_contacts("USERID")
    assert caught.value.errcode == 40014
    assert [r.path for r in fake.requests].count("/cgi-bin/gettoken") == 2


@pytest.mark.parametrize("errcode", [-1, 45009, 45033])
def test_busy_and_rate_limited_calls_are_retried_with_backoff(fake, errcode):
    fake.script(
        "/cgi-bin/externalcontact/send_welcome_msg",
        {"errcode": errcode, "errmsg": "busy"},
        {"errcode": errcode, "errmsg": "busy"},
    )
    sleeps: list[float] = []
    with make_client(fake, sleeps) as client:
        client.send_welcome_msg("CALLBACK_CODE", text="hi")
    assert len(fake.calls("/cgi-bin/externalcontact/send_welcome_msg")) == 3
    assert sleeps == [0.5, 1.0]


def test_retries_stop_after_max_retries_with_the_platform_code(fake):
    fake.script("/cgi-bin/externalcontact/send_welcome_msg", *[{"errcode": 45009, "errmsg": "api freq out of limit"}] * 3)
    with make_client(fake) as client, pytest.raises(WeComApiError) as caught:
        client.send_welcome_msg("CALLBACK_CODE", text="hi")
    assert (caught.value.errcode, caught.value.errmsg, caught.value.transient) == (45009, "api freq out of limit", True)
    assert len(fake.calls("/cgi-bin/externalcontact/send_welcome_msg")) == 3


def test_permanent_errors_are_not_retried(fake):
    fake.script("/cgi-bin/externalcontact/mark_tag", {"errcode": 84061, "errmsg": "not external contact"})
    with make_client(fake) as client, pytest.raises(WeComApiError) as caught:
        client.mark_tag("zhangsan", "wmX", add_tag=["et1"])
    assert (caught.value.errcode, caught.value.transient) == (84061, False)
    assert len(fake.calls("/cgi-bin/externalcontact/mark_tag")) == 1


def test_a_wrong_secret_fails_at_gettoken():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"errcode": 40001, "errmsg": "invalid credential"})

    client = WeComClient("ID", "WRONG", transport=httpx.MockTransport(handler), sleep=lambda s: None)
    with client, pytest.raises(WeComApiError) as caught:
        client.list_external_contacts("USERID")
    assert (caught.value.errcode, caught.value.path) == (40001, "/gettoken")


def test_connect_errors_are_retried_even_for_non_idempotent_calls(fake):
    inner = fake.transport()
    failures = iter([True])

    def flaky(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("add_msg_template") and next(failures, False):
            raise httpx.ConnectError("refused", request=request)
        return inner.handle_request(request)

    client = WeComClient("ID", "SECRET", transport=httpx.MockTransport(flaky), sleep=lambda s: None)
    with client:
        assert client.add_msg_template(sender="zhangsan", text="hi")["msgid"] == "msgGCAAAXtWyujaWJHDDGi0mAAAA"


def test_a_broken_answer_to_a_non_idempotent_call_is_not_resent(fake):
    inner = fake.transport()

    def broken(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("add_msg_template"):
            raise httpx.ReadTimeout("no answer", request=request)
        return inner.handle_request(request)

    client = WeComClient("ID", "SECRET", transport=httpx.MockTransport(broken), sleep=lambda s: None)
    with client, pytest.raises(WeComNetworkError) as caught:
        client.add_msg_template(sender="zhangsan", text="hi")
    assert caught.value.maybe_delivered is True


def test_a_server_error_page_is_a_network_error():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>bad gateway</html>")

    client = WeComClient("ID", "SECRET", transport=httpx.MockTransport(handler), sleep=lambda s: None)
    with client, pytest.raises(WeComNetworkError, match="HTTP 502"):
        client.get_token()


# ------------------------------------------------------------ documented limits, checked before sending


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda c: c.add_contact_way(type=1, scene=2, user=["zhangsan"], state="x" * 31), "wecom_state_too_long"),
        (
            lambda c: c.add_join_way(scene=2, chat_id_list=[f"wr{i}" for i in range(6)], state="ok"),
            "wecom_join_way_too_many_chats",
        ),
        (lambda c: c.add_join_way(scene=2, chat_id_list=[]), "wecom_join_way_empty"),
        (lambda c: c.update_join_way("cfg", scene=2, chat_id_list=["wr1"], state="s" * 31), "wecom_state_too_long"),
        (lambda c: c.list_groupchats(limit_=1001), "wecom_invalid_limit"),
        (lambda c: c.send_welcome_msg("code", text=""), "wecom_empty_message"),
        (lambda c: c.send_welcome_msg("code", text="字" * 1334), "wecom_text_too_long"),
        (
            lambda c: c.add_msg_template(sender="s", text="hi", attachments=[{"msgtype": "file"}] * 10),
            "wecom_too_many_attachments",
        ),
        (lambda c: c.add_msg_template(chat_type="group", text="hi"), "wecom_mass_no_sender"),
        (lambda c: c.transfer_customer("a", "b", [f"wm{i}" for i in range(101)]), "wecom_transfer_too_many"),
        (lambda c: c.mark_tag("a", "wm1"), "wecom_nothing_to_mark"),
        (lambda c: c.add_corp_tag(group_name="g", tags=[{"name": "名" * 31}]), "wecom_tag_name_too_long"),
    ],
)
def test_requests_beyond_documented_limits_fail_before_anything_is_sent(fake, call, code):
    with make_client(fake) as client, pytest.raises(ValidationFailed) as caught:
        call(client)
    assert caught.value.code == code
    assert fake.requests == []


def test_limits_carry_their_documented_values_and_sources():
    assert (limit("contact_way.state_max_chars"), limit("join_way.chats_max"), limit("contact_way.quota")) == (30, 5, 500_000)
    assert (limit("welcome.code_ttl_seconds"), limit("mass.reminders_per_24h"), limit("groupchat.list_limit_max")) == (
        20,
        3,
        1000,
    )
    assert all(item.source for item in LIMITS.values())


def test_the_rate_limiter_waits_when_the_budget_is_spent():
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(clock=lambda: now[0], sleep=sleep)
    rate = RateLimit(calls=2, per_seconds=60.0, source="test")
    assert [limiter.acquire(("corp", "/x"), rate) for _ in range(2)] == [0.0, 0.0]
    assert limiter.acquire(("corp", "/x"), rate) == pytest.approx(30.0)
    assert limiter.acquire(("corp", "/other"), rate) == 0.0  # per API
    assert limiter.acquire(("corp2", "/x"), rate) == 0.0  # per corp
    assert waits == [pytest.approx(30.0)]


def test_the_secret_and_the_token_never_reach_the_logs(fake, caplog):
    caplog.set_level(logging.DEBUG)
    with make_client(fake) as client:
        client.list_external_contacts("USERID")
    assert "HTTP Request: GET" in caplog.text  # httpx still logs the call...
    assert "corpsecret=***" in caplog.text and "access_token=***" in caplog.text  # ...masked
    assert "SECRET" not in caplog.text and "accesstoken000001" not in caplog.text
