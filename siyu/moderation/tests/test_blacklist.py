"""The blacklist (黑名单): by hand or by a verdict, a contact is out of every group of the
workspace and out again whenever they join one; lifting lets them back. From the action,
the inbound pipeline, the API, the console and the CLI."""

import datetime as dt
import json

import pytest
from django.test import Client
from typer.testing import CliRunner

from siyu.accounts.models import AuditEntry, Role
from siyu.channels.actions import do_create_channel_account
from siyu.channels.inbox import process
from siyu.channels.models import InboxEvent, OutboxMessage, StaffTask, StaffTaskStatus
from siyu.communities.actions import do_add_member, do_create_group, do_set_group_settings
from siyu.communities.models import Membership
from siyu.contacts.actions import do_ensure_contact_for_identity
from siyu.core.errors import Forbidden, ValidationFailed
from siyu.core.testing import make_contact, make_staff, make_token, make_workspace
from siyu.moderation.actions import do_blacklist_contact, do_lift_blacklist
from siyu.moderation.cli import moderation_app
from siyu.moderation.models import BlacklistEntry

pytestmark = pytest.mark.django_db
T0 = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)


def _world(imitate: str | None = None):
    ws = make_workspace()
    owner = make_staff(ws)
    account = do_create_channel_account(ws, None, kind="sandbox", name="sbx", config={"imitate": imitate} if imitate else {})
    room = do_create_group(ws, None, name="福利1群", channel_account=account, external_id="room1", owner=owner)
    offline = do_create_group(ws, None, name="线下群")  # on no channel
    spammer, _ = do_ensure_contact_for_identity(account, "spam1", name="广告哥")
    return ws, owner, account, room, offline, spammer


def _event(group, key, kind, **data):
    row = InboxEvent.objects.create(workspace_id=group.workspace_id, account=group.channel_account, dedupe_key=key, kind=kind,
                                    occurred_at=T0, data={"group_id": group.external_id, **data})
    return process(row.pk)


def test_blacklisting_by_hand_removes_from_every_group_once(django_capture_on_commit_callbacks):
    ws, owner, _account, room, offline, spammer = _world()
    do_add_member(room, spammer, None)
    do_add_member(offline, spammer, None)

    with django_capture_on_commit_callbacks(execute=True):
        entry = do_blacklist_contact(spammer, owner, reason="  多个群发广告 ")

    assert (entry.reason, entry.case_id, entry.lifted_at) == ("多个群发广告", None, None)
    assert not Membership.objects.filter(contact=spammer, left_at__isnull=True).exists()
    commands = sorted(OutboxMessage.objects.filter(workspace=ws).values_list("command", flat=True))
    assert commands == ["remove_member", "send_message"]  # out of the channel's room, with the notice; the offline group only here
    assert AuditEntry.objects.get(action="moderation.blacklisted").actor_id == owner.pk
    # blacklisting again keeps the entry and does nothing more
    assert do_blacklist_contact(spammer, owner).pk == entry.pk
    assert (OutboxMessage.objects.count(), AuditEntry.objects.filter(action="moderation.blacklisted").count()) == (2, 1)


def test_a_blacklisted_contact_who_joins_is_removed_again_and_not_welcomed():
    _ws, owner, _account, room, _offline, spammer = _world()
    do_set_group_settings(room, None, {"welcome_message": "欢迎{member}！"})
    entry = do_blacklist_contact(spammer, owner)

    assert _event(room, "j1", "member_joined", member_id="spam1", member_name="广告哥") == "processed"

    membership = Membership.objects.get(group=room, contact=spammer)
    assert membership.left_at is not None
    kick = OutboxMessage.objects.get(command="remove_member")
    assert (kick.target, kick.payload["member"]) == ("room1", "spam1")
    assert not OutboxMessage.objects.filter(idempotency_key__startswith="group-welcome:").exists()
    enforced = AuditEntry.objects.get(action="moderation.blacklist_enforced")
    assert enforced.after["blacklist"] == entry.pk and enforced.target_id == str(membership.pk)

    # once lifted, the next join is an ordinary one: welcomed, and they stay
    do_lift_blacklist(entry, owner, note="申诉通过")
    assert _event(room, "j2", "member_joined", member_id="spam1", member_name="广告哥") == "processed"
    assert Membership.objects.filter(group=room, contact=spammer, left_at__isnull=True).count() == 1
    assert OutboxMessage.objects.filter(idempotency_key__startswith="group-welcome:").count() == 1


