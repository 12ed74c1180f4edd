import datetime as dt
import json

import pytest
from typer.testing import CliRunner

from siyu.communities.actions import do_record_group_health
from siyu.communities.health_cli import health_app
from siyu.communities.tests.test_health import LAST, fading_group
from siyu.core.testing import make_staff, make_workspace

pytestmark = pytest.mark.django_db


def _run(*args):
    result = CliRunner().invoke(health_app, [*args, "--json"])
    return result.exit_code, json.loads(result.stdout)


def test_health_heatmap_roles_and_alerts_as_json():
    ws = make_workspace("acme")
    group, _ = fading_group(ws, make_staff(ws), members=10)
    do_record_group_health(group, LAST - dt.timedelta(days=1), LAST)

    code, health = _run("health", "--workspace", "acme", "--group", str(group.pk), "--days", "1")
    assert code == 0 and health["state"] == "fading" and [d["day"] for d in health["days"]] == ["2026-06-04"]
    assert health["days"][0]["talkers"] == 2 and health["days"][0]["members"] == 10

    code, heat = _run("heatmap", "--workspace", "acme", "--group", str(group.pk), "--days", "3650")
    assert code == 0 and heat["best_hours"] == [20] and sum(map(sum, heat["grid"])) == 182

    code, roles = _run("roles", "--workspace", "acme", "--group", str(group.pk))
    assert code == 0 and len(roles) == 10 and roles[0]["role"] == "onlooker"

    code, alerts = _run("alerts", "--workspace", "acme")
    assert code == 0 and [(a["group"], a["kind"], a["day"]) for a in alerts] == [("静安福利群", "group_fading", "2026-06-03")]


def test_a_group_of_another_workspace_is_not_found():
    make_workspace("acme")
    other = make_workspace("other")
    group, _ = fading_group(other, None, members=3)
    code, body = _run("health", "--workspace", "acme", "--group", str(group.pk))
    assert code == 1 and body["error"]["code"] == "not_found"
