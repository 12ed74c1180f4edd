import collections
import datetime as dt
import hashlib
import re
from decimal import Decimal

import pytest
from django.contrib.auth import authenticate
from django.utils import timezone

from siyu.accounts.models import AuditEntry, Role, Staff
from siyu.acquisition.models import Scan
from siyu.campaigns.models import Invite, RewardEntry
from siyu.communities.models import Group, GroupType, Horizon, Membership
from siyu.contacts.models import ChannelIdentity, Consent, Contact, ContactEvent, ContactTag, Tag, TagGroup, TagRule
from siyu.contacts.rules import do_apply_tag_rules
from siyu.core import crypto
from siyu.core.errors import ValidationFailed
from siyu.core.models import Workspace
from siyu.core.oncommit import batch_kind
from siyu.core.phones import mask_phone, normalize_phone
from siyu.demo.generate import TZ, anchor_for
from siyu.demo.seed import DEMO_OWNER_EMAIL, DEMO_PASSWORD, DEMO_SLUG, do_seed_demo_workspace, seed_demo

pytestmark = pytest.mark.django_db

SMALL = 300
DAY = dt.date(2026, 3, 10)  # a Tuesday; the window is 2026-02-08 .. 2026-03-09
ACTIVITY = ("message", "scan", "order", "tagged")


def _demo() -> Workspace:
    return Workspace.objects.get(slug=DEMO_SLUG)


def _events(ws: Workspace, *kinds: str) -> list[ContactEvent]:
    return list(ContactEvent.objects.in_workspace(ws).filter(kind__in=kinds))


def _table_counts() -> dict[str, int]:
    models = (Workspace, Staff, Contact, ChannelIdentity, Consent, ContactTag, Tag, TagGroup, TagRule, Group, Membership, ContactEvent, AuditEntry)
    return {m.__name__: m.objects.count() for m in models}


def _fingerprint(ws: Workspace) -> str:
    """Everything the generator decides, without database ids or encryption nonces."""
    external = dict(ChannelIdentity.objects.in_workspace(ws).values_list("contact_id", "external_id"))
    emails = dict(Staff.objects.in_workspace(ws).values_list("pk", "user__email"))
    tags = collections.defaultdict(list)
    for contact_id, group, name, source in ContactTag.objects.in_workspace(ws).values_list(
        "contact_id", "tag__group__name", "tag__name", "source"
    ):
        tags[external[contact_id]].append(f"{group}/{name}:{source}")
    contacts = sorted(
        (
            external[c.pk], c.name, c.gender, c.birthday, c.region, c.city, hashlib.sha256(c.phone.encode()).hexdigest(),
            c.lifecycle_stage, c.source_channel, c.source_campaign, c.created_at, emails[c.owner_id], c.external_ref,
            sorted(tags[external[c.pk]]),
        )
        for c in Contact.objects.in_workspace(ws)
    )
    groups = sorted(
        (g.name, g.group_type, g.horizon, g.ends_on, g.capacity, emails[g.owner_id], g.created_at, g.archived_at, g.rules_text)
        for g in Group.objects.in_workspace(ws)
    )
    memberships = sorted(
        (m.group.name, external[m.contact_id], m.role, m.joined_at, m.left_at, m.join_source)
        for m in Membership.objects.in_workspace(ws).select_related("group")
    )
    events = sorted(
        # stage changes, invites, rewards and removals are keyed by their row's database id
        (re.sub(r"^(stage|invite|reward|leave):\d+$", r"\1", e.idempotency_key), external[e.contact_id], e.kind, e.occurred_at,
         sorted((k, str(v)) for k, v in e.data.items() if not k.endswith("_id") and k not in ("transition", "inviter")))
        for e in ContactEvent.objects.in_workspace(ws)
    )
    scans = sorted(
        (s.live_code.name, s.scanned_at, s.visitor_key, s.outcome, emails.get(s.staff_id), s.group.name if s.group else None,
         external.get(s.contact_id))
        for s in Scan.objects.in_workspace(ws).select_related("live_code", "group")
    )
    invites = sorted(
        (i.campaign.key, external[i.inviter.contact_id], external[i.invitee_id], i.status, i.reason, i.created_at, i.decided_at)
        for i in Invite.objects.in_workspace(ws).select_related("campaign", "inviter")
    )
    return hashlib.sha256(repr((contacts, groups, memberships, events, scans, invites)).encode()).hexdigest()


