import pytest

from siyu.accounts.models import ApiToken, AuditEntry, Role
from siyu.api.tests.conftest import ApiClient, client_for
from siyu.communities.models import Membership
from siyu.core.testing import make_contact, make_staff

pytestmark = pytest.mark.django_db


def test_group_with_positioning_and_members(api, workspace, owner):
    response = api.post(
        "/groups",
        {
            "name": "法式穿搭研习社", "group_type": "organisational", "vision": "一起穿出法式松弛感",
            "threshold": "action", "threshold_detail": "转发海报", "capacity": 300, "owner_id": owner.pk,
        },
    )
    assert response.status_code == 201, response.json()
    group = response.json()
    assert (group["group_type"], group["capacity"], group["member_count"], group["threshold"]) == ("organisational", 300, 0, "action")
    contact = make_contact(workspace, "小红")
    joined = api.post(f"/groups/{group['id']}/members", {"contact_id": contact.pk, "join_source": "live_code"})
    assert joined.status_code == 201
    assert api.post(f"/groups/{group['id']}/members", {"contact_id": contact.pk}).status_code == 200  # already in: no-op
    role = api.patch(f"/groups/{group['id']}/members/{contact.pk}", {"role": "expert"})
    assert (role.json()["role"], role.json()["role_assigned"]) == ("expert", True)
    assert api.get(f"/groups/{group['id']}").json()["member_count"] == 1
    members = api.get(f"/groups/{group['id']}/members").json()
    assert members["count"] == 1 and members["items"][0]["contact_name"] == "小红"
    # a hand-set role carries no inference explanation and no candidate
    item = members["items"][0]
    assert (item["role_reason"], item["role_candidate"], item["role_candidate_streak"]) == ("", "", 0)
    left = api.delete(f"/groups/{group['id']}/members/{contact.pk}?reason=退群")
    assert left.status_code == 200 and left.json()["left_at"] is not None
    assert api.get(f"/groups/{group['id']}/members").json()["count"] == 0
    assert api.get(f"/groups/{group['id']}/members", {"include_left": True}).json()["count"] == 1
    timeline = api.get(f"/contacts/{contact.pk}/timeline").json()["items"]
    assert [e["kind"] for e in timeline] == ["left_group", "joined_group", "added"]


def test_group_validation_errors(api):
    short = api.post("/groups", {"name": "618抢购群", "horizon": "short_term"})
    assert short.status_code == 422 and short.json()["error"]["code"] == "ends_on_required"
    assert api.post("/groups", {"name": "x", "group_type": "party"}).json()["error"]["code"] == "invalid_group_type"
    assert api.post("/groups", {"name": "x", "capacity": 1}).json()["error"]["code"] == "invalid_capacity"
    ok = api.post("/groups", {"name": "618抢购群", "horizon": "short_term", "ends_on": "2026-06-18"})
    assert ok.status_code == 201


def test_a_short_term_group_can_ask_to_be_dismissed_at_its_end(api):
    created = api.post("/groups", {"name": "618快闪群", "horizon": "short_term", "ends_on": "2026-06-18", "dismiss_at_end": True,
                                   "end_farewell": "活动结束，感谢参与"})
    assert created.status_code == 201, created.json()
    assert (created.json()["dismiss_at_end"], created.json()["end_farewell"]) == (True, "活动结束，感谢参与")
    group_id = created.json()["id"]

    # turning it into a long-term group while it still asks is refused; both at once is fine
    refused = api.patch(f"/groups/{group_id}", {"horizon": "long_term", "ends_on": None})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "dismiss_needs_short_term"
    assert api.get(f"/groups/{group_id}").json()["horizon"] == "short_term"
    changed = api.patch(f"/groups/{group_id}", {"horizon": "long_term", "ends_on": None, "dismiss_at_end": False}).json()
    assert (changed["horizon"], changed["dismiss_at_end"], changed["end_farewell"]) == ("long_term", False, "活动结束，感谢参与")
    too_long = api.patch(f"/groups/{group_id}", {"end_farewell": "再见" * 251})
    assert too_long.status_code == 422
    assert api.post("/groups", {"name": "福利群", "dismiss_at_end": True}).json()["error"]["code"] == "dismiss_needs_short_term"


def test_the_group_list_searches_by_name_and_health(api, workspace):
    import datetime as dt

    from siyu.communities.actions import do_refresh_group_health
    from siyu.communities.models import Group, GroupHealthDay

    a = api.post("/groups", {"name": "静安福利群"}).json()
    b = api.post("/groups", {"name": "徐汇福利群"}).json()
    api.post("/groups", {"name": "会员俱乐部"})
    do_refresh_group_health(Group.objects.get(pk=a["id"]), now=dt.datetime.now(dt.UTC) + dt.timedelta(days=2))
    state = GroupHealthDay.objects.filter(group_id=a["id"]).order_by("-day").values_list("state", flat=True).first()

    assert sorted(g["id"] for g in api.get("/groups", {"q": "福利"}).json()["items"]) == sorted([a["id"], b["id"]])
    by_health = api.get("/groups", {"health": state}).json()["items"]
    assert [(g["id"], g["health_state"]) for g in by_health] == [(a["id"], state)]
    assert api.get(f"/groups/{b['id']}").json()["health_state"] is None
    assert api.get("/groups", {"health": "great"}).json()["error"]["code"] == "invalid_health"
    assert api.get("/groups", {"q": "长" * 101}).status_code in (400, 422)


