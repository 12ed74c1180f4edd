"""Tags admin, groups, staff admin and the audit log."""

from __future__ import annotations

import pytest

from siyu.accounts.actions import authenticate_token
from siyu.accounts.models import ApiToken, AuditEntry, Role, Staff
from siyu.communities.actions import do_add_member, do_create_group
from siyu.communities.models import Group, Membership
from siyu.contacts.actions import do_tag_contacts
from siyu.contacts.models import ContactTag, Tag, TagGroup, TagRule
from siyu.contacts.rules import do_create_tag_rule
from siyu.core.testing import make_contact, make_staff, make_tag, make_workspace

pytestmark = pytest.mark.django_db


@pytest.fixture
def ws():
    return make_workspace(name="Shop")


@pytest.fixture
def owner(ws):
    return make_staff(ws, Role.OWNER, email="owner@example.com")


# ---------------------------------------------------------------- tags


def test_tags_page_lists_groups_tags_and_contact_counts(ws, owner, console_client):
    vip = make_tag(ws, "VIP", group="会员", kind="identity")
    make_tag(ws, "M", group="尺码", exclusive=True)
    do_tag_contacts(ws, None, [make_contact(ws), make_contact(ws)], [vip])

    html = console_client(owner).get("/console/tags/").content.decode()

    assert "会员" in html and "尺码" in html
    assert f'<a href="/console/contacts/?tags_all={vip.pk}" class="chip">VIP</a></td>\n          <td class="num">2</td>' in html
    assert "exclusive" in html


def test_create_group_and_tag_rename_and_delete(ws, owner, console_client):
    client = console_client(owner)

    client.post("/console/tags/groups/new/", {"name": "尺码", "kind": "business", "exclusive": "on"})
    group = TagGroup.objects.in_workspace(ws).get(name="尺码")
    assert group.exclusive is True
    client.post("/console/tags/new/", {"group": group.pk, "name": "M"})
    tag = Tag.objects.in_workspace(ws).get(name="M")
    client.post(f"/console/tags/{tag.pk}/rename/", {"name": "中码"})
    tag.refresh_from_db()
    assert tag.name == "中码"

    confirm = client.get(f"/console/tags/{tag.pk}/delete/")
    assert confirm.status_code == 200
    assert "0 contacts hold this tag" in confirm.content.decode()
    deleted = client.post(f"/console/tags/{tag.pk}/delete/", follow=True)

    assert "Tag “尺码/中码” deleted." in deleted.content.decode()
    assert not Tag.objects.in_workspace(ws).exists()
    assert list(AuditEntry.objects.in_workspace(ws).filter(via="console").order_by("id").values_list("action", flat=True)) == [
        "tag_group.created", "tag.created", "tag.renamed", "tag.deleted",
    ]


def test_duplicate_tag_shows_the_conflict_message(ws, owner, console_client):
    make_tag(ws, "VIP", group="会员")
    group = TagGroup.objects.in_workspace(ws).get(name="会员")

    response = console_client(owner).post("/console/tags/new/", {"group": group.pk, "name": "VIP"}, follow=True)

    assert "tag 会员/VIP already exists" in response.content.decode()


def test_analyst_cannot_manage_tags(ws, console_client):
    analyst = make_staff(ws, Role.ANALYST)
    client = console_client(analyst)

    page = client.get("/console/tags/").content.decode()
    response = client.post("/console/tags/groups/new/", {"name": "X", "kind": "business"})

    assert "New tag group" not in page
    assert response.status_code == 403
    assert not TagGroup.objects.in_workspace(ws).exists()


def test_tag_of_another_workspace_is_a_404(ws, owner, console_client):
    foreign = make_tag(make_workspace(), "VIP")

    response = console_client(owner).post(f"/console/tags/{foreign.pk}/rename/", {"name": "mine now"})

    assert response.status_code == 404
    foreign.refresh_from_db()
    assert foreign.name == "VIP"


