"""Moderation in the console: the case log with undo, word lists, the policy and the
dry-run check. Cases come from the real pipeline (sandbox ``say`` → inbox → worker →
``do_moderate_message``), its on-commit work run by ``django_capture_on_commit_callbacks``."""

from __future__ import annotations

import pytest

from siyu.accounts.models import AuditEntry, Role
from siyu.channels.actions import do_create_channel_account
from siyu.channels.models import OutboxMessage, StaffTask
from siyu.channels.sandbox.inject import join, say
from siyu.communities.actions import do_create_group
from siyu.communities.models import Group, Membership
from siyu.contacts.actions import do_update_contact
from siyu.contacts.models import Contact
from siyu.core.testing import make_staff, make_workspace
from siyu.moderation.models import ModerationCase, ModerationPolicy, Strike, WordList

pytestmark = pytest.mark.django_db

ADVERT = "想要同款的加我微信，电话 138 1234 5678"


@pytest.fixture
def ws():
    return make_workspace(name="Shop")


@pytest.fixture
def owner(ws):
    return make_staff(ws, Role.OWNER, email="owner@example.com")


@pytest.fixture
def post(ws, django_capture_on_commit_callbacks):
    """``post(group_name, member, text)`` → the case the pipeline made (or None)."""
    accounts: dict[str, object] = {}

    def run(group_name: str, member: str, text: str, *, imitate: str = "full") -> ModerationCase | None:
        with django_capture_on_commit_callbacks(execute=True):
            if imitate not in accounts:
                # one sandbox account per profile; `say` uses the first active one
                accounts[imitate] = do_create_channel_account(ws, None, kind="sandbox", name=f"sbx-{imitate}", config={"imitate": imitate})
            group = Group.objects.in_workspace(ws).filter(name=group_name).first() or do_create_group(
                ws, None, name=group_name, channel_account=accounts[imitate], external_id=f"room-{group_name}"
            )
            join(ws, group=group.name, member=member, member_name=member)
            result = say(ws, group=group.name, member=member, text=text, member_name=member)
        return ModerationCase.objects.filter(message__external_id=result["message_id"]).first()

    return run


def test_case_log_shows_verdict_reasons_and_what_was_done(owner, post, console_client):
    case = post("福利1群", "Bob", ADVERT)

    html = console_client(owner).get("/console/moderation/").content.decode()

    row = html.split(f'id="case-{case.pk}"')[1].split("</tr>")[0]
    assert case.verdict == "remove"
    assert f'<a href="/console/groups/{case.group_id}/">福利1群</a>' in row
    assert f'<a href="/console/contacts/{case.contact_id}/">Bob</a>' in row
    # the detector stores its evidence already masked
    assert "<div><code>phone</code>: 138****5678</div><div><code>wechat_id</code>: 微信</div>" in row
    assert ADVERT in row
    sends = list(OutboxMessage.objects.filter(idempotency_key__startswith=f"mod:{case.message_id}:").order_by("id").values_list("pk", "command"))
    for pk, command in sends:
        assert f'<a href="/console/channels/outbox/?id={pk}">send #{pk}</a> <code>{command}</code>' in row
    assert "membership closed" in row
    assert f'action="/console/moderation/cases/{case.pk}/undo/"' in row


def test_phone_numbers_are_masked_without_the_pii_permission(ws, post, console_client):
    post("福利1群", "Bob", ADVERT)
    operator = make_staff(ws, Role.OPERATOR)

    html = console_client(operator).get("/console/moderation/").content.decode()

    assert "13812345678" not in html and "138 1234 5678" not in html
    assert "想要同款的加我微信，电话 138****5678" in html
    assert "<code>phone</code>: 138****5678" in html


def test_filters_narrow_by_verdict_group_and_state(owner, post, console_client):
    removal = post("一群", "Bob", ADVERT)
    deletion = post("二群", "Amy", "看这里 www.example.com")
    client = console_client(owner)
    client.post(f"/console/moderation/cases/{deletion.pk}/undo/")

    by_verdict = client.get("/console/moderation/?verdict=delete").content.decode()
    by_group = client.get(f"/console/moderation/?group={removal.group_id}").content.decode()
    undone = client.get("/console/moderation/?state=undone").content.decode()
    standing = client.get("/console/moderation/?state=open").content.decode()

    assert f'id="case-{deletion.pk}"' in by_verdict and f'id="case-{removal.pk}"' not in by_verdict
    assert f'id="case-{removal.pk}"' in by_group and f'id="case-{deletion.pk}"' not in by_group
    assert f'id="case-{deletion.pk}"' in undone and f'id="case-{removal.pk}"' not in undone
    assert f'id="case-{removal.pk}"' in standing and f'id="case-{deletion.pk}"' not in standing


