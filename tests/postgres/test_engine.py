"""Which database engine answered, and the behaviour siyu relies on from both engines.

`make test` runs the suite twice: on SQLite, then with ``DATABASE_URL`` pointing at the
PostgreSQL server of ``scripts/services.sh``. The first test makes the second run provably
a PostgreSQL run rather than a silent second SQLite run; the rest pin down what differs
between the engines underneath (JSON, time stamps, text matching, row locks) so that a
difference shows up here by name before it shows up in a domain test.
"""

from __future__ import annotations

import datetime as dt
import os
import zoneinfo

import pytest
from django.db import connection

from siyu.contacts.actions import do_create_profile_field, do_merge_contacts, do_record_event, do_tag_contacts
from siyu.contacts.events import EventKind
from siyu.contacts.models import Contact, ContactEvent, ContactTag, FieldType
from siyu.contacts.queries import filter_contacts, visible_contacts
from siyu.core.errors import NotFound
from siyu.core.testing import make_contact, make_tag, make_workspace

pytestmark = pytest.mark.django_db

EXPECTED_VENDOR = "postgresql" if os.environ.get("DATABASE_URL") else "sqlite"


def _session_facts() -> dict[str, object]:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA foreign_keys")
            return {"foreign_keys": cursor.fetchone()[0]}
        facts: dict[str, object] = {}
        for name in ("server_encoding", "TimeZone"):
            cursor.execute(f"SHOW {name}")
            facts[name] = cursor.fetchone()[0]
        cursor.execute("SHOW server_version_num")
        facts["version_15_or_newer"] = int(cursor.fetchone()[0]) >= 150000
        return facts


def test_the_engine_named_by_database_url_answers():
    # given DATABASE_URL set by `make test` for the PostgreSQL run, unset for the SQLite run
    # when / then
    assert connection.vendor == EXPECTED_VENDOR


def test_the_session_has_the_settings_siyu_relies_on():
    # given the connection Django opened from config.settings
    # when
    facts = _session_facts()
    # then: SQLite enforces foreign keys; PostgreSQL stores UTF-8 and talks UTC
    expected = {
        "sqlite": {"foreign_keys": 1},
        "postgresql": {"server_encoding": "UTF8", "TimeZone": "UTC", "version_15_or_newer": True},
    }
    assert facts == expected[EXPECTED_VENDOR]


def test_a_contact_round_trips_exactly():
    # given profile fields of every type and a first touch with microseconds in Shanghai time
    ws = make_workspace()
    do_create_profile_field(ws, None, key="size", label="尺码", field_type=FieldType.CHOICE, choices=["M", "L"])
    do_create_profile_field(ws, None, key="baby_months", label="宝宝月龄", field_type=FieldType.NUMBER)
    do_create_profile_field(ws, None, key="due", label="预产期", field_type=FieldType.DATE)
    do_create_profile_field(ws, None, key="note", label="备注", field_type=FieldType.TEXT)
    first_touch = dt.datetime(2025, 3, 8, 21, 30, 15, 123456, tzinfo=zoneinfo.ZoneInfo("Asia/Shanghai"))
    # when
    created = make_contact(
        ws,
        name="王小美 Mia",
        phone="138 1234 5678",
        city="上海",
        profile={"size": "M", "baby_months": "7", "due": "2025-09-01", "note": "喜欢🧸, \"引号\" and 'quotes'"},
        created_at=first_touch,
    )
    # then
    stored = Contact.objects.get(pk=created.pk)
    assert stored.name == "王小美 Mia"
    assert stored.city == "上海"
    assert stored.profile == {"size": "M", "baby_months": 7, "due": "2025-09-01", "note": "喜欢🧸, \"引号\" and 'quotes'"}
    assert stored.created_at == dt.datetime(2025, 3, 8, 13, 30, 15, 123456, tzinfo=dt.UTC)
    assert stored.phone == "+8613812345678"
    assert stored.phone_masked == "138****5678"
    assert stored.phone_encrypted != "+8613812345678"


def test_text_search_ignores_latin_case_and_matches_chinese_substrings():
    # given
    ws = make_workspace()
    make_contact(ws, name="Alice 王")
    make_contact(ws, name="BOB", city="上海市")
    make_contact(ws, name="Carol", city="北京")
    contacts = visible_contacts(ws, None)
    # when
    found = {q: sorted(filter_contacts(contacts, ws, q=q).values_list("name", flat=True)) for q in ("alice", "bob", "上海", "王")}
    # then
    assert found == {"alice": ["Alice 王"], "bob": ["BOB"], "上海": ["BOB"], "王": ["Alice 王"]}


def test_a_replayed_timeline_event_is_stored_once():
    # given
    ws = make_workspace()
    contact = make_contact(ws)
    paid_at = dt.datetime(2025, 5, 20, 12, 0, tzinfo=dt.UTC)
    # when
    first, created_first = do_record_event(
        contact, EventKind.ORDER, idempotency_key="order:E1001", data={"amount": "199.00"}, occurred_at=paid_at
    )
    again, created_again = do_record_event(
        contact, EventKind.ORDER, idempotency_key="order:E1001", data={"amount": "999.00"}, occurred_at=paid_at
    )
    # then
    assert (created_first, created_again, again.pk) == (True, False, first.pk)
    orders = list(ContactEvent.objects.filter(contact=contact, kind=EventKind.ORDER).values_list("data", "occurred_at"))
    assert orders == [({"amount": "199.00"}, paid_at)]


def test_a_merge_locks_both_rows_and_moves_tags_and_timeline():
    # given two records of one person, each with a tag and an order
    ws = make_workspace()
    vip, size_m = make_tag(ws, "VIP"), make_tag(ws, "M", group="尺码")
    primary = make_contact(ws, name="李雷")
    duplicate = make_contact(ws, name="李雷 (导入)", phone="13900001111")
    do_tag_contacts(ws, None, [primary], [vip])
    do_tag_contacts(ws, None, [duplicate], [size_m])
    do_record_event(duplicate, EventKind.ORDER, idempotency_key="order:D1")
    # when (select_for_update is a real row lock on PostgreSQL, a no-op on SQLite)
    merged = do_merge_contacts(primary, duplicate, None)
    # then
    assert sorted(ContactTag.objects.filter(contact=merged).values_list("tag__name", flat=True)) == ["M", "VIP"]
    assert ContactEvent.objects.filter(contact=merged, kind=EventKind.ORDER).count() == 1
    assert ContactEvent.objects.filter(contact_id=duplicate.pk).count() == 0
    assert Contact.objects.get(pk=duplicate.pk).merged_into_id == merged.pk
    assert merged.phone_masked == "139****1111"
    assert list(visible_contacts(ws, None).values_list("name", flat=True)) == ["李雷"]


def test_a_row_of_another_workspace_looks_missing():
    # given
    ours, theirs = make_workspace(), make_workspace()
    their_contact = make_contact(theirs)
    # when
    with pytest.raises(NotFound) as missing:
        Contact.objects.get_in_workspace(ours, pk=their_contact.pk)
    # then
    assert missing.value.message == "contact not found"
