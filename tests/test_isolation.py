"""Workspace isolation and data scope: a token of workspace B can neither read nor change
anything of workspace A (404, not 403, so existence does not leak), and an agent cannot
see other agents' contacts."""

import pytest

from siyu.accounts.actions import do_create_api_token
from siyu.accounts.models import AuditEntry, Role
from siyu.api.tests.conftest import ApiClient
from siyu.channels.actions import do_create_channel_account
from siyu.communities.actions import do_add_member, do_create_group
from siyu.contacts.actions import do_tag_contacts
from siyu.contacts.models import Contact, ContactTag
from siyu.contacts.rules import do_create_tag_rule
from siyu.core.testing import make_contact, make_staff, make_tag, make_token, make_workspace

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    a, b = make_workspace("brand-a"), make_workspace("brand-b")
    owner_a, owner_b = make_staff(a, Role.OWNER), make_staff(b, Role.OWNER)
    tag_a = make_tag(a, "VIP")
    make_tag(b, "VIP")
    contact_a = make_contact(a, "A的客户", phone="13800000001")
    do_tag_contacts(a, None, [contact_a], [tag_a])
    group_a = do_create_group(a, None, name="A福利群")
    do_add_member(group_a, contact_a, None)
    rule_a = do_create_tag_rule(a, None, name="r", tag=tag_a, conditions=[{"field": "city", "op": "eq", "value": "上海"}])
    token_a, _ = do_create_api_token(owner_a, None)
    account_a = do_create_channel_account(a, None, kind="sandbox", name="sbx")
    return {
        "a": a, "b": b, "owner_a": owner_a, "contact": contact_a, "tag": tag_a, "group": group_a, "rule": rule_a,
        "token": token_a, "account": account_a, "b_api": ApiClient(make_token(owner_b)), "a_api": ApiClient(make_token(owner_a)),
    }


def test_foreign_ids_answer_404_for_every_verb(world):
    api = world["b_api"]
    c, g, t, r = world["contact"].pk, world["group"].pk, world["tag"].pk, world["rule"].pk
    s, tok = world["owner_a"].pk, world["token"].pk
    calls = [
        ("get", f"/contacts/{c}", None),
        ("patch", f"/contacts/{c}", {"name": "hacked"}),
        ("get", f"/contacts/{c}/timeline", None),
        ("post", f"/contacts/{c}/events", {"kind": "order", "idempotency_key": "x"}),
        ("post", f"/contacts/{c}/tags", {"tags": ["VIP"]}),
        ("delete", f"/contacts/{c}/tags/VIP", None),
        ("post", f"/contacts/{c}/merge", {"duplicate_id": c}),
        ("put", f"/contacts/{c}/consents/marketing", {"granted": True}),
        ("get", f"/contacts/{c}/rules", None),
        ("get", f"/contacts/{c}/identities", None),
        ("post", "/contacts/bulk-tag", {"contact_ids": [c], "add": ["VIP"]}),
        ("get", f"/groups/{g}", None),
        ("patch", f"/groups/{g}", {"name": "hacked"}),
        ("post", f"/groups/{g}/archive", None),
        ("get", f"/groups/{g}/members", None),
        ("delete", f"/groups/{g}/members/{c}", None),
        ("patch", f"/tags/{t}", {"name": "hacked"}),
        ("delete", f"/tags/{t}", None),
        ("post", f"/tag-groups/{world['tag'].group_id}/tags", {"name": "x"}),
        ("patch", f"/tag-rules/{r}", {"is_active": False}),
        ("patch", f"/staff/{s}", {"role": "agent"}),
        ("post", f"/staff/{s}/tokens", {"name": "steal"}),
        ("delete", f"/tokens/{tok}", None),
    ]
    for verb, path, body in calls:
        response = getattr(api, verb)(path, body) if body is not None or verb in ("post",) else getattr(api, verb)(path)
        assert response.status_code == 404, (verb, path, response.status_code, response.content[:200])
        assert response.json()["error"]["code"] in ("not_found", "contact_not_found"), (verb, path)
    # the B owner adding A's contact into B's own group is refused the same way
    own_group = world["b_api"].post("/groups", {"name": "B群"}).json()["id"]
    assert api.post(f"/groups/{own_group}/members", {"contact_id": c}).status_code == 404
    # nothing of A changed
    contact = Contact.objects.get(pk=c)
    assert contact.name == "A的客户"
    assert ContactTag.objects.filter(contact=contact).count() == 1
    assert not AuditEntry.objects.filter(workspace=world["a"], actor__isnull=False).exists()
    world["token"].refresh_from_db()
    assert world["token"].revoked_at is None


def test_lists_never_show_other_workspaces_rows(world):
    api = world["b_api"]
    assert api.get("/contacts").json() == {"count": 0, "items": []}
    assert api.get("/groups").json()["count"] == 1 - 1
    assert [t["name"] for t in api.get("/tags").json()] == ["VIP"]
    assert all(t["id"] != world["tag"].pk for t in api.get("/tags").json())
    assert api.get("/tag-rules").json() == []
    assert {e["action"] for e in api.get("/audit").json()["items"]} <= {"staff.created", "tag_group.created", "tag.created", "token.created", "workspace.created"}
    # and A sees its own
    assert world["a_api"].get("/contacts").json()["count"] == 1


def test_tag_reference_of_another_workspace_is_unknown(world):
    api = world["b_api"]
    response = api.get("/contacts", {"tag": str(world["tag"].pk)})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "unknown_tag"


def test_agent_sees_only_own_contacts(world):
    a = world["a"]
    agent1, agent2 = make_staff(a, Role.AGENT), make_staff(a, Role.AGENT)
    mine = make_contact(a, "mine", owner=agent1, phone="13800000002")
    theirs = make_contact(a, "theirs", owner=agent2)
    api = ApiClient(make_token(agent1))
    listed = api.get("/contacts").json()
    assert [i["name"] for i in listed["items"]] == ["mine"]
    assert listed["items"][0]["phone"] == "138****0002"  # agents never see full identifiers
    assert api.get(f"/contacts/{theirs.pk}").status_code == 404
    assert api.patch(f"/contacts/{theirs.pk}", {"name": "x"}).status_code == 404
    assert api.post("/contacts/bulk-tag", {"contact_ids": [mine.pk, theirs.pk], "add": ["VIP"]}).status_code == 404
    assert api.get(f"/contacts/{mine.pk}").status_code == 200
    # an agent cannot give a contact to someone else
    assert api.patch(f"/contacts/{mine.pk}", {"owner_id": agent2.pk}).status_code == 403
    # a contact an agent creates is their own
    created = api.post("/contacts", {"name": "new one"}).json()
    assert created["owner"]["id"] == agent1.pk


def test_roles_limit_writes(world):
    a = world["a"]
    analyst = ApiClient(make_token(make_staff(a, Role.ANALYST)))
    response = analyst.patch(f"/contacts/{world['contact'].pk}", {"name": "x"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    operator = ApiClient(make_token(make_staff(a, Role.OPERATOR)))
    assert operator.post("/staff", {"email": "new@x.test", "role": "admin"}).status_code == 403
    assert operator.get("/audit").status_code == 403
    assert analyst.get("/audit").status_code == 200


def test_revoked_token_and_deactivated_staff_are_401(world):
    api = world["a_api"]
    me = api.get("/me").json()
    tokens = api.get("/tokens").json()
    for t in tokens:
        if t["staff_id"] == me["staff"]["id"]:
            api.delete(f"/tokens/{t['id']}")
    assert api.get("/contacts").status_code == 401
