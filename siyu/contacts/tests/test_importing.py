import datetime as dt

import pytest

from siyu.accounts.models import AuditEntry, Role
from siyu.contacts.actions import do_create_profile_field, do_merge_contacts
from siyu.contacts.importing import ImportReport, InvalidColumns, RowError, UnreadableFile, import_contacts
from siyu.contacts.models import Contact, ContactEvent, ContactTag, Gender, Tag, TagSource
from siyu.core import crypto
from siyu.core.errors import Forbidden
from siyu.core.testing import make_contact, make_staff, make_tag, make_workspace

pytestmark = pytest.mark.django_db


def csv_bytes(*lines: str, encoding: str = "utf-8") -> bytes:
    return ("\n".join(lines) + "\n").encode(encoding)


def contact_by_phone(ws, phone: str) -> Contact:
    return Contact.objects.in_workspace(ws).get(phone_hash=crypto.lookup_hash(phone))


BROKEN_FILE = csv_bytes(
    "name,phone,gender,birthday,stage,tags,external_id",
    "张三,13812345678,男,1990-01-02,new,兴趣/咖啡,C001",
    "李四,not-a-phone,女,,,,C002",
    "王五,13912345678,女,1990-02-30,,,C003",
    ",13712345678,,,,,C004",
    "赵六,13612345678,外星,,,,C005",
    "钱七,13512345678,,,churn-ish,,C006",
    "孙八,13412345678,,,,兴趣/不存在,C007",
    "周九,13312345678,,,,,C001",
    "吴十,13212345678,F,1988/3/4,vip,咖啡,C008",
    "郑十一,13112345678",
    "冯十二,,,,,,",
)


def test_broken_rows_are_reported_and_the_rest_imported_and_a_second_run_changes_nothing():
    # given a workspace with a tag and a file where most rows are broken
    ws = make_workspace()
    coffee = make_tag(ws, "咖啡", group="兴趣")

    # when it is imported
    report = import_contacts(ws, None, BROKEN_FILE)

    # then each broken row is reported with its line number and reason
    assert [(e.row, e.reason) for e in report.rejected] == [
        (3, "not a phone number: 'not-a-phone'"),
        (4, "invalid date '1990-02-30' (expected YYYY-MM-DD)"),
        (5, "name is empty (needed to create a new contact)"),
        (6, "unknown gender '外星' (expected 男/女/male/female/M/F)"),
        (7, "unknown lifecycle stage 'churn-ish' (expected one of new, nurtured, first_purchase, repeat, vip, at_risk, churned, recalled)"),
        (8, "unknown tag '兴趣/不存在'"),
        (9, "duplicate: same external_id 'C001' as row 2"),
        (11, "row has 2 columns, the header has 7"),
        (12, "needs external_id or phone to be re-importable"),
    ]
    assert report.rejected[0].values == {
        "name": "李四", "phone": "not-a-phone", "gender": "女", "birthday": "", "stage": "", "tags": "", "external_id": "C002",
    }
    # and the good rows are in, with their fields and import-sourced tags
    assert (report.imported, report.updated, report.unchanged) == (2, 0, 0)
    zhang = contact_by_phone(ws, "+8613812345678")
    assert (zhang.name, zhang.gender, zhang.birthday, zhang.lifecycle_stage, zhang.external_ref) == (
        "张三", Gender.MALE, dt.date(1990, 1, 2), "new", "C001",
    )
    wu = contact_by_phone(ws, "+8613212345678")
    assert (wu.gender, wu.birthday, wu.lifecycle_stage) == (Gender.FEMALE, dt.date(1988, 3, 4), "vip")
    assert list(ContactTag.objects.filter(tag=coffee).order_by("contact_id").values_list("contact_id", "source")) == [
        (zhang.pk, TagSource.IMPORT), (wu.pk, TagSource.IMPORT),
    ]
    assert Contact.objects.in_workspace(ws).count() == 2

    # when the same file is imported again
    events, audits = ContactEvent.objects.count(), AuditEntry.objects.exclude(action="contacts.imported").count()
    stamps = dict(Contact.objects.values_list("pk", "updated_at"))
    again = import_contacts(ws, None, BROKEN_FILE)

    # then nothing changes: the good rows are unchanged, the broken ones still reported
    assert (again.imported, again.updated, again.unchanged) == (0, 0, 2)
    assert [e.row for e in again.rejected] == [3, 4, 5, 6, 7, 8, 9, 11, 12]
    assert Contact.objects.in_workspace(ws).count() == 2
    assert ContactEvent.objects.count() == events
    assert AuditEntry.objects.exclude(action="contacts.imported").count() == audits
    assert dict(Contact.objects.values_list("pk", "updated_at")) == stamps


