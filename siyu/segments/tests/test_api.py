from __future__ import annotations

import pytest

from siyu.accounts.models import Role
from siyu.api.tests.conftest import ApiClient, client_for
from siyu.contacts.actions import do_tag_contacts
from siyu.core.testing import make_contact, make_staff, make_tag, make_token, make_workspace
from siyu.segments.actions import do_build_segment, do_create_segment
from siyu.segments.models import Segment

pytestmark = pytest.mark.django_db


@pytest.fixture
def workspace():
    return make_workspace("acme")


@pytest.fixture
def owner(workspace):
    return make_staff(workspace, Role.OWNER, email="owner@acme.test")


@pytest.fixture
def api(owner):
    return ApiClient(make_token(owner))


@pytest.fixture
def vip_world(workspace):
    vip = make_tag(workspace, "VIP")
    agent = make_staff(workspace, Role.AGENT, email="agent@acme.test")
    mine = make_contact(workspace, "Mine", phone="13812345678", owner=agent)
    other = make_contact(workspace, "Other")
    do_tag_contacts(workspace, None, [mine, other], [vip])
    segment = do_create_segment(workspace, None, name="VIP", definition={"tags": {"any": ["VIP"]}})
    do_build_segment(segment)
    return {"vip": vip, "agent": agent, "mine": mine, "other": other, "segment": segment}


def test_create_list_get_patch_delete(api, workspace, vip_world):
    created = api.post("/segments", {"name": "上海", "definition": {"field": "city", "op": "eq", "value": "上海"}})
    assert created.status_code == 201
    body = created.json()
    assert (body["name"], body["kind"], body["definition"]) == ("上海", "dynamic", {"field": "city", "op": "eq", "value": "上海"})

    listed = api.get("/segments").json()
    assert [s["name"] for s in listed["items"]] == ["VIP", "上海"]

    patched = api.patch(f"/segments/{body['id']}", {"name": "魔都"})
    assert patched.json()["name"] == "魔都"

    assert api.delete(f"/segments/{body['id']}").status_code == 204
    assert api.get(f"/segments/{body['id']}").status_code == 404


def test_invalid_definition_names_the_path(api, vip_world):
    response = api.post("/segments", {"name": "bad", "definition": {"all": [{"tags": {"any": ["VIP2"]}}]}})

    assert response.status_code == 422
    assert response.json()["error"] == {"code": "invalid_definition", "message": 'all[0].tags.any: unknown tag "VIP2"',
                                        "details": {"path": "all[0].tags.any"}}


def test_preview_counts_and_masks(api, vip_world):
    response = api.post("/segments/preview", {"definition": {"tags": {"any": ["VIP"]}}})

    body = response.json()
    assert body["count"] == 2
    assert [c["name"] for c in body["sample"]] == ["Other", "Mine"]
    analyst = make_staff(vip_world["segment"].workspace, Role.ANALYST)
    masked = client_for(analyst).post("/segments/preview", {"definition": {"tags": {"any": ["VIP"]}}}).json()
    assert [c["phone"] for c in masked["sample"]] == ["", "138****5678"]
    assert [c["phone"] for c in body["sample"]] == ["", "+8613812345678"]


def test_build_and_builds_history(api, vip_world):
    segment = vip_world["segment"]

    built = api.post(f"/segments/{segment.pk}/build")
    builds = api.get(f"/segments/{segment.pk}/builds").json()

    assert built.status_code == 200
    assert (built.json()["mode"], built.json()["size"], built.json()["entered"]) == ("full", 2, 0)
    assert [(b["mode"], b["size"], b["entered"]) for b in builds["items"]] == [("full", 2, 0), ("full", 2, 2)]


def test_members_follow_agent_visibility(vip_world):
    segment, agent = vip_world["segment"], vip_world["agent"]
    owner = make_staff(segment.workspace, Role.OWNER)

    everyone = client_for(owner).get(f"/segments/{segment.pk}/members").json()
    own = client_for(agent).get(f"/segments/{segment.pk}/members").json()

    assert (everyone["count"], [c["name"] for c in everyone["items"]]) == (2, ["Other", "Mine"])
    assert (own["count"], [c["name"] for c in own["items"]]) == (1, ["Mine"])
    assert client_for(agent).post("/segments", {"name": "x", "definition": {"tags": {"any": ["VIP"]}}}).status_code == 403
    assert client_for(agent).post(f"/segments/{segment.pk}/build").status_code == 403


def test_static_selection_and_upload(api, workspace, vip_world):
    segment = api.post("/segments", {"name": "名单", "kind": "static"}).json()
    mine, other = vip_world["mine"], vip_world["other"]

    selected = api.put(f"/segments/{segment['id']}/members", {"contact_ids": [mine.pk, other.pk]})
    assert selected.json()["size"] == 2

    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("list.csv", b"phone\n13812345678\n13000000000\n", content_type="text/csv")
    response = api.client.post(f"/api/v1/segments/{segment['id']}/upload", {"file": upload, "replace": "true"}, headers=api.headers)
    assert response.json() == {"rows": 2, "matched": 1, "unknown_rows": [{"row": 3, "value": "130****0000"}], "entered": 0, "left": 1, "size": 1}


def test_every_endpoint_hides_other_workspaces(vip_world):
    intruder_ws = make_workspace("intruder")
    intruder = client_for(make_staff(intruder_ws, Role.OWNER))
    pk = vip_world["segment"].pk

    assert intruder.get("/segments").json()["count"] == 0
    for response in (
        intruder.get(f"/segments/{pk}"),
        intruder.patch(f"/segments/{pk}", {"name": "mine now"}),
        intruder.post(f"/segments/{pk}/build"),
        intruder.get(f"/segments/{pk}/builds"),
        intruder.get(f"/segments/{pk}/members"),
        intruder.put(f"/segments/{pk}/members", {"contact_ids": []}),
        intruder.delete(f"/segments/{pk}"),
    ):
        assert response.status_code == 404
    assert intruder.post("/segments/preview", {"definition": {"segment": pk}}).status_code == 422
    assert intruder.post("/segments/preview", {"definition": {"tags": {"any": [vip_world["vip"].pk]}}}).status_code == 422
    assert Segment.objects.get(pk=pk).name == "VIP"
