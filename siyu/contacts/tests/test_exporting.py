import csv
import datetime as dt
import io

import pytest
from openpyxl import load_workbook

from siyu.accounts.models import AuditEntry, Role
from siyu.contacts.actions import do_tag_contacts
from siyu.contacts.exporting import COLUMNS, export_contacts, neutralize
from siyu.contacts.importing import import_contacts
from siyu.contacts.models import Contact
from siyu.core.errors import Forbidden, ValidationFailed
from siyu.core.testing import make_contact, make_staff, make_tag, make_workspace

pytestmark = pytest.mark.django_db


def read_csv(content: bytes) -> list[dict[str, str]]:
    assert content.startswith(b"\xef\xbb\xbf")
    return list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"), newline="")))


def read_xlsx(content: bytes) -> list[list[object]]:
    sheet = load_workbook(io.BytesIO(content), read_only=True).active
    return [list(row) for row in sheet.iter_rows(values_only=True)]


def test_csv_export_has_every_column_in_the_workspace_time_zone():
    # given a contact with every field set and two tags
    ws = make_workspace(time_zone="Asia/Shanghai")
    owner = make_staff(ws, role=Role.OPERATOR, email="ops@example.com")
    size, coffee = make_tag(ws, "M", group="尺码"), make_tag(ws, "咖啡", group="兴趣")
    contact = make_contact(
        ws, name="陈小姐", gender="female", birthday="1992-05-06", region="广东", city="深圳", phone="13812345678",
        owner=owner, lifecycle_stage="vip", external_ref="K1", source_channel="poster", source_campaign="spring",
        created_at=dt.datetime(2024, 1, 31, 20, 30, tzinfo=dt.UTC),
    )
    do_tag_contacts(ws, None, [contact], [coffee, size])

    # when the system exports it as CSV
    result = export_contacts(ws, None)

    # then the file opens in Excel (BOM) with the documented columns
    assert (result.content_type, result.rows) == ("text/csv; charset=utf-8", 1)
    assert result.filename.startswith(f"contacts-{ws.slug}-") and result.filename.endswith(".csv")
    rows = read_csv(result.content)
    assert list(rows[0]) == list(COLUMNS)
    assert rows == [{
        "id": str(contact.pk), "name": "陈小姐", "gender": "female", "birthday": "1992-05-06", "region": "广东", "city": "深圳",
        "phone": "'+8613812345678", "owner": "ops@example.com", "stage": "vip", "source_channel": "poster",
        "source_campaign": "spring", "external_id": "K1", "tags": "尺码/M; 兴趣/咖啡", "created_at": "2024-02-01T04:30:00+08:00",
    }]


def test_phones_are_masked_unless_the_role_may_see_them_and_the_export_is_audited():
    # given an analyst (may export, may not see phones) and an owner
    ws = make_workspace()
    analyst = make_staff(ws, role=Role.ANALYST)
    owner = make_staff(ws, role=Role.OWNER)
    make_contact(ws, name="甲", phone="13812345678")

    # when both export
    masked = read_csv(export_contacts(ws, analyst).content)
    unmasked = read_csv(export_contacts(ws, owner).content)

    # then only the owner's file carries the number, and both exports are in the audit log
    assert [r["phone"] for r in masked] == ["138****5678"]
    assert [r["phone"] for r in unmasked] == ["'+8613812345678"]
    entries = list(AuditEntry.objects.filter(action="contacts.exported").order_by("id").values_list("actor_id", "after"))
    assert entries == [
        (analyst.pk, {"format": "csv", "rows": 1, "filters": {}, "pii_unmasked": False}),
        (owner.pk, {"format": "csv", "rows": 1, "filters": {}, "pii_unmasked": True}),
    ]


def test_agents_cannot_export_and_unknown_formats_or_filters_are_refused():
    ws = make_workspace()
    agent = make_staff(ws, role=Role.AGENT)

    with pytest.raises(Forbidden):
        export_contacts(ws, agent)
    with pytest.raises(ValidationFailed) as bad_format:
        export_contacts(ws, None, fmt="pdf")
    with pytest.raises(ValidationFailed) as bad_filter:
        export_contacts(ws, None, filters={"city": "上海"})

    assert bad_format.value.message == "unknown export format 'pdf'; use csv or xlsx"
    assert bad_filter.value.message == "unknown filter 'city'; use tags_all, tags_any, tags_none, stage, owner_id, channel, q"
    assert AuditEntry.objects.filter(action="contacts.exported").count() == 0


