"""The foundation's promise end to end: `siyu demo --json`, then
`siyu token create --workspace demo --staff <owner> --json`, then
`GET /api/v1/contacts?tag=...` with that token returns exactly the tagged contacts, and
the same token gets 404 for another workspace's contact."""

import json

import pytest
from django.test import Client
from typer.testing import CliRunner

from siyu.cli.main import app
from siyu.contacts.models import Contact, ContactTag
from siyu.core.testing import make_contact, make_workspace

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _cli(*args: str) -> dict:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])


def test_demo_then_token_then_tag_filter_over_the_api():
    demo = _cli("demo", "--contacts", "400", "--seed", "7", "--json")
    assert demo["workspace"] == "demo" and demo["created"] is True
    token = _cli("token", "create", "--workspace", "demo", "--staff", demo["owner_email"], "--json")["token"]
    headers = {"Authorization": f"Bearer {token}"}

    # pick a tag the demo really used, and ask the API for its holders
    link = ContactTag.objects.filter(workspace__slug="demo").select_related("tag__group").order_by("tag_id").first()
    assert link is not None
    tag_ref = f"{link.tag.group.name}/{link.tag.name}"
    expected = set(
        Contact.objects.filter(workspace__slug="demo", merged_into__isnull=True, tag_links__tag=link.tag).values_list("pk", flat=True)
    )
    seen: set[int] = set()
    offset = 0
    while True:
        page = Client().get("/api/v1/contacts", {"tag": tag_ref, "limit": 500, "offset": offset}, headers=headers).json()
        seen |= {item["id"] for item in page["items"]}
        offset += 500
        if offset >= page["count"]:
            break
    assert page["count"] == len(expected) > 0
    assert seen == expected

    other = make_contact(make_workspace("other-brand"), "别家的客户")
    response = Client().get(f"/api/v1/contacts/{other.pk}", headers=headers)
    assert response.status_code == 404
