"""``siyu groups list|show|create|update|archive``: thin over the group actions, JSON as
the API shows a group, domain errors as messages with exit code 1, one workspace only."""

import datetime as dt
import json
from typing import Any

import pytest
from typer.testing import CliRunner

from siyu.accounts.models import AuditEntry, Role
from siyu.api.groups import GroupOut
from siyu.communities.actions import do_add_member, do_archive_group, do_create_group, do_refresh_group_health
from siyu.communities.cli import LIST_FIELDS, groups_app
from siyu.communities.models import Group, GroupHealthDay, Membership
from siyu.core.testing import make_contact, make_staff, make_workspace

pytestmark = pytest.mark.django_db


def _same_instant(iso: str, when: dt.datetime) -> bool:
    """JSON datetimes are ISO strings to the millisecond (DjangoJSONEncoder)."""
    return abs(dt.datetime.fromisoformat(iso) - when) < dt.timedelta(milliseconds=1)


def _run(*args: str) -> tuple[int, Any]:
    result = CliRunner().invoke(groups_app, [*args, "--json"])
    return result.exit_code, json.loads(result.stdout)


def test_create_a_short_term_group_then_show_returns_the_same_fields():
    # given a workspace with an owner-to-be and an operator acting
    ws = make_workspace("acme")
    owner = make_staff(ws, email="owner@acme.cn")
    operator = make_staff(ws, role=Role.OPERATOR, email="ops@acme.cn")

    # when a flash-sale group is created from the command line
    code, created = _run(
        "create", "--workspace", "acme", "--name", " 双11快闪群 ", "--type", "conversion", "--horizon", "short_term",
        "--ends-on", "2026-11-12", "--dismiss-at-end", "--end-farewell", "活动结束，感谢参与", "--vision", "只发好价",
        "--threshold", "action", "--threshold-detail", "转发海报", "--rules", "禁止广告", "--welcome", "欢迎 {name}",
        "--capacity", "300", "--owner", "OWNER@acme.cn", "--staff", "ops@acme.cn",
    )

    # then it is stored as given, the action's defaults fill the rest, and the answer is the API's GroupOut plus the owner's e-mail
    assert code == 0, created
    group = Group.objects.get(workspace=ws)
    assert (group.name, group.group_type, group.horizon, group.ends_on) == ("双11快闪群", "conversion", "short_term", dt.date(2026, 11, 12))
    assert (group.dismiss_at_end, group.end_farewell, group.capacity, group.owner_id) == (True, "活动结束，感谢参与", 300, owner.pk)
    assert (group.threshold, group.threshold_detail, group.rules_text, group.welcome_message) == ("action", "转发海报", "禁止广告", "欢迎 {name}")
    assert (group.rights, group.external_id, group.channel_account_id) == ("", "", None)
    assert set(created) == set(GroupOut.model_fields) | {"owner"}
    assert created["id"] == group.pk and created["ends_on"] == "2026-11-12" and created["dismiss_at_end"] is True
    assert (created["owner"], created["owner_id"], created["admin_ids"], created["member_count"]) == ("owner@acme.cn", owner.pk, [], 0)
    assert _same_instant(created["created_at"], group.created_at) and created["archived_at"] is None
    entry = AuditEntry.objects.get(action="group.created", target_id=str(group.pk))
    assert (entry.actor_id, entry.via) == (operator.pk, "cli")

    # and show answers the same group
    code, shown = _run("show", str(group.pk), "--workspace", "acme")
    assert code == 0 and shown == created


