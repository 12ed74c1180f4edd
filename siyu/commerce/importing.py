"""Order import from CSV (订单导入) and the field reading shared with the order webhook.

Documented columns (English or Chinese headers; one row per order line, rows with the
same ``order_id`` form one order; order-level cells may repeat on every row or be left
empty after the first, but must not disagree):

============================  ==========================================================
``order_id`` (订单号)          the shop's order id — required; the import is idempotent by it
``placed_at`` (下单时间)        ISO 8601, or ``YYYY-MM-DD HH:MM[:SS]`` / ``YYYY/MM/DD …``
                               in the workspace's time zone when no offset is given
``contact_external_id``        the customer: the brand's customer number (客户编号),
``phone`` (手机)               or phone, or a channel identity (WeCom external_userid,
``identity`` (渠道ID)           Matrix id) — at least one; an unknown customer rejects the
                               order (contacts are never created by an order import)
``amount`` (订单金额)           gross amount; when lines are given it must equal their sum
``discount`` (优惠金额)         discounts of the order (coupon and promotions together)
``refunded`` (退款金额)         total refunded so far (applied as refunds; never decreases)
``status`` (状态)              paid / partially_refunded / refunded / cancelled (or 已支付,
                               部分退款, 已退款, 已取消)
``store`` (门店)               store attribution
``staff_email`` (导购)          the selling staff member, by email
``source_channel`` / ``source_campaign`` / ``live_code``   attribution
``coupon_code`` (优惠券码)       a coupon of this customer, redeemed by the order
``margin`` (毛利)              margin as sold (else computed from SKU costs when known)
``sku`` / ``product`` / ``quantity`` / ``unit_price``  one order line
============================  ==========================================================

Amounts accept ``¥1,299.00`` as well as ``1299``. Files are UTF-8 (with or without BOM)
or GB18030, read with the contact import's reader. The report has the contact import's
shape: imported (new orders) / updated / unchanged, and every rejected row with its line
number and reason — all rows of a rejected order are listed. A dry run validates and
compares without writing, so its counts are those of the real run (short of conflicts
that only writing reveals, such as two orders of one file using the same coupon).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from decimal import Decimal
from typing import Any

from django.db import DatabaseError, transaction

from siyu.accounts.events import record_audit
from siyu.accounts.models import Staff
from siyu.accounts.permissions import Perm, require
from siyu.commerce.actions import LineSpec, check_order, do_record_order
from siyu.commerce.errors import ErrorCode
from siyu.commerce.queries import match_contact
from siyu.contacts.importing import (
    ImportReport,
    InvalidColumns,
    RowError,
    _read_records,
    _squash,
    decode,
)
from siyu.core.errors import SiyuError, ValidationFailed
from siyu.core.models import Workspace

__all__ = ["ORDER_COLUMNS", "import_orders", "order_fields", "parse_placed_at"]

ORDER_COLUMNS: dict[str, tuple[str, ...]] = {
    "order_id": ("order_id", "订单号", "订单编号", "订单ID"),
    "placed_at": ("placed_at", "下单时间", "支付时间", "订单时间"),
    "contact_external_id": ("contact_external_id", "customer_id", "客户编号", "会员号"),
    "phone": ("phone", "mobile", "手机", "手机号", "手机号码"),
    "identity": ("identity", "external_userid", "渠道ID", "外部联系人ID"),
    "amount": ("amount", "gross_amount", "订单金额", "商品总额"),
    "discount": ("discount", "优惠金额", "优惠"),
    "refunded": ("refunded", "refunded_amount", "退款金额"),
    "status": ("status", "订单状态", "状态"),
    "currency": ("currency", "币种"),
    "store": ("store", "门店"),
    "staff_email": ("staff_email", "导购", "导购邮箱"),
    "source_channel": ("source_channel", "来源渠道"),
    "source_campaign": ("source_campaign", "来源活动"),
    "live_code": ("live_code", "活码"),
    "coupon_code": ("coupon_code", "coupon", "优惠券码", "券码"),
    "margin": ("margin", "毛利"),
    "sku": ("sku", "sku_code", "商品编码", "SKU编码"),
    "product": ("product", "product_name", "商品", "商品名称"),
    "quantity": ("quantity", "qty", "数量"),
    "unit_price": ("unit_price", "price", "单价"),
}
LINE_FIELDS = ("sku", "product", "quantity", "unit_price")
ORDER_FIELDS = tuple(f for f in ORDER_COLUMNS if f not in LINE_FIELDS and f != "order_id")
_ALIASES = {_squash(alias): name for name, aliases in ORDER_COLUMNS.items() for alias in aliases}
_STATUS_WORDS = {
    "paid": "paid", "已支付": "paid", "已付款": "paid", "已完成": "paid", "完成": "paid",
    "partially_refunded": "partially_refunded", "部分退款": "partially_refunded",
    "refunded": "refunded", "已退款": "refunded", "全额退款": "refunded",
    "cancelled": "cancelled", "canceled": "cancelled", "已取消": "cancelled", "取消": "cancelled",
}
_DATETIME = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$")
#: Orders written per transaction (each order still in its own savepoint).
COMMIT_EVERY = 200


def parse_placed_at(value: Any, workspace: Workspace) -> dt.datetime:
    """An aware datetime from ISO 8601 or ``YYYY-MM-DD HH:MM[:SS]``; a value without
    an offset is read in the workspace's time zone."""
    text = str(value or "").strip()
    if not text:
        raise ValidationFailed("placed_at is required", code=ErrorCode.INVALID_ORDER)
    moment: dt.datetime | None = None
    match = _DATETIME.match(text)
    try:
        if match:
            year, month, day, hour, minute, second = (int(g) if g else 0 for g in match.groups())
            moment = dt.datetime(year, month, day, hour, minute, second)
        else:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None:
        raise ValidationFailed(f"placed_at {text!r} is not a date and time (expected e.g. 2024-05-01 14:30)", code=ErrorCode.INVALID_ORDER)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=workspace.tz)
    return moment