def test_create_tag_rule_runs_it_and_lists_it(ws, owner, console_client, django_capture_on_commit_callbacks):
    vip = make_tag(ws, "VIP", group="会员")
    shanghai = make_contact(ws, name="Ann", city="上海")
    make_contact(ws, name="Bob", city="北京")

    with django_capture_on_commit_callbacks(execute=True):
        response = console_client(owner).post(
            "/console/tags/rules/new/",
            {"name": "上海客户", "tag": vip.pk, "match": "all", "conditions": '[{"field": "city", "op": "eq", "value": "上海"}]'},
            follow=True,
        )

    assert response.status_code == 200
    rule = TagRule.objects.in_workspace(ws).get()
    assert (rule.name, rule.conditions) == ("上海客户", [{"field": "city", "op": "eq", "value": "上海"}])
    assert list(ContactTag.objects.filter(tag=vip).values_list("contact", flat=True)) == [shanghai.pk]
    assert "[{&quot;field&quot;: &quot;city&quot;, &quot;op&quot;: &quot;eq&quot;, &quot;value&quot;: &quot;上海&quot;}]" in response.content.decode()


@pytest.mark.parametrize(
    ("conditions", "message"),
    [
        ("[{not json", "not valid JSON"),
        ("[]", "conditions must be a non-empty list"),
        ('[{"field": "shoe", "value": 1}]', "condition 1: unknown field &#x27;shoe&#x27;"),
    ],
)
def test_invalid_tag_rule_keeps_the_input_and_shows_the_error(ws, owner, console_client, conditions, message):
    vip = make_tag(ws, "VIP", group="会员")

    response = console_client(owner).post("/console/tags/rules/new/", {"name": "r", "tag": vip.pk, "match": "all", "conditions": conditions})

    html = response.content.decode()
    assert response.status_code == 422
    assert message in html
    assert not TagRule.objects.in_workspace(ws).exists()


def test_deactivate_and_activate_a_rule(ws, owner, console_client):
    vip = make_tag(ws, "VIP", group="会员")
    rule = do_create_tag_rule(ws, None, name="r", tag=vip, conditions=[{"field": "city", "op": "exists"}])
    client = console_client(owner)

    client.post(f"/console/tags/rules/{rule.pk}/active/", {"active": "0"})
    rule.refresh_from_db()
    assert rule.is_active is False
    client.post(f"/console/tags/rules/{rule.pk}/active/", {"active": "1"})
    rule.refresh_from_db()
    assert rule.is_active is True


# ---------------------------------------------------------------- groups


def test_groups_list_with_type_filter_and_member_counts(ws, owner, console_client):
    traffic = do_create_group(ws, None, name="福利1群", group_type="traffic", capacity=300)
    do_create_group(ws, None, name="训练营", group_type="conversion")
    do_add_member(traffic, make_contact(ws), None)
    client = console_client(owner)

    all_groups = client.get("/console/groups/").content.decode()
    only_traffic = client.get("/console/groups/?type=traffic").content.decode()

    assert "福利1群" in all_groups and "训练营" in all_groups
    assert "福利1群" in only_traffic and "训练营" not in only_traffic
    assert "1 / 300" in only_traffic


def test_group_list_searches_by_name_and_health(ws, owner, console_client):
    import datetime as dt

    from siyu.communities.actions import do_refresh_group_health
    from siyu.communities.models import GroupHealthDay

    quiet = do_create_group(ws, None, name="静安福利群")
    do_create_group(ws, None, name="会员俱乐部")
    do_refresh_group_health(quiet, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=2))
    state = GroupHealthDay.objects.filter(group=quiet).order_by("-day").values_list("state", flat=True).first()
    client = console_client(owner)

    by_name = client.get("/console/groups/", {"q": "福利"}).content.decode()
    by_health = client.get("/console/groups/", {"health": state}).content.decode()
    nothing = client.get("/console/groups/", {"health": "steady" if state != "steady" else "thriving"}).content.decode()

    assert "静安福利群" in by_name and "会员俱乐部" not in by_name
    assert "静安福利群" in by_health and "会员俱乐部" not in by_health
    assert "静安福利群" not in nothing and "会员俱乐部" not in nothing


def test_create_group_with_positioning(ws, owner, console_client):
    client = console_client(owner)

    assert client.get("/console/groups/new/").status_code == 200
    response = client.post(
        "/console/groups/new/",
        {"name": "周六秒杀群", "group_type": "conversion", "horizon": "short_term", "ends_on": "2030-01-31",
         "vision": "每周六 20:00 抢好货", "rights": "专属券", "threshold": "action", "threshold_detail": "转发海报",
         "rules_text": "禁止广告", "capacity": "200", "owner": owner.pk},
    )

    group = Group.objects.in_workspace(ws).get()
    assert response.status_code == 302
    assert response["Location"] == f"/console/groups/{group.pk}/"
    assert (group.horizon, str(group.ends_on), group.threshold, group.owner_id) == ("short_term", "2030-01-31", "action", owner.pk)