def test_list_shows_the_open_groups_newest_first_and_filters_by_type_horizon_and_archived():
    # given groups of several types and horizons, one archived, and a group of another workspace
    ws = make_workspace("acme")
    owner = make_staff(ws, email="owner@acme.cn")
    t0 = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    welfare = do_create_group(ws, None, name="福利群", owner=owner, created_at=t0)
    flash = do_create_group(ws, None, name="618快闪群", group_type="conversion", horizon="short_term", ends_on="2026-06-18",
                            created_at=t0 + dt.timedelta(days=1))
    club = do_create_group(ws, None, name="会员群", group_type="organisational", created_at=t0 + dt.timedelta(days=2))
    old = do_create_group(ws, None, name="旧群", created_at=t0 - dt.timedelta(days=9))
    do_archive_group(old, None)
    do_create_group(make_workspace("other"), None, name="别家的群")
    for contact in (make_contact(ws), make_contact(ws)):
        do_add_member(welfare, contact, None)

    # when listed, then the open ones come newest first with the list fields
    code, rows = _run("list", "--workspace", "acme")
    assert code == 0 and [r["id"] for r in rows] == [club.pk, flash.pk, welfare.pk]
    assert all(tuple(r) == LIST_FIELDS for r in rows)
    assert rows[2] | {"archived_at": None} == {
        "id": welfare.pk, "name": "福利群", "group_type": "traffic", "horizon": "long_term", "ends_on": None, "dismiss_at_end": False,
        "member_count": 2, "owner": "owner@acme.cn", "channel_account_id": None, "external_id": "", "archived_at": None, "dismissed_at": None,
        "health_state": None,
    }
    assert rows[1]["ends_on"] == "2026-06-18" and rows[1]["owner"] is None

    # and the filters narrow it
    assert [r["id"] for r in _run("list", "--workspace", "acme", "--type", "traffic")[1]] == [welfare.pk]
    assert [r["id"] for r in _run("list", "--workspace", "acme", "--horizon", "short_term")[1]] == [flash.pk]
    archived = _run("list", "--workspace", "acme", "--archived")[1]
    assert [r["id"] for r in archived] == [old.pk] and archived[0]["archived_at"] is not None
    assert _run("list", "--workspace", "acme", "--archived", "--type", "conversion")[1] == []
    code, bad = _run("list", "--workspace", "acme", "--type", "vip")
    assert code == 1 and bad["error"]["code"] == "invalid_group_type"
    assert [r["id"] for r in _run("list", "--workspace", "acme", "--q", "快闪")[1]] == [flash.pk]
    # the health filter reads the latest daily snapshot (a quiet group is silent)
    do_refresh_group_health(welfare, now=t0 + dt.timedelta(days=3))
    state = GroupHealthDay.objects.filter(group=welfare).order_by("-day").values_list("state", flat=True).first()
    healthy = _run("list", "--workspace", "acme", "--health", state)[1]
    assert [(r["id"], r["health_state"]) for r in healthy] == [(welfare.pk, state)]
    assert _run("list", "--workspace", "acme", "--health", "great")[1]["error"]["code"] == "invalid_health"

    # and as text: one line per group
    text = CliRunner().invoke(groups_app, ["list", "--workspace", "acme"])
    assert text.exit_code == 0 and text.stdout.splitlines() == [
        f"#{club.pk} 会员群 [organisational, long_term] 0 members, owner -",
        f"#{flash.pk} 618快闪群 [conversion, short_term → 2026-06-18] 0 members, owner -",
        f"#{welfare.pk} 福利群 [traffic, long_term] 2 members, owner owner@acme.cn",
    ]