def test_filters_and_workspace_scope_limit_the_rows():
    # given tagged and untagged contacts here and a contact in another workspace
    ws, elsewhere = make_workspace(), make_workspace()
    vip = make_tag(ws, "VIP", group="等级")
    tagged = make_contact(ws, name="有标签", lifecycle_stage="vip")
    make_contact(ws, name="无标签")
    make_contact(elsewhere, name="别家")
    do_tag_contacts(ws, None, [tagged], [vip])

    # when exporting with a tag filter, and with a stage filter
    by_tag = read_csv(export_contacts(ws, None, filters={"tags_all": "等级/VIP"}).content)
    by_stage = read_csv(export_contacts(ws, None, filters={"stage": "new"}).content)
    everyone = read_csv(export_contacts(ws, None).content)

    # then only matching contacts of this workspace are in the file
    assert [r["name"] for r in by_tag] == ["有标签"]
    assert [r["name"] for r in by_stage] == ["无标签"]
    assert sorted(r["name"] for r in everyone) == ["无标签", "有标签"]
    assert AuditEntry.objects.filter(action="contacts.exported").order_by("id").first().after["filters"] == {"tags_all": ["等级/VIP"]}


def test_owner_filter_limits_the_rows():
    ws = make_workspace()
    mine = make_staff(ws, role=Role.OPERATOR)
    make_contact(ws, name="我的", owner=mine)
    make_contact(ws, name="别人的")

    rows = read_csv(export_contacts(ws, mine, filters={"owner_id": str(mine.pk)}).content)

    assert [r["name"] for r in rows] == ["我的"]


def test_formula_like_cells_are_neutralised():
    # given a contact whose name would run as a formula in Excel
    ws = make_workspace()
    make_contact(ws, name='=HYPERLINK("http://evil","点我")', city="@SUM(1)", region="-2+3")

    row = read_csv(export_contacts(ws, None).content)[0]
    sheet = read_xlsx(export_contacts(ws, None, fmt="xlsx").content)

    assert (row["name"], row["city"], row["region"]) == ("'=HYPERLINK(\"http://evil\",\"点我\")", "'@SUM(1)", "'-2+3")
    assert sheet[1][1] == "'=HYPERLINK(\"http://evil\",\"点我\")"
    assert [neutralize(v) for v in ("+1", "\tx", "安全", "a=b")] == ["'+1", "'\tx", "安全", "a=b"]


def test_xlsx_export_has_the_same_rows():
    ws = make_workspace()
    contact = make_contact(ws, name="表格", phone="13812345678")
    analyst = make_staff(ws, role=Role.ANALYST)

    result = export_contacts(ws, analyst, fmt="xlsx")

    rows = read_xlsx(result.content)
    assert result.content_type == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert result.filename.endswith(".xlsx")
    assert rows[0] == list(COLUMNS)
    assert rows[1][:7] == [contact.pk, "表格", "unknown", None, None, None, "138****5678"]


def test_an_unmasked_export_imports_back_unchanged():
    # given contacts exported by someone who may see phones
    ws = make_workspace()
    owner = make_staff(ws, role=Role.OWNER, email="boss@example.com")
    coffee = make_tag(ws, "咖啡", group="兴趣")
    first = make_contact(ws, name="甲", phone="13812345678", city="上海", birthday="1990-01-02", owner=owner, gender="male")
    make_contact(ws, name="乙", external_ref="E2", lifecycle_stage="repeat", phone="+85291234567")
    do_tag_contacts(ws, None, [first], [coffee])
    exported = export_contacts(ws, owner).content

    # when the file is imported into the same workspace
    report = import_contacts(ws, owner, exported)

    # then every row matches its contact and nothing changes
    assert (report.imported, report.updated, report.unchanged, report.rejected) == (0, 0, 2, [])
    assert report.unknown_columns == ["id", "created_at"]
    assert Contact.objects.in_workspace(ws).count() == 2


def test_export_of_many_contacts_uses_few_queries(django_assert_max_num_queries):
    ws = make_workspace()
    tag = make_tag(ws, "批量", group="测试")
    contacts = [make_contact(ws, name=f"客户{i}") for i in range(300)]
    do_tag_contacts(ws, None, contacts, [tag])

    # 2,000 rows per chunk: one contact query, one tag prefetch, the audit entry + savepoint
    with django_assert_max_num_queries(8):
        result = export_contacts(ws, None)

    assert result.rows == 300