def test_a_blacklisted_contact_seen_speaking_is_removed_and_not_answered():
    from siyu.communities.actions import do_create_auto_reply

    ws, owner, _account, room, _offline, spammer = _world()
    do_create_auto_reply(ws, None, name="发货", pattern="发货", reply="48小时内发货")
    do_blacklist_contact(spammer, owner)

    assert _event(room, "m1", "message", sender_id="spam1", sender_name="广告哥", message_id="m1", text="什么时候发货") == "processed"

    assert Membership.objects.get(group=room, contact=spammer).left_at is not None
    assert OutboxMessage.objects.filter(command="remove_member").count() == 1
    assert not OutboxMessage.objects.filter(payload__text="48小时内发货").exists()


def test_on_wecom_the_owner_gets_a_task_and_the_member_stays_listed_until_gone():
    ws, owner, account, room, _offline, spammer = _world("wecom")
    other = do_create_group(ws, None, name="福利2群", channel_account=account, external_id="room2")
    do_blacklist_contact(spammer, owner)

    _event(room, "j1", "member_joined", member_id="spam1", member_name="广告哥")

    task = StaffTask.objects.get(workspace=ws, kind="moderation_remove_member")
    assert task.detail["rule"] == "blacklisted" and task.detail["group"] == "福利1群"
    assert Membership.objects.get(group=room, contact=spammer).left_at is None  # still in the room until the owner removes them
    assert (task.detail["group_id"], task.detail["contact_id"]) == (room.pk, spammer.pk)

    # someone else leaving, or the spammer leaving another group, does not close it
    _event(room, "l0", "member_left", member_id="someone", member_name="路人")
    _event(other, "l1", "member_left", member_id="spam1", member_name="广告哥")
    task.refresh_from_db()
    assert task.status == StaffTaskStatus.OPEN
    # the owner removed them in the app and WeCom reports it: the task is done
    assert _event(room, "l2", "member_left", member_id="spam1", member_name="广告哥") == "processed"
    task.refresh_from_db()
    assert task.status == StaffTaskStatus.DONE and task.done_at is not None
    assert Membership.objects.get(group=room, contact=spammer).left_at is not None


def test_lifting_needs_the_permission_a_short_note_and_happens_once():
    ws, owner, _account, _room, _offline, spammer = _world()
    entry = do_blacklist_contact(spammer, owner)
    with pytest.raises(Forbidden):
        do_lift_blacklist(entry, make_staff(ws, Role.AGENT))
    with pytest.raises(ValidationFailed) as raised:
        do_lift_blacklist(entry, owner, note="长" * 201)
    assert raised.value.code == "invalid_note"
    entry.refresh_from_db()
    assert entry.lifted_at is None

    first = do_lift_blacklist(entry, owner, note="误判").lifted_at
    assert first is not None and do_lift_blacklist(entry, owner).lifted_at == first
    assert AuditEntry.objects.filter(action="moderation.blacklist_lifted").count() == 1
    with pytest.raises(ValidationFailed):
        do_blacklist_contact(spammer, owner, reason="长" * 301)


