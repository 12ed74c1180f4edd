"""Journeys API: YAML or JSON definitions, publish, runs, where-and-why, playbooks, and
workspace isolation of every endpoint."""

import pytest

from siyu.accounts.models import Role
from siyu.api.tests.conftest import ApiClient
from siyu.communities.actions import do_create_group
from siyu.core.testing import make_contact, make_staff, make_token, make_workspace

pytestmark = pytest.mark.django_db

YAML = """
name: 欢迎
trigger: {kind: manual}
steps:
  - {id: hi, type: send, message_class: service, content: 欢迎, next: pause}
  - {id: pause, type: wait, duration: 1d}
"""


@pytest.fixture
def api(owner):
    return ApiClient(make_token(owner))


def _post_yaml(api, path, text):
    return api.client.post(f"/api/v1{path}", text, content_type="application/yaml", headers=api.headers)


def _put_json(api, path, data):
    return api.put(path, data)


def test_create_from_yaml_publish_enrol_and_see_where_and_why(api, workspace):
    # when a journey is created from YAML and published
    created = _post_yaml(api, "/journeys", YAML)
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["name"], body["status"], body["version"], [s["id"] for s in body["steps"]]) == ("欢迎", "draft", None, [])
    published = api.post(f"/journeys/{body['id']}/publish").json()
    assert (published["status"], published["version"], published["trigger_kind"]) == ("published", 1, "manual")
    # and a contact is enrolled
    alice = make_contact(workspace, "Alice")
    enrolled = api.post(f"/journeys/{body['id']}/enrol", {"contact_id": alice.pk})
    assert enrolled.status_code == 201
    run_id = enrolled.json()["run"]["id"]
    again = api.post(f"/journeys/{body['id']}/enrol", {"contact_id": alice.pk})
    assert (again.status_code, again.json()) == (200, {"run": None, "refused": "already started for this trigger"})
    # then the runs list and the contact's journeys say where the contact is
    runs = api.get(f"/journeys/{body['id']}/runs").json()
    assert (runs["count"], runs["items"][0]["id"], runs["items"][0]["state"]) == (1, run_id, "active")
    where = api.get(f"/contacts/{alice.pk}/journeys").json()
    assert [(r["journey"], r["state"], r["current_step"]) for r in where] == [("欢迎", "active", "hi")]
    detail = api.get(f"/journeys/{body['id']}").json()
    assert [(s["id"], s["now_here"]) for s in detail["steps"]] == [("hi", 1), ("pause", 0)]
    assert detail["runs_by_state"]["active"] == 1
    exited = api.post(f"/journey-runs/{run_id}/exit", {"reason": "客户要求"}).json()
    assert (exited["state"], exited["exit_reason"]) == ("exited", "客户要求")


def test_json_definitions_and_path_named_validation_errors(api):
    bad = api.post("/journeys", {"name": "坏", "steps": [{"id": "a", "type": "send", "content": "hi", "next": "zzz"}]})
    assert (bad.status_code, bad.json()["error"]) == (
        422, {"code": "invalid_definition", "message": 'steps[0].next: unknown step "zzz"', "details": {"path": "steps[0].next"}},
    )
    good = api.post("/journeys", {"name": "好", "steps": [{"id": "a", "type": "exit"}]})
    assert good.status_code == 201
    replaced = _put_json(api, f"/journeys/{good.json()['id']}", {"name": "更好", "steps": [{"id": "b", "type": "exit"}]})
    assert (replaced.status_code, replaced.json()["name"], replaced.json()["draft"]["start"]) == (200, "更好", "b")
    paused = api.post(f"/journeys/{good.json()['id']}/status", {"status": "paused"})
    assert paused.json()["error"]["code"] == "journey_not_published"


def test_playbooks_list_and_instantiate(api, workspace):
    group = do_create_group(workspace, None, name="福利群")
    names = [p["name"] for p in api.get("/playbooks").json()]
    assert names == ["flash_sale", "new_customer_nurture", "qa_clinic", "sharing_session", "vip_care", "win_back"]
    created = api.post("/playbooks/sharing_session/instantiate",
                       {"date": "2099-06-06T20:00", "group_ids": [group.pk], "params": {"topic": "咖啡入门"}})
    assert created.status_code == 201, created.json()
    result = created.json()
    assert (result["journeys"][0]["name"], len(result["runs"])) == ("分享会 咖啡入门 2099-06-06", 1)
    assert api.post("/playbooks/nope/instantiate", {}).json()["error"]["code"] == "playbook_not_found"


def test_every_endpoint_hides_another_workspaces_rows(api, workspace):
    other = make_workspace()
    other_owner = make_staff(other, Role.OWNER)
    other_api = ApiClient(make_token(other_owner))
    journey_id = _post_yaml(other_api, "/journeys", YAML).json()["id"]
    other_api.post(f"/journeys/{journey_id}/publish")
    stranger = make_contact(other, "Stranger")
    run_id = other_api.post(f"/journeys/{journey_id}/enrol", {"contact_id": stranger.pk}).json()["run"]["id"]
    mine = make_contact(workspace, "Mine")
    for method, path, data in [
        ("get", f"/journeys/{journey_id}", None), ("put", f"/journeys/{journey_id}", {"name": "x", "steps": [{"id": "a", "type": "exit"}]}),
        ("post", f"/journeys/{journey_id}/publish", None), ("post", f"/journeys/{journey_id}/status", {"status": "paused"}),
        ("get", f"/journeys/{journey_id}/runs", None), ("post", f"/journeys/{journey_id}/enrol", {"contact_id": mine.pk}),
        ("get", f"/journey-runs/{run_id}", None), ("post", f"/journey-runs/{run_id}/exit", {}),
        ("get", f"/contacts/{stranger.pk}/journeys", None),
    ]:
        response = getattr(api, method)(path, data) if data is not None else getattr(api, method)(path)
        assert response.status_code == 404, (method, path, response.json())
    assert api.get("/journeys").json() == {"count": 0, "items": []}


def test_roles(workspace):
    analyst = ApiClient(make_token(make_staff(workspace, Role.ANALYST)))
    agent = ApiClient(make_token(make_staff(workspace, Role.AGENT)))
    assert analyst.get("/journeys").status_code == 200
    assert _post_yaml(analyst, "/journeys", YAML).status_code == 403
    assert agent.get("/journeys").status_code == 403
