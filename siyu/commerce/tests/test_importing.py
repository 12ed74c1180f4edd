"""Orders CSV import: rows grouped into orders, contacts matched (never created),
broken rows reported with their line numbers, GB18030 files, idempotent re-runs, dry
runs, and the ``siyu orders import`` command."""

import datetime as dt
import json
import zoneinfo
from decimal import Decimal as D

import pytest
from typer.testing import CliRunner

from siyu.accounts.models import AuditEntry
from siyu.channels.actions import do_create_channel_account
from siyu.commerce.actions import SkuSpec, do_create_product
from siyu.commerce.cli import app
from siyu.commerce.importing import import_orders
from siyu.commerce.models import Order, OrderStatus, PointsEntry, Refund
from siyu.contacts.actions import do_add_identity
from siyu.contacts.importing import InvalidColumns, RowError, UnreadableFile
from siyu.contacts.models import Contact, ContactEvent
from siyu.core.testing import make_contact, make_staff

pytestmark = pytest.mark.django_db

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
HEADER = "order_id,placed_at,contact_external_id,phone,identity,amount,discount,refunded,status,store,staff_email,sku,product,quantity,unit_price"


def csv_bytes(*lines: str, encoding: str = "utf-8") -> bytes:
    return ("\n".join(lines) + "\n").encode(encoding)


@pytest.fixture
def customers(workspace):
    vip = make_contact(workspace, "老客户", external_ref="C001")
    by_phone = make_contact(workspace, "手机客户", phone="13812345678")
    by_identity = make_contact(workspace, "企微客户")
    account = do_create_channel_account(workspace, None, kind="sandbox", name="sbx")
    do_add_identity(by_identity, None, account=account, external_id="wmABC")
    return vip, by_phone, by_identity


def test_rows_form_orders_matched_by_external_id_phone_or_identity(workspace, customers):
    vip, by_phone, by_identity = customers
    seller = make_staff(workspace, email="li@shop.test")
    do_create_product(workspace, None, name="乌龙茶", skus=[SkuSpec(code="TEA-1", price=D("99"))])
    data = csv_bytes(
        HEADER,
        'T1,2024-05-01 14:30,C001,,,"¥1,288.00",20,,,静安店,li@shop.test,TEA-1,,2,99',
        "T1,,,,,,,,,,,,礼盒,1,1090",
        "T2,2024-05-02T09:00:00+08:00,,138 1234 5678,,59.9,,,paid,,,,围巾,1,59.9",
        "T3,2024-05-03 10:00:00,,,wmABC,100,,30,partially_refunded,,,,,,",
    )

    report = import_orders(workspace, None, data)

    assert (report.imported, report.updated, report.unchanged, report.rejected) == (3, 0, 0, [])
    assert (report.encoding, report.unknown_columns) == ("utf-8", [])
    orders = {o.external_id: o for o in Order.objects.in_workspace(workspace)}
    t1, t2, t3 = orders["T1"], orders["T2"], orders["T3"]
    assert (t1.contact, t1.gross_amount, t1.discount_amount, t1.net_amount, t1.store, t1.staff) == (
        vip, D("1288.00"), D("20.00"), D("1268.00"), "静安店", seller
    )
    assert t1.placed_at == dt.datetime(2024, 5, 1, 14, 30, tzinfo=SHANGHAI)
    assert list(t1.lines.values_list("sku_code", "name", "quantity", "line_total")) == [
        ("TEA-1", "乌龙茶", 2, D("198.00")), ("", "礼盒", 1, D("1090.00")),
    ]
    assert (t2.contact, t2.net_amount, t2.placed_at) == (by_phone, D("59.90"), dt.datetime(2024, 5, 2, 1, 0, tzinfo=dt.UTC))
    assert (t3.contact, t3.status, t3.refunded_amount, t3.net_amount) == (by_identity, OrderStatus.PARTIALLY_REFUNDED, D("30.00"), D("70.00"))
    assert list(t3.lines.all()) == []
    audit = AuditEntry.objects.get(action="orders.imported")
    assert audit.after == {"imported": 3, "updated": 0, "unchanged": 0, "rejected": 0, "rows": 4, "orders": 3, "encoding": "utf-8"}


