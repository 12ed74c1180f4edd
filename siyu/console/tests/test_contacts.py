"""The contacts list (filters, bulk tagging, export) and the contact page."""

from __future__ import annotations

import re

import pytest

from siyu.accounts.models import AuditEntry, Role
from siyu.communities.actions import do_add_member, do_create_group
from siyu.contacts.actions import do_tag_contacts
from siyu.contacts.models import Consent, ContactTag
from siyu.contacts.rules import do_create_tag_rule
from siyu.core.testing import make_contact, make_staff, make_tag, make_workspace

pytestmark = pytest.mark.django_db


def listed_names(html: str) -> list[str]:
    """Names in the contacts table, in order."""
    return re.findall(r'<td class="name"><a href="/console/contacts/\d+/">([^<]+)</a>', html)


@pytest.fixture
def shop():
    """A workspace with an owner, VIP and 上海 tags, and four contacts."""
    ws = make_workspace(name="Shop")
    owner = make_staff(ws, Role.OWNER, email="owner@example.com")
    vip = make_tag(ws, "VIP", group="会员")
    shanghai = make_tag(ws, "上海", group="地区")
    ann = make_contact(ws, name="Ann", phone="13812345678", source_channel="poster")
    bob = make_contact(ws, name="Bob", phone="13900001111", source_channel="parcel")
    cai = make_contact(ws, name="Cai", source_channel="poster")
    dan = make_contact(ws, name="Dan")
    do_tag_contacts(ws, None, [ann, bob], [vip])
    do_tag_contacts(ws, None, [ann, cai], [shanghai])
    return {"ws": ws, "owner": owner, "vip": vip, "shanghai": shanghai, "ann": ann, "bob": bob, "cai": cai, "dan": dan}


def test_list_shows_every_contact_newest_first_with_total(shop, console_client):
    response = console_client(shop["owner"]).get("/console/contacts/")

    html = response.content.decode()
    assert response.status_code == 200
    assert listed_names(html) == ["Dan", "Cai", "Bob", "Ann"]
    assert "4 contacts" in html


def test_filter_by_tag_all_any_and_none(shop, console_client):
    client = console_client(shop["owner"])
    vip, sh = shop["vip"].pk, shop["shanghai"].pk

    assert listed_names(client.get(f"/console/contacts/?tags_all={vip}").content.decode()) == ["Bob", "Ann"]
    assert listed_names(client.get(f"/console/contacts/?tags_all={vip}&tags_all={sh}").content.decode()) == ["Ann"]
    assert listed_names(client.get(f"/console/contacts/?tags_any={vip}&tags_any={sh}").content.decode()) == ["Cai", "Bob", "Ann"]
    assert listed_names(client.get(f"/console/contacts/?tags_none={vip}").content.decode()) == ["Dan", "Cai"]
    # a tag may be named instead of numbered (links in chat, the user guide)
    assert listed_names(client.get("/console/contacts/?tags_all=会员/VIP").content.decode()) == ["Bob", "Ann"]


def test_filter_by_stage_owner_channel_and_text(shop, console_client):
    ws = shop["ws"]
    agent = make_staff(ws, Role.AGENT)
    make_contact(ws, name="Eve", owner=agent, lifecycle_stage="vip", city="杭州")
    client = console_client(shop["owner"])

    assert listed_names(client.get("/console/contacts/?stage=vip").content.decode()) == ["Eve"]
    assert listed_names(client.get(f"/console/contacts/?owner={agent.pk}").content.decode()) == ["Eve"]
    assert listed_names(client.get("/console/contacts/?channel=poster").content.decode()) == ["Cai", "Ann"]
    assert listed_names(client.get("/console/contacts/?q=杭州").content.decode()) == ["Eve"]
    assert listed_names(client.get("/console/contacts/?q=138 1234 5678").content.decode()) == ["Ann"]