def test_gb18030_file_with_chinese_headers_is_read_and_reported():
    # given a file saved by Excel on Chinese Windows (GB18030) with Chinese headers
    ws = make_workspace()
    owner = make_staff(ws, role=Role.AGENT, email="xiaomei@example.com")
    data = csv_bytes(
        "客户编号,姓名,手机号,性别,生日,省份,城市,负责人,来源渠道,来源活动,生命周期,备注",
        "K1,陈小姐,138 1234 5678,女,1992年5月6日,广东,深圳,XiaoMei@example.com,门店海报,春季,首购,老客户",
        encoding="gb18030",
    )

    # when it is imported
    report = import_contacts(ws, None, data)

    # then the encoding is reported, the Chinese columns are understood and the unknown one
    # is reported once
    assert report.encoding == "gb18030"
    assert report.unknown_columns == ["备注"]
    assert report.columns["手机号"] == "phone"
    assert (report.imported, report.rejected) == (1, [])
    chen = Contact.objects.in_workspace(ws).get(external_ref="K1")
    assert (chen.name, chen.phone, chen.gender, chen.birthday, chen.region, chen.city) == (
        "陈小姐", "+8613812345678", Gender.FEMALE, dt.date(1992, 5, 6), "广东", "深圳",
    )
    assert (chen.owner_id, chen.source_channel, chen.source_campaign, chen.lifecycle_stage) == (owner.pk, "门店海报", "春季", "first_purchase")


def test_utf8_with_bom_and_tab_separated_files_are_read():
    ws = make_workspace()
    bom = b"\xef\xbb\xbf" + csv_bytes("姓名,手机", "甲,13812345678")
    tabs = csv_bytes("name\tphone", "乙\t13912345678")

    first = import_contacts(ws, None, bom)
    second = import_contacts(ws, None, tabs)

    assert (first.encoding, first.imported, second.encoding, second.imported) == ("utf-8-sig", 1, "utf-8", 1)
    assert sorted(Contact.objects.in_workspace(ws).values_list("name", flat=True)) == ["乙", "甲"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        ("name,phone\n".encode("utf-16"), "the file is UTF-16 or binary, not CSV text: save it as 'CSV UTF-8' (or GB18030)"),
        (b"PK\x03\x04rest-of-a-zip", "this is an Excel workbook (.xlsx), not CSV: save it as 'CSV UTF-8' and import that"),
        (
            "name,phone\nJosé,13812345678\n".encode("latin-1"),
            "the file is neither UTF-8 nor GB18030 text (unreadable byte at offset 14); save it as 'CSV UTF-8'",
        ),
    ],
)
def test_unreadable_files_are_refused_with_the_reason(data, message):
    ws = make_workspace()

    with pytest.raises(UnreadableFile) as caught:
        import_contacts(ws, None, data)

    assert caught.value.message == message
    assert Contact.objects.in_workspace(ws).count() == 0


def test_a_file_without_a_key_column_or_known_columns_is_refused():
    ws = make_workspace()

    with pytest.raises(InvalidColumns) as no_key:
        import_contacts(ws, None, csv_bytes("name,city", "甲,上海"))
    with pytest.raises(InvalidColumns) as nothing_known:
        import_contacts(ws, None, csv_bytes("foo,bar", "1,2"))
    with pytest.raises(InvalidColumns) as twice:
        import_contacts(ws, None, csv_bytes("手机,电话,name", "13812345678,13912345678,甲"))

    assert no_key.value.message.startswith("the file needs an external_id (客户编号) or phone (手机) column")
    assert nothing_known.value.message == "none of the columns is known (foo, bar); expected e.g. name/姓名, phone/手机, tags/标签"
    assert twice.value.message == "columns '手机' and '电话' are both read as phone; map one of them to 'ignore'"


def test_explicit_mapping_overrides_the_header():
    # given a file with the brand's own column names, one of which looks like a known one
    ws = make_workspace()
    do_create_profile_field(ws, None, key="size", label="尺码", field_type="choice", choices=["S", "M", "L"])
    data = csv_bytes("会员号,客户,电话,tel2,衣服尺码", "V9,小王,13812345678,13900000000,M")

    # when it is imported with a mapping
    report = import_contacts(
        ws, None, data, mapping={"会员号": "external_id", "客户": "name", "tel2": "ignore", "衣服尺码": "profile.size"}
    )

    # then the mapping decides, and skipped columns are not reported as unknown
    assert report.columns == {"会员号": "external_id", "客户": "name", "电话": "phone", "衣服尺码": "profile.size"}
    assert report.unknown_columns == []
    contact = Contact.objects.in_workspace(ws).get(external_ref="V9")
    assert (contact.name, contact.phone, contact.profile) == ("小王", "+8613812345678", {"size": "M"})


