import pytest

from siyu.accounts.models import AuditEntry, Role
from siyu.api.tests.conftest import ApiClient, client_for
from siyu.contacts.actions import do_tag_contacts
from siyu.contacts.models import Contact, ContactEvent
from siyu.core.testing import make_contact, make_staff, make_tag

pytestmark = pytest.mark.django_db


def test_missing_or_bad_token_is_401():
    assert ApiClient(None).get("/contacts").status_code == 401
    response = ApiClient("siyu_not-a-real-token").get("/contacts")
    assert response.status_code == 401
    assert response.json() == {"error": {"code": "unauthorized", "message": "missing, invalid or revoked bearer token"}}


def test_create_then_list_contacts_with_masked_phone_for_analyst(api, workspace):
    response = api.post("/contacts", {"name": "王小美", "phone": "138 1234 5678", "city": "上海", "source_channel": "parcel_card"})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["phone"] == "+8613812345678"  # owner may see identifiers
    assert body["source_channel"] == "parcel_card"
    analyst = client_for(make_staff(workspace, Role.ANALYST))
    listed = analyst.get("/contacts").json()
    assert listed["count"] == 1
    assert listed["items"][0]["phone"] == "138****5678"
    stored = Contact.objects.get(pk=body["id"])
    assert "13812345678" not in stored.phone_encrypted


def test_filter_by_tags_all_any_none(api, workspace):
    vip, new = make_tag(workspace, "VIP"), make_tag(workspace, "新客")
    a, b, c = (make_contact(workspace, n) for n in ("A", "B", "C"))
    do_tag_contacts(workspace, None, [a, b], [vip])
    do_tag_contacts(workspace, None, [b, c], [new])

    def names(query):
        response = api.get("/contacts", query)
        assert response.status_code == 200, response.json()
        return sorted(item["name"] for item in response.json()["items"])

    assert names({"tag": "VIP"}) == ["A", "B"]
    assert names({"tag": ["VIP", "兴趣/新客"]}) == ["B"]
    assert names({"tag_any": ["VIP", str(new.pk)]}) == ["A", "B", "C"]
    assert names({"tag_none": "VIP"}) == ["C"]
    assert names({"tag": "VIP", "tag_none": "新客"}) == ["A"]


def test_unknown_tag_filter_is_a_clear_422(api):
    response = api.get("/contacts", {"tag": "不存在"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "unknown_tag"
    assert "不存在" in response.json()["error"]["message"]


def test_pagination_shape_and_limits(api, workspace):
    for i in range(5):
        make_contact(workspace, f"c{i}")
    page = api.get("/contacts", {"limit": 2, "offset": 2}).json()
    assert page["count"] == 5
    assert len(page["items"]) == 2
    assert api.get("/contacts", {"limit": 0}).status_code == 422
    assert api.get("/contacts", {"limit": 501}).status_code == 422


def test_invalid_input_gets_field_error(api):
    response = api.post("/contacts", {"name": "x", "phone": "12345"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_phone"
    response = api.post("/contacts", {"phone": "13812345678"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
    assert response.json()["error"]["message"].startswith("name:")


def test_update_keeps_first_touch_and_audits(api, workspace):
    contact = make_contact(workspace, "李雷", source_channel="store_poster")
    response = api.patch(f"/contacts/{contact.pk}", {"city": "杭州", "lifecycle_stage": "nurtured"})
    assert response.status_code == 200
    assert response.json()["city"] == "杭州"
    assert response.json()["source_channel"] == "store_poster"
    entry = AuditEntry.objects.filter(action="contact.updated").get()
    assert entry.before["city"] == "" and entry.after["city"] == "杭州"
    assert entry.via == "api"


def test_timeline_and_idempotent_events(api, workspace):
    contact = make_contact(workspace, "韩梅梅")
    payload = {"kind": "order", "idempotency_key": "order-1001", "data": {"amount": "299.00"}}
    first = api.post(f"/contacts/{contact.pk}/events", payload)
    again = api.post(f"/contacts/{contact.pk}/events", payload)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    timeline = api.get(f"/contacts/{contact.pk}/timeline").json()
    assert [e["kind"] for e in timeline["items"]] == ["order", "added"]
    assert ContactEvent.objects.filter(contact=contact, kind="order").count() == 1


def test_bulk_tag_and_remove(api, workspace):
    vip = make_tag(workspace, "VIP")
    contacts = [make_contact(workspace, f"c{i}") for i in range(3)]
    ids = [c.pk for c in contacts]
    response = api.post("/contacts/bulk-tag", {"contact_ids": ids, "add": ["VIP"]})
    assert response.json() == {"contacts": 3, "added": 3, "removed": 0}
    again = api.post("/contacts/bulk-tag", {"contact_ids": ids, "add": ["VIP"]})
    assert again.json()["added"] == 0
    removed = api.post("/contacts/bulk-tag", {"contact_ids": ids[:1], "remove": [str(vip.pk)]})
    assert removed.json() == {"contacts": 1, "added": 0, "removed": 1}
    missing = api.post("/contacts/bulk-tag", {"contact_ids": [*ids, 999999], "add": ["VIP"]})
    assert missing.status_code == 404


def test_merge_moves_tags_and_hides_duplicate(api, workspace):
    vip = make_tag(workspace, "VIP")
    primary = make_contact(workspace, "张三", phone="13900000001")
    duplicate = make_contact(workspace, "张三(2)", city="北京")
    do_tag_contacts(workspace, None, [duplicate], [vip])
    response = api.post(f"/contacts/{primary.pk}/merge", {"duplicate_id": duplicate.pk})
    assert response.status_code == 200
    assert [t["name"] for t in response.json()["tags"]] == ["VIP"]
    assert response.json()["city"] == "北京"
    assert api.get(f"/contacts/{duplicate.pk}").status_code == 404
    assert api.get("/contacts").json()["count"] == 1
    assert api.post(f"/contacts/{primary.pk}/merge", {"duplicate_id": primary.pk}).status_code == 409


def test_consent_roundtrip_and_unknown_purpose(api, workspace):
    contact = make_contact(workspace)
    response = api.put(f"/contacts/{contact.pk}/consents/marketing", {"granted": False, "do_not_disturb": True})
    assert response.status_code == 200
    assert response.json()["do_not_disturb"] is True
    assert api.put(f"/contacts/{contact.pk}/consents/spam", {"granted": True}).status_code == 422


def test_openapi_is_served(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/v1/contacts" in paths and "/api/v1/groups/{group_id}/members" in paths