def test_unknown_tag_or_stage_shows_the_message_instead_of_failing(shop, console_client):
    client = console_client(shop["owner"])

    unknown_tag = client.get("/console/contacts/?tags_all=nosuchtag")
    bad_stage = client.get("/console/contacts/?stage=nonsense")

    assert unknown_tag.status_code == 200
    assert "unknown tag &#x27;nosuchtag&#x27;" in unknown_tag.content.decode()
    assert listed_names(unknown_tag.content.decode()) == []
    assert "unknown lifecycle stage" in bad_stage.content.decode()


def test_htmx_filter_returns_only_the_results_and_pushes_a_clean_url(shop, console_client):
    client = console_client(shop["owner"])
    vip = shop["vip"].pk

    response = client.get(
        f"/console/contacts/?q=&tags_all={vip}&stage=&channel=", headers={"HX-Request": "true", "HX-Target": "contact-results"}
    )

    html = response.content.decode()
    assert "<html" not in html
    assert listed_names(html) == ["Bob", "Ann"]
    assert response["HX-Push-Url"] == f"/console/contacts/?tags_all={vip}"
    assert 'id="tag-summary-tags_all" hx-swap-oob="true"' in html
    assert "HX-Request" in response["Vary"]


def test_pagination_shows_fifty_per_page(console_client):
    ws = make_workspace()
    owner = make_staff(ws, Role.OWNER)
    for n in range(55):
        make_contact(ws, name=f"C{n:02d}")
    client = console_client(owner)

    first = client.get("/console/contacts/").content.decode()
    second = client.get("/console/contacts/?page=2").content.decode()

    assert len(listed_names(first)) == 50
    assert listed_names(second) == ["C04", "C03", "C02", "C01", "C00"]
    assert "55 contacts" in second
    assert "51–55 of 55" in second


def test_bulk_tagging_adds_and_removes_a_tag_and_says_how_many(shop, console_client):
    client = console_client(shop["owner"])
    ids = [shop["cai"].pk, shop["dan"].pk, shop["ann"].pk]

    added = client.post(
        "/console/contacts/bulk-tag/", {"contact": ids, "tag": shop["vip"].pk, "op": "add", "next": "/console/contacts/?q=x"}, follow=True
    )

    assert added.redirect_chain[0] == ("/console/contacts/?q=x", 302)
    assert "Tagged 2 of 3 selected contacts with “会员/VIP”." in added.content.decode()
    assert set(ContactTag.objects.filter(tag=shop["vip"]).values_list("contact__name", flat=True)) == {"Ann", "Bob", "Cai", "Dan"}
    entry = AuditEntry.objects.in_workspace(shop["ws"]).filter(action="contacts.tagged").first()
    assert entry is not None and entry.via == "console" and entry.actor == shop["owner"]

    removed = client.post("/console/contacts/bulk-tag/", {"contact": ids, "tag": shop["vip"].pk, "op": "remove"}, follow=True)

    assert "Removed tag “会员/VIP” from 3 of 3 selected contacts." in removed.content.decode()
    assert list(ContactTag.objects.filter(tag=shop["vip"]).values_list("contact__name", flat=True)) == ["Bob"]


def test_bulk_tagging_without_a_selection_or_a_tag_asks_for_one(shop, console_client):
    client = console_client(shop["owner"])

    nothing = client.post("/console/contacts/bulk-tag/", {"tag": shop["vip"].pk, "op": "add"}, follow=True)
    no_tag = client.post("/console/contacts/bulk-tag/", {"contact": [shop["dan"].pk], "tag": "", "op": "add"}, follow=True)

    assert "Select at least one contact." in nothing.content.decode()
    assert "Pick a tag." in no_tag.content.decode()
    assert ContactTag.objects.filter(contact=shop["dan"]).count() == 0


def test_bulk_tagging_a_contact_of_another_workspace_is_a_404(shop, console_client):
    other = make_workspace()
    stranger = make_contact(other, name="Stranger")

    response = console_client(shop["owner"]).post(
        "/console/contacts/bulk-tag/", {"contact": [shop["dan"].pk, stranger.pk], "tag": shop["vip"].pk, "op": "add"}
    )

    # all or nothing: the page names the contact it could not find, and no one is tagged
    assert response.status_code == 404
    assert f"contacts not found: [{stranger.pk}]" in response.content.decode()
    assert ContactTag.objects.filter(contact__in=[stranger, shop["dan"]], tag=shop["vip"]).count() == 0