def test_mapping_errors_are_clear():
    ws = make_workspace()
    data = csv_bytes("name,phone", "甲,13812345678")

    with pytest.raises(InvalidColumns) as missing:
        import_contacts(ws, None, data, mapping={"手机": "phone"})
    with pytest.raises(InvalidColumns) as bad_field:
        import_contacts(ws, None, data, mapping={"name": "nickname"})

    assert missing.value.message == "the mapping names column '手机', which is not in the file (columns: name, phone)"
    assert bad_field.value.message.startswith("unknown field 'nickname' in the column mapping; use one of name, phone,")


def test_a_matched_contact_gets_only_the_fields_that_differ():
    # given an existing contact with a tag
    ws = make_workspace()
    vip = make_tag(ws, "VIP", group="等级")
    contact = make_contact(ws, name="老客户", phone="13812345678", city="上海", gender="female")

    # when a file with the same phone, a new city, an empty gender cell and a tag is imported
    report = import_contacts(ws, None, csv_bytes("name,phone,city,gender,tags", "老客户,13812345678,杭州,,等级/VIP"))

    # then the contact is updated in place: city changed, gender kept, tag added
    assert (report.imported, report.updated, report.unchanged) == (0, 1, 0)
    contact.refresh_from_db()
    assert (contact.city, contact.gender) == ("杭州", Gender.FEMALE)
    assert list(ContactTag.objects.filter(contact=contact).values_list("tag_id", "source")) == [(vip.pk, TagSource.IMPORT)]
    update = AuditEntry.objects.get(action="contact.updated", target_id=str(contact.pk))
    assert (update.before["city"], update.after["city"]) == ("上海", "杭州")
    assert Contact.objects.in_workspace(ws).count() == 1


def test_external_id_wins_over_phone_and_conflicting_keys_are_rejected():
    # given two contacts, one known by the brand's customer number
    ws = make_workspace()
    known = make_contact(ws, name="甲", external_ref="E1", phone="13812345678")
    other = make_contact(ws, name="乙", phone="13912345678")
    data = csv_bytes(
        "external_id,name,phone",
        "E1,甲,13712345678",  # E1 changes its phone
        "E2,丙,13912345678",  # the phone is 乙's, who has no external id yet: 乙 gets E2
        "E3,丁,13812345678",  # the (old) phone of E1, who is E1 not E3
    )

    report = import_contacts(ws, None, data)

    assert (report.imported, report.updated) == (0, 2)
    assert [(e.row, e.reason) for e in report.rejected] == [
        (4, f"this phone belongs to contact #{known.pk}, whose external_id is 'E1', not 'E3'"),
    ]
    known.refresh_from_db()
    other.refresh_from_db()
    assert (known.phone, other.external_ref, other.name) == ("+8613712345678", "E2", "丙")


def test_a_phone_that_belongs_to_another_contact_is_not_moved():
    ws = make_workspace()
    make_contact(ws, name="甲", external_ref="E1", phone="13812345678")
    holder = make_contact(ws, name="乙", phone="13912345678")

    report = import_contacts(ws, None, csv_bytes("external_id,name,phone", "E1,甲,13912345678"))

    assert [(e.row, e.reason) for e in report.rejected] == [(2, f"this phone already belongs to another contact (#{holder.pk})")]


def test_rows_that_reach_the_same_contact_twice_are_rejected():
    ws = make_workspace()
    contact = make_contact(ws, name="甲", external_ref="E1", phone="13812345678")
    data = csv_bytes("external_id,phone,name", "E1,,甲一", ",13812345678,甲二", ",13812345678,甲三")

    report = import_contacts(ws, None, data)

    assert [(e.row, e.reason) for e in report.rejected] == [
        (3, f"duplicate: row 2 already matched the same contact (#{contact.pk})"),
        (4, "duplicate: same phone as row 3"),
    ]
    contact.refresh_from_db()
    assert contact.name == "甲一"


