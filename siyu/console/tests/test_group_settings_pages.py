"""Group settings pages (群设置: per group, workspace default, template per group type) and
keyword auto-replies (关键词自动回复: list, form, dry-run test box) in the console."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone

from siyu.accounts.models import AuditEntry, Role
from siyu.accounts.permissions import ROLE_PERMISSIONS, Perm
from siyu.communities.actions import (
    do_create_auto_reply,
    do_create_group,
    do_set_group_settings,
    do_set_settings_layer,
)
from siyu.communities.group_settings import effective
from siyu.communities.models import AutoReplyFiring, AutoReplyRule, Group, GroupSettings, GroupType
from siyu.core.testing import make_staff, make_workspace

pytestmark = pytest.mark.django_db


@pytest.fixture
def ws():
    return make_workspace(name="Shop")


@pytest.fixture
def owner(ws):
    return make_staff(ws, Role.OWNER, email="owner@example.com")


@pytest.fixture
def analyst(ws):
    return make_staff(ws, Role.ANALYST, email="analyst@example.com")


@pytest.fixture
def group(ws):
    return do_create_group(ws, None, name="宝妈福利群", group_type=GroupType.TRAFFIC)


@pytest.fixture
def other_ws():
    return make_workspace(name="Other")


def _row(html: str, key: str) -> str:
    return html.split(f'<tr id="setting-{key}">')[1].split("</tr>")[0]


def _effective(row: str) -> tuple[str, str]:
    found = re.search(r'<td class="pre effective">(.*?)</td>\s*<td><span class="badge source source-[\w-]+">(.*?)</span>', row, re.S)
    assert found is not None
    return found.group(1), found.group(2)


# --------------------------------------------------------------------------- group settings page


def test_group_settings_page_shows_each_value_with_its_source(ws, owner, group, console_client):
    # given a workspace default, a template for traffic groups and a group value
    do_set_settings_layer(ws, None, {"capacity": 300, "quiet_hours": {"start": "22:00", "end": "08:00"}})
    do_set_settings_layer(ws, None, {"welcome_message": "欢迎 {member} 加入 {group}"}, group_type=GroupType.TRAFFIC)
    do_set_group_settings(group, None, {"rules_text": "禁止发广告"})

    # when the owner opens the group's settings
    response = console_client(owner).get(f"/console/groups/{group.pk}/settings/")

    # then every field shows the value that applies and where it comes from
    assert response.status_code == 200
    html = response.content.decode()
    assert _effective(_row(html, "rules_text")) == ("禁止发广告", "this group")
    assert _effective(_row(html, "welcome_message")) == ("欢迎 {member} 加入 {group}", "template for Traffic (福利群)")
    assert _effective(_row(html, "capacity")) == ("300", "workspace default")
    assert _effective(_row(html, "quiet_hours")) == ("22:00–08:00", "workspace default")
    assert _effective(_row(html, "nudge_after_hours")) == ("48", "built-in")
    assert _effective(_row(html, "auto_replies_enabled")) == ("On", "built-in")
    # and the form holds only the group's own values (empty = inherit)
    assert '<textarea name="rules_text" cols="40" rows="4" maxlength="5000" id="id_rules_text">\n禁止发广告</textarea>' in html
    assert '<input type="number" name="capacity" min="2" max="2000" id="id_capacity">' in html
    # and the moderation policy is a link to its page
    assert 'href="/console/moderation/policy/"' in html
    assert f'href="/console/groups/autoreplies/?group={group.pk}"' in html
    # and the welcome preview is wired to the preview endpoint for this group
    assert f'hx-post="/console/groups/settings/preview/?group={group.pk}"' in html


def test_saving_group_settings_changes_the_effective_value_and_audits(ws, owner, group, console_client):
    # given a workspace default capacity
    do_set_settings_layer(ws, None, {"capacity": 300})

    # when the owner sets the group's capacity, quiet hours and nudge through the page
    response = console_client(owner).post(f"/console/groups/{group.pk}/settings/", {
        "capacity": "150", "quiet_start": "23:00", "quiet_end": "07:30", "quiet_mode": "defer", "auto_replies_enabled": "off",
        "nudge_after_hours": "24", "welcome_message": "欢迎 {member}！群规：{rules_link}", "rules_link": "https://example.com/rules",
    })

    # then it redirects back and the effective values come from the group
    assert response.status_code == 302
    assert response["Location"] == f"/console/groups/{group.pk}/settings/"
    eff = effective(Group.objects.get(pk=group.pk))
    assert eff["capacity"] == 150 and eff.sources["capacity"] == "group"
    assert eff["quiet_hours"] == {"start": "23:00", "end": "07:30"}
    assert eff["quiet_mode"] == "defer"
    assert eff["auto_replies_enabled"] is False
    assert eff["nudge_after_hours"] == 24
    assert eff["welcome_message"] == "欢迎 {member}！群规：{rules_link}"
    assert GroupSettings.objects.get(group=group).values == {
        "capacity": 150, "quiet_hours": {"start": "23:00", "end": "07:30"}, "quiet_mode": "defer", "auto_replies_enabled": False,
        "nudge_after_hours": 24, "welcome_message": "欢迎 {member}！群规：{rules_link}", "rules_link": "https://example.com/rules",
    }
    # and one audit row records the change by the owner
    audit = AuditEntry.objects.get(action="group_settings.saved", actor=owner)
    assert (audit.summary, audit.before, audit.after["capacity"]) == ("group", {}, 150)


def test_clearing_a_group_field_falls_back_to_the_template(ws, owner, group, console_client):
    # given a template capacity and a group capacity of its own
    do_set_settings_layer(ws, None, {"capacity": 400}, group_type=GroupType.TRAFFIC)
    do_set_group_settings(group, None, {"capacity": 120, "rules_text": "旧群规"})

    # when the owner empties both fields
    response = console_client(owner).post(f"/console/groups/{group.pk}/settings/", {"capacity": "", "rules_text": ""})

    # then the group inherits again
    assert response.status_code == 302
    group.refresh_from_db()
    eff = effective(group)
    assert (eff["capacity"], eff.sources["capacity"]) == (400, "template:traffic")
    assert (eff["rules_text"], eff.sources["rules_text"]) == ("", "built_in")
    assert GroupSettings.objects.get(group=group).values == {}
    assert (group.capacity, group.rules_text) == (400, "")  # the row mirrors the inherited capacity


def test_invalid_settings_show_errors_and_save_nothing(ws, owner, group, console_client):
    # when the owner gives only one end of the quiet hours and an unknown variable
    client = console_client(owner)
    half = client.post(f"/console/groups/{group.pk}/settings/", {"quiet_start": "22:00"})
    unknown = client.post(f"/console/groups/{group.pk}/settings/", {"welcome_message": "欢迎 {nickname}"})

    # then the page comes back with the errors and nothing was written
    assert half.status_code == 422
    assert "Give both ends of the quiet hours, or neither." in half.content.decode()
    assert unknown.status_code == 422
    assert ("welcome_message uses unknown variable(s) {nickname}; available: {member}, {group}, {rules_link}"
            in unknown.content.decode())
    assert GroupSettings.objects.count() == 0
    assert AuditEntry.objects.filter(action="group_settings.saved").count() == 0


def test_a_group_switches_off_inherited_quiet_hours_and_coupon_through_the_form(ws, owner, group, console_client):
    # given workspace-default quiet hours
    do_set_settings_layer(ws, None, {"quiet_hours": {"start": "22:00", "end": "08:00"}})
    client = console_client(owner)

    # when the owner ticks "no quiet hours here" and picks "no coupon"
    response = client.post(f"/console/groups/{group.pk}/settings/", {"quiet_off": "on", "welcome_coupon_template": "off"})

    # then the group's layer says "off" and nothing applies, from this group; the page shows it
    assert response.status_code == 302
    assert GroupSettings.objects.get(group=group).values == {"quiet_hours": "off", "welcome_coupon_template": "off"}
    eff = effective(Group.objects.get(pk=group.pk))
    assert eff["quiet_hours"] is None and eff.sources["quiet_hours"] == "group"
    page = client.get(f"/console/groups/{group.pk}/settings/").content.decode()
    found = re.search(r'<tr id="setting-quiet_hours">.*?</tr>', page, re.S)
    assert found is not None
    row = found.group(0)
    assert 'name="quiet_off"' in row and "checked" in row
    assert re.search(r'class="pre effective">\s*(none|无)\s*<', row)

    # and quiet hours plus "none" together are refused
    both = client.post(f"/console/groups/{group.pk}/settings/", {"quiet_off": "on", "quiet_start": "22:00", "quiet_end": "08:00"})
    assert both.status_code == 422
    assert GroupSettings.objects.get(group=group).values == {"quiet_hours": "off", "welcome_coupon_template": "off"}


def test_welcome_preview_renders_with_a_sample_member(ws, owner, group, console_client):
    # given the group's rules link
    do_set_group_settings(group, None, {"rules_link": "https://example.com/r"})
    audits = AuditEntry.objects.count()

    # when the preview is asked for a welcome text (as the HTMX box does)
    response = console_client(owner).post(f"/console/groups/settings/preview/?group={group.pk}",
                                          {"welcome_message": "欢迎 @{member} 加入{group}，请看群规 {rules_link}"})

    # then the sample member, the group's name and its effective rules link are filled in
    assert response.status_code == 200
    assert ('<div class="card-lite pre" id="welcome-rendered">欢迎 @小明 加入宝妈福利群，请看群规 https://example.com/r</div>'
            in response.content.decode())
    assert AuditEntry.objects.count() == audits


# --------------------------------------------------------------------------- defaults and templates


def test_workspace_default_page_saves_and_shows_built_in_fallbacks(ws, owner, console_client):
    client = console_client(owner)
    page = client.get("/console/groups/settings/defaults/").content.decode()
    assert _effective(_row(page, "capacity")) == ("200", "built-in")

    response = client.post("/console/groups/settings/defaults/", {"capacity": "250", "tag_join_source": "on"})

    assert response.status_code == 302
    assert response["Location"] == "/console/groups/settings/defaults/"
    assert GroupSettings.objects.get(workspace=ws, scope="default").values == {"capacity": 250, "tag_join_source": True}
    page = client.get("/console/groups/settings/defaults/").content.decode()
    assert _effective(_row(page, "capacity")) == ("250", "workspace default")
    assert _effective(_row(page, "tag_join_source")) == ("On", "workspace default")
    audit = AuditEntry.objects.get(action="group_settings.saved")
    assert (audit.actor_id, audit.summary, audit.after) == (owner.pk, "default", {"capacity": 250, "tag_join_source": True})


def test_a_paid_group_switches_off_refund_tasks_through_the_form(ws, owner, group, console_client):
    # given the built-in: a member moderation removes from a paid group is owed a refund task
    client = console_client(owner)
    page = client.get(f"/console/groups/{group.pk}/settings/").content.decode()
    assert _effective(_row(page, "refund_on_removal")) == ("On", "built-in")
    assert "Refund task on removal" in page

    # when the group's rules say fees are not refunded and the owner switches it off
    response = client.post(f"/console/groups/{group.pk}/settings/", {"refund_on_removal": "off"})

    # then the group's own value says so, and the form shows it chosen
    assert response.status_code == 302
    assert GroupSettings.objects.get(group=group).values == {"refund_on_removal": False}
    page = client.get(f"/console/groups/{group.pk}/settings/").content.decode()
    assert _effective(_row(page, "refund_on_removal")) == ("Off", "this group")
    assert '<option value="off" selected>' in _row(page, "refund_on_removal")


def test_template_page_inherits_from_the_default_and_changes_its_groups(ws, owner, group, console_client):
    # given a workspace default nudge delay
    do_set_settings_layer(ws, None, {"nudge_after_hours": 12})
    client = console_client(owner)
    page = client.get("/console/groups/settings/templates/traffic/").content.decode()
    assert _effective(_row(page, "nudge_after_hours")) == ("12", "workspace default")

    # when the traffic template sets its own
    response = client.post("/console/groups/settings/templates/traffic/", {"nudge_after_hours": "0", "nudge_text": ""})

    # then traffic groups use it
    assert response.status_code == 302
    eff = effective(group)
    assert (eff["nudge_after_hours"], eff.sources["nudge_after_hours"]) == (0, "template:traffic")
    assert AuditEntry.objects.get(action="group_settings.saved", actor=owner).summary == "template:traffic"


def test_unknown_group_type_is_404(owner, console_client):
    assert console_client(owner).get("/console/groups/settings/templates/nonsense/").status_code == 404


# --------------------------------------------------------------------------- auto-replies


def test_auto_reply_list_filters_by_group_and_shows_answers(ws, owner, group, console_client):
    # given a workspace-wide rule, a rule of this group and one of another group
    other = do_create_group(ws, None, name="转化群A", group_type=GroupType.CONVERSION)
    wide = do_create_auto_reply(ws, None, name="营业时间", pattern="几点", reply="每天 9:00–21:00")
    own = do_create_auto_reply(ws, None, name="优惠券", pattern="券", reply="点这里领券", group=group)
    foreign = do_create_auto_reply(ws, None, name="发货", pattern="发货", reply="48 小时内发货", group=other)
    AutoReplyFiring.objects.create(workspace=ws, rule=own, group=group, last_fired_at=timezone.now(), fired=3)
    client = console_client(owner)

    # when the list is filtered by the group
    html = client.get(f"/console/groups/autoreplies/?group={group.pk}").content.decode()

    # then it shows the group's rules and the workspace-wide ones that also answer there
    assert f'id="rule-{wide.pk}"' in html and f'id="rule-{own.pk}"' in html
    assert f'id="rule-{foreign.pk}"' not in html
    own_row = html.split(f'id="rule-{own.pk}"')[1].split("</tr>")[0]
    assert '<td class="nowrap">300 s</td>\n      <td>100</td>\n      <td>3</td>' in own_row
    # and the unfiltered list shows all three, "workspace" only the wide one
    assert client.get("/console/groups/autoreplies/").content.decode().count('<tr id="rule-') == 3
    only_wide = client.get("/console/groups/autoreplies/?group=workspace").content.decode()
    assert only_wide.count('<tr id="rule-') == 1 and f'id="rule-{wide.pk}"' in only_wide


def test_create_auto_reply_through_the_form(ws, owner, group, console_client):
    response = console_client(owner).post("/console/groups/autoreplies/new/", {
        "name": "优惠券", "match": "regex", "pattern": r"(领|拿)券", "reply": "点这里领券", "group": str(group.pk),
        "cooldown_seconds": "600", "priority": "10", "is_active": "on",
    })

    assert response.status_code == 302
    assert response["Location"] == f"/console/groups/autoreplies/?group={group.pk}"
    rule = AutoReplyRule.objects.get()
    assert (rule.name, rule.match, rule.pattern, rule.reply, rule.group_id, rule.cooldown_seconds, rule.priority, rule.is_active) == (
        "优惠券", "regex", "(领|拿)券", "点这里领券", group.pk, 600, 10, True)
    audit = AuditEntry.objects.get(action="auto_reply.created")
    assert (audit.actor_id, audit.target_id) == (owner.pk, str(rule.pk))


@pytest.mark.parametrize(("pattern", "message"), [
    ("(领券", "invalid regular expression: missing ), unterminated subpattern at position 0"),
    ("(a+)+$", "the regular expression nests quantifiers (like (a+)+) and could hang the bot"),
])
def test_invalid_regex_shows_the_error_on_the_pattern_and_saves_nothing(ws, owner, console_client, pattern, message):
    response = console_client(owner).post("/console/groups/autoreplies/new/", {
        "name": "坏规则", "match": "regex", "pattern": pattern, "reply": "x", "group": "", "cooldown_seconds": "300", "priority": "100",
    })

    assert response.status_code == 422
    html = response.content.decode()
    pattern_field = html.split('name="pattern"')[1].split("</div>")[0]
    assert f'<small class="error">{message}</small>' in pattern_field
    assert AutoReplyRule.objects.count() == 0
    assert AuditEntry.objects.filter(action="auto_reply.created").count() == 0


def test_edit_and_delete_auto_reply(ws, owner, group, console_client):
    rule = do_create_auto_reply(ws, None, name="营业时间", pattern="几点", reply="每天 9:00–21:00", group=group)
    client = console_client(owner)
    form = client.get(f"/console/groups/autoreplies/{rule.pk}/").content.decode()
    assert 'value="营业时间"' in form and f'<option value="{group.pk}" selected>宝妈福利群</option>' in form

    # when it is made workspace-wide, exact and inactive
    response = client.post(f"/console/groups/autoreplies/{rule.pk}/", {
        "name": "营业时间", "match": "exact", "pattern": "几点营业", "reply": "每天 9:00–21:00", "group": "",
        "cooldown_seconds": "60", "priority": "100",
    })
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.group_id, rule.match, rule.pattern, rule.cooldown_seconds, rule.is_active) == (None, "exact", "几点营业", 60, False)
    updated = AuditEntry.objects.get(action="auto_reply.updated")
    assert (updated.before["group"], updated.after["group"], updated.after["is_active"]) == (group.pk, None, False)

    # and then deleted
    response = client.post(f"/console/groups/autoreplies/{rule.pk}/delete/")
    assert response.status_code == 302
    assert response["Location"] == "/console/groups/autoreplies/"
    assert AutoReplyRule.objects.count() == 0
    assert AuditEntry.objects.get(action="auto_reply.deleted").before["name"] == "营业时间"


def test_test_box_shows_the_rule_that_would_fire_and_sends_nothing(ws, owner, group, console_client):
    # given a group rule and a workspace-wide rule that both match, the group rule first
    wide = do_create_auto_reply(ws, None, name="营业时间", pattern="几点", reply="每天 9:00–21:00")
    own = do_create_auto_reply(ws, None, name="本群营业", pattern="几点", reply="本群 10 点开播", group=group)
    client = console_client(owner)
    audits = AuditEntry.objects.count()

    # when a text is tested for the group
    html = client.post("/console/groups/autoreplies/test/", {"text": "请问几点开门？", "group": str(group.pk)}).content.decode()

    # then the group rule would answer now, the workspace rule is listed after it
    assert "<strong>“本群营业” would answer now.</strong>" in html
    assert html.index(f'/console/groups/autoreplies/{own.pk}/') < html.index(f'/console/groups/autoreplies/{wide.pk}/')
    # without a group only the workspace-wide rule applies
    wide_only = client.post("/console/groups/autoreplies/test/", {"text": "请问几点开门？", "group": ""}).content.decode()
    assert "<strong>“营业时间” would answer.</strong>" in wide_only
    assert f'/console/groups/autoreplies/{own.pk}/' not in wide_only
    # a text nothing matches says so
    nothing = client.post("/console/groups/autoreplies/test/", {"text": "你好", "group": str(group.pk)}).content.decode()
    assert "No rule matches this text." in nothing
    # and nothing was sent or recorded
    assert AutoReplyFiring.objects.count() == 0
    assert AuditEntry.objects.count() == audits


def test_test_box_reports_cooldown(ws, owner, group, console_client):
    rule = do_create_auto_reply(ws, None, name="营业时间", pattern="几点", reply="每天 9:00–21:00", group=group, cooldown_seconds=600)
    AutoReplyFiring.objects.create(workspace=ws, rule=rule, group=group, last_fired_at=timezone.now() - dt.timedelta(seconds=60), fired=1)

    html = console_client(owner).post("/console/groups/autoreplies/test/", {"text": "几点", "group": str(group.pk)}).content.decode()

    assert ("<strong>No reply now: auto-replies are off here, every matching rule is cooling down, or it is quiet hours.</strong>"
            in html)


# --------------------------------------------------------------------------- permissions and isolation


def test_analyst_reads_but_cannot_write(ws, analyst, group, console_client):
    rule = do_create_auto_reply(ws, None, name="营业时间", pattern="几点", reply="每天 9:00–21:00")
    client = console_client(analyst)

    assert client.get(f"/console/groups/{group.pk}/settings/").status_code == 200
    assert client.get("/console/groups/settings/defaults/").status_code == 200
    assert client.get("/console/groups/autoreplies/").status_code == 200
    assert client.post("/console/groups/autoreplies/test/", {"text": "几点"}).status_code == 200
    assert client.post(f"/console/groups/{group.pk}/settings/", {"capacity": "100"}).status_code == 403
    assert client.post("/console/groups/settings/defaults/", {"capacity": "100"}).status_code == 403
    assert client.post("/console/groups/settings/templates/traffic/", {"capacity": "100"}).status_code == 403
    assert client.get("/console/groups/autoreplies/new/").status_code == 403
    assert client.post("/console/groups/autoreplies/new/", {"name": "x", "match": "contains", "pattern": "x", "reply": "x",
                                                            "cooldown_seconds": "1", "priority": "1"}).status_code == 403
    assert client.post(f"/console/groups/autoreplies/{rule.pk}/", {"name": "y"}).status_code == 403
    assert client.post(f"/console/groups/autoreplies/{rule.pk}/delete/").status_code == 403
    assert GroupSettings.objects.count() == 0
    assert AutoReplyRule.objects.get().name == "营业时间"


def test_role_without_view_groups_cannot_read(ws, group, console_client, monkeypatch):
    # given agents lose VIEW_GROUPS (every built-in role has it; a narrower role must not read)
    monkeypatch.setitem(ROLE_PERMISSIONS, Role.AGENT, ROLE_PERMISSIONS[Role.AGENT] - {Perm.VIEW_GROUPS})
    client = console_client(make_staff(ws, Role.AGENT, email="agent@example.com"))

    for url in (f"/console/groups/{group.pk}/settings/", "/console/groups/settings/defaults/",
                "/console/groups/settings/templates/traffic/", "/console/groups/autoreplies/"):
        assert client.get(url).status_code == 403, url
    assert client.post("/console/groups/autoreplies/test/", {"text": "几点"}).status_code == 403


def test_foreign_group_and_rule_ids_are_404(ws, owner, other_ws, console_client):
    foreign_group = do_create_group(other_ws, None, name="别人的群")
    foreign_rule = do_create_auto_reply(other_ws, None, name="别人的规则", pattern="x", reply="y")
    client = console_client(owner)

    assert client.get(f"/console/groups/{foreign_group.pk}/settings/").status_code == 404
    assert client.post(f"/console/groups/{foreign_group.pk}/settings/", {"capacity": "100"}).status_code == 404
    assert client.get(f"/console/groups/autoreplies/?group={foreign_group.pk}").status_code == 404
    assert client.get(f"/console/groups/autoreplies/new/?group={foreign_group.pk}").status_code == 404
    assert client.get(f"/console/groups/autoreplies/{foreign_rule.pk}/").status_code == 404
    assert client.post(f"/console/groups/autoreplies/{foreign_rule.pk}/delete/").status_code == 404
    assert client.post("/console/groups/autoreplies/test/", {"text": "x", "group": str(foreign_group.pk)}).status_code == 404
    assert client.post(f"/console/groups/settings/preview/?group={foreign_group.pk}", {"welcome_message": "hi"}).status_code == 404
    # a foreign group is not a choice of the auto-reply form
    response = client.post("/console/groups/autoreplies/new/", {
        "name": "x", "match": "contains", "pattern": "x", "reply": "y", "group": str(foreign_group.pk), "cooldown_seconds": "1",
        "priority": "1",
    })
    assert response.status_code == 422
    assert AutoReplyRule.objects.in_workspace(ws).count() == 0
    assert AutoReplyRule.objects.get(pk=foreign_rule.pk).name == "别人的规则"
    assert GroupSettings.objects.count() == 0


def test_settings_page_speaks_chinese(ws, owner, group, console_client):
    do_set_settings_layer(ws, None, {"capacity": 300})

    html = console_client(owner, lang="zh-hans").get(f"/console/groups/{group.pk}/settings/").content.decode()

    assert "<h1>群设置 " in html
    assert _effective(_row(html, "capacity")) == ("300", "工作区默认")
    assert _effective(_row(html, "auto_replies_enabled")) == ("开启", "系统内置")


def test_welcome_coupon_is_chosen_from_the_workspace_templates(ws, owner, group, other_ws, console_client):
    from siyu.commerce.actions import do_create_coupon_template

    coupon = do_create_coupon_template(ws, None, name="入群券10元", kind="fixed", value="10", validity_days=7)
    foreign = do_create_coupon_template(other_ws, None, name="别人的券", kind="fixed", value="5", validity_days=7)
    client = console_client(owner)
    page = client.get(f"/console/groups/{group.pk}/settings/").content.decode()
    assert f'<option value="{coupon.pk}">入群券10元</option>' in page and "别人的券" not in page

    assert client.post(f"/console/groups/{group.pk}/settings/", {"welcome_coupon_template": str(coupon.pk)}).status_code == 302
    assert client.post(f"/console/groups/{group.pk}/settings/", {"welcome_coupon_template": str(foreign.pk)}).status_code == 422

    eff = effective(group)
    assert (eff["welcome_coupon_template"], eff.sources["welcome_coupon_template"]) == (coupon.pk, "group")
    html = client.get(f"/console/groups/{group.pk}/settings/").content.decode()
    assert _effective(_row(html, "welcome_coupon_template")) == ("入群券10元", "this group")