def test_analyst_cannot_bulk_tag(shop, console_client):
    analyst = make_staff(shop["ws"], Role.ANALYST)
    client = console_client(analyst)

    page = client.get("/console/contacts/").content.decode()
    response = client.post("/console/contacts/bulk-tag/", {"contact": [shop["dan"].pk], "tag": shop["vip"].pk, "op": "add"})

    assert "Add tag" not in page
    assert response.status_code == 403
    assert "your role does not allow tags.apply" in response.content.decode()


def test_agent_sees_only_own_contacts_and_gets_404_for_a_colleagues(console_client):
    ws = make_workspace()
    agent_a, agent_b = make_staff(ws, Role.AGENT), make_staff(ws, Role.AGENT)
    mine = make_contact(ws, name="Mine", owner=agent_a)
    theirs = make_contact(ws, name="Theirs", owner=agent_b)
    client = console_client(agent_a)

    assert listed_names(client.get("/console/contacts/").content.decode()) == ["Mine"]
    assert client.get(f"/console/contacts/{mine.pk}/").status_code == 200
    assert client.get(f"/console/contacts/{theirs.pk}/").status_code == 404
    assert client.post(f"/console/contacts/{theirs.pk}/edit/", {"name": "Hijacked"}).status_code == 404


def test_contact_of_another_workspace_is_a_404(shop, console_client):
    stranger = make_contact(make_workspace(), name="Stranger")

    assert console_client(shop["owner"]).get(f"/console/contacts/{stranger.pk}/").status_code == 404


@pytest.mark.parametrize(
    ("role", "shown", "hidden"),
    [
        (Role.OWNER, "+8613812345678", "138****5678"),
        (Role.ANALYST, "138****5678", "13812345678"),
    ],
)
def test_phone_is_masked_unless_the_role_may_see_pii(shop, console_client, role, shown, hidden):
    viewer = shop["owner"] if role == Role.OWNER else make_staff(shop["ws"], role)
    client = console_client(viewer)

    listing = client.get("/console/contacts/").content.decode()
    detail = client.get(f"/console/contacts/{shop['ann'].pk}/").content.decode()

    assert shown in listing and hidden not in listing
    assert shown in detail and hidden not in detail


def test_agent_sees_the_masked_phone_of_their_own_contact(console_client):
    ws = make_workspace()
    agent = make_staff(ws, Role.AGENT)
    mine = make_contact(ws, name="Mine", owner=agent, phone="13812345678")
    client = console_client(agent)

    listing = client.get("/console/contacts/").content.decode()
    detail = client.get(f"/console/contacts/{mine.pk}/").content.decode()

    assert "138****5678" in listing and "13812345678" not in listing
    assert "138****5678" in detail and "13812345678" not in detail


def test_contact_page_shows_profile_tags_groups_rules_and_timeline(shop, console_client):
    ws, ann = shop["ws"], shop["ann"]
    group = do_create_group(ws, None, name="上海VIP群")
    do_add_member(group, ann, None, join_source="live_code")
    do_create_tag_rule(ws, None, name="Shanghai VIP", tag=shop["vip"], conditions=[{"has_tag": "地区/上海"}])

    html = console_client(shop["owner"]).get(f"/console/contacts/{ann.pk}/").content.decode()

    timeline = html[html.index('id="timeline"'):]
    kinds = re.findall(r'class="timeline-event kind-(\w+)"', timeline)
    assert kinds == ["joined_group", "tagged", "tagged", "added"]
    assert "上海VIP群 (live_code)" in timeline
    assert "会员/VIP (Manual)" in timeline
    assert "source: poster" in timeline
    assert 'href="/console/groups/' in html
    assert "Shanghai VIP" in html and "has tag 地区/上海" in html