def test_update_changes_only_the_given_fields_and_the_admins_and_is_audited():
    # given a group with an owner
    ws = make_workspace("acme")
    owner = make_staff(ws, email="owner@acme.cn")
    a, b = make_staff(ws, email="a@acme.cn"), make_staff(ws, email="b@acme.cn")
    group = do_create_group(ws, None, name="福利群", owner=owner, vision="好价", capacity=200)

    # when it becomes a short-term group with two admins and no owner
    code, out = _run(
        "update", str(group.pk), "--workspace", "acme", "--name", "国庆快闪群", "--horizon", "short_term", "--ends-on", "2026-10-07",
        "--dismiss-at-end", "--capacity", "500", "--owner", "", "--admins", "a@acme.cn, B@acme.cn", "--staff", "owner@acme.cn",
    )

    # then those fields change, the others stay, and the change is audited with before/after
    assert code == 0, out
    group.refresh_from_db()
    assert (group.name, group.horizon, group.ends_on, group.dismiss_at_end) == ("国庆快闪群", "short_term", dt.date(2026, 10, 7), True)
    assert (group.capacity, group.owner_id, group.vision, group.group_type) == (500, None, "好价", "traffic")
    assert sorted(group.admins.values_list("pk", flat=True)) == sorted([a.pk, b.pk])
    assert (out["name"], out["capacity"], out["owner"], out["admin_ids"], out["ends_on"]) == ("国庆快闪群", 500, None, sorted([a.pk, b.pk]),
                                                                                             "2026-10-07")
    entry = AuditEntry.objects.get(action="group.updated", target_id=str(group.pk))
    assert (entry.actor_id, entry.via) == (owner.pk, "cli")
    assert (entry.before["name"], entry.before["capacity"], entry.before["owner"]) == ("福利群", 200, owner.pk)
    assert (entry.after["name"], entry.after["capacity"], entry.after["owner"], entry.after["horizon"]) == ("国庆快闪群", 500, None, "short_term")

    # and --admins "" clears the admins, --no-dismiss-at-end turns the dismissal off
    code, out = _run("update", str(group.pk), "--workspace", "acme", "--admins", "", "--no-dismiss-at-end")
    group.refresh_from_db()
    assert code == 0 and out["admin_ids"] == [] and not group.admins.exists() and group.dismiss_at_end is False
    assert AuditEntry.objects.filter(action="group.updated", target_id=str(group.pk)).count() == 2


def test_update_with_nothing_to_change_is_refused_with_a_message():
    ws = make_workspace("acme")
    group = do_create_group(ws, None, name="福利群")

    code, out = _run("update", str(group.pk), "--workspace", "acme")
    assert code == 1 and out["error"] == {"code": "nothing_to_change", "message": "nothing to change: give at least one option"}
    text = CliRunner().invoke(groups_app, ["update", str(group.pk), "--workspace", "acme"])
    assert text.exit_code == 1 and text.stderr == "error: nothing to change: give at least one option\n"
    assert not AuditEntry.objects.filter(action="group.updated").exists()


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--horizon", "short_term"], "ends_on_required", "a short-term group needs an end date (ends_on)"),
    (["--dismiss-at-end"], "dismiss_needs_short_term", "only a short-term group is dismissed at its end date (dismiss_at_end)"),
    (["--owner", "nobody@acme.cn"], "unknown_owner", "'nobody@acme.cn' is not staff of workspace 'acme'"),
    (["--horizon", "short_term", "--ends-on", "11/12"], "invalid_date", "ends_on must be YYYY-MM-DD"),
])
def test_create_reports_the_actions_validation_errors_and_creates_nothing(args, code, message):
    ws = make_workspace("acme")
    make_staff(make_workspace("other"), email="nobody@acme.cn")  # staff elsewhere is not staff here

    exit_code, out = _run("create", "--workspace", "acme", "--name", "快闪群", *args)

    assert exit_code == 1 and out["error"] == {"code": code, "message": message}
    assert not Group.objects.filter(workspace=ws).exists()


def test_update_reports_validation_errors_and_changes_nothing():
    ws = make_workspace("acme")
    group = do_create_group(ws, None, name="福利群")

    assert _run("update", str(group.pk), "--workspace", "acme", "--dismiss-at-end")[1]["error"]["code"] == "dismiss_needs_short_term"
    assert _run("update", str(group.pk), "--workspace", "acme", "--horizon", "short_term")[1]["error"]["code"] == "ends_on_required"
    code, out = _run("update", str(group.pk), "--workspace", "acme", "--name", "新名字", "--admins", "a@x.cn")
    assert code == 1 and out["error"] == {"code": "unknown_staff", "message": "'a@x.cn' is not staff of workspace 'acme'"}

    group.refresh_from_db()
    assert (group.name, group.horizon, group.dismiss_at_end) == ("福利群", "long_term", False)
    assert not AuditEntry.objects.filter(action="group.updated").exists()