def test_small_demo_has_groups_of_every_type_and_horizon_within_capacity():
    # when
    result = seed_demo(contacts=SMALL)

    # then
    ws = _demo()
    assert ws.name == "衣澜 Yilan 女装"
    assert (ws.time_zone, ws.currency, ws.language) == ("Asia/Shanghai", "CNY", "zh-hans")
    assert result["created"] is True
    assert result["workspace"] == "demo"
    assert result["seed"] == 42
    assert result["contacts"] == SMALL == Contact.objects.in_workspace(ws).count()
    assert result["owner_email"] == DEMO_OWNER_EMAIL
    assert result["password"] == DEMO_PASSWORD
    assert result["stores"] == ["上海静安店", "杭州湖滨店", "成都太古里店", "广州天河店", "北京三里屯店"]
    assert result["channel_account"] == "sandbox:衣澜企业微信（沙盒）"
    groups = list(Group.objects.in_workspace(ws))
    assert len(groups) == result["groups"] == 23
    assert {g.group_type for g in groups} == set(GroupType.values)
    assert {(g.group_type, g.horizon) for g in groups} >= {
        (GroupType.TRAFFIC, Horizon.LONG_TERM), (GroupType.TRAFFIC, Horizon.SHORT_TERM),
        (GroupType.CONVERSION, Horizon.SHORT_TERM), (GroupType.ORGANISATIONAL, Horizon.LONG_TERM),
        (GroupType.ORGANISATIONAL, Horizon.SHORT_TERM),
    }
    assert all(g.ends_on is not None for g in groups if g.horizon == Horizon.SHORT_TERM)
    assert {g.threshold for g in groups} == {"none", "price", "identity", "action"}
    for group in groups:
        open_members = Membership.objects.filter(group=group, left_at__isnull=True).count()
        all_members = Membership.objects.filter(group=group).count()
        assert open_members <= all_members <= group.capacity, group.name
        assert all_members >= 1, group.name
    archived = [g for g in groups if g.archived_at is not None]
    assert len(archived) == 1
    assert Membership.objects.filter(group=archived[0], left_at__isnull=True).count() == 0


def test_staff_roles_and_stores():
    # when
    result = seed_demo(contacts=SMALL)

    # then
    staff = list(Staff.objects.in_workspace(_demo()).select_related("user"))
    roles = collections.Counter(s.role for s in staff)
    assert roles == {Role.OWNER: 1, Role.ADMIN: 1, Role.OPERATOR: 2 + 5, Role.ANALYST: 1, Role.AGENT: 13}
    assert result["staff"] == len(staff) == 23
    owner = next(s for s in staff if s.role == Role.OWNER)
    assert owner.email == DEMO_OWNER_EMAIL
    for store in result["stores"]:
        at_store = collections.Counter(s.role for s in staff if s.store == store)
        assert at_store[Role.OPERATOR] == 1 and 2 <= at_store[Role.AGENT] <= 3, store
    assert [login["email"] for login in result["logins"]] == [s.email for s in staff]


def test_every_demo_login_uses_the_demo_password():
    # given
    result = seed_demo(contacts=SMALL)

    # when / then
    user = authenticate(username=DEMO_OWNER_EMAIL, password=DEMO_PASSWORD)
    assert user is not None and user.email == DEMO_OWNER_EMAIL
    agent = next(login for login in result["logins"] if login["role"] == Role.AGENT)
    assert authenticate(username=agent["email"], password=DEMO_PASSWORD) is not None
    assert authenticate(username=DEMO_OWNER_EMAIL, password="wrong-password") is None


def test_activity_lies_in_the_30_days_before_today_midnight_shanghai():
    # given
    today = dt.datetime.now(TZ).date()

    # when
    result = seed_demo(contacts=SMALL)

    # then
    ws = _demo()
    anchor = dt.datetime.fromisoformat(result["window"]["end"])
    assert anchor in (anchor_for(today), anchor_for(dt.datetime.now(TZ).date()))  # the call may straddle midnight
    start = anchor - dt.timedelta(days=30)
    assert result["window"]["start"] == start.isoformat()
    activity = _events(ws, *ACTIVITY)
    assert collections.Counter(e.kind for e in activity).keys() == set(ACTIVITY)
    # chatter, scans and tagging happen in the 30-day window; orders go back 12 months
    assert all(start <= e.occurred_at < anchor for e in activity if e.kind != "order")
    assert all(anchor - dt.timedelta(days=366) <= e.occurred_at < anchor for e in activity if e.kind == "order")
    assert any(e.occurred_at < start for e in activity if e.kind == "order")
    assert ContactEvent.objects.in_workspace(ws).filter(occurred_at__gte=anchor).count() == 0
    created = dict(Contact.objects.in_workspace(ws).values_list("pk", "created_at"))
    added = _events(ws, "added")
    assert len(added) == SMALL
    assert all(e.occurred_at == created[e.contact_id] for e in added)
    assert all(anchor - dt.timedelta(days=366) <= c < anchor for c in created.values())
    assert result["events"] == ContactEvent.objects.in_workspace(ws).count()
    keys = list(ContactEvent.objects.in_workspace(ws).values_list("idempotency_key", flat=True))
    assert len(set(keys)) == len(keys)
    # (leave:<membership>: a spammer the bot removed, keyed as the removal action keys it)
    assert all(re.fullmatch(r"demo:42:\d+|demo:42:order:\S+|stage:\d+|invite:\d+|reward:\d+|leave:\d+", k) for k in keys)


