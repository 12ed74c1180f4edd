"""The CDNOW sample (Fader, Hardie & Lee 2005) as shipped inside the ``lifetimes`` package
(a dev/test dependency only), and ``lifetimes`` itself as a peer to compare with."""

from __future__ import annotations

import csv
import datetime as dt
import warnings
from decimal import Decimal
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from siyu.analytics.transactions import TransactionLog, day_number, to_cents

#: Published BG/NBD estimates on CDNOW (FHL 2005, table 1; weekly units) and
#: log-likelihood; Gamma-Gamma estimates as published in the lifetimes documentation.
PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_LOG_LIKELIHOOD = -9582.4
PUBLISHED_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "v": 15.45}
CALIBRATION_END = dt.date(1997, 9, 30)
OBSERVATION_END = dt.date(1998, 6, 30)


def lifetimes() -> ModuleType:
    """Import lifetimes; under pandas 3 its import warns about a removed option."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import lifetimes as module
    return module


@cache
def datasets() -> Path:
    return Path(str(lifetimes().__file__)).parent / "datasets"


@cache
def transactions() -> TransactionLog:
    """CDNOW_sample.txt: customer, master id, yyyymmdd, quantity, amount."""
    customers: list[int] = []
    days: list[int] = []
    cents: list[int] = []
    for line in (datasets() / "CDNOW_sample.txt").read_text().splitlines():
        if not line.strip():
            continue
        _, customer, date, _, amount = line.split()
        customers.append(int(customer))
        days.append(day_number(dt.date(int(date[:4]), int(date[4:6]), int(date[6:]))))
        cents.append(to_cents(Decimal(amount)))
    return TransactionLog.from_rows(customers, days, cents)


@cache
def summary_file() -> dict[str, Any]:
    """cdnow_customers_summary_with_transactions.csv: ID, x, t_x, T (weeks), zbar."""
    with (datasets() / "cdnow_customers_summary_with_transactions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return {
        "id": np.array([int(r["ID"]) for r in rows]),
        "x": np.array([float(r["x"]) for r in rows]),
        "t_x": np.array([float(r["t_x"]) for r in rows]),
        "T": np.array([float(r["T"]) for r in rows]),
        "zbar": np.array([float(r["zbar"]) for r in rows]),
    }