def test_tags_by_unique_name_group_and_name_and_create_tags():
    # given a tag name that exists in two groups and one that is unique
    ws = make_workspace()
    make_tag(ws, "M", group="尺码")
    make_tag(ws, "M", group="杯型")
    coffee = make_tag(ws, "咖啡", group="兴趣")
    data = csv_bytes(
        "phone,name,标签",
        "13812345678,甲,咖啡；尺码/M",
        "13912345678,乙,M",
        "13712345678,丙,\"新组/新标签, 咖啡\"",
        "13612345678,丁,孤儿",
    )

    # when imported without and then with create_tags
    plain = import_contacts(ws, None, data)
    created = import_contacts(ws, None, data, create_tags=True)

    # then ambiguous and unknown tags reject the row; create_tags creates group/name tags only
    assert [(e.row, e.reason) for e in plain.rejected] == [
        (3, "tag name 'M' is in several groups; write one of: 尺码/M, 杯型/M"),
        (4, "unknown tag '新组/新标签'"),
        (5, "unknown tag '孤儿'"),
    ]
    assert (created.imported, created.unchanged, created.created_tags) == (1, 1, ["新组/新标签"])
    assert [(e.row, e.reason) for e in created.rejected] == [
        (3, "tag name 'M' is in several groups; write one of: 尺码/M, 杯型/M"),
        (5, "unknown tag '孤儿' (to create it, write it as group/name)"),
    ]
    bing = contact_by_phone(ws, "+8613712345678")
    assert sorted(ContactTag.objects.filter(contact=bing).values_list("tag__group__name", "tag__name")) == [("兴趣", "咖啡"), ("新组", "新标签")]
    assert ContactTag.objects.filter(tag=coffee).count() == 2


def test_two_tags_of_an_exclusive_group_in_one_row_are_refused():
    ws = make_workspace()
    make_tag(ws, "M", group="尺码", exclusive=True)
    make_tag(ws, "L", group="尺码", exclusive=True)

    report = import_contacts(ws, None, csv_bytes("phone,name,tags", "13812345678,甲,尺码/M;尺码/L"))

    assert [(e.row, e.reason) for e in report.rejected] == [
        (2, "tags 尺码/M and 尺码/L are in the exclusive group '尺码'; a contact holds one"),
    ]


def test_profile_values_are_validated_per_row():
    ws = make_workspace()
    do_create_profile_field(ws, None, key="kids", label="孩子数", field_type="number")
    data = csv_bytes("phone,name,孩子数,profile.unknown", "13812345678,甲,2,x", "13912345678,乙,两个,y")

    report = import_contacts(ws, None, data)

    assert report.unknown_columns == ["profile.unknown"]
    assert [(e.row, e.reason) for e in report.rejected] == [(3, "kids must be a number, got '两个'")]
    assert contact_by_phone(ws, "+8613812345678").profile == {"kids": 2}


def test_dry_run_writes_nothing_and_reports_what_the_real_run_does():
    # given a workspace with one existing contact and a file that creates, updates,
    # leaves unchanged, creates a tag and rejects
    ws = make_workspace()
    make_contact(ws, name="旧", phone="13812345678", city="上海")
    make_contact(ws, name="同", phone="13912345678")
    data = csv_bytes(
        "phone,name,city,tags",
        "13812345678,旧,北京,",
        "13912345678,同,,",
        "13712345678,新,广州,来源/海报",
        "13612345678,也新,,来源/海报",
        "12,坏,,",
    )
    before = (Contact.objects.count(), ContactEvent.objects.count(), AuditEntry.objects.count(), Tag.objects.count())

    # when it is imported as a dry run
    dry = import_contacts(ws, None, data, dry_run=True, create_tags=True)

    # then nothing was written, not even an audit entry
    assert (Contact.objects.count(), ContactEvent.objects.count(), AuditEntry.objects.count(), Tag.objects.count()) == before
    # and the real run reports exactly what the dry run announced
    real = import_contacts(ws, None, data, create_tags=True)
    assert dry.dry_run is True and real.dry_run is False
    assert (dry.imported, dry.updated, dry.unchanged, dry.created_tags) == (2, 1, 1, ["来源/海报"])
    assert (real.imported, real.updated, real.unchanged, real.created_tags) == (2, 1, 1, ["来源/海报"])
    assert dry.rejected == real.rejected == [RowError(6, "not a valid phone number: '12'", {"phone": "12", "name": "坏", "city": "", "tags": ""})]


