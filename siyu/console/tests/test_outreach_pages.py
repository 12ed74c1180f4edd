"""Outreach console pages: broadcasts (composer, preview fragment, send, variant stats),
materials, quota settings and a contact's ledger, columns — through the real actions."""

from __future__ import annotations

import datetime as dt

import pytest

from siyu.accounts.models import Role
from siyu.channels.actions import do_create_channel_account
from siyu.communities.actions import do_create_group
from siyu.contacts.actions import do_add_identity, do_set_consent
from siyu.core.testing import make_contact, make_staff, make_workspace
from siyu.outreach.actions import do_create_broadcast, do_create_material, do_send_to_contact
from siyu.outreach.models import Broadcast, Column, Delivery, Material, QuotaPolicy

pytestmark = pytest.mark.django_db
SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def shanghai(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=SHANGHAI)  # type: ignore[misc, arg-type]


@pytest.fixture
def shop():
    ws = make_workspace(name="Shop")
    owner = make_staff(ws, Role.OWNER, email="owner@example.com")
    agent = make_staff(ws, Role.AGENT, email="agent@example.com")
    account = do_create_channel_account(ws, owner, kind="sandbox", name="sb")
    contacts = []
    for i in range(3):
        contact = make_contact(ws, name=f"客户{i}")
        do_add_identity(contact, None, account=account, external_id=f"u{i}")
        do_set_consent(contact, None, purpose="marketing", granted=True)
        contacts.append(contact)
    group = do_create_group(ws, owner, name="福利群", channel_account=account, external_id="room1")
    return {"ws": ws, "owner": owner, "agent": agent, "contacts": contacts, "group": group}


def test_composing_a_broadcast_previews_it_then_sends_it(shop, console_client):
    client = console_client(shop["owner"])
    ids = ", ".join(str(c.pk) for c in shop["contacts"])

    created = client.post("/console/outreach/broadcasts/new/", {
        "name": "周末抢购", "audience_kind": "contacts", "contacts": ids, "variant_A_text": "{name} 周末见", "variant_B_text": "{name} 抢购啦",
        "schedule_mode": "at", "scheduled_at": "2030-11-09T10:00", "message_class": "marketing",
    })

    broadcast = Broadcast.objects.in_workspace(shop["ws"]).get(name="周末抢购")
    assert (created.status_code, created["Location"]) == (302, f"/console/outreach/broadcasts/{broadcast.pk}/")
    assert list(broadcast.variants.values_list("label", "content__text")) == [("A", "{name} 周末见"), ("B", "{name} 抢购啦")]
    detail = client.get(f"/console/outreach/broadcasts/{broadcast.pk}/")
    assert f'hx-get="/console/outreach/broadcasts/{broadcast.pk}/preview/"' in detail.content.decode()
    preview = client.get(f"/console/outreach/broadcasts/{broadcast.pk}/preview/").content.decode()
    assert '<td class="num" id="pv-reach">3</td>' in preview
    assert '<td class="num" id="pv-planned">3</td>' in preview

    sent = client.post(f"/console/outreach/broadcasts/{broadcast.pk}/send/")

    assert sent.status_code == 302
    assert Delivery.objects.filter(broadcast=broadcast, status="queued").count() == 3
    page = client.get(f"/console/outreach/broadcasts/{broadcast.pk}/").content.decode()
    assert 'id="stats"' in page and "Planned 3, deferred 0, skipped 0." in page


def test_a_bad_variable_in_the_composer_is_shown_not_saved(shop, console_client):
    client = console_client(shop["owner"])

    response = client.post("/console/outreach/broadcasts/new/", {
        "name": "x", "audience_kind": "contacts", "contacts": str(shop["contacts"][0].pk), "variant_A_text": "{nmae} 你好",
    }, HTTP_REFERER="/console/outreach/broadcasts/new/", follow=True)

    assert "variants[0].content.text: unknown variable {nmae}" in response.content.decode()
    assert not Broadcast.objects.in_workspace(shop["ws"]).exists()