def test_undo_clears_the_strike_restores_membership_and_is_audited(ws, owner, post, console_client, django_capture_on_commit_callbacks):
    case = post("福利1群", "Bob", ADVERT)
    assert Membership.objects.get(contact=case.contact, group=case.group).left_at is not None

    with django_capture_on_commit_callbacks(execute=True):
        response = console_client(owner).post(f"/console/moderation/cases/{case.pk}/undo/", {"note": "误判，老客户", "next": "/console/moderation/"}, follow=True)

    case.refresh_from_db()
    assert case.undone_at is not None and case.note == "undone: 误判，老客户"
    assert Strike.objects.get(case=case).cleared_at is not None
    assert Membership.objects.filter(contact=case.contact, group=case.group, left_at__isnull=True).count() == 1
    assert OutboxMessage.objects.get(idempotency_key=f"undo:{case.pk}:invite").status == "sent"
    entry = AuditEntry.objects.in_workspace(ws).get(action="moderation.undone")
    assert (entry.actor, entry.summary, entry.via) == (owner, "误判，老客户", "console")
    html = response.content.decode()
    assert f"Case #{case.pk} undone: the strike is cleared." in html
    assert "membership restored" in html


def test_undo_where_the_channel_cannot_invite_makes_a_staff_task(owner, post, console_client):
    case = post("企微群", "Bob", ADVERT, imitate="wecom")

    console_client(owner).post(f"/console/moderation/cases/{case.pk}/undo/")

    task = StaffTask.objects.get(dedupe_key=f"task:undo:{case.pk}:invite")
    assert task.title == "将Bob重新拉回「企微群」（申诉通过）"
    html = console_client(owner).get("/console/moderation/").content.decode()
    assert f'<a href="/console/tasks/?id={task.pk}">staff task #{task.pk}</a> <code>invite_member</code>' in html


def test_undoing_twice_shows_the_conflict(owner, post, console_client):
    case = post("福利1群", "Bob", ADVERT)
    client = console_client(owner)
    client.post(f"/console/moderation/cases/{case.pk}/undo/")

    again = client.post(f"/console/moderation/cases/{case.pk}/undo/", {"next": "/console/moderation/"}, follow=True)

    assert "this case was already undone" in again.content.decode()
    assert AuditEntry.objects.filter(action="moderation.undone").count() == 1


def test_an_agent_sees_only_their_contacts_cases_and_cannot_undo(ws, owner, post, console_client):
    agent = make_staff(ws, Role.AGENT)
    mine = post("一群", "Bob", ADVERT)
    theirs = post("二群", "Amy", ADVERT)
    do_update_contact(Contact.objects.get(pk=mine.contact_id), owner, owner=agent.pk)
    client = console_client(agent)

    html = client.get("/console/moderation/").content.decode()
    response = client.post(f"/console/moderation/cases/{mine.pk}/undo/")

    assert f'id="case-{mine.pk}"' in html and f'id="case-{theirs.pk}"' not in html
    assert "/undo/" not in html
    assert response.status_code == 403
    mine.refresh_from_db()
    assert mine.undone_at is None


def test_a_case_of_another_workspace_is_a_404(owner, console_client, django_capture_on_commit_callbacks):
    other = make_workspace()
    with django_capture_on_commit_callbacks(execute=True):
        account = do_create_channel_account(other, None, kind="sandbox", name="sbx")
        do_create_group(other, None, name="别家群", channel_account=account, external_id="room-x")
        join(other, group="别家群", member="Bob")
        result = say(other, group="别家群", member="Bob", text=ADVERT)
    foreign = ModerationCase.objects.get(message__external_id=result["message_id"])

    response = console_client(owner).post(f"/console/moderation/cases/{foreign.pk}/undo/")

    assert response.status_code == 404
    foreign.refresh_from_db()
    assert foreign.undone_at is None
    assert "别家群" not in console_client(owner).get("/console/moderation/").content.decode()


# ---------------------------------------------------------------- word lists


def test_create_and_edit_a_word_list(ws, owner, console_client):
    group = do_create_group(ws, None, name="VIP群")
    client = console_client(owner)

    client.post("/console/moderation/word-lists/", {"name": "竞品", "kind": "competitor", "group": "", "words": "某宝\n 某多多 \n\n某宝\n", "is_active": "on"})
    row = WordList.objects.in_workspace(ws).get()
    assert (row.name, row.kind, row.group, row.words, row.is_active) == ("竞品", "competitor", None, ["某宝", "某多多"], True)

    form = client.get(f"/console/moderation/word-lists/?edit={row.pk}").content.decode()
    assert "某宝\n某多多</textarea>" in form
    assert '<input type="hidden" name="name" value="竞品">' in form

    saved = client.post("/console/moderation/word-lists/", {"editing": "1", "name": "竞品", "kind": "sensitive_word", "group": group.pk, "words": "刷单"}, follow=True)
    row.refresh_from_db()
    assert (row.kind, row.group, row.words, row.is_active) == ("sensitive_word", group, ["刷单"], False)
    assert "Word list “竞品” saved with 1 words." in saved.content.decode()
    assert AuditEntry.objects.in_workspace(ws).filter(action="word_list.saved", actor=owner, via="console").count() == 2


