"""Purchase logs as numpy arrays, and reading them from a CSV file.

A :class:`TransactionLog` holds one row per purchase: the customer (an integer code into
``customer_keys``), the local calendar day (days since 1970-01-01 in the shop's time
zone: "distinct purchase days" are what the BG/NBD summary counts) and the amount in
cents (分) as int64, so that money sums stay exact.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from siyu.core.errors import ValidationFailed

Freq = Literal["D", "W"]

EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def day_number(value: dt.date) -> int:
    """Days since 1970-01-01 of a calendar date."""
    return value.toordinal() - EPOCH_ORDINAL


def day_to_date(day: int) -> dt.date:
    return dt.date.fromordinal(int(day) + EPOCH_ORDINAL)


def to_periods(days: IntArray, freq: Freq) -> IntArray:
    """Period numbers: days as they are, or weeks that start on Monday (pandas' ``W``
    periods, which lifetimes uses). 1970-01-01 was a Thursday, hence the shift of 3."""
    if freq == "D":
        return days
    return (days + 3) // 7


def to_cents(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())


def cents_to_decimal(cents: int | np.integer[Any]) -> Decimal:
    return (Decimal(int(cents)) / 100).quantize(Decimal("0.01"))


@dataclass(frozen=True)
class TransactionLog:
    """Purchases, one row each (see the module docstring for the units)."""

    customer_keys: npt.NDArray[Any]
    customer: IntArray
    day: IntArray
    cents: IntArray | None

    @classmethod
    def from_rows(
        cls, customers: Sequence[Hashable], days: Sequence[int], cents: Sequence[int] | None = None
    ) -> TransactionLog:
        """Build a log from parallel sequences; customer ids may be ints or strings."""
        if len(customers) != len(days) or (cents is not None and len(cents) != len(days)):
            raise ValueError("customers, days and cents must have the same length")
        if len(customers) == 0:
            return cls.empty(with_amounts=cents is not None)
        keys, codes = np.unique(np.asarray(customers), return_inverse=True)
        return cls(
            customer_keys=keys,
            customer=codes.astype(np.int64).reshape(-1),
            day=np.asarray(days, dtype=np.int64),
            cents=None if cents is None else np.asarray(cents, dtype=np.int64),
        )

    @classmethod
    def empty(cls, with_amounts: bool = True) -> TransactionLog:
        return cls(
            customer_keys=np.empty(0, dtype=np.int64),
            customer=np.empty(0, dtype=np.int64),
            day=np.empty(0, dtype=np.int64),
            cents=np.empty(0, dtype=np.int64) if with_amounts else None,
        )

    def __len__(self) -> int:
        return int(self.day.shape[0])

    @property
    def has_amounts(self) -> bool:
        return self.cents is not None

    def between(self, first_day: int | None = None, last_day: int | None = None) -> TransactionLog:
        """The purchases on days ``first_day..last_day`` (both inclusive, either open)."""
        mask = np.ones(len(self), dtype=bool)
        if first_day is not None:
            mask &= self.day >= first_day
        if last_day is not None:
            mask &= self.day <= last_day
        return TransactionLog(
            customer_keys=self.customer_keys,
            customer=self.customer[mask],
            day=self.day[mask],
            cents=None if self.cents is None else self.cents[mask],
        )

    def for_customer(self, key: Hashable) -> TransactionLog:
        """The purchases of one customer (none when the key is unknown)."""
        codes = np.flatnonzero(self.customer_keys == key)
        mask = self.customer == codes[0] if codes.size else np.zeros(len(self), dtype=bool)
        return TransactionLog(
            customer_keys=self.customer_keys,
            customer=self.customer[mask],
            day=self.day[mask],
            cents=None if self.cents is None else self.cents[mask],
        )

    @property
    def last_day(self) -> int | None:
        return int(self.day.max()) if len(self) else None


def _parse_day(text: str) -> int:
    """A calendar day from ``2024-05-01``, ``20240501``, ``2024/05/01`` or an ISO date-time
    (with or without an offset: the date as written is the local date)."""
    value = text.strip()
    if len(value) == 8 and value.isdigit():
        return day_number(dt.date(int(value[:4]), int(value[4:6]), int(value[6:])))
    value = value.replace("/", "-")
    if len(value) <= 10:
        return day_number(dt.date.fromisoformat(value))
    return day_number(dt.datetime.fromisoformat(value.replace("Z", "+00:00")).date())


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ValidationFailed("the file is neither UTF-8 nor GB18030 text", code="unreadable_file")


def read_transactions_csv(
    source: str | Path | bytes,
    *,
    customer_col: str,
    date_col: str,
    amount_col: str | None = None,
    max_errors: int = 20,
) -> TransactionLog:
    """Read purchases from a CSV file with a header row (UTF-8 or GB18030).

    Rows with an empty customer are skipped (anonymous purchases cannot be followed);
    a row with an unreadable date or amount rejects the file with the row numbers."""
    if isinstance(source, bytes):
        data = source
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise ValidationFailed(f"cannot read {source}: {exc.strerror}", code="unreadable_file") from exc
    reader = csv.DictReader(io.StringIO(_decode(data)))
    header = reader.fieldnames or []
    missing = [c for c in (customer_col, date_col, amount_col) if c and c not in header]
    if missing:
        raise ValidationFailed(
            f"column(s) {', '.join(missing)} not in the file; its columns are: {', '.join(header)}",
            code="invalid_columns",
            details={"missing": missing, "columns": header},
        )
    customers: list[str] = []
    days: list[int] = []
    cents: list[int] = []
    errors: list[str] = []
    for row_number, row in enumerate(reader, start=2):
        customer = (row.get(customer_col) or "").strip()
        if not customer:
            continue
        try:
            day = _parse_day(row.get(date_col) or "")
            amount = to_cents(Decimal((row.get(amount_col) or "").strip().replace(",", ""))) if amount_col else 0
        except (ValueError, InvalidOperation):
            if len(errors) < max_errors:
                errors.append(f"row {row_number}: date {row.get(date_col)!r}" + (f", amount {row.get(amount_col)!r}" if amount_col else ""))
            continue
        customers.append(customer)
        days.append(day)
        cents.append(amount)
    if errors:
        raise ValidationFailed(f"unreadable rows: {'; '.join(errors)}", code="invalid_rows", details={"rows": errors})
    return TransactionLog.from_rows(customers, days, cents if amount_col else None)