def test_short_term_group_without_end_date_shows_the_error(ws, owner, console_client):
    response = console_client(owner).post(
        "/console/groups/new/", {"name": "快闪群", "group_type": "traffic", "horizon": "short_term", "threshold": "none", "capacity": "200"}
    )

    assert response.status_code == 422
    assert "a short-term group needs an end date" in response.content.decode()
    assert not Group.objects.in_workspace(ws).exists()


def test_edit_group_positioning_admins_and_dismissal_at_the_end(ws, owner, console_client):
    group = do_create_group(ws, None, name="秒杀群", vision="旧口号")
    helper = make_staff(ws, Role.OPERATOR, email="helper@example.com", display_name="小助手")
    client = console_client(owner)

    # the group page links to the edit form, which starts from the group's values
    assert f'href="/console/groups/{group.pk}/edit/"' in client.get(f"/console/groups/{group.pk}/").content.decode()
    form = client.get(f"/console/groups/{group.pk}/edit/").content.decode()
    assert 'value="秒杀群"' in form and 'value="旧口号"' in form and "小助手" in form

    response = client.post(f"/console/groups/{group.pk}/edit/", {
        "name": "周末秒杀群", "group_type": "conversion", "horizon": "short_term", "ends_on": "2030-01-31", "dismiss_at_end": "on",
        "end_farewell": "活动结束，感谢参与", "vision": "新口号", "threshold": "none", "capacity": "300", "owner": owner.pk,
        "admins": [helper.pk],
    })

    assert response.status_code == 302 and response["Location"] == f"/console/groups/{group.pk}/"
    group.refresh_from_db()
    assert (group.name, group.horizon, str(group.ends_on), group.dismiss_at_end, group.end_farewell, group.capacity, group.owner_id) == (
        "周末秒杀群", "short_term", "2030-01-31", True, "活动结束，感谢参与", 300, owner.pk)
    assert list(group.admins.all()) == [helper]
    entry = AuditEntry.objects.get(action="group.updated", target_id=str(group.pk))
    assert (entry.before["name"], entry.after["name"], entry.after["dismiss_at_end"]) == ("秒杀群", "周末秒杀群", True)
    assert "dismissed on its channel after the end date" in client.get(f"/console/groups/{group.pk}/").content.decode()


def test_edit_group_refuses_a_dismissal_at_the_end_of_a_long_term_group(ws, owner, console_client):
    group = do_create_group(ws, None, name="福利群")

    response = console_client(owner).post(f"/console/groups/{group.pk}/edit/", {
        "name": "福利群", "group_type": "traffic", "horizon": "long_term", "dismiss_at_end": "on", "threshold": "none", "capacity": "200",
    })

    assert response.status_code == 422
    assert "only a short-term group is dismissed at its end date" in response.content.decode()
    group.refresh_from_db()
    assert group.dismiss_at_end is False
    assert not AuditEntry.objects.filter(action="group.updated").exists()


def test_edit_group_is_for_group_managers_of_its_workspace(ws, owner, console_client):
    group = do_create_group(ws, None, name="福利群")
    agent = make_staff(ws, Role.AGENT, email="agent@example.com")
    other = do_create_group(make_workspace(name="Other"), None, name="别家群")
    data = {"name": "改名", "group_type": "traffic", "horizon": "long_term", "threshold": "none", "capacity": "200"}

    assert console_client(agent).post(f"/console/groups/{group.pk}/edit/", data).status_code == 403
    assert console_client(owner).post(f"/console/groups/{other.pk}/edit/", data).status_code == 404
    assert "改名" not in {g.name for g in Group.objects.all()}
    page = console_client(agent).get(f"/console/groups/{group.pk}/")
    assert page.status_code == 200 and "福利群" in page.content.decode()
    assert f'/console/groups/{group.pk}/edit/' not in page.content.decode()


def test_group_detail_and_member_role_change(ws, owner, console_client):
    group = do_create_group(ws, None, name="VIP群", vision="老客专属")
    ann = make_contact(ws, name="Ann")
    membership, _ = do_add_member(group, ann, None, join_source="poster")
    client = console_client(owner)

    html = client.get(f"/console/groups/{group.pk}/").content.decode()
    assert "老客专属" in html and "Ann" in html and "poster" in html

    client.post(f"/console/groups/{group.pk}/members/{membership.pk}/role/", {"role": "expert"})
    membership.refresh_from_db()
    assert (membership.role, membership.role_assigned) == ("expert", True)