def _amount(value: Any) -> Any:
    """Cells like ``¥1,299.00``; numbers pass through for the action to check."""
    if isinstance(value, str):
        text = value.strip().replace(",", "").replace("，", "").replace(" ", "").lstrip("¥￥")
        return text or None
    return value


def _quantity(value: Any, number: int) -> int:
    if value in (None, ""):
        return 1
    if isinstance(value, bool):
        raise ValidationFailed(f"line {number}: quantity must be a whole number", code=ErrorCode.INVALID_ORDER)
    try:
        number_value = Decimal(str(value).strip())
    except ArithmeticError:
        raise ValidationFailed(f"line {number}: quantity {value!r} is not a number", code=ErrorCode.INVALID_ORDER) from None
    if not number_value.is_finite() or number_value != number_value.to_integral_value():
        raise ValidationFailed(f"line {number}: quantity {value!r} is not a whole number", code=ErrorCode.INVALID_ORDER)
    return int(number_value)


def _status(value: Any) -> str | None:
    text = str(value or "").strip()
    if not text:
        return None
    status = _STATUS_WORDS.get(text.lower())
    if status is None:
        raise ValidationFailed(f"unknown status {text!r} (expected paid, partially_refunded, refunded or cancelled)", code=ErrorCode.INVALID_ORDER)
    return status


