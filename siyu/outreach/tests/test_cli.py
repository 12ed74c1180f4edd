"""``siyu broadcasts preview|send|stats`` and ``siyu quota explain`` with --json."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from siyu.cli.main import app
from siyu.outreach.actions import do_create_broadcast, do_send_to_contact

from .conftest import shanghai

pytestmark = pytest.mark.django_db
runner = CliRunner()


def run(*args: str) -> tuple[int, Any]:
    result = runner.invoke(app, list(args))
    return result.exit_code, json.loads(result.stdout)


def test_preview_send_and_stats_as_json(workspace, owner, sandbox, reachable):
    contacts = [reachable(sandbox) for _ in range(2)]
    broadcast = do_create_broadcast(workspace, actor=owner, name="周末", audience={"contacts": [c.pk for c in contacts]},
                                    variants=[{"content": {"kind": "text", "text": "hi {name}"}}],
                                    schedule={"mode": "at", "at": "2030-11-09T10:00:00+08:00"})
    slug, bid = workspace.slug, str(broadcast.pk)

    code, preview = run("broadcasts", "preview", "--workspace", slug, "--broadcast", bid, "--json")
    assert code == 0
    assert {k: preview[k] for k in ("reach", "planned", "deferred", "skipped")} == {"reach": 2, "planned": 2, "deferred": 0, "skipped": 0}

    assert run("broadcasts", "send", "--workspace", slug, "--broadcast", bid, "--json") == (
        0, {"planned": 2, "deferred": 0, "skipped": 0, "by_reason": {}}
    )
    code, again = run("broadcasts", "send", "--workspace", slug, "--broadcast", bid, "--json")
    assert (code, again["error"]["code"]) == (1, "broadcast_not_draft")

    code, stats = run("broadcasts", "stats", "--workspace", slug, "--broadcast", bid, "--json")
    assert code == 0
    assert [(s["variant"], s["queued"]) for s in stats] == [("A", 2)]


def test_quota_explain_shows_the_rule_and_the_next_slot(workspace, sandbox, reachable):
    contact = reachable(sandbox)
    for day in (4, 6, 8):
        do_send_to_contact(workspace, contact=contact, content={"kind": "text", "text": "hi"}, message_class="marketing", source="broadcast:1",
                           idempotency_key=f"k{day}", at=shanghai(2030, 11, day, 10))

    code, body = run("quota", "explain", "--workspace", workspace.slug, "--contact", str(contact.pk), "--json")

    assert code == 0
    first = body["deliveries"][0]
    assert (first["status"], first["rule"], first["planned_for"]) == ("deferred", "brand.weekly_cap", "2030-11-11T02:00:00+00:00")
    code, missing = run("quota", "explain", "--workspace", workspace.slug, "--contact", "999999", "--json")
    assert (code, missing["error"]["code"]) == (1, "contact_not_found")
