"""The outreach API: materials, quota rules and the per-contact ledger, broadcasts with
preview/send/stats, group sets, columns — and that no endpoint reaches another
workspace's rows."""

from __future__ import annotations

import pytest

from siyu.accounts.models import Role
from siyu.api.tests.conftest import ApiClient
from siyu.core.testing import make_staff, make_token, make_workspace
from siyu.outreach.actions import (
    do_create_broadcast,
    do_create_column,
    do_create_group_set,
    do_create_material,
    do_send_to_contact,
)
from siyu.outreach.models import Delivery

from .conftest import shanghai

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(owner) -> ApiClient:
    return ApiClient(make_token(owner))


def test_materials_crud_and_unknown_variables_are_refused_at_save(api, workspace):
    created = api.post("/materials", {"name": "欢迎", "text": "{name} 欢迎入群", "folder": "入群", "tags": ["welcome"]})
    assert created.status_code == 201
    body = created.json()
    assert {k: body[k] for k in ("name", "kind", "text", "folder", "tags", "variables")} == {
        "name": "欢迎", "kind": "text", "text": "{name} 欢迎入群", "folder": "入群", "tags": ["welcome"], "variables": ["name"],
    }

    bad = api.post("/materials", {"name": "坏", "text": "{nmae} 你好"})
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "unknown_variable"
    assert bad.json()["error"]["message"].startswith("text: unknown variable {nmae}")

    link = api.post("/materials", {"name": "链接", "kind": "link", "data": {"title": "新品"}})
    assert (link.status_code, link.json()["error"]["message"]) == (422, "data.url: a link material needs url")

    patched = api.patch(f"/materials/{body['id']}", {"text": "{name}，{group} 欢迎你"})
    assert patched.json()["variables"] == ["name", "group"]
    assert api.get("/materials").json()["count"] == 1
    assert api.delete(f"/materials/{body['id']}").status_code == 204
    assert api.get("/materials").json()["count"] == 0


def test_quota_rules_read_and_set(api, workspace, wecomish):
    rules = api.get("/quota/rules").json()
    assert rules["policy"]["contact_marketing_cap"] == 2
    assert rules["channel_accounts"] == [{
        "id": wecomish.pk, "kind": "sandbox", "name": "wecom-like", "platform": "wecom", "mass_period": "month",
        "mass_classes": ["marketing", "notice", "reminder"], "reminder_cap": 3, "reminder_window_hours": 24.0,
    }]

    updated = api.put("/quota/rules", {"contact_marketing_cap": 3, "quiet_start": "23:00", "quiet_end": "07:30"})

    assert updated.status_code == 200
    assert {k: updated.json()["policy"][k] for k in ("contact_marketing_cap", "quiet_start", "quiet_end")} == {
        "contact_marketing_cap": 3, "quiet_start": "23:00", "quiet_end": "07:30",
    }


def test_why_didnt_this_person_get_the_message(api, workspace, sandbox, reachable):
    contact = reachable(sandbox)
    for day in (4, 6, 8):
        do_send_to_contact(workspace, contact=contact, content={"kind": "text", "text": "hi"}, message_class="marketing", source=f"broadcast:{day}",
                           idempotency_key=f"k{day}", at=shanghai(2030, 11, day, 10))

    body = api.get(f"/quota/contacts/{contact.pk}").json()

    assert body["contact_id"] == contact.pk
    assert body["channel_account"] == {"id": sandbox.pk, "kind": "sandbox", "name": "sandbox"}
    assert [d["status"] for d in body["deliveries"]] == ["deferred", "queued", "queued"]
    assert body["deliveries"][0]["rule"] == "brand.weekly_cap"
    assert body["deliveries"][0]["reason"] == "brand cap per contact: at most 2 in 7 days; 2 in the last 7 days"
    assert body["deliveries"][0]["decisions"][0]["next_allowed_at"] == "2030-11-11T02:00:00+00:00"
    assert set(body["now"]) == {"marketing", "reminder", "service", "notice"}

    check = api.post("/quota/check", {"contact_id": contact.pk, "message_class": "marketing", "at": "2030-11-08T11:00:00+08:00"}).json()
    assert check == {"allowed": False, "next_allowed_at": "2030-11-11T02:00:00+00:00",
                     "reason": "brand cap per contact: at most 2 in 7 days; 2 in the last 7 days", "rule": "brand.weekly_cap"}