def test_messages_peak_at_0930_noon_and_evening():
    # given
    do_seed_demo_workspace(contacts=SMALL, seed=42, today=DAY)

    # when
    hours = collections.Counter(e.occurred_at.astimezone(TZ).hour for e in _events(_demo(), "message"))

    # then
    top3 = [hour for hour, _ in hours.most_common(3)]
    assert set(top3) <= {9, 10, 12, 20, 21}
    assert hours[9] > hours[8] and hours[12] > hours[11] and hours[12] > hours[13]
    assert hours[20] > hours[18] and hours[21] > hours[23]
    assert max(hours[h] for h in range(1, 6)) < min(hours[9], hours[12], hours[20]) / 5


def test_same_seed_same_day_gives_identical_data_and_another_seed_differs():
    # given
    do_seed_demo_workspace(contacts=SMALL, seed=7, today=DAY)
    first = _fingerprint(_demo())
    _demo().delete()

    # when
    do_seed_demo_workspace(contacts=SMALL, seed=7, today=DAY)
    again = _fingerprint(_demo())
    _demo().delete()
    do_seed_demo_workspace(contacts=SMALL, seed=8, today=DAY)
    other = _fingerprint(_demo())

    # then
    assert again == first
    assert other != first


def test_second_call_returns_existing_counts_and_changes_nothing():
    # given
    first = seed_demo(contacts=SMALL, seed=42)
    before = _table_counts()

    # when
    second = seed_demo(contacts=1000, seed=5)

    # then
    assert second["created"] is False
    assert {**second, "created": True} == first
    assert second["seed"] == 42
    assert _table_counts() == before


def test_phones_are_encrypted_valid_unique_and_masked():
    # when
    seed_demo(contacts=SMALL)

    # then
    with_phone = [c for c in Contact.objects.in_workspace(_demo()) if c.phone_encrypted]
    assert 0.6 * SMALL < len(with_phone) < SMALL
    phones = [c.phone for c in with_phone]
    assert len(set(phones)) == len(phones)
    for contact, phone in zip(with_phone, phones, strict=True):
        assert normalize_phone(phone) == phone and phone.startswith("+861")
        assert phone not in contact.phone_encrypted and phone[3:] not in contact.phone_encrypted
        assert re.fullmatch(r"1\d{2}\*{4}\d{4}", contact.phone_masked)
        assert contact.phone_masked == mask_phone(phone)
        assert contact.phone_hash == crypto.lookup_hash(phone)


def test_tags_agree_with_attributes_and_the_rules_have_nothing_to_add(django_capture_on_commit_callbacks):
    # when: the rules' first pass runs after commit, as it does outside tests
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        seed_demo(contacts=SMALL)

    # then
    ws = _demo()
    assert TagRule.objects.in_workspace(ws).count() == 4
    assert len([c for c in callbacks if batch_kind(c) == "tag_rules_full_pass"]) == 1  # the four rules share one first pass
    # (the first pass may tag repeat buyers whose older orders fall in the 90-day rule window)
    assert do_apply_tag_rules(ws.pk) == {"contacts": SMALL, "added": 0, "removed": 0}
    held = collections.defaultdict(set)
    for contact_id, group, name in ContactTag.objects.in_workspace(ws).values_list("contact_id", "tag__group__name", "tag__name"):
        held[contact_id].add((group, name))
    exclusive = set(TagGroup.objects.in_workspace(ws).filter(exclusive=True).values_list("name", flat=True))
    assert exclusive == {"性别", "年龄段", "地区", "所属门店", "尺码", "消费力", "活跃度", "来源"}
    recent = timezone.now() - dt.timedelta(days=90)
    orders = collections.Counter(e.contact_id for e in _events(ws, "order"))
    orders_90 = collections.Counter(e.contact_id for e in _events(ws, "order") if e.occurred_at >= recent)
    messages = collections.Counter(e.contact_id for e in _events(ws, "message"))
    for contact in Contact.objects.in_workspace(ws).select_related("owner"):
        tags = held[contact.pk]
        for group in exclusive:
            assert len([t for t in tags if t[0] == group]) <= 1, (contact.pk, group)
        if contact.gender != "unknown":
            assert ("性别", {"female": "女", "male": "男"}[contact.gender]) in tags
        assert ("所属门店", contact.owner.store) in tags and contact.owner.role == Role.AGENT
        assert ("活跃度", "活跃" if messages[contact.pk] >= 10 else "一般" if messages[contact.pk] else "沉默") in tags
        if orders[contact.pk]:
            assert contact.lifecycle_stage not in ("new", "nurtured")  # a buyer is past those stages
        if orders_90[contact.pk] >= 2:
            assert ("购买阶段", "复购") in tags
        if ("购买阶段", "VIP") in tags:
            assert orders[contact.pk] >= 1