def test_agent_can_view_groups_but_not_change_roles(ws, console_client):
    agent = make_staff(ws, Role.AGENT)
    group = do_create_group(ws, None, name="VIP群")
    membership, _ = do_add_member(group, make_contact(ws, name="Ann"), None)
    client = console_client(agent)

    assert client.get(f"/console/groups/{group.pk}/").status_code == 200
    response = client.post(f"/console/groups/{group.pk}/members/{membership.pk}/role/", {"role": "rebel"})

    assert response.status_code == 403
    assert Membership.objects.get(pk=membership.pk).role == "onlooker"


# ---------------------------------------------------------------- staff


def test_owner_adds_staff_changes_role_and_deactivates(ws, owner, console_client):
    client = console_client(owner)

    client.post("/console/staff/new/", {"email": "New.Agent@Example.com", "display_name": "小王", "role": "agent", "password": "pass-12345"})
    added = Staff.objects.in_workspace(ws).get(user__username="new.agent@example.com")
    assert (added.display_name, added.role) == ("小王", "agent")

    client.post(f"/console/staff/{added.pk}/role/", {"role": "operator"})
    added.refresh_from_db()
    assert added.role == "operator"

    client.post(f"/console/staff/{added.pk}/active/", {"active": "0"})
    added.refresh_from_db()
    assert added.is_active is False


def test_operator_cannot_add_staff(ws, console_client):
    operator = make_staff(ws, Role.OPERATOR)
    client = console_client(operator)

    page = client.get("/console/staff/").content.decode()
    response = client.post("/console/staff/new/", {"email": "x@example.com", "role": "owner", "password": "pass-12345"})

    assert "Read only" in page and "Add staff member" not in page
    assert response.status_code == 403
    assert "your role does not allow staff.manage" in response.content.decode()
    assert not Staff.objects.filter(user__username="x@example.com").exists()


def test_last_owner_cannot_be_demoted(ws, owner, console_client):
    admin = make_staff(ws, Role.ADMIN)

    response = console_client(admin).post(f"/console/staff/{owner.pk}/role/", {"role": "agent"}, follow=True)

    owner.refresh_from_db()
    assert owner.role == "owner"
    assert "only an owner can grant or take away the owner role" in response.content.decode()


def test_api_token_secret_is_shown_once(ws, owner, console_client):
    agent = make_staff(ws, Role.AGENT)
    client = console_client(owner)

    response = client.post(f"/console/staff/{agent.pk}/tokens/", {"name": "crm-sync"})

    html = response.content.decode()
    secret = html.split('<code class="mono">')[1].split("</code>")[0]
    token = authenticate_token(secret)
    assert token is not None and token.staff == agent and token.name == "crm-sync"
    assert response["Cache-Control"] == "no-store"
    assert secret not in client.get("/console/staff/").content.decode()
    assert ApiToken.objects.filter(staff=agent).count() == 1


# ---------------------------------------------------------------- audit


def test_audit_log_newest_first_with_filters(ws, owner, console_client):
    client = console_client(owner)
    client.post("/console/tags/groups/new/", {"name": "会员", "kind": "business"})
    make_contact(ws, name="Ann")

    everything = client.get("/console/audit/").content.decode()
    by_action = client.get("/console/audit/?action=tag_group.created").content.decode()
    by_owner = client.get(f"/console/audit/?actor={owner.pk}").content.decode()
    by_system = client.get("/console/audit/?actor=system").content.decode()

    assert everything.index("<code>contact.created</code>") < everything.index("<code>tag_group.created</code>") < everything.index("<code>staff.created</code>")
    assert "<code>tag_group.created</code>" in by_action and "<code>contact.created</code>" not in by_action
    assert "<code>tag_group.created</code>" in by_owner and "<code>contact.created</code>" not in by_owner
    assert "<code>contact.created</code>" in by_system and "<code>tag_group.created</code>" not in by_system
    assert "&quot;name&quot;: &quot;会员&quot;" in by_action


def test_audit_log_needs_the_permission(ws, console_client):
    operator = make_staff(ws, Role.OPERATOR)

    response = console_client(operator).get("/console/audit/")

    assert response.status_code == 403
    assert "audit.view" in response.content.decode()