def test_broadcast_create_preview_send_and_stats(api, workspace, sandbox, reachable):
    contacts = [reachable(sandbox) for _ in range(3)]
    material = do_create_material(workspace, None, name="抢购", text="{name} 周六 20:00 抢购")

    created = api.post("/broadcasts", {
        "name": "周六抢购", "audience": {"contacts": [c.pk for c in contacts]},
        "variants": [{"material_id": material.pk}, {"content": {"kind": "text", "text": "{name} 抢购提醒 B"}}],
        "schedule": {"mode": "at", "at": "2030-11-09T19:00:00+08:00"},
    })
    assert created.status_code == 201
    broadcast = created.json()
    assert [(v["label"], v["material_id"]) for v in broadcast["variants"]] == [("A", material.pk), ("B", None)]

    preview = api.post(f"/broadcasts/{broadcast['id']}/preview").json()
    assert (preview["reach"], preview["planned"], preview["direct"]) == (3, 3, 3)

    sent = api.post(f"/broadcasts/{broadcast['id']}/send").json()
    assert sent == {"planned": 3, "deferred": 0, "skipped": 0, "by_reason": {}}
    assert api.post(f"/broadcasts/{broadcast['id']}/send").status_code == 409
    stats = api.get(f"/broadcasts/{broadcast['id']}/stats").json()
    assert sum(s["queued"] for s in stats) == 3
    assert api.get("/broadcasts").json()["count"] == 1
    assert api.get("/deliveries", {"broadcast_id": broadcast["id"]}).json()["count"] == 3


def test_group_sets_and_columns(api, workspace, owner, sandbox, connected_group):
    group = connected_group(sandbox)
    material = do_create_material(workspace, owner, name="早报", text="{group} 早报")

    group_set = api.post("/group-sets", {"name": "福利群", "group_ids": [group.pk]})
    assert group_set.json() == {"id": group_set.json()["id"], "name": "福利群", "group_ids": [group.pk]}
    column = api.post("/columns", {"name": "早报", "time_of_day": "08:30", "material_ids": [material.pk], "group_set_id": group_set.json()["id"],
                                   "weekdays": [0, 1, 2, 3, 4]})
    assert column.status_code == 201
    assert (column.json()["time_of_day"], column.json()["weekdays"]) == ("08:30:00", [0, 1, 2, 3, 4])
    paused = api.patch(f"/columns/{column.json()['id']}", {"is_active": False})
    assert paused.json()["is_active"] is False
    assert len(api.get("/columns").json()) == 1