def test_a_group_of_another_workspace_is_not_found_and_stays_unchanged():
    make_workspace("acme")
    other = make_workspace("other")
    group = do_create_group(other, None, name="别家的群")
    do_add_member(group, make_contact(other), None)

    for args in (["show"], ["update", "--name", "抢来的群"], ["archive"]):
        code, out = _run(args[0], str(group.pk), "--workspace", "acme", *args[1:])
        assert code == 1 and out["error"] == {"code": "not_found", "message": "group not found"}, args

    group.refresh_from_db()
    assert (group.name, group.archived_at) == ("别家的群", None)
    assert Membership.objects.get(group=group).left_at is None
    assert not AuditEntry.objects.filter(action__in=["group.updated", "group.archived"]).exists()


def test_archive_closes_the_open_memberships():
    # given a group with two members
    ws = make_workspace("acme")
    operator = make_staff(ws, role=Role.OPERATOR, email="ops@acme.cn")
    group = do_create_group(ws, None, name="618快闪群")
    for contact in (make_contact(ws), make_contact(ws)):
        do_add_member(group, contact, None)

    # when it is archived from the command line
    code, out = _run("archive", str(group.pk), "--workspace", "acme", "--staff", "ops@acme.cn")

    # then it is archived (not dismissed), its memberships closed, and it moves to the archived list
    assert code == 0, out
    group.refresh_from_db()
    assert group.archived_at is not None and group.dismissed_at is None
    assert _same_instant(out["archived_at"], group.archived_at) and out["member_count"] == 0
    assert not Membership.objects.filter(group=group, left_at__isnull=True).exists() and Membership.objects.filter(group=group).count() == 2
    entry = AuditEntry.objects.get(action="group.archived", target_id=str(group.pk))
    assert (entry.actor_id, entry.via, entry.after) == (operator.pk, "cli", {"closed_memberships": 2})
    assert [r["id"] for r in _run("list", "--workspace", "acme", "--archived")[1]] == [group.pk]
    assert _run("list", "--workspace", "acme")[1] == []


def test_a_staff_member_without_groups_manage_may_not_archive():
    ws = make_workspace("acme")
    make_staff(ws, role=Role.ANALYST, email="analyst@acme.cn")
    group = do_create_group(ws, None, name="福利群")

    code, out = _run("archive", str(group.pk), "--workspace", "acme", "--staff", "analyst@acme.cn")

    assert code == 1 and out["error"]["code"] == "permission_denied"
    group.refresh_from_db()
    assert group.archived_at is None