def test_timeline_agrees_with_memberships_and_orders_carry_decimal_amounts():
    # when
    seed_demo(contacts=SMALL)

    # then
    ws = _demo()
    joined = {(e.contact_id, e.data["group_id"], e.occurred_at) for e in _events(ws, "joined_group")}
    left = {(e.contact_id, e.data["group_id"], e.occurred_at) for e in _events(ws, "left_group")}
    memberships = list(Membership.objects.in_workspace(ws))
    assert joined == {(m.contact_id, m.group_id, m.joined_at) for m in memberships}
    assert left == {(m.contact_id, m.group_id, m.left_at) for m in memberships if m.left_at is not None}
    assert all(m.left_at is None or m.left_at > m.joined_at for m in memberships)
    roles = collections.Counter(m.role for m in memberships)
    assert roles["lurker"] > roles["onlooker"] > roles["core"] > 0 and roles["expert"] > 0 and roles["mascot"] > 0
    for event in _events(ws, "order"):
        amount = Decimal(event.data["amount"])
        assert event.data["amount"] == f"{amount:.2f}" and Decimal("50") < amount < Decimal("3000")
    spans = {m.pk: m for m in memberships}
    by_contact_group = collections.defaultdict(list)
    for m in spans.values():
        by_contact_group[(m.contact_id, m.group_id)].append(m)
    for event in _events(ws, "message"):
        if event.data["chat"] == "group":
            stays = by_contact_group[(event.contact_id, event.data["group_id"])]
            assert any(m.joined_at <= event.occurred_at and (m.left_at is None or event.occurred_at < m.left_at) for m in stays)


def test_seeding_is_audited_once_with_the_counts():
    # when
    result = seed_demo(contacts=SMALL, seed=3)

    # then
    entry = AuditEntry.objects.in_workspace(_demo()).get(action="demo.seeded")
    orders = AuditEntry.objects.in_workspace(_demo()).get(action="demo.orders_seeded")
    assert entry.after["contacts"] == SMALL
    # the plan's events, then the orders' history events and the stage changes they cause
    stage_events = ContactEvent.objects.in_workspace(_demo()).filter(kind="stage_changed").count()
    # and the fission campaigns' invites and rewards
    fission_events = ContactEvent.objects.in_workspace(_demo()).filter(kind__in=("invited", "reward")).count()
    assert fission_events == Invite.objects.in_workspace(_demo()).count() + RewardEntry.objects.in_workspace(_demo()).count() > 0
    # and the leaves of the spammers the bot removed in the chat history
    chat = AuditEntry.objects.in_workspace(_demo()).get(action="demo.group_messages_seeded").after
    assert chat["removal_events"] == ContactEvent.objects.in_workspace(_demo()).filter(
        kind="left_group", data__reason="removed by moderation: advertising").count() > 0
    assert entry.after["events"] + orders.after["order_events"] + stage_events + fission_events + chat["removal_events"] == result["events"]
    assert entry.after["memberships"] == result["memberships"]
    assert entry.after["seed"] == 3


@pytest.mark.parametrize("contacts", [0, -5, 200_001, "100", True])
def test_invalid_size_is_refused_before_anything_is_written(contacts):
    # when
    with pytest.raises(ValidationFailed) as raised:
        seed_demo(contacts=contacts)

    # then
    assert raised.value.code == "invalid_demo_size"
    assert not Workspace.objects.filter(slug=DEMO_SLUG).exists()
