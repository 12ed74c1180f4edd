from __future__ import annotations

import pytest

from siyu.accounts.models import Role
from siyu.contacts.actions import do_tag_contacts
from siyu.core.testing import make_contact, make_staff, make_tag, make_workspace
from siyu.segments.actions import do_build_segment, do_create_segment
from siyu.segments.models import Segment
from siyu.segments.queries import segment_member_ids

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    ws = make_workspace("pages")
    vip = make_tag(ws, "VIP")
    agent = make_staff(ws, Role.AGENT)
    mine = make_contact(ws, "Mine", owner=agent)
    theirs = make_contact(ws, "Theirs", phone="13812345678")
    do_tag_contacts(ws, None, [mine, theirs], [vip])
    segment = do_create_segment(ws, None, name="VIP", definition={"tags": {"any": ["VIP"]}})
    do_build_segment(segment)
    return {"ws": ws, "owner": make_staff(ws, Role.OWNER), "agent": agent, "segment": segment, "mine": mine, "theirs": theirs}


def test_list_shows_size_and_build(world, console_client):
    page = console_client(world["owner"]).get("/console/segments/")

    assert page.status_code == 200
    html = page.content.decode()
    assert "VIP" in html and 'class="num">2</td>' in html


def test_live_preview_partial(world, console_client):
    client = console_client(world["owner"])

    ok = client.post("/console/segments/preview/", {"tags_any": "VIP"})
    bad = client.post("/console/segments/preview/", {"tags_any": "VIP2"})
    raw = client.post("/console/segments/preview/", {"raw": '{"not": {"tags": {"any": ["VIP"]}}}'})

    assert '<strong class="kpi">2</strong>' in ok.content.decode()
    assert "138****5678" in ok.content.decode()
    assert 'tags.any: unknown tag &quot;VIP2&quot;' in bad.content.decode()
    assert '<strong class="kpi">0</strong>' in raw.content.decode()


def test_create_from_builder_rows(world, console_client):
    client = console_client(world["owner"])

    response = client.post("/console/segments/new/", {"name": "VIP 下单", "kind": "dynamic", "tags_any": "VIP", "event_kind": "order",
                                              "event_min": "2", "event_within_days": "90"})

    segment = Segment.objects.get(name="VIP 下单")
    assert response.status_code == 302 and response["Location"] == f"/console/segments/{segment.pk}/"
    assert segment.definition == {"all": [{"tags": {"all": [], "any": [world["segment"].definition["tags"]["any"][0]], "none": []}},
                                          {"event": {"kind": "order", "min": 2, "max": None, "within_days": 90}}]}


def test_detail_members_follow_visibility_and_chart(world, console_client):
    owner_page = console_client(world["owner"]).get(f"/console/segments/{world['segment'].pk}/").content.decode()
    agent_page = console_client(world["agent"]).get(f"/console/segments/{world['segment'].pk}/").content.decode()

    assert "Mine" in owner_page and "Theirs" in owner_page
    assert 'id="segment-history"' in owner_page
    assert "Mine" in agent_page and "Theirs" not in agent_page
    assert "Rebuild now" not in agent_page


def test_rebuild_and_delete(world, console_client):
    client = console_client(world["owner"])
    pk = world["segment"].pk

    rebuilt = client.post(f"/console/segments/{pk}/build/")
    deleted = client.post(f"/console/segments/{pk}/delete/")

    assert rebuilt.status_code == 302 and deleted.status_code == 302
    assert not Segment.objects.filter(pk=pk).exists()


def test_agent_cannot_build_and_other_workspace_is_404(world, console_client):
    pk = world["segment"].pk
    stranger = make_staff(make_workspace("stranger"), Role.OWNER)

    assert console_client(world["agent"]).post(f"/console/segments/{pk}/build/").status_code == 403
    assert console_client(stranger).get(f"/console/segments/{pk}/").status_code == 404
    assert console_client(stranger).post(f"/console/segments/{pk}/delete/").status_code == 404
    assert set(segment_member_ids(world["ws"], world["segment"])) == {world["mine"].pk, world["theirs"].pk}