def test_broken_rows_are_reported_with_their_line_and_reason_not_dropped(workspace, customers):
    data = csv_bytes(
        "order_id,placed_at,contact_external_id,phone,amount,staff_email,product,unit_price",
        "OK1,2024-05-01 10:00,C001,,50,,,",
        "NOBODY,2024-05-01 10:00,C999,,50,,,",
        "NOBODY,,,,,,杯子,50",
        ",2024-05-01 10:00,C001,,50,,,",
        "BADTIME,yesterday,C001,,50,,,",
        "BADAMT,2024-05-01 10:00,C001,,五十,,,",
        "MISMATCH,2024-05-01 10:00,C001,,60,,杯子,50",
        "DISAGREE,2024-05-01 10:00,C001,,50,,,",
        "DISAGREE,2024-05-02 10:00,C001,,50,,,",
        "WHO,2024-05-01 10:00,,,50,,,",
        "STAFF,2024-05-01 10:00,C001,,50,ghost@shop.test,,",
        "PHONE,2024-05-01 10:00,,12,50,,,",
    )

    report = import_orders(workspace, None, data)

    assert (report.imported, report.updated, report.unchanged) == (1, 0, 0)
    assert [(e.row, e.reason) for e in report.rejected] == [
        (3, "no contact with external id 'C999'"),
        (4, "no contact with external id 'C999'"),
        (5, "order_id is empty"),
        (6, "placed_at 'yesterday' is not a date and time (expected e.g. 2024-05-01 14:30)"),
        (7, "amount must be an amount, got '五十'"),
        (8, "amount ¥60.00 differs from the sum of the lines ¥50.00"),
        (9, "rows 9 and 10 of order 'DISAGREE' disagree on placed_at ('2024-05-01 10:00' vs '2024-05-02 10:00')"),
        (10, "rows 9 and 10 of order 'DISAGREE' disagree on placed_at ('2024-05-01 10:00' vs '2024-05-02 10:00')"),
        (11, "the order names no customer: give contact_external_id, phone or identity"),
        (12, "unknown staff 'ghost@shop.test': no active staff member with that email"),
        (13, "not a valid phone number: '12'"),
    ]
    assert report.rejected[0] == RowError(
        3, "no contact with external id 'C999'",
        {"order_id": "NOBODY", "placed_at": "2024-05-01 10:00", "contact_external_id": "C999", "phone": "", "amount": "50",
         "staff_email": "", "product": "", "unit_price": ""},
    )
    assert list(Order.objects.values_list("external_id", flat=True)) == ["OK1"]
    assert Contact.objects.in_workspace(workspace).count() == 3  # nobody was created


def test_gb18030_files_with_chinese_headers_are_read(workspace, customers):
    data = csv_bytes("订单号,下单时间,手机,订单金额,优惠金额,门店,状态", "W1,2024/06/18 20:00,13812345678,￥618,18,徐汇店,已支付", encoding="gb18030")

    report = import_orders(workspace, None, data)

    assert (report.imported, report.encoding, report.rejected) == (1, "gb18030", [])
    assert report.columns == {"订单号": "order_id", "下单时间": "placed_at", "手机": "phone", "订单金额": "amount", "优惠金额": "discount",
                              "门店": "store", "状态": "status"}
    order = Order.objects.get()
    assert (order.net_amount, order.store, order.placed_at) == (D("600.00"), "徐汇店", dt.datetime(2024, 6, 18, 12, 0, tzinfo=dt.UTC))


def test_importing_the_same_file_again_changes_nothing_and_a_changed_file_updates(workspace, customers):
    vip = customers[0]
    data = csv_bytes("order_id,placed_at,contact_external_id,amount,refunded", "T1,2024-05-01 10:00,C001,300,", "T2,2024-05-02 10:00,C001,200,")
    import_orders(workspace, None, data)
    counts = (Order.objects.count(), ContactEvent.objects.count(), PointsEntry.objects.count())

    again = import_orders(workspace, None, data)
    after_again = (Order.objects.count(), ContactEvent.objects.count(), PointsEntry.objects.count())
    refunded = import_orders(
        workspace, None, csv_bytes("order_id,placed_at,contact_external_id,amount,refunded", "T1,2024-05-01 10:00,C001,300,100", "T2,2024-05-02 10:00,C001,200,")
    )

    assert (again.imported, again.updated, again.unchanged, again.rejected) == (0, 0, 2, [])
    assert after_again == counts
    assert (refunded.updated, refunded.unchanged) == (1, 1)
    t1 = Order.objects.get(external_id="T1")
    assert (t1.status, t1.net_amount) == (OrderStatus.PARTIALLY_REFUNDED, D("200.00"))
    assert list(Refund.objects.values_list("amount", "reason")) == [(D("100.00"), "refunded by the shop")]
    assert sum(PointsEntry.objects.filter(contact=vip).values_list("delta", flat=True)) == 400


