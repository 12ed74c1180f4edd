"""Documented callback XML (fixtures/callbacks) → normalised inbound events."""

import datetime as dt

import pytest

from siyu.channels.base import InboundKind
from siyu.channels.wecom.events import MAX_XML_BYTES, MalformedXml, parse_envelope, parse_xml, to_inbound
from siyu.channels.wecom.testing import callback_xml

CREATED = dt.datetime(2014, 6, 24, 11, 48, 33, tzinfo=dt.UTC)  # CreateTime 1403610513
EXTERNAL = "woAJ2GCAAAXtWyujaWJHDDGi0mACAAAA"


def event(name):
    return to_inbound(parse_xml(callback_xml(name)))


@pytest.mark.parametrize(
    ("fixture", "kind", "data"),
    [
        (
            "add_external_contact",
            InboundKind.CONTACT_ADDED,
            {"external_id": EXTERNAL, "staff_id": "zhangsan", "state": "teststate", "welcome_code": "WELCOMECODE"},
        ),
        (
            "add_half_external_contact",
            InboundKind.CONTACT_ADDED,
            {"external_id": EXTERNAL, "staff_id": "zhangsan", "state": "teststate", "welcome_code": "WELCOMECODE", "half": True},
        ),
        ("edit_external_contact", InboundKind.CONTACT_UPDATED, {"external_id": EXTERNAL, "staff_id": "zhangsan"}),
        (
            "del_external_contact",
            InboundKind.CONTACT_DELETED,
            {"external_id": EXTERNAL, "staff_id": "zhangsan", "by": "staff", "source": "DELETE_BY_TRANSFER"},
        ),
        ("del_follow_user", InboundKind.CONTACT_DELETED, {"external_id": EXTERNAL, "staff_id": "zhangsan", "by": "customer"}),
        (
            "transfer_fail",
            InboundKind.TRANSFER_FAILED,
            {"external_id": EXTERNAL, "staff_id": "zhangsan", "fail_reason": "customer_refused"},
        ),
        ("external_chat_create", InboundKind.GROUP_CREATED, {"group_id": "CHAT_ID"}),
        (
            "external_chat_update",
            InboundKind.GROUP_UPDATED,
            {
                "group_id": "CHAT_ID",
                "change": "add_member",
                "join_scene": 1,
                "quit_scene": 0,
                "member_change_count": 10,
                "member_ids": ["Jack", "Rose"],
                "member_version": "71217227bbd112ecfe3a49c482195cb4",
            },
        ),
        ("external_chat_dismiss", InboundKind.GROUP_DISMISSED, {"group_id": "CHAT_ID"}),
        ("external_tag_create", InboundKind.TAGS_CHANGED, {"change": "create", "tag_id": "TAG_ID"}),
        ("external_tag_update", InboundKind.TAGS_CHANGED, {"change": "update", "tag_group_id": "TAG_ID", "strategy_id": "1"}),
        ("external_tag_delete", InboundKind.TAGS_CHANGED, {"change": "delete", "tag_id": "TAG_ID"}),
        ("external_tag_shuffle", InboundKind.TAGS_CHANGED, {"change": "shuffle", "tag_group_id": "GROUP_ID"}),
    ],
)
def test_each_documented_event_maps_to_its_kind_and_data(fixture, kind, data):
    inbound = event(fixture)
    assert (inbound.kind, inbound.data) == (kind, data)
    assert inbound.occurred_at == CREATED


def test_a_valid_but_unknown_message_is_kept_as_unknown_keyed_by_msgid():
    inbound = event("text_message")
    assert inbound.kind == InboundKind.UNKNOWN
    assert inbound.data == {"msgtype": "text", "event": "", "change_type": ""}
    assert inbound.dedupe_key == "msgid:1234567890123456"


def test_unknown_change_types_are_unknown_not_guessed():
    xml = callback_xml("edit_external_contact").replace("edit_external_contact", "future_change")
    inbound = to_inbound(parse_xml(xml))
    assert inbound.kind == InboundKind.UNKNOWN
    assert inbound.data == {"msgtype": "event", "event": "change_external_contact", "change_type": "future_change"}


def test_events_without_msgid_are_keyed_by_sender_time_event_change_and_subject():
    assert (
        event("add_external_contact").dedupe_key
        == f"evt:sys:1403610513:change_external_contact:add_external_contact:{EXTERNAL}:zhangsan"
    )
    assert event("external_chat_update").dedupe_key == (
        "evt:sys:1403610513:change_external_chat:update:CHAT_ID::add_member:71217227bbd112ecfe3a49c482195cb4"
    )
    assert event("external_tag_create").dedupe_key == "evt:sys:1403610513:change_external_tag:create:TAG_ID::::tag"


def test_the_same_event_twice_has_the_same_key_and_different_events_differ():
    keys = {name: event(name).dedupe_key for name in ("add_external_contact", "add_half_external_contact", "del_follow_user")}
    assert event("add_external_contact").dedupe_key == keys["add_external_contact"]
    assert len(set(keys.values())) == 3


def test_a_missing_external_id_is_left_out_so_the_handler_fails_visibly():
    xml = callback_xml("add_external_contact").replace(f"<ExternalUserID><![CDATA[{EXTERNAL}]]></ExternalUserID>", "")
    assert "external_id" not in to_inbound(parse_xml(xml)).data


def test_comma_separated_member_lists_are_read_too():
    xml = callback_xml("external_chat_update").replace("<Item>Jack</Item>\n\t\t<Item>Rose</Item>", "<![CDATA[wmA,wmB]]>")
    assert to_inbound(parse_xml(xml)).data["member_ids"] == ["wmA", "wmB"]


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not xml",
        b"<html><body/></html>",
        b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaa">]><xml><Encrypt>&a;</Encrypt></xml>',
        b'<!doctype xml SYSTEM "file:///etc/passwd"><xml/>',
        b"<xml><Encrypt>" + b"A" * MAX_XML_BYTES + b"</Encrypt></xml>",
    ],
)
def test_unsafe_or_garbage_xml_is_refused(payload):
    with pytest.raises(MalformedXml):
        parse_envelope(payload)


def test_the_envelope_yields_the_encrypted_part():
    envelope = parse_envelope(
        b"<xml><ToUserName><![CDATA[ww1]]></ToUserName><Encrypt><![CDATA[abc=]]></Encrypt><AgentID>2</AgentID></xml>"
    )
    assert (envelope.to_user, envelope.encrypt, envelope.agent_id) == ("ww1", "abc=", "2")
    with pytest.raises(MalformedXml, match="no <Encrypt>"):
        parse_envelope(b"<xml><ToUserName>ww1</ToUserName></xml>")