def test_import_is_audited_once_with_the_counts_and_needs_the_permission():
    ws = make_workspace()
    operator = make_staff(ws, role=Role.OPERATOR)
    analyst = make_staff(ws, role=Role.ANALYST)
    agent = make_staff(ws, role=Role.AGENT)
    data = csv_bytes("phone,name", "13812345678,甲", "x,乙")

    report = import_contacts(ws, operator, data)

    entry = AuditEntry.objects.get(action="contacts.imported")
    assert (entry.actor_id, entry.after) == (
        operator.pk,
        {"imported": 1, "updated": 0, "unchanged": 0, "rejected": 1, "rows": 2, "encoding": "utf-8", "created_tags": []},
    )
    assert entry.summary == "imported 1, updated 0, unchanged 0, rejected 1 (utf-8)"
    assert report.as_dict()["rejected"] == [{"row": 3, "reason": "not a phone number: 'x'", "values": {"phone": "x", "name": "乙"}}]
    for staff in (analyst, agent):
        with pytest.raises(Forbidden):
            import_contacts(ws, staff, data)


def test_other_workspaces_and_merged_contacts_are_never_matched():
    # given the same phone in another workspace, and a merged duplicate in this one
    ws, elsewhere = make_workspace(), make_workspace()
    foreign = make_contact(elsewhere, name="别家", phone="13812345678", external_ref="E1")
    primary = make_contact(ws, name="主", external_ref="P1", phone="13712345678")
    duplicate = make_contact(ws, name="副", phone="13912345678")
    do_merge_contacts(primary, duplicate, None)

    report = import_contacts(ws, None, csv_bytes("external_id,phone,name", "E1,13812345678,本店", ",13912345678,又来"))

    # then both rows create contacts here; the other workspace's contact is untouched
    assert (report.imported, report.updated) == (2, 0)
    foreign.refresh_from_db()
    assert foreign.name == "别家"
    assert Contact.objects.in_workspace(ws).filter(merged_into__isnull=True).count() == 3


def test_masked_phone_from_an_export_is_rejected_with_a_hint():
    ws = make_workspace()

    report = import_contacts(ws, None, csv_bytes("phone,name", "138****5678,甲"))

    assert report.rejected[0].reason == "phone '138****5678' is masked; export with permission to see phone numbers to re-import"


def test_report_dataclass_keeps_its_contract():
    report = ImportReport(imported=1, updated=2, unchanged=3, rejected=[RowError(2, "r", {"a": "b"})], dry_run=True, encoding="utf-8")

    assert report.as_dict() == {
        "imported": 1, "updated": 2, "unchanged": 3, "rejected": [{"row": 2, "reason": "r", "values": {"a": "b"}}],
        "dry_run": True, "encoding": "utf-8", "columns": {}, "unknown_columns": [], "created_tags": [],
    }


def test_a_thousand_rows_import_and_reimport_unchanged():
    # given 1,000 rows with tags (speed is measured in bench/, not asserted here)
    ws = make_workspace()
    make_tag(ws, "海报", group="来源")
    lines = ["external_id,name,phone,city,tags"] + [f"N{i},客户{i},+86139{i:08d},上海,来源/海报" for i in range(1000)]
    data = csv_bytes(*lines)

    # when it is imported twice
    report = import_contacts(ws, None, data)
    again = import_contacts(ws, None, data)

    # then everything came in once, and the second run changed nothing
    assert (report.imported, report.rejected, again.unchanged, again.imported, again.updated) == (1000, [], 1000, 0, 0)


def test_a_row_the_database_refuses_is_rejected_without_undoing_the_others():
    # given a database that refuses one particular contact (a trigger standing in for a
    # constraint or a concurrent writer that only the database can see)
    from django.db import connection

    ws = make_workspace()
    tag = make_tag(ws, "海报", group="来源")
    table = Contact._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"CREATE TRIGGER refuse_boom BEFORE INSERT ON {table} "
                           "WHEN NEW.name = '炸' BEGIN SELECT RAISE(ABORT, 'refused by the database'); END")
        else:  # PostgreSQL (the test database is dropped after the run, the function with it)
            cursor.execute("CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                           "IF NEW.name = '炸' THEN RAISE EXCEPTION 'refused by the database'; END IF; RETURN NEW; END $$")
            cursor.execute(f"CREATE TRIGGER refuse_boom BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION refuse_boom()")
    data = csv_bytes("phone,name,tags", "13812345678,前,来源/海报", "13912345678,炸,来源/海报", "13712345678,后,来源/海报")

    # when the file is imported
    report = import_contacts(ws, None, data)

    # then the refused row is reported, the rows around it are in with their tags, and
    # nothing of the refused row is left behind
    assert (report.imported, [(e.row, e.reason) for e in report.rejected]) == (2, [(3, "refused by the database")])
    assert sorted(Contact.objects.in_workspace(ws).values_list("name", flat=True)) == ["前", "后"]
    assert ContactTag.objects.filter(tag=tag).count() == 2
    assert not AuditEntry.objects.filter(action="contact.created", after__name="炸").exists()