def order_fields(workspace: Workspace, values: Mapping[str, Any], lines: Sequence[Mapping[str, Any]],
                 staff_by_email: Mapping[str, Staff] | None = None) -> dict[str, Any]:
    """The keyword arguments of :func:`do_record_order` for an order given as plain values
    (CSV cells or webhook JSON, with the documented field names). Raises
    ValidationFailed with the reason."""
    def text(key: str) -> str:
        value = values.get(key)
        return "" if value is None else str(value).strip()

    contact = match_contact(workspace, external_id=text("contact_external_id"), phone=text("phone"), identity=text("identity"))
    staff = None
    if text("staff_email"):
        email = text("staff_email").lower()
        if staff_by_email is not None:
            staff = staff_by_email.get(email)
        else:
            staff = Staff.objects.in_workspace(workspace).filter(user__username=email, is_active=True).first()
        if staff is None:
            raise ValidationFailed(f"unknown staff {text('staff_email')!r}: no active staff member with that email", code=ErrorCode.UNKNOWN_STAFF)
    specs = []
    for number, line in enumerate(lines, start=1):
        price = _amount(line.get("unit_price"))
        if price is None:
            raise ValidationFailed(f"line {number} needs a unit_price", code=ErrorCode.INVALID_ORDER)
        specs.append(LineSpec(
            unit_price=price, quantity=_quantity(line.get("quantity"), number),
            sku_code=str(line.get("sku") or "").strip(), name=str(line.get("product") or "").strip(),
        ))
    return {
        "external_id": text("order_id"),
        "contact": contact,
        "placed_at": parse_placed_at(values.get("placed_at"), workspace),
        "lines": specs,
        "gross_amount": _amount(values.get("amount")),
        "discount": _amount(values.get("discount")),
        "refunded": _amount(values.get("refunded")),
        "status": _status(values.get("status")),
        "currency": text("currency"),
        "store": text("store"),
        "staff": staff,
        "source_channel": text("source_channel"),
        "source_campaign": text("source_campaign"),
        "source_live_code": text("live_code"),
        "coupon_code": text("coupon_code"),
        "margin": _amount(values.get("margin")),
    }


def _map_columns(header: list[str]) -> tuple[list[str | None], list[str]]:
    fields: list[str | None] = []
    unknown: list[str] = []
    seen: dict[str, str] = {}
    for head in header:
        name = _ALIASES.get(_squash(head))
        if name is not None and name in seen:
            raise InvalidColumns(f"columns {seen[name]!r} and {head!r} are both read as {name}; keep one")
        if name is not None:
            seen[name] = head
        elif head:
            unknown.append(head)
        fields.append(name)
    missing = [name for name in ("order_id", "placed_at") if name not in seen]
    if missing:
        raise InvalidColumns(f"the file needs the columns {', '.join(missing)} (found: {', '.join(header)})")
    if not {"contact_external_id", "phone", "identity"} & set(seen):
        raise InvalidColumns("the file needs a customer column: contact_external_id (客户编号), phone (手机) or identity (渠道ID)")
    if "amount" not in seen and "unit_price" not in seen:
        raise InvalidColumns("the file needs an amount (订单金额) or unit_price (单价) column")
    return fields, unknown


class _Group:
    """The rows of one order."""

    def __init__(self, order_id: str) -> None:
        self.order_id = order_id
        self.rows: list[tuple[int, dict[str, str], dict[str, str]]] = []  # line, cells, raw values

    def values(self) -> tuple[dict[str, str], list[dict[str, str]]]:
        """Order-level values (refusing disagreeing rows) and the line values."""
        merged: dict[str, str] = {"order_id": self.order_id}
        first_row: dict[str, int] = {}
        lines: list[dict[str, str]] = []
        for line, cells, _raw in self.rows:
            for key in ORDER_FIELDS:
                value = cells.get(key, "")
                if not value:
                    continue
                if key in merged and merged[key] != value:
                    raise ValidationFailed(
                        f"rows {first_row[key]} and {line} of order {self.order_id!r} disagree on {key} ({merged[key]!r} vs {value!r})",
                        code=ErrorCode.INVALID_ORDER,
                    )
                merged.setdefault(key, value)
                first_row.setdefault(key, line)
            if any(cells.get(key) for key in LINE_FIELDS):
                lines.append({key: cells.get(key, "") for key in LINE_FIELDS})
        return merged, lines