def test_archived_group_closes_memberships_and_refuses_joins(api, workspace):
    group = api.post("/groups", {"name": "旧群"}).json()
    contact = make_contact(workspace)
    api.post(f"/groups/{group['id']}/members", {"contact_id": contact.pk})
    archived = api.post(f"/groups/{group['id']}/archive").json()
    assert archived["archived_at"] is not None and archived["member_count"] == 0
    assert Membership.objects.get(contact=contact).left_at is not None
    assert api.post(f"/groups/{group['id']}/members", {"contact_id": contact.pk}).json()["error"]["code"] == "group_archived"


def test_tag_groups_tags_and_rules_api(api, workspace):
    size = api.post("/tag-groups", {"name": "尺码", "kind": "business", "exclusive": True}).json()
    m = api.post(f"/tag-groups/{size['id']}/tags", {"name": "M"}).json()
    api.post(f"/tag-groups/{size['id']}/tags", {"name": "L"})
    assert api.post(f"/tag-groups/{size['id']}/tags", {"name": "M"}).status_code == 409
    contact = make_contact(workspace)
    api.post(f"/contacts/{contact.pk}/tags", {"tags": ["尺码/M"]})
    after = api.post(f"/contacts/{contact.pk}/tags", {"tags": ["尺码/L"]}).json()
    assert [t["name"] for t in after["tags"]] == ["L"]  # exclusive group: L replaced M
    groups = api.get("/tag-groups").json()
    assert [(t["name"], t["contacts"]) for t in groups[0]["tags"]] == [("M", 0), ("L", 1)]
    renamed = api.patch(f"/tags/{m['id']}", {"name": "中码"})
    assert renamed.json()["name"] == "中码"
    rule = api.post("/tag-rules", {"name": "上海客户", "tag": "尺码/中码", "conditions": [{"field": "city", "op": "eq", "value": "上海"}]})
    assert rule.status_code == 201 and rule.json()["conditions"][0]["field"] == "city"
    bad = api.post("/tag-rules", {"tag": "尺码/中码", "conditions": [{"field": "nope"}]})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_rule"
    assert api.patch(f"/tag-rules/{rule.json()['id']}", {"is_active": False}).json()["is_active"] is False
    assert api.delete(f"/tags/{m['id']}").status_code == 204
    assert AuditEntry.objects.filter(action="tag.deleted").count() == 1


def test_profile_fields_validate_values(api, workspace):
    created = api.post("/profile-fields", {"key": "size", "label": "尺码", "field_type": "choice", "choices": ["S", "M", "L"]})
    assert created.status_code == 201
    contact = make_contact(workspace)
    ok = api.patch(f"/contacts/{contact.pk}", {"profile": {"size": "M"}})
    assert ok.json()["profile"] == {"size": "M"}
    bad = api.patch(f"/contacts/{contact.pk}", {"profile": {"size": "XXL"}})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_profile_value"
    unknown = api.patch(f"/contacts/{contact.pk}", {"profile": {"shoe": "42"}})
    assert unknown.json()["error"]["message"] == "unknown profile field 'shoe'"


def test_staff_and_tokens(api, workspace, owner):
    created = api.post("/staff", {"email": "Agent@Shop.test", "display_name": "导购小王", "role": "agent", "password": "longpassword"})
    assert created.status_code == 201 and created.json()["email"] == "agent@shop.test"
    assert api.post("/staff", {"email": "agent@shop.test"}).status_code == 409
    assert api.post("/staff", {"email": "x@y.test", "role": "boss"}).json()["error"]["code"] == "unknown_role"
    agent_id = created.json()["id"]
    token = api.post(f"/staff/{agent_id}/tokens", {"name": "pos"}).json()
    assert token["token"].startswith("siyu_") and ApiToken.objects.get(pk=token["id"]).token_hash != token["token"]
    agent_api = ApiClient(token["token"])
    me = agent_api.get("/me").json()
    assert me["staff"]["role"] == "agent" and "contacts.view_all" not in me["permissions"]
    # deactivating the agent kills the token at once
    api.patch(f"/staff/{agent_id}", {"is_active": False})
    assert agent_api.get("/me").status_code == 401
    # the last owner cannot be demoted
    demote = api.patch(f"/staff/{owner.pk}", {"role": "admin"})
    assert demote.status_code == 422 and demote.json()["error"]["code"] == "last_owner"


def test_admin_cannot_make_owners(workspace):
    admin = client_for(make_staff(workspace, Role.ADMIN))
    response = admin.post("/staff", {"email": "boss@x.test", "role": "owner"})
    assert response.status_code == 422 and response.json()["error"]["code"] == "permission_denied"


def test_audit_log_lists_writes_newest_first(api, workspace):
    api.post("/contacts", {"name": "甲"})
    api.post("/tag-groups", {"name": "风格"})
    actions = [e["action"] for e in api.get("/audit").json()["items"]]
    assert actions[:2] == ["tag_group.created", "contact.created"]
    filtered = api.get("/audit", {"action": "contact."}).json()
    assert [e["action"] for e in filtered["items"]] == ["contact.created"]
    assert filtered["items"][0]["via"] == "api"


def test_healthz_reports_database_and_queue(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True and body["database"]["engine"] in ("sqlite", "postgresql")
    assert body["queue"]["ok"] is True and "pending" in body["queue"]