def test_timeline_times_are_in_the_workspace_time_zone(console_client):
    import datetime as dt

    ws = make_workspace(time_zone="Asia/Shanghai")
    owner = make_staff(ws, Role.OWNER)
    contact = make_contact(ws, name="Zed", created_at=dt.datetime(2024, 5, 1, 16, 30, tzinfo=dt.UTC))

    html = console_client(owner).get(f"/console/contacts/{contact.pk}/").content.decode()

    assert "2024-05-02 00:30" in html


def test_edit_form_updates_the_contact_and_records_the_change(shop, console_client):
    client = console_client(shop["owner"])
    dan = shop["dan"]

    response = client.post(
        f"/console/contacts/{dan.pk}/edit/",
        {"name": "Dan Li", "gender": "male", "birthday": "1990-02-03", "region": "浙江", "city": "杭州",
         "phone": "13700002222", "lifecycle_stage": "repeat", "owner": shop["owner"].pk, "external_ref": "X-1"},
    )

    assert response.status_code == 302
    dan.refresh_from_db()
    assert (dan.name, dan.city, dan.lifecycle_stage, dan.phone, dan.owner_id) == ("Dan Li", "杭州", "repeat", "+8613700002222", shop["owner"].pk)
    assert dan.events.filter(kind="updated").count() == 1


def test_edit_form_shows_the_action_error(shop, console_client):
    response = console_client(shop["owner"]).post(
        f"/console/contacts/{shop['dan'].pk}/edit/", {"name": "Dan", "gender": "unknown", "phone": "12", "lifecycle_stage": "new"}
    )

    assert response.status_code == 422
    assert "not a valid phone number" in response.content.decode() or "not a phone number" in response.content.decode()


def test_agent_edit_without_pii_keeps_the_phone_when_left_empty(console_client):
    ws = make_workspace()
    agent = make_staff(ws, Role.AGENT)
    mine = make_contact(ws, name="Mine", owner=agent, phone="13812345678")

    response = console_client(agent).post(
        f"/console/contacts/{mine.pk}/edit/", {"name": "Mine2", "gender": "unknown", "phone": "", "lifecycle_stage": "new"}
    )

    assert response.status_code == 302
    mine.refresh_from_db()
    assert (mine.name, mine.phone, mine.owner_id) == ("Mine2", "+8613812345678", agent.pk)


def test_add_and_remove_a_tag_on_the_contact_page(shop, console_client):
    client = console_client(shop["owner"])
    dan = shop["dan"]

    client.post(f"/console/contacts/{dan.pk}/tags/", {"tag": shop["vip"].pk, "op": "add"})
    assert list(ContactTag.objects.filter(contact=dan).values_list("tag__name", flat=True)) == ["VIP"]

    client.post(f"/console/contacts/{dan.pk}/tags/", {"tag": shop["vip"].pk, "op": "remove"})
    assert ContactTag.objects.filter(contact=dan).count() == 0
    assert list(dan.events.order_by("id").values_list("kind", flat=True)) == ["added", "tagged", "untagged"]


def test_consent_is_recorded_per_purpose(shop, console_client):
    client = console_client(shop["owner"])
    dan = shop["dan"]

    client.post(f"/console/contacts/{dan.pk}/consent/", {"purpose": "marketing", "granted": "on"})
    client.post(f"/console/contacts/{dan.pk}/consent/", {"purpose": "service", "do_not_disturb": "on"})

    states = {c.purpose: (c.granted, c.do_not_disturb) for c in Consent.objects.filter(contact=dan)}
    assert states == {"marketing": (True, False), "service": (False, True)}
    assert dan.events.filter(kind="consent").count() == 2


def test_export_buttons_only_for_roles_that_may_export(shop, console_client):
    agent = make_staff(shop["ws"], Role.AGENT)

    owner_page = console_client(shop["owner"]).get("/console/contacts/").content.decode()
    agent_page = console_client(agent).get("/console/contacts/").content.decode()

    assert "/console/contacts/export/?fmt=csv" in owner_page and "/console/contacts/export/?fmt=xlsx" in owner_page
    assert "/console/contacts/export/" not in agent_page
    assert console_client(agent).get("/console/contacts/export/?fmt=csv").status_code == 403