def test_a_dry_run_writes_nothing_and_counts_what_the_real_run_does(workspace, customers):
    import_orders(workspace, None, csv_bytes("order_id,placed_at,contact_external_id,amount", "OLD,2024-05-01 10:00,C001,10", "SAME,2024-05-01 10:00,C001,10"))
    data = csv_bytes(
        "order_id,placed_at,contact_external_id,amount",
        "OLD,2024-05-01 10:00,C001,12", "SAME,2024-05-01 10:00,C001,10", "NEW,2024-05-01 10:00,C001,10", "BAD,2024-05-01 10:00,C404,10",
    )
    before = (Order.objects.count(), AuditEntry.objects.count(), ContactEvent.objects.count())

    dry = import_orders(workspace, None, data, dry_run=True)
    written = (Order.objects.count(), AuditEntry.objects.count(), ContactEvent.objects.count())
    real = import_orders(workspace, None, data)

    assert written == before
    assert (dry.imported, dry.updated, dry.unchanged, dry.dry_run) == (1, 1, 1, True)
    assert (real.imported, real.updated, real.unchanged, real.dry_run) == (1, 1, 1, False)
    assert dry.rejected == real.rejected == [RowError(5, "no contact with external id 'C404'", {
        "order_id": "BAD", "placed_at": "2024-05-01 10:00", "contact_external_id": "C404", "amount": "10"})]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("placed_at,phone,amount", "the file needs the columns order_id (found: placed_at, phone, amount)"),
        ("order_id,placed_at,amount", "the file needs a customer column: contact_external_id (客户编号), phone (手机) or identity (渠道ID)"),
        ("order_id,placed_at,phone", "the file needs an amount (订单金额) or unit_price (单价) column"),
        ("order_id,订单号,placed_at,phone,amount", "columns 'order_id' and '订单号' are both read as order_id; keep one"),
    ],
)
def test_files_without_the_needed_columns_are_refused(workspace, header, message):
    with pytest.raises(InvalidColumns) as caught:
        import_orders(workspace, None, csv_bytes(header, "x"))
    assert caught.value.message == message


def test_the_command_imports_and_reports(workspace, customers, tmp_path):
    path = tmp_path / "orders.csv"
    path.write_bytes(csv_bytes("order_id,placed_at,contact_external_id,amount,备注", "T1,2024-05-01 10:00,C001,10,x", "T2,2024-05-01 10:00,C404,10,y"))
    runner = CliRunner()

    dry = runner.invoke(app, ["import", str(path), "--workspace", workspace.slug, "--dry-run"])
    real = runner.invoke(app, ["import", str(path), "--workspace", workspace.slug, "--json"])
    missing = runner.invoke(app, ["import", str(tmp_path / "nope.csv"), "--workspace", workspace.slug])
    binary = tmp_path / "orders.xlsx"
    binary.write_bytes(b"PK\x03\x04zip")
    unreadable = runner.invoke(app, ["import", str(binary), "--workspace", workspace.slug])

    assert dry.exit_code == 0
    assert dry.output.splitlines() == [
        "orders.csv: imported 1, updated 0, unchanged 0 orders; rejected 1 rows  (utf-8, dry run: nothing written)",
        "ignored columns: 备注",
        "rejected rows:",
        "  row 3: no contact with external id 'C404'",
    ]
    assert real.exit_code == 0
    body = json.loads(real.output)
    assert (body["imported"], body["dry_run"], [r["row"] for r in body["rejected"]]) == (1, False, [3])
    assert (missing.exit_code, unreadable.exit_code) == (2, 2)
    assert Order.objects.count() == 1
    with pytest.raises(UnreadableFile):
        import_orders(workspace, None, binary.read_bytes())