def import_orders(workspace: Workspace, actor: Staff | None, data: bytes, *, dry_run: bool = False) -> ImportReport:
    """Import orders from CSV bytes (UTF-8 or GB18030): new orders are recorded, changed
    ones updated, identical ones left alone, and every row that is not written comes back
    with its line number and reason. Each order is written in its own savepoint, so one
    bad order never undoes another. Records ``orders.imported`` with the counts (not for
    a dry run, which writes nothing). Raises ``UnreadableFile``/``InvalidColumns`` when
    the file as a whole cannot be read."""
    require(actor, Perm.IMPORT_CONTACTS)
    require(actor, Perm.EDIT_CONTACTS)
    text, encoding = decode(data)
    header, records = _read_records(text)
    fields, unknown = _map_columns(header)
    report = ImportReport(
        imported=0, updated=0, unchanged=0, rejected=[], dry_run=dry_run, encoding=encoding,
        columns={head: name for head, name in zip(header, fields, strict=True) if name is not None}, unknown_columns=unknown,
    )
    staff_by_email = {s.user.email.lower(): s for s in Staff.objects.in_workspace(workspace).filter(is_active=True).select_related("user")}

    groups: dict[str, _Group] = {}
    for record in records:
        raw = {head or f"column {i + 1}": (record.cells[i] if i < len(record.cells) else "") for i, head in enumerate(header)}
        if len(record.cells) > len(header) and any(c.strip() for c in record.cells[len(header):]):
            report.rejected.append(RowError(record.line, f"row has {len(record.cells)} columns, the header has {len(header)}", raw))
            continue
        cells = {name: cell.strip() for name, cell in zip(fields, record.cells, strict=False) if name is not None}
        order_id = cells.get("order_id", "")
        if not order_id:
            report.rejected.append(RowError(record.line, "order_id is empty", raw))
            continue
        groups.setdefault(order_id, _Group(order_id)).rows.append((record.line, cells, raw))

    items = list(groups.values())
    for start in range(0, len(items), COMMIT_EVERY):
        # One transaction per batch, a savepoint per order: few commits (SQLite pays per
        # commit), independent orders. A dry run takes no write lock at all.
        with nullcontext() if dry_run else transaction.atomic():
            for group in items[start:start + COMMIT_EVERY]:
                try:
                    outcome = _import_order(workspace, actor, group, staff_by_email, dry_run)
                except SiyuError as exc:
                    reason = exc.message
                except DatabaseError as exc:
                    reason = str(exc) or exc.__class__.__name__
                else:
                    setattr(report, outcome, getattr(report, outcome) + 1)
                    continue
                report.rejected.extend(RowError(line, reason, raw) for line, _cells, raw in group.rows)
    report.rejected.sort(key=lambda e: e.row)

    if not dry_run:
        with transaction.atomic():
            record_audit(
                workspace, actor, "orders.imported", target_type="order",
                summary=(f"imported {report.imported}, updated {report.updated}, unchanged {report.unchanged}, "
                         f"rejected {len(report.rejected)} rows ({encoding})"),
                after={"imported": report.imported, "updated": report.updated, "unchanged": report.unchanged,
                       "rejected": len(report.rejected), "rows": len(records), "orders": len(groups), "encoding": encoding},
            )
    return report


def _import_order(workspace: Workspace, actor: Staff | None, group: _Group, staff_by_email: Mapping[str, Staff], dry_run: bool) -> str:
    """Validate and (unless dry run) record one order; returns the report counter."""
    values, lines = group.values()
    kwargs = order_fields(workspace, values, lines, staff_by_email)
    if dry_run:
        draft = check_order(workspace, **kwargs)
        return "imported" if draft.existing is None else "updated" if draft.changes else "unchanged"
    with transaction.atomic():
        result = do_record_order(workspace, actor, **kwargs)
    return "imported" if result.created else "updated" if result.updated else "unchanged"
