"""Reading a group's messages (群聊记录): newest first, searchable, with the verdict on each;
staff who see every contact read any group's, an agent only their own groups'; phone
numbers masked for roles without personal data. API, console and CLI."""

import datetime as dt
import json

import pytest
from django.test import Client
from typer.testing import CliRunner

from siyu.accounts.models import Role
from siyu.communities.actions import do_add_member, do_create_group, do_record_group_message, do_update_group
from siyu.communities.cli import groups_app
from siyu.core.testing import make_contact, make_staff, make_token, make_workspace
from siyu.moderation.models import ModerationCase

pytestmark = pytest.mark.django_db
T0 = dt.datetime(2026, 11, 20, 2, 0, tzinfo=dt.UTC)


def _chat():
    ws = make_workspace()
    group = do_create_group(ws, None, name="宝妈群")
    ann, bob = make_contact(ws, name="小安"), make_contact(ws, name="小博")
    for c in (ann, bob):
        do_add_member(group, c, None)
    texts = [(ann, "大家好"), (bob, "什么时候发货？"), (ann, "我的电话 138 1234 5678"), (bob, "发货了吗")]
    messages = [do_record_group_message(group, who, external_id=f"m{i}", text=text, msgtype="text", data={}, sent_at=T0 + dt.timedelta(minutes=i))[0]
                for i, (who, text) in enumerate(texts)]
    case = ModerationCase.objects.create(workspace=ws, group=group, message=messages[2], contact=ann, verdict="delete", rule="phone",
                                         reasons=[{"detector": "phone", "evidence": "13812345678"}], text=messages[2].text, created_at=T0)
    return ws, group, (ann, bob), messages, case


def _get(staff, path, **params):
    return Client().get(f"/api/v1{path}", params, headers={"Authorization": f"Bearer {make_token(staff)}"})


def test_the_api_lists_newest_first_with_search_sender_period_and_verdicts():
    ws, group, (ann, _bob), _messages, case = _chat()
    owner = make_staff(ws)

    body = _get(owner, f"/groups/{group.pk}/messages").json()
    assert [m["external_id"] for m in body["items"]] == ["m3", "m2", "m1", "m0"] and body["count"] == 4
    phone = body["items"][1]
    assert (phone["sender_name"], phone["text"], phone["verdict"], phone["case_id"]) == ("小安", "我的电话 138 1234 5678", "delete", case.pk)
    assert body["items"][0]["verdict"] is None

    assert [m["external_id"] for m in _get(owner, f"/groups/{group.pk}/messages", q="发货").json()["items"]] == ["m3", "m1"]
    assert [m["external_id"] for m in _get(owner, f"/groups/{group.pk}/messages", contact_id=ann.pk).json()["items"]] == ["m2", "m0"]
    period = _get(owner, f"/groups/{group.pk}/messages", since=(T0 + dt.timedelta(minutes=1)).isoformat(),
                  until=(T0 + dt.timedelta(minutes=3)).isoformat()).json()
    assert [m["external_id"] for m in period["items"]] == ["m2", "m1"]
    assert _get(owner, f"/groups/{group.pk}/messages", q="长" * 101).status_code in (400, 422)


def test_who_may_read_and_what_is_masked():
    ws, group, _members, _messages, _case = _chat()
    analyst = make_staff(ws, Role.ANALYST)
    agent = make_staff(ws, Role.AGENT)
    other = make_staff(make_workspace(), Role.OWNER)

    # an analyst reads every group, with phone numbers masked
    texts = [m["text"] for m in _get(analyst, f"/groups/{group.pk}/messages").json()["items"]]
    assert "我的电话 138****5678" in texts and not any("1234" in t for t in texts)
    # an agent only once they own (or administer) the group
    assert _get(agent, f"/groups/{group.pk}/messages").status_code == 403
    do_update_group(group, None, admins=[agent.pk])
    assert _get(agent, f"/groups/{group.pk}/messages").json()["count"] == 4
    # another workspace's staff do not find the group
    assert _get(other, f"/groups/{group.pk}/messages").status_code == 404


def test_the_console_page_searches_and_links_the_verdicts(client):
    ws, group, (ann, _bob), _messages, case = _chat()
    owner = make_staff(ws)
    client.force_login(owner.user)
    assert f'href="/console/groups/{group.pk}/messages/"' in client.get(f"/console/groups/{group.pk}/").content.decode()

    page = client.get(f"/console/groups/{group.pk}/messages/").content.decode()
    assert "群聊记录" in page and "我的电话 138 1234 5678" in page and f"#case-{case.pk}" in page
    found = client.get(f"/console/groups/{group.pk}/messages/", {"q": "发货"}).content.decode()
    assert "什么时候发货？" in found and "大家好" not in found
    only_ann = client.get(f"/console/groups/{group.pk}/messages/", {"contact": ann.pk}).content.decode()
    assert "大家好" in only_ann and "发货了吗" not in only_ann

    agent = make_staff(ws, Role.AGENT)
    client.force_login(agent.user)
    assert client.get(f"/console/groups/{group.pk}/messages/").status_code == 403
    assert f"/console/groups/{group.pk}/messages/" not in client.get(f"/console/groups/{group.pk}/").content.decode()


def test_the_cli_prints_the_messages_as_json():
    ws, group, _members, _messages, case = _chat()
    result = CliRunner().invoke(groups_app, ["messages", str(group.pk), "--workspace", ws.slug, "--q", "电话", "--json"])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)
    assert (row["external_id"], row["sender_name"], row["verdict"], row["case_id"]) == ("m2", "小安", "delete", case.pk)
    limited = json.loads(CliRunner().invoke(groups_app, ["messages", str(group.pk), "--workspace", ws.slug, "--limit", "1", "--json"]).output)
    assert [r["external_id"] for r in limited] == ["m3"]