def test_settings_set_and_inherit_change_the_groups_own_layer_through_the_action():
    # given a group whose workspace default switches refund reminders off
    ws = make_workspace("acme")
    make_staff(ws, role=Role.OPERATOR, email="ops@acme.cn")
    group = do_create_group(ws, None, name="会员群")
    code, shown = _run("defaults", "--workspace", "acme", "--set", "refund_on_removal=false")
    assert code == 0, shown
    assert shown == {"own": {"refund_on_removal": False}}

    # when an operator sets the group's own values: JSON values, plain text, and quiet hours as an object
    code, result = _run(
        "settings", str(group.pk), "--workspace", "acme", "--staff", "ops@acme.cn",
        "--set", "refund_on_removal=true", "--set", "capacity=300", "--set", "rules_text=禁止广告，违者移出",
        "--set", 'quiet_hours={"start": "22:00", "end": "08:00"}',
    )

    # then the effective settings say so, each from the group's own layer, and the save is audited as the operator's
    assert code == 0, result
    effective = result["effective"]
    assert effective["refund_on_removal"] == {"value": True, "source": "group"}
    assert effective["capacity"] == {"value": 300, "source": "group"}
    assert effective["rules_text"] == {"value": "禁止广告，违者移出", "source": "group"}
    assert effective["quiet_hours"] == {"value": {"start": "22:00", "end": "08:00"}, "source": "group"}
    group.refresh_from_db()
    assert (group.capacity, group.rules_text) == (300, "禁止广告，违者移出")
    entry = AuditEntry.objects.filter(action="group_settings.saved", summary="group").get()
    assert (entry.actor.email, entry.via) == ("ops@acme.cn", "cli")

    # when the refund switch is inherited again, the workspace default applies
    code, result = _run("settings", str(group.pk), "--workspace", "acme", "--inherit", "refund_on_removal")
    assert code == 0, result
    assert result["effective"]["refund_on_removal"] == {"value": False, "source": "default"}
    assert result["effective"]["capacity"]["source"] == "group"


def test_settings_refuses_bad_keys_values_and_shapes_and_changes_nothing():
    ws = make_workspace("acme")
    make_staff(ws, role=Role.AGENT, email="agent@acme.cn")
    group = do_create_group(ws, None, name="会员群")
    other = do_create_group(make_workspace("other"), None, name="别人的群")

    cases = [
        (["--set", "refund_on_removal=maybe"], 1, "invalid_setting", "refund_on_removal must be true or false"),
        (["--set", "colour=red"], 1, "unknown_setting", "unknown setting 'colour'"),
        (["--set", "capacity"], 2, "usage", "expected KEY=VALUE"),
        (["--set", "capacity=5000"], 1, "invalid_capacity", "capacity must be between 2 and 2000"),
        (["--set", "capacity=300", "--inherit", "capacity"], 2, "usage", "both set and inherited"),
        (["--set", "capacity=300", "--staff", "agent@acme.cn"], 1, "permission_denied", "groups.manage"),
    ]
    for args, exit_code, error_code, message in cases:
        code, result = _run("settings", str(group.pk), "--workspace", "acme", *args)
        assert (code, result["error"]["code"]) == (exit_code, error_code), (args, result)
        assert message in result["error"]["message"], (args, result)
    # another workspace's group is not found from this one
    code, result = _run("settings", str(other.pk), "--workspace", "acme", "--set", "capacity=300")
    assert code == 1 and result["error"]["code"] == "not_found", result
    code, result = _run("defaults", "--workspace", "acme", "--type", "vip", "--set", "capacity=300")
    assert code == 1 and result["error"]["code"] == "invalid_group_type", result
    # nothing was saved anywhere
    assert not AuditEntry.objects.filter(action="group_settings.saved").exists()
    other.refresh_from_db()
    assert other.capacity == 200


def test_defaults_shows_and_sets_a_group_types_template():
    ws = make_workspace("acme")
    group = do_create_group(ws, None, name="福利1群", group_type="traffic")

    code, empty = _run("defaults", "--workspace", "acme", "--type", "traffic")
    assert (code, empty) == (0, {"group_type": "traffic", "own": {}})

    code, saved = _run("defaults", "--workspace", "acme", "--type", "traffic", "--set", "welcome_message=欢迎 {member} 加入{group}",
                       "--set", "quiet_hours=off")
    assert code == 0, saved
    assert saved == {"group_type": "traffic", "own": {"welcome_message": "欢迎 {member} 加入{group}", "quiet_hours": "off"}}
    code, result = _run("settings", str(group.pk), "--workspace", "acme")
    assert result["effective"]["welcome_message"] == {"value": "欢迎 {member} 加入{group}", "source": "template:traffic"}
    # the workspace default is a layer of its own: untouched
    assert _run("defaults", "--workspace", "acme") == (0, {"own": {}})