def test_no_endpoint_reaches_another_workspaces_rows(api, workspace, sandbox, reachable, connected_group):
    # given rows of another workspace
    other = make_workspace()
    other_owner = make_staff(other, Role.OWNER)
    from siyu.channels.actions import do_create_channel_account
    from siyu.communities.actions import do_create_group
    from siyu.contacts.actions import do_add_identity, do_set_consent
    from siyu.core.testing import make_contact

    account = do_create_channel_account(other, other_owner, kind="sandbox", name="sb")
    stranger = make_contact(other)
    do_add_identity(stranger, None, account=account, external_id="x")
    do_set_consent(stranger, None, purpose="marketing", granted=True)
    group = do_create_group(other, other_owner, name="他群", channel_account=account, external_id="r")
    material = do_create_material(other, other_owner, name="他的素材", text="hi")
    broadcast = do_create_broadcast(other, actor=other_owner, name="他的群发", audience={"contacts": [stranger.pk]}, variants=[{"material_id": material.pk}])
    group_set = do_create_group_set(other, other_owner, name="他的群组", group_ids=[group.pk])
    column = do_create_column(other, other_owner, name="他的栏目", time_of_day="08:00", material_ids=[material.pk], group_ids=[group.pk])
    do_send_to_contact(other, contact=stranger, content={"kind": "text", "text": "hi"}, message_class="service", source="s", idempotency_key="o")

    # then every read and write answers 404 (or validation naming the missing row)
    assert api.get(f"/materials/{material.pk}").status_code == 404
    assert api.patch(f"/materials/{material.pk}", {"text": "x"}).status_code == 404
    assert api.delete(f"/materials/{material.pk}").status_code == 404
    assert api.get(f"/quota/contacts/{stranger.pk}").status_code == 404
    assert api.post("/quota/check", {"contact_id": stranger.pk}).status_code == 404
    assert api.post("/quota/check", {"group_id": group.pk}).status_code == 404
    for suffix in ("", "/stats"):
        assert api.get(f"/broadcasts/{broadcast.pk}{suffix}").status_code == 404
    for suffix in ("/preview", "/send", "/cancel"):
        assert api.post(f"/broadcasts/{broadcast.pk}{suffix}").status_code == 404
    assert api.patch(f"/columns/{column.pk}", {"is_active": False}).status_code == 404
    assert api.post("/group-sets", {"name": "x", "group_ids": [group.pk]}).status_code == 404
    assert api.post("/broadcasts", {"name": "x", "audience": {"contacts": [stranger.pk]}, "variants": [{"content": {"kind": "text", "text": "x"}}]}).status_code == 422
    assert api.post("/broadcasts", {"name": "x", "audience": {"group_set": group_set.pk}, "variants": [{"material_id": material.pk}]}).status_code == 422
    assert api.post("/columns", {"name": "x", "time_of_day": "08:00", "material_ids": [material.pk], "group_ids": [group.pk]}).status_code == 422
    # and lists show nothing of theirs
    assert api.get("/materials").json()["count"] == 0
    assert api.get("/broadcasts").json()["count"] == 0
    assert api.get("/group-sets").json() == []
    assert api.get("/columns").json() == []
    assert api.get("/deliveries").json()["count"] == 0
    assert Delivery.objects.filter(workspace=other).count() == 1


def test_an_agent_may_not_manage_outreach(workspace, sandbox, reachable):
    agent = make_staff(workspace, Role.AGENT)
    api = ApiClient(make_token(agent))

    refused = api.post("/materials", {"name": "x", "text": "hi"})

    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "permission_denied")
    assert api.get("/materials").status_code == 403


def test_an_uploaded_image_is_stored_under_the_media_root_once(api, workspace, settings, tmp_path):
    import io

    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image

    settings.MEDIA_ROOT = tmp_path
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format="PNG")
    png = buffer.getvalue()

    first = api.client.post("/api/v1/materials/upload", {"name": "海报", "file": SimpleUploadedFile("a.png", png, "image/png")}, headers=api.headers)
    second = api.client.post("/api/v1/materials/upload", {"name": "海报2", "file": SimpleUploadedFile("b.png", png, "image/png")}, headers=api.headers)
    bad = api.client.post("/api/v1/materials/upload", {"name": "x", "file": SimpleUploadedFile("x.png", b"not an image", "image/png")}, headers=api.headers)

    assert (first.status_code, first.json()["kind"]) == (201, "image")
    relative = first.json()["data"]["file"]
    assert relative.startswith(f"materials/{workspace.pk}/") and relative.endswith(".png")
    assert second.json()["data"]["file"] == relative
    assert (tmp_path / relative).read_bytes() == png
    assert (bad.status_code, bad.json()["error"]["message"]) == (422, "file: not a readable image")