def test_the_api_lists_adds_and_lifts_within_the_workspace_and_what_an_agent_may_see():
    ws, owner, _account, _room, _offline, spammer = _world()
    other_ws, other_owner, _a, _r, _o, stranger = _world()
    agent = make_staff(ws, Role.AGENT)
    mine = make_contact(ws, name="代理的客户", owner=agent)
    api = Client()
    auth = {"Authorization": f"Bearer {make_token(owner)}"}

    added = api.post("/api/v1/moderation/blacklist", {"contact_id": spammer.pk, "reason": "发广告"}, content_type="application/json", headers=auth)
    again = api.post("/api/v1/moderation/blacklist", {"contact_id": spammer.pk}, content_type="application/json", headers=auth)
    assert (added.status_code, again.status_code, added.json()["id"]) == (201, 200, again.json()["id"])
    assert added.json()["contact_name"] == "广告哥" and added.json()["reason"] == "发广告"
    api.post("/api/v1/moderation/blacklist", {"contact_id": mine.pk}, content_type="application/json", headers=auth)
    # another workspace's contact cannot be blacklisted from here, nor its entries seen or lifted
    assert api.post("/api/v1/moderation/blacklist", {"contact_id": stranger.pk}, content_type="application/json", headers=auth).status_code == 404
    theirs = do_blacklist_contact(stranger, other_owner)
    assert api.post(f"/api/v1/moderation/blacklist/{theirs.pk}/lift", {}, content_type="application/json", headers=auth).status_code == 404
    assert {e["contact_id"] for e in api.get("/api/v1/moderation/blacklist", headers=auth).json()["items"]} == {spammer.pk, mine.pk}
    # an agent sees only their own contacts' entries, and may not lift
    as_agent = {"Authorization": f"Bearer {make_token(agent)}"}
    assert [e["contact_id"] for e in api.get("/api/v1/moderation/blacklist", headers=as_agent).json()["items"]] == [mine.pk]
    entry_id = added.json()["id"]
    assert api.post(f"/api/v1/moderation/blacklist/{entry_id}/lift", {}, content_type="application/json", headers=as_agent).status_code in (403, 404)

    lifted = api.post(f"/api/v1/moderation/blacklist/{entry_id}/lift", {"note": "申诉通过"}, content_type="application/json", headers=auth)
    assert lifted.status_code == 200 and lifted.json()["lifted_at"]
    standing = api.get("/api/v1/moderation/blacklist", headers=auth).json()["items"]
    every = api.get("/api/v1/moderation/blacklist", {"include_lifted": "true"}, headers=auth).json()["items"]
    assert ([e["contact_id"] for e in standing], len(every)) == ([mine.pk], 2)
    assert BlacklistEntry.objects.filter(workspace=other_ws, lifted_at__isnull=True).count() == 1


def test_the_console_blacklists_from_the_contact_page_and_lifts_from_the_list(client):
    ws, owner, _account, room, _offline, spammer = _world()
    do_add_member(room, spammer, None)
    client.force_login(owner.user)
    assert 'id="blacklist-form"' in client.get(f"/console/contacts/{spammer.pk}/").content.decode()

    response = client.post(f"/console/contacts/{spammer.pk}/blacklist/", {"reason": "发广告"}, follow=True)

    assert "已拉黑" in response.content.decode() and 'id="blacklisted"' in response.content.decode()
    entry = BlacklistEntry.objects.get(contact=spammer)
    assert entry.reason == "发广告" and Membership.objects.get(contact=spammer).left_at is not None
    page = client.get("/console/moderation/blacklist/").content.decode()
    assert f'id="entry-{entry.pk}"' in page and "广告哥" in page

    client.post(f"/console/moderation/blacklist/{entry.pk}/lift/", {"note": "申诉通过"})

    entry.refresh_from_db()
    assert entry.lifted_at is not None
    assert f'id="entry-{entry.pk}"' not in client.get("/console/moderation/blacklist/").content.decode()
    assert f'id="entry-{entry.pk}"' in client.get("/console/moderation/blacklist/?state=lifted").content.decode()
    # an agent may look but not blacklist or lift
    agent = make_staff(ws, Role.AGENT)
    client.force_login(agent.user)
    assert client.get("/console/moderation/blacklist/").status_code == 200
    assert client.post(f"/console/contacts/{spammer.pk}/blacklist/").status_code in (403, 404)
    assert BlacklistEntry.objects.filter(contact=spammer, lifted_at__isnull=True).count() == 0