def test_export_downloads_the_filtered_contacts_masked_per_role(shop, console_client):
    pytest.importorskip("siyu.contacts.exporting")
    analyst = make_staff(shop["ws"], Role.ANALYST)
    vip = shop["vip"].pk

    owner_csv = console_client(shop["owner"]).get(f"/console/contacts/export/?fmt=csv&tags_all={vip}")
    analyst_csv = console_client(analyst).get(f"/console/contacts/export/?fmt=csv&tags_all={vip}")
    xlsx = console_client(shop["owner"]).get("/console/contacts/export/?fmt=xlsx")

    owner_text = owner_csv.content.decode("utf-8-sig")
    analyst_text = analyst_csv.content.decode("utf-8-sig")
    assert owner_csv.status_code == 200
    assert owner_csv["Content-Disposition"].startswith("attachment;")
    assert "Ann" in owner_text and "Bob" in owner_text and "Cai" not in owner_text and "Dan" not in owner_text
    assert "13812345678" in owner_text
    assert "138****5678" in analyst_text and "13812345678" not in analyst_text
    assert xlsx.status_code == 200
    assert xlsx.content[:2] == b"PK"
    assert AuditEntry.objects.in_workspace(shop["ws"]).filter(via="console", action__contains="export").count() == 3


def test_export_rejects_an_unknown_format(shop, console_client):
    response = console_client(shop["owner"]).get("/console/contacts/export/?fmt=pdf")

    assert response.status_code == 422
    assert "export format must be csv or xlsx" in response.content.decode()


def test_merge_a_duplicate_into_the_contact(shop, console_client):
    client = console_client(shop["owner"])
    ann, cai = shop["ann"], shop["cai"]

    response = client.post(f"/console/contacts/{ann.pk}/merge/", {"duplicate": f"#{cai.pk}"}, follow=True)

    cai.refresh_from_db()
    assert cai.merged_into_id == ann.pk
    assert f"Merged #{cai.pk} Cai into this contact." in response.content.decode()
    assert listed_names(client.get("/console/contacts/").content.decode()) == ["Dan", "Bob", "Ann"]
    assert client.get(f"/console/contacts/{cai.pk}/").status_code == 404


def test_merge_with_a_wrong_number_or_itself_says_why(shop, console_client):
    client = console_client(shop["owner"])
    ann = shop["ann"]
    stranger = make_contact(make_workspace(), name="Stranger")

    unknown = client.post(f"/console/contacts/{ann.pk}/merge/", {"duplicate": str(stranger.pk)}, follow=True)
    itself = client.post(f"/console/contacts/{ann.pk}/merge/", {"duplicate": str(ann.pk)}, follow=True)

    assert f"no contact #{stranger.pk} to merge" in unknown.content.decode()
    assert "cannot merge a contact into itself" in itself.content.decode()
    stranger.refresh_from_db()
    assert stranger.merged_into_id is None


def test_agent_cannot_merge(console_client):
    ws = make_workspace()
    agent = make_staff(ws, Role.AGENT)
    first, second = make_contact(ws, name="A", owner=agent), make_contact(ws, name="B", owner=agent)
    client = console_client(agent)

    assert "Merge a duplicate" not in client.get(f"/console/contacts/{first.pk}/").content.decode()
    assert client.post(f"/console/contacts/{first.pk}/merge/", {"duplicate": second.pk}).status_code == 403


def test_list_queries_do_not_grow_with_the_rows_shown(console_client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    ws = make_workspace()
    owner = make_staff(ws, Role.OWNER)
    vip, green = make_tag(ws, "VIP", group="会员"), make_tag(ws, "绿茶", group="偏好")
    client = console_client(owner)

    def queries_for_list() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/console/contacts/").status_code == 200
        return len(captured)

    few = [make_contact(ws, owner=owner) for _ in range(3)]
    do_tag_contacts(ws, None, few, [vip, green])
    with_three = queries_for_list()
    many = [make_contact(ws, owner=owner) for _ in range(30)]
    do_tag_contacts(ws, None, many, [vip, green])

    assert queries_for_list() == with_three
