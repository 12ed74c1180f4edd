import pytest
from django.test import Client

from siyu.acquisition.actions import (
    do_add_code_group,
    do_add_code_staff,
    do_create_live_code,
    do_record_arrival,
    do_set_live_code_status,
)
from siyu.acquisition.models import Scan
from siyu.channels.handlers import split_state
from siyu.communities.actions import do_create_group
from siyu.contacts.models import ContactEvent
from siyu.core.testing import make_contact, make_staff, make_tag
from siyu.moderation.qr import decode_qr

pytestmark = pytest.mark.django_db


def test_a_scan_renders_the_target_and_sets_a_signed_visitor_cookie(workspace, owner, channel):
    code = do_create_live_code(workspace, owner, channel=channel, name="进群", kind="group", auto_create_groups=False)
    do_add_code_group(code, owner, group=do_create_group(workspace, owner, name="福利一群"))
    client = Client(HTTP_USER_AGENT="MicroMessenger/8.0")

    first = client.get(f"/c/{code.code}")
    second = client.get(f"/c/{code.code}")

    assert (first.status_code, second.status_code) == (200, 200)
    assert "加入「福利一群」" in first.content.decode()
    assert f"lc:{code.code}" in first.content.decode()
    scans = list(Scan.objects.filter(live_code=code).order_by("id").values_list("outcome", "user_agent", "visitor_key"))
    assert [s[:2] for s in scans] == [("group", "MicroMessenger/8.0"), ("repeat", "MicroMessenger/8.0")]
    assert scans[0][2] == scans[1][2] and len(scans[0][2]) > 16


def test_a_target_with_a_platform_qr_is_a_redirect(workspace, owner, channel):
    code = do_create_live_code(workspace, owner, channel=channel, name="加好友", kind="staff")
    slot = do_add_code_staff(code, owner, staff=make_staff(workspace))
    slot.qr_url = "https://wework.qpic.cn/wwpic/abc"
    slot.save(update_fields=["qr_url"])

    response = Client().get(f"/c/{code.code}")

    assert (response.status_code, response["Location"]) == (302, "https://wework.qpic.cn/wwpic/abc")


def test_unknown_paused_and_expired_codes_get_friendly_pages(workspace, owner, channel):
    code = do_create_live_code(workspace, owner, channel=channel, name="加好友", kind="staff")
    client = Client()
    unknown = client.get("/c/zzzzzzzz")
    exhausted = client.get(f"/c/{code.code}")
    do_set_live_code_status(code, owner, status="paused")
    paused = client.get(f"/c/{code.code}")
    results = [(r.status_code, r.content.decode()) for r in (unknown, exhausted, paused)]
    assert [(status, title in body) for (status, body), title in zip(results, ["二维码不存在", "名额已满", "暂停使用"], strict=True)] == [
        (404, True), (503, True), (503, True)
    ]


def test_the_png_qr_decodes_to_the_public_url(workspace, owner, channel):
    code = do_create_live_code(workspace, owner, channel=channel, name="加好友", kind="staff")

    response = Client().get(f"/c/{code.code}.png", {"i": "abc123"})

    assert (response.status_code, response["Content-Type"]) == (200, "image/png")
    assert decode_qr(response.content) == [f"http://testserver/c/{code.code}?i=abc123"]
    assert Client().get("/c/zzzzzzzz.png").status_code == 404


def test_split_state_resolves_live_code_states_and_keeps_the_old_format(workspace, owner, channel):
    code = do_create_live_code(workspace, owner, channel=channel, name="加好友", kind="staff")
    assert len(code.state) <= 30
    assert split_state(code.state) == ("parcel", "")
    assert split_state("store:spring") == ("store", "spring")
    assert split_state("lc:unknown") == ("lc", "unknown")


def test_an_arrival_links_the_scan_tags_the_contact_and_is_idempotent(workspace, owner, channel):
    vip = make_tag(workspace, "包裹卡客户", group="来源")
    channel.tags.set([vip])
    code = do_create_live_code(workspace, owner, channel=channel, name="加好友", kind="staff")
    do_add_code_staff(code, owner, staff=make_staff(workspace))
    Client().get(f"/c/{code.code}")
    scan = Scan.objects.get(live_code=code)
    contact = make_contact(workspace, "新客", source_channel="parcel")

    linked = do_record_arrival(contact, state=code.state)
    again = do_record_arrival(contact, state=code.state)

    assert linked is not None
    assert (linked.pk, again) == (scan.pk, None)
    assert Scan.objects.get(pk=scan.pk).contact_id == contact.pk
    assert [link.tag.name for link in contact.tag_links.all()] == ["包裹卡客户"]
    assert ContactEvent.objects.filter(contact=contact, kind="scan").count() == 1