def test_the_cli_adds_lists_and_lifts():
    ws, _owner, _account, _room, _offline, spammer = _world()

    def run(*args):
        result = CliRunner().invoke(moderation_app, ["blacklist", *args, "--workspace", ws.slug, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    added = run("add", str(spammer.pk), "--reason", "发广告")
    assert (added["contact_id"], added["reason"], added["lifted_at"]) == (spammer.pk, "发广告", None)
    assert [e["id"] for e in run("list")] == [added["id"]]
    lifted = run("lift", str(added["id"]), "--note", "申诉通过")
    assert lifted["lifted_at"] is not None
    assert run("list") == [] and [e["id"] for e in run("list", "--include-lifted")] == [added["id"]]
    missing = CliRunner().invoke(moderation_app, ["blacklist", "lift", "999999", "--workspace", ws.slug, "--json"])
    assert missing.exit_code != 0


def test_blacklisting_and_lifting_in_bulk_is_all_or_nothing(django_capture_on_commit_callbacks):
    from siyu.moderation.actions import MAX_BULK_BLACKLIST, do_blacklist_contacts, do_lift_blacklist_entries

    ws, owner, account, room, _offline, spammer = _world()
    second, _ = do_ensure_contact_for_identity(account, "spam2", name="刷单哥")
    third = make_contact(ws, name="羊毛党")
    for contact in (spammer, second):
        do_add_member(room, contact, None)
    already = do_blacklist_contact(third, owner, reason="早先拉黑")

    with django_capture_on_commit_callbacks(execute=True):
        created, existing = do_blacklist_contacts([spammer, second, third, spammer], owner, reason="批量")

    assert [e.contact_id for e in created] == [spammer.pk, second.pk] and {e.reason for e in created} == {"批量"}
    assert [e.pk for e in existing] == [already.pk]
    assert not Membership.objects.filter(group=room, left_at__isnull=True).exists()
    assert OutboxMessage.objects.filter(command="remove_member").count() == 2
    assert AuditEntry.objects.filter(action="moderation.blacklisted").count() == 3  # one per contact, the earlier one included

    with pytest.raises(ValidationFailed) as raised:
        do_blacklist_contacts([], owner)
    assert raised.value.code == "no_contacts"
    with pytest.raises(ValidationFailed) as raised:
        do_blacklist_contacts([make_contact(ws) for _ in range(MAX_BULK_BLACKLIST + 1)], owner)
    assert raised.value.code == "too_many_contacts"
    other_ws_contact = make_contact(make_workspace())
    with pytest.raises(ValidationFailed) as raised:
        do_blacklist_contacts([spammer, other_ws_contact], owner)
    assert raised.value.code == "mixed_workspaces"
    with pytest.raises(Forbidden):
        do_blacklist_contacts([spammer], make_staff(ws, Role.AGENT))
    # a bad reason fails the whole call: nobody new is blacklisted
    fresh = make_contact(ws, name="新客")
    with pytest.raises(ValidationFailed):
        do_blacklist_contacts([fresh, make_contact(ws)], owner, reason="长" * 301)
    assert not BlacklistEntry.objects.filter(contact=fresh).exists()

    with pytest.raises(ValidationFailed) as raised:
        do_lift_blacklist_entries(created, owner, note="长" * 201)
    assert raised.value.code == "invalid_note"
    lifted = do_lift_blacklist_entries([*created, already, created[0]], owner, note="误判")
    assert sorted(e.pk for e in lifted) == sorted([*(e.pk for e in created), already.pk])
    assert do_lift_blacklist_entries(created, owner) == []  # already lifted: nothing more
    assert AuditEntry.objects.filter(action="moderation.blacklist_lifted").count() == 3


def test_the_api_blacklists_and_lifts_in_bulk_within_what_the_caller_sees():
    ws, owner, account, _room, _offline, spammer = _world()
    _other_ws, _other_owner, _a, _r, _o, stranger = _world()
    second, _ = do_ensure_contact_for_identity(account, "spam2", name="刷单哥")
    api = Client()
    auth = {"Authorization": f"Bearer {make_token(owner)}"}

    def post(path, body, headers=auth):
        return api.post(path, body, content_type="application/json", headers=headers)

    # a contact of another workspace: 404 naming it, nobody blacklisted
    refused = post("/api/v1/moderation/blacklist/bulk", {"contact_ids": [spammer.pk, stranger.pk]})
    assert refused.status_code == 404 and str(stranger.pk) in refused.json()["error"]["message"]
    assert not BlacklistEntry.objects.filter(workspace=ws).exists()
    assert post("/api/v1/moderation/blacklist/bulk", {"contact_ids": []}).status_code == 422
    assert post("/api/v1/moderation/blacklist/bulk", {"contact_ids": list(range(1, 502))}).status_code == 422
    assert post("/api/v1/moderation/blacklist/bulk", {"contact_ids": ["x"]}).status_code == 422

    post("/api/v1/moderation/blacklist", {"contact_id": second.pk})
    done = post("/api/v1/moderation/blacklist/bulk", {"contact_ids": [spammer.pk, second.pk], "reason": "群发广告"})
    assert done.status_code == 200
    body = done.json()
    assert [e["contact_id"] for e in body["created"]] == [spammer.pk] and body["created"][0]["reason"] == "群发广告"
    assert [e["contact_id"] for e in body["existing"]] == [second.pk]

    ids = [body["created"][0]["id"], body["existing"][0]["id"]]
    theirs = do_blacklist_contact(stranger, _other_owner)
    assert post("/api/v1/moderation/blacklist/lift", {"entry_ids": [*ids, theirs.pk]}).status_code == 404
    assert BlacklistEntry.objects.filter(workspace=ws, lifted_at__isnull=True).count() == 2
    as_agent = {"Authorization": f"Bearer {make_token(make_staff(ws, Role.AGENT))}"}
    assert post("/api/v1/moderation/blacklist/lift", {"entry_ids": ids}, as_agent).status_code in (403, 404)
    lifted = post("/api/v1/moderation/blacklist/lift", {"entry_ids": ids, "note": "申诉通过"})
    assert lifted.status_code == 200 and sorted(e["id"] for e in lifted.json()["lifted"]) == sorted(ids)
    assert all(e["lifted_at"] for e in lifted.json()["lifted"])
    assert post("/api/v1/moderation/blacklist/lift", {"entry_ids": ids}).json() == {"lifted": []}


def test_the_console_blacklists_ticked_contacts_and_lifts_ticked_entries(client):
    ws, owner, account, room, _offline, spammer = _world()
    second, _ = do_ensure_contact_for_identity(account, "spam2", name="刷单哥")
    do_add_member(room, spammer, None)
    client.force_login(owner.user)
    assert 'id="bulk-blacklist"' in client.get("/console/contacts/").content.decode()

    response = client.post("/console/contacts/bulk-blacklist/", {"contact": [spammer.pk, second.pk], "reason": "发广告",
                                                                 "next": "/console/contacts/"}, follow=True)

    assert "已拉黑 2 位客户" in response.content.decode()
    assert BlacklistEntry.objects.filter(contact__in=[spammer, second], lifted_at__isnull=True, reason="发广告").count() == 2
    assert Membership.objects.get(contact=spammer).left_at is not None
    page = client.get("/console/moderation/blacklist/").content.decode()
    assert 'id="bulk-lift"' in page and page.count('form="bulk-lift"') == 2
    # nothing ticked: a warning, nothing done
    assert "请至少选择一条记录" in client.post("/console/moderation/blacklist/lift/", {}, follow=True).content.decode()

    entries = list(BlacklistEntry.objects.filter(workspace=ws).values_list("pk", flat=True))
    response = client.post("/console/moderation/blacklist/lift/", {"entry": entries, "note": "误判"}, follow=True)

    assert "已解除所选 2 条中的 2 条" in response.content.decode()
    assert not BlacklistEntry.objects.filter(workspace=ws, lifted_at__isnull=True).exists()
    # an agent sees no blacklist button and may not use the endpoints
    agent = make_staff(ws, Role.AGENT)
    mine = make_contact(ws, name="代理的客户", owner=agent)
    client.force_login(agent.user)
    assert 'id="bulk-blacklist"' not in client.get("/console/contacts/").content.decode()
    assert client.post("/console/contacts/bulk-blacklist/", {"contact": [mine.pk]}).status_code in (403, 404)
    assert not BlacklistEntry.objects.filter(contact=mine).exists()


def test_the_cli_blacklists_and_lifts_several_at_once():
    ws, _owner, account, _room, _offline, spammer = _world()
    second, _ = do_ensure_contact_for_identity(account, "spam2", name="刷单哥")

    def run(*args):
        result = CliRunner().invoke(moderation_app, ["blacklist", *args, "--workspace", ws.slug, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    one = run("add", str(second.pk))
    both = run("add", str(spammer.pk), str(second.pk), "--reason", "群发广告")
    assert [e["contact_id"] for e in both["created"]] == [spammer.pk]
    assert [e["id"] for e in both["existing"]] == [one["id"]]
    lifted = run("lift", str(one["id"]), str(both["created"][0]["id"]), "--note", "申诉通过")
    assert sorted(e["contact_id"] for e in lifted["lifted"]) == sorted([spammer.pk, second.pk])
    assert run("list") == []
    unknown = CliRunner().invoke(moderation_app, ["blacklist", "add", str(spammer.pk), "999999", "--workspace", ws.slug, "--json"])
    assert unknown.exit_code != 0 and "999999" in unknown.output
    gone = CliRunner().invoke(moderation_app, ["blacklist", "lift", str(one["id"]), "888888", "--workspace", ws.slug, "--json"])
    assert gone.exit_code != 0 and "888888" in gone.output


def _searchable_blacklist():
    """Four entries: a spammer known by a WeCom-style id, one by a phone number, one with a
    telling reason, and one lifted; plus another workspace's entry with the same name."""
    ws, owner, _account, _room, _offline, spammer = _world()  # 广告哥, channel id spam1
    by_phone = make_contact(ws, name="刷单哥", phone="13812345678")
    by_reason = make_contact(ws, name="路人甲")
    lifted = make_contact(ws, name="广告妹")
    entries = {
        "spammer": do_blacklist_contact(spammer, owner, reason="发广告"),
        "phone": do_blacklist_contact(by_phone, owner, reason="刷单"),
        "reason": do_blacklist_contact(by_reason, owner, reason="冒充客服骗红包"),
        "lifted": do_blacklist_contact(lifted, owner, reason="发广告"),
    }
    do_lift_blacklist(entries["lifted"], owner, note="申诉通过")
    other = make_workspace()
    do_blacklist_contact(make_contact(other, name="广告哥"), None, reason="发广告")
    return ws, owner, entries


def test_finding_an_entry_by_name_phone_channel_id_or_reason():
    from siyu.moderation.queries import find_blacklist

    ws, owner, entries = _searchable_blacklist()

    def found(q, state="standing"):
        return [e.pk for e in find_blacklist(ws, owner, q=q, state=state)]

    assert found("广告哥") == [entries["spammer"].pk]  # part of the name; not the other workspace's namesake
    assert found("138 1234 5678") == [entries["phone"].pk]  # the whole phone number, however written
    assert found("1381234") == []  # a phone is matched whole (it is stored encrypted)
    assert found("spam1") == [entries["spammer"].pk]  # the id they used in the chat, exactly
    assert found("spam") == []
    assert found("骗红包") == [entries["reason"].pk]  # part of the reason
    assert found("广告") == [entries["spammer"].pk]  # standing entries only by default
    assert found("广告", "all") == [entries["lifted"].pk, entries["spammer"].pk]  # newest first
    assert found("广告", "lifted") == [entries["lifted"].pk]
    assert found("  ") == [entries["reason"].pk, entries["phone"].pk, entries["spammer"].pk]
    with pytest.raises(ValidationFailed) as raised:
        find_blacklist(ws, owner, state="gone")
    assert raised.value.code == "invalid_state"
    # an agent searches only their own contacts' entries
    agent = make_staff(ws, Role.AGENT)
    assert [e.pk for e in find_blacklist(ws, agent, q="广告哥")] == []


def test_the_api_console_and_cli_search_the_blacklist():
    ws, owner, entries = _searchable_blacklist()
    auth = {"Authorization": f"Bearer {make_token(owner)}"}
    api = Client()

    items = api.get("/api/v1/moderation/blacklist", {"q": "spam1"}, headers=auth).json()["items"]
    assert [e["id"] for e in items] == [entries["spammer"].pk]
    items = api.get("/api/v1/moderation/blacklist", {"q": "发广告", "include_lifted": "true"}, headers=auth).json()["items"]
    assert [e["id"] for e in items] == [entries["lifted"].pk, entries["spammer"].pk]
    assert api.get("/api/v1/moderation/blacklist", {"q": "x" * 101}, headers=auth).status_code == 422

    console = Client()
    console.force_login(owner.user)
    page = console.get("/console/moderation/blacklist/", {"q": "13812345678"}).content.decode()
    assert f'id="entry-{entries["phone"].pk}"' in page and f'id="entry-{entries["spammer"].pk}"' not in page
    assert 'value="13812345678"' in page  # the search stays in its box
    page = console.get("/console/moderation/blacklist/", {"q": "没有这个人", "lang": "en"}).content.decode()
    assert "No entry matches this search." in page and 'id="entry-' not in page

    result = CliRunner().invoke(moderation_app, ["blacklist", "list", "--q", "骗红包", "--workspace", ws.slug, "--json"])
    assert result.exit_code == 0, result.output
    assert [e["id"] for e in json.loads(result.output)] == [entries["reason"].pk]


def test_people_blacklisted_by_channel_id_are_removed_the_moment_they_join(django_capture_on_commit_callbacks):
    from siyu.moderation.actions import do_blacklist_identities, parse_channel_ids

    # given a shared list of known spammers' ids: one never seen, one who is already a contact, one twice
    _ws, owner, account, room, _offline, spammer = _world()  # 广告哥 is known as spam1
    people = parse_channel_ids("# 共享黑名单\n\nghost9\t幽灵号\nspam1\n ghost9 ,又一次\n")
    assert people == [("ghost9", "幽灵号"), ("spam1", ""), ("ghost9", "又一次")]

    created, existing = do_blacklist_identities(account, owner, people, reason="共享黑名单")

    # then each id is blacklisted once: the stranger as a new contact with that identity, the known one as their contact
    assert existing == [] and [e.contact.name for e in created] == ["幽灵号", "广告哥"]
    ghost = created[0].contact
    assert (ghost.source_channel, ghost.source_campaign) == ("sandbox", "blacklist")
    assert ghost.identities.get().external_id == "ghost9" and created[1].contact_id == spammer.pk
    assert {e.reason for e in created} == {"共享黑名单"}
    # and the new contact and its identity are audited as the staff member's doing, not the system's
    from siyu.accounts.models import AuditEntry

    made = AuditEntry.objects.filter(target_type="contact", target_id=str(ghost.pk), action__in=["contact.created", "identity.added"])
    assert sorted((a.action, a.actor_id) for a in made) == [("contact.created", owner.pk), ("identity.added", owner.pk)]
    # and when the stranger joins a group, they are out at once and not welcomed
    with django_capture_on_commit_callbacks(execute=True):
        assert _event(room, "j9", "member_joined", member_id="ghost9", member_name="幽灵号") == "processed"
    assert Membership.objects.get(group=room, contact=ghost).left_at is not None
    assert OutboxMessage.objects.filter(command="remove_member", payload__member="ghost9").count() == 1
    # again: nothing new, the entries stand
    created, existing = do_blacklist_identities(account, owner, [("ghost9", "")])
    assert created == [] and [e.contact_id for e in existing] == [ghost.pk]


def test_blacklisting_by_channel_id_is_checked_and_all_or_nothing():
    from siyu.contacts.models import Contact
    from siyu.moderation.actions import MAX_BULK_BLACKLIST, do_blacklist_identities

    ws, owner, account, _room, _offline, _spammer = _world()
    contacts_before = Contact.objects.filter(workspace=ws).count()
    refused = [
        ([], {}, "no_external_ids"),
        ([("", "")], {}, "invalid_external_id"),
        ([("x" * 201, "")], {}, "invalid_external_id"),
        ([("ok1", "名" * 101)], {}, "invalid_name"),
        ([(f"id{i}", "") for i in range(MAX_BULK_BLACKLIST + 1)], {}, "too_many_external_ids"),
        ([("ok1", ""), ("ok2", "")], {"reason": "长" * 301}, "invalid_reason"),  # refused after the contacts were made: taken back
    ]
    for people, options, code in refused:
        with pytest.raises(ValidationFailed) as raised:
            do_blacklist_identities(account, owner, people, **options)
        assert raised.value.code == code
    with pytest.raises(Forbidden):
        do_blacklist_identities(account, make_staff(ws, Role.AGENT), [("ok1", "")])
    from siyu.core.errors import NotFound

    with pytest.raises(NotFound):  # another workspace's staff cannot use this account
        do_blacklist_identities(account, make_staff(make_workspace()), [("ok1", "")])
    assert Contact.objects.filter(workspace=ws).count() == contacts_before
    assert not BlacklistEntry.objects.exists()


def test_the_api_cli_and_console_blacklist_by_channel_id(tmp_path):
    ws, owner, account, _room, _offline, spammer = _world()
    other_account = do_create_channel_account(make_workspace(), None, kind="sandbox", name="别人的")
    auth = {"Authorization": f"Bearer {make_token(owner)}"}
    api = Client()

    def post(body):
        return api.post("/api/v1/moderation/blacklist/by-channel-id", body, content_type="application/json", headers=auth)

    done = post({"account_id": account.pk, "people": [{"external_id": "@ghost:example.org", "name": "幽灵"}, {"external_id": "spam1"}],
                 "reason": "共享黑名单"})
    assert done.status_code == 200, done.content
    assert [e["contact_id"] for e in done.json()["created"]][1] == spammer.pk and done.json()["existing"] == []
    assert post({"account_id": other_account.pk, "people": [{"external_id": "x"}]}).status_code == 404
    assert post({"account_id": account.pk, "people": []}).status_code == 422
    assert post({"account_id": account.pk, "people": [{"external_id": ""}]}).status_code == 422
    agent = {"Authorization": f"Bearer {make_token(make_staff(ws, Role.AGENT))}"}
    refused = api.post("/api/v1/moderation/blacklist/by-channel-id", {"account_id": account.pk, "people": [{"external_id": "y"}]},
                       content_type="application/json", headers=agent)
    assert refused.status_code == 403

    listing = tmp_path / "spammers.txt"
    listing.write_text("# from the brand group chat\n@ghost:example.org\n@new:example.org\t新号\n", encoding="utf-8")
    result = CliRunner().invoke(moderation_app, ["blacklist", "add-ids", "@third:example.org", "--file", str(listing), "--account", str(account.pk),
                                                 "--workspace", ws.slug, "--reason", "共享黑名单", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert [e["contact_name"] for e in out["created"]] == ["@third:example.org", "新号"] and len(out["existing"]) == 1
    missing = CliRunner().invoke(moderation_app, ["blacklist", "add-ids", "--account", str(account.pk), "--workspace", ws.slug, "--json"])
    assert missing.exit_code == 2 and json.loads(missing.output)["error"]["code"] == "usage"

    console = Client()
    console.force_login(owner.user)
    page = console.get("/console/moderation/blacklist/", {"lang": "en"}).content.decode()
    assert 'id="by-channel-id"' in page and f'<option value="{account.pk}">' in page
    console.post("/console/moderation/blacklist/by-channel-id/", {"account": account.pk, "ids": "wmFOURTH,第四个\n", "reason": "群发广告"})
    entry = BlacklistEntry.objects.get(contact__identities__external_id="wmFOURTH")
    assert (entry.contact.name, entry.reason) == ("第四个", "群发广告")
    # another workspace's account is not found; an agent sees no form and may not post
    assert console.post("/console/moderation/blacklist/by-channel-id/", {"account": other_account.pk, "ids": "z"}).status_code == 404
    console.force_login(make_staff(ws, Role.AGENT).user)
    assert 'id="by-channel-id"' not in console.get("/console/moderation/blacklist/").content.decode()
    assert console.post("/console/moderation/blacklist/by-channel-id/", {"account": account.pk, "ids": "z"}).status_code in (403, 404)
    assert not BlacklistEntry.objects.filter(contact__identities__external_id="z").exists()