def test_an_invalid_word_list_keeps_the_input_and_shows_the_error(ws, owner, console_client):
    response = console_client(owner).post("/console/moderation/word-lists/", {"name": "", "kind": "sensitive_word", "words": "刷单\n代购"})

    html = response.content.decode()
    assert response.status_code == 422
    assert "a word list needs a name" in html
    assert "刷单\n代购</textarea>" in html
    assert not WordList.objects.in_workspace(ws).exists()


def test_word_lists_are_read_only_without_manage_groups(ws, console_client):
    agent = make_staff(ws, Role.AGENT)
    client = console_client(agent)

    page = client.get("/console/moderation/word-lists/")
    response = client.post("/console/moderation/word-lists/", {"name": "x", "kind": "sensitive_word", "words": "y"})

    assert page.status_code == 200 and 'id="word-list-form"' not in page.content.decode()
    assert response.status_code == 403
    assert not WordList.objects.in_workspace(ws).exists()


def test_a_group_of_another_workspace_cannot_scope_a_word_list(ws, owner, console_client):
    foreign = do_create_group(make_workspace(), None, name="别家群")

    response = console_client(owner).post("/console/moderation/word-lists/", {"name": "x", "kind": "sensitive_word", "group": foreign.pk, "words": "y"})

    assert response.status_code == 404
    assert not WordList.objects.filter(name="x").exists()


# ---------------------------------------------------------------- policy and check


def _policy_post(**overrides: str) -> dict[str, str]:
    data = {"window_days": "30", "remove_after": "1", "blacklist_after": "2", "flood_count": "3", "flood_window_seconds": "120",
            "vip_tags": "VIP", "own_domains": "", "own_qr_prefixes": ""}
    data.update(overrides)
    return data


def test_policy_form_shows_the_defaults_then_saves_changes(ws, owner, console_client):
    client = console_client(owner)

    page = client.get("/console/moderation/policy/").content.decode()
    assert '<select name="action__url" aria-label="url"><option value="allow">allow</option><option value="warn">warn</option><option value="delete" selected>' in page

    client.post("/console/moderation/policy/", _policy_post(action__url="warn", action__phone="remove", window_days="7",
                                                               vip_tags="VIP\n会员", own_domains="shop.example.com"))

    config = ModerationPolicy.objects.in_workspace(ws).get(group__isnull=True).config
    assert config == {
        "actions": {"url": "warn"}, "escalation": {"window_days": 7, "remove_after": 1, "blacklist_after": 2},
        "vip_tags": ["VIP", "会员"], "own_domains": ["shop.example.com"], "own_qr_prefixes": [], "flood_count": 3, "flood_window_seconds": 120,
    }
    assert AuditEntry.objects.in_workspace(ws).filter(action="moderation.policy_set", actor=owner).count() == 1
    again = client.get("/console/moderation/policy/").content.decode()
    assert '<option value="warn" selected>warn</option>' in again.split('name="action__url"')[1].split("</select>")[0]
    assert 'name="window_days" value="7"' in again


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"window_days": "soon"}, "Strike window (days) must be a whole number"), ({"action__url": "shout"}, "unknown verdict &#x27;shout&#x27;")],
)
def test_an_invalid_policy_is_refused_with_the_input_kept(ws, owner, console_client, overrides, message):
    response = console_client(owner).post("/console/moderation/policy/", _policy_post(**overrides))

    html = response.content.decode()
    assert response.status_code == 422
    assert message in html
    assert not ModerationPolicy.objects.in_workspace(ws).exists()


def test_an_analyst_may_read_the_policy_but_not_change_it(ws, console_client):
    client = console_client(make_staff(ws, Role.ANALYST))

    page = client.get("/console/moderation/policy/").content.decode()
    response = client.post("/console/moderation/policy/", _policy_post())

    assert "<fieldset disabled>" in page
    assert response.status_code == 403
    assert not ModerationPolicy.objects.in_workspace(ws).exists()


def test_check_shows_the_verdict_and_writes_nothing(ws, owner, console_client):
    client = console_client(owner)
    client.post("/console/moderation/word-lists/", {"name": "敏感", "kind": "sensitive_word", "words": "刷单", "is_active": "on"})
    audit_before = AuditEntry.objects.count()

    advert = client.post("/console/moderation/check/", {"text": "加我vx：lily_2020 有优惠"}).content.decode()
    word = client.post("/console/moderation/check/", {"text": "有人要刷单吗"}).content.decode()
    clean = client.post("/console/moderation/check/", {"text": "这件衣服有M码吗？"}).content.decode()

    result = advert.split('id="check-result"')[1].split("</section>")[0]
    assert "verdict-remove" in result and "<code>wechat_id</code>: lily_2020" in result
    assert "<code>sensitive_word</code>: 刷单" in word
    assert "verdict-allow" in clean and "No detector fired." in clean
    assert AuditEntry.objects.count() == audit_before
    assert not ModerationCase.objects.exists()


def test_moderation_needs_view_groups_and_the_nav_shows_it(ws, owner, console_client):
    html = console_client(owner).get("/console/moderation/").content.decode()

    assert 'href="/console/moderation/" class="active"' in html
    assert 'href="/console/tasks/"' in html and 'href="/console/channels/"' in html
