from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from siyu.contacts.actions import do_tag_contacts
from siyu.core.testing import make_contact, make_tag, make_workspace
from siyu.segments.actions import do_create_segment
from siyu.segments.cli import segments_app

pytestmark = pytest.mark.django_db


def _run(*args: str) -> tuple[int, Any]:
    result = CliRunner().invoke(segments_app, [*args, "--json"])
    return result.exit_code, json.loads(result.stdout)


def test_list_build_show_preview():
    ws = make_workspace("cli")
    vip = make_tag(ws, "VIP")
    a = make_contact(ws, "A", phone="13812345678")
    do_tag_contacts(ws, None, [a], [vip])
    segment = do_create_segment(ws, None, name="VIP", definition={"tags": {"any": ["VIP"]}})

    code, built = _run("build", "--workspace", "cli", "--segment", str(segment.pk))
    assert code == 0
    assert {k: built[k] for k in ("size", "entered", "left")} == {"size": 1, "entered": 1, "left": 0}

    code, rows = _run("list", "--workspace", "cli")
    assert [(r["name"], r["size"]) for r in rows] == [("VIP", 1)]

    code, shown = _run("show", "--workspace", "cli", "--segment", str(segment.pk))
    assert [(b["mode"], b["size"]) for b in shown["builds"]] == [("full", 1)]

    code, preview = _run("preview", "--workspace", "cli", "--definition", '{"tags": {"any": ["VIP"]}}')
    assert preview == {"count": 1, "definition": {"tags": {"all": [], "any": [vip.pk], "none": []}},
                       "sample": [{"id": a.pk, "name": "A", "phone": "138****5678"}]}

    code, error = _run("preview", "--workspace", "cli", "--definition", '{"tags": {"any": ["nope"]}}')
    assert code == 1
    assert error == {"error": {"code": "invalid_definition", "message": 'tags.any: unknown tag "nope"', "details": {"path": "tags.any"}}}
