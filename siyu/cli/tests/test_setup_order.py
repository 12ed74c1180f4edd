"""Commands set Django up before they import what needs it. Under pytest Django is already
set up, so a command that imported a model before ``with command(...)`` passed its tests and
failed in a real shell (``AppRegistryNotReady``): ``siyu groups list`` and ``siyu moderation
blacklist list`` did. Checked here two ways: every command function of the code base, read
(not run), and a few commands as real processes on a fresh SIYU_HOME."""

import ast
import json
from pathlib import Path
from typing import Any

from siyu.cli.tests.test_server import siyu

ROOT = Path(__file__).resolve().parents[3]


def _imports_before_setup(path: Path, root: Path = ROOT) -> list[str]:
    """``siyu`` imports (other than the CLI runtime, which needs no set-up) in a function's
    statements before its ``with command(...)``."""
    found = []
    for fn in ast.walk(ast.parse(path.read_text("utf-8"))):
        if not isinstance(fn, ast.FunctionDef):
            continue
        setup = next((i for i, st in enumerate(fn.body) if isinstance(st, ast.With) and any(
            isinstance(item.context_expr, ast.Call) and getattr(item.context_expr.func, "id", "") == "command" for item in st.items)), None)
        for statement in fn.body[:setup] if setup is not None else ():
            for node in ast.walk(statement):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("siyu") and node.module != "siyu.cli.runtime":
                    found.append(f"{path.relative_to(root)}:{node.lineno} {fn.name} imports {node.module} before setting Django up")
    return found


def test_no_command_imports_siyu_code_before_setting_django_up():
    modules = [p for p in (ROOT / "siyu").rglob("*.py") if "tests" not in p.parts and "with command(" in p.read_text("utf-8")]
    assert len(modules) >= 10  # the CLI modules are found (the check reads something)
    assert [line for path in modules for line in _imports_before_setup(path)] == []


def test_the_check_finds_an_import_before_set_up(tmp_path):
    bad = tmp_path / "cli.py"
    bad.write_text("def list_command(json_out):\n    from siyu.communities.models import Group\n\n    with command(json_out):\n        pass\n")
    good = tmp_path / "ok.py"
    good.write_text("def list_command(json_out):\n    from siyu.cli.runtime import emit\n\n    with command(json_out):\n"
                    "        from siyu.communities.models import Group\n")
    assert _imports_before_setup(bad, tmp_path) == ["cli.py:2 list_command imports siyu.communities.models before setting Django up"]
    assert _imports_before_setup(good, tmp_path) == []


def test_group_and_blacklist_commands_run_as_real_processes(tmp_path):
    def run(*args: str) -> tuple[int, Any]:
        done = siyu(tmp_path, *args, "--json")
        assert "AppRegistryNotReady" not in done.stderr, done.stderr
        return done.returncode, json.loads(done.stdout)

    assert siyu(tmp_path, "init", "--json").returncode == 0
    assert run("workspace", "create", "--slug", "acme", "--name", "Acme")[0] == 0
    assert run("groups", "list", "--workspace", "acme") == (0, [])
    code, group = run("groups", "create", "--workspace", "acme", "--name", "福利1群")
    assert code == 0 and group["name"] == "福利1群"
    code, settings = run("groups", "settings", str(group["id"]), "--workspace", "acme", "--set", "refund_on_removal=false")
    assert code == 0 and settings["effective"]["refund_on_removal"] == {"value": False, "source": "group"}
    assert run("groups", "defaults", "--workspace", "acme") == (0, {"own": {}})
    assert run("moderation", "blacklist", "list", "--workspace", "acme", "--q", "广告") == (0, [])
    code, refused = run("moderation", "blacklist", "lift", "999", "--workspace", "acme")
    assert code == 1 and refused["error"]["code"] == "not_found"
