"""``siyu journeys`` and ``siyu playbooks`` through typer's CliRunner."""

import json

import pytest
from typer.testing import CliRunner

from siyu.cli.main import app
from siyu.communities.actions import do_create_group
from siyu.core.testing import make_workspace

pytestmark = pytest.mark.django_db

runner = CliRunner()


def run_json(*args: str, exit_code: int = 0):
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == exit_code, result.output
    return json.loads(result.stdout)


def test_apply_list_show_and_runs(tmp_path):
    make_workspace("acme")
    path = tmp_path / "hello.yaml"
    path.write_text("name: 你好\ntrigger: {kind: contact_added}\nsteps:\n  - {id: bye, type: exit}\n", encoding="utf-8")
    created = run_json("journeys", "apply", str(path), "--workspace", "acme", "--publish")
    assert (created["name"], created["created"], created["published_version"], created["status"]) == ("你好", True, 1, "published")
    again = run_json("journeys", "apply", str(path), "--workspace", "acme", "--publish")
    assert (again["id"], again["created"], again["published_version"]) == (created["id"], False, 1)
    assert [j["name"] for j in run_json("journeys", "list", "--workspace", "acme")] == ["你好"]
    shown = run_json("journeys", "show", str(created["id"]), "--workspace", "acme")
    assert [(s["id"], s["now_here"]) for s in shown["steps"]] == [("bye", 0)]
    assert run_json("journeys", "runs", str(created["id"]), "--workspace", "acme") == []


def test_apply_reports_the_path_of_an_invalid_definition(tmp_path):
    make_workspace("acme")
    path = tmp_path / "bad.yaml"
    path.write_text("name: 坏\nsteps:\n  - {id: a, type: add_tag, tag: 不存在}\n", encoding="utf-8")
    error = run_json("journeys", "apply", str(path), "--workspace", "acme", exit_code=1)
    assert error == {"error": {"code": "invalid_definition", "message": "steps[0].tag: unknown tag '不存在'", "details": {"path": "steps[0].tag"}}}
    assert run_json("journeys", "apply", str(tmp_path / "missing.yaml"), "--workspace", "acme", exit_code=2)["error"]["code"] == "usage"


def test_playbooks_list_and_instantiate():
    ws = make_workspace("acme")
    group = do_create_group(ws, None, name="福利群")
    assert [p["name"] for p in run_json("playbooks", "list")] == ["flash_sale", "new_customer_nurture", "qa_clinic", "sharing_session", "vip_care", "win_back"]
    result = run_json("playbooks", "instantiate", "flash_sale", "--workspace", "acme", "--date", "2099-12-12T20:00",
                      "--groups", str(group.pk), "--param", "title=双十二")
    assert result["journeys"][0]["name"] == "双十二 2099-12-12"
    assert [s["at"] for s in result["journeys"][0]["schedule"]][:2] == ["2099-12-09T10:00:00+08:00", "2099-12-10T10:00:00+08:00"]
    assert run_json("playbooks", "instantiate", "flash_sale", "--workspace", "acme", "--param", "oops", exit_code=2)["error"]["code"] == "usage"