def test_materials_library_adds_and_lists(shop, console_client):
    client = console_client(shop["owner"])

    client.post("/console/outreach/materials/", {"name": "新品链接", "kind": "link", "text": "{name} 看看", "title": "新品", "url": "https://s.example.com/n", "folder": "上新"})

    material = Material.objects.in_workspace(shop["ws"]).get()
    assert (material.kind, material.data, material.variables) == ("link", {"title": "新品", "url": "https://s.example.com/n"}, ["name"])
    page = client.get("/console/outreach/materials/").content.decode()
    assert "新品链接" in page and "上新" in page


def test_quota_settings_and_the_contact_ledger_page(shop, console_client):
    client = console_client(shop["owner"])
    contact = shop["contacts"][0]
    client.post("/console/outreach/quota/", {"contact_marketing_cap": "1", "quiet_start": "23:00", "quiet_end": "07:00"})
    assert QuotaPolicy.objects.in_workspace(shop["ws"]).values_list("contact_marketing_cap", flat=True).get() == 1
    for day in (4, 5):
        do_send_to_contact(shop["ws"], contact=contact, content={"kind": "text", "text": "hi"}, message_class="marketing", source="s",
                           idempotency_key=f"k{day}", at=shanghai(2030, 11, day, 10), expires_at=shanghai(2030, 12, 1))

    page = client.get(f"/console/outreach/quota/contacts/{contact.pk}/").content.decode()

    assert "brand cap per contact: at most 1 in 7 days; 1 in the last 7 days" in page
    assert client.get(f"/console/outreach/quota/?contact={contact.pk}")["Location"] == f"/console/outreach/quota/contacts/{contact.pk}/"
    assert 'id="quota-ledger-link"' in client.get(f"/console/contacts/{contact.pk}/").content.decode()


def test_columns_page_creates_a_column(shop, console_client):
    client = console_client(shop["owner"])
    material = do_create_material(shop["ws"], shop["owner"], name="早报", text="{group} 早报")

    client.post("/console/outreach/columns/", {"name": "早报", "time_of_day": "08:30", "groups": [shop["group"].pk], "materials": [material.pk],
                                               "weekdays": ["0", "2", "4"]})

    column = Column.objects.in_workspace(shop["ws"]).get()
    assert (column.weekdays, column.materials, column.time_of_day.isoformat()) == ([0, 2, 4], [material.pk], "08:30:00")
    assert "早报" in client.get("/console/outreach/columns/").content.decode()


def test_agents_cannot_open_outreach_and_other_workspaces_look_missing(shop, console_client):
    other = make_workspace()
    other_owner = make_staff(other, Role.OWNER)
    stranger = make_contact(other)
    foreign = do_create_broadcast(other, actor=other_owner, name="x", audience={"contacts": [stranger.pk]},
                                  variants=[{"content": {"kind": "text", "text": "x"}}])
    agent = console_client(shop["agent"])
    owner = console_client(shop["owner"])

    assert agent.get("/console/outreach/").status_code == 403
    assert agent.post("/console/outreach/materials/", {"name": "x", "text": "y"}).status_code in (302, 403)
    assert not Material.objects.in_workspace(shop["ws"]).exists()
    assert owner.get(f"/console/outreach/broadcasts/{foreign.pk}/").status_code == 404
    assert owner.get(f"/console/outreach/broadcasts/{foreign.pk}/preview/").status_code == 404
    assert owner.post(f"/console/outreach/broadcasts/{foreign.pk}/send/").status_code == 404
    assert owner.get(f"/console/outreach/quota/contacts/{stranger.pk}/").status_code == 404
    assert Delivery.objects.filter(broadcast=foreign).count() == 0


def test_an_image_material_is_uploaded_from_the_library_page(shop, console_client, settings, tmp_path):
    import io

    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image

    settings.MEDIA_ROOT = tmp_path
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "blue").save(buffer, format="JPEG")

    response = console_client(shop["owner"]).post("/console/outreach/materials/", {
        "name": "海报", "kind": "image", "file": SimpleUploadedFile("p.jpg", buffer.getvalue(), "image/jpeg"),
    })

    material = Material.objects.in_workspace(shop["ws"]).get()
    assert response.status_code == 302
    assert (material.kind, material.data["file"].endswith(".jpg")) == ("image", True)
    assert (tmp_path / material.data["file"]).exists()
