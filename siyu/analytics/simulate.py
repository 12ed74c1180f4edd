"""Synthetic customers from known BG/NBD and Gamma-Gamma parameters, for tests (is the
truth recovered?), the ``clv`` benchmark and demo data.

Each customer draws λ ~ Gamma(r, α) and p ~ Beta(a, b), makes a first purchase at time 0,
then buys at exponential intervals of rate λ and drops out after each repeat purchase
with probability p. Spend: ν ~ Gamma(q, v) per customer and each order's value ~
Gamma(p, ν). All customers are simulated together, one purchase round at a time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from siyu.analytics.bgnbd import BgNbdParams
from siyu.analytics.gamma_gamma import GammaGammaParams
from siyu.analytics.transactions import FloatArray, IntArray, TransactionLog, day_number


@dataclass(frozen=True)
class _Purchases:
    customer: IntArray
    time: FloatArray


def _purchase_times(params: BgNbdParams, T: FloatArray, rng: np.random.Generator) -> _Purchases:
    """Repeat purchase times (after the first purchase at 0) of every customer before T."""
    n = T.shape[0]
    rate = np.asarray(rng.gamma(params.r, 1.0 / params.alpha, n))
    dropout = np.asarray(rng.beta(params.a, params.b, n))
    clock = np.zeros(n)
    active = np.arange(n)
    customers: list[IntArray] = []
    times: list[FloatArray] = []
    while active.size:
        clock[active] += rng.exponential(1.0, active.size) / rate[active]
        active = active[clock[active] <= T[active]]
        customers.append(active)
        times.append(clock[active].copy())
        active = active[rng.random(active.size) >= dropout[active]]
    return _Purchases(np.concatenate(customers).astype(np.int64), np.concatenate(times))


def simulate_summary(params: BgNbdParams, T: FloatArray, seed: int = 0) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(x, t_x, T) of customers observed for ``T`` after their first purchase, in
    continuous time (no rounding to days)."""
    rng = np.random.default_rng(seed)
    T = np.asarray(T, dtype=np.float64)
    purchases = _purchase_times(params, T, rng)
    x = np.bincount(purchases.customer, minlength=T.shape[0]).astype(np.float64)
    t_x = np.zeros_like(T)
    np.maximum.at(t_x, purchases.customer, purchases.time)
    return x, t_x, T


def simulate_transactions(
    customers: int,
    params: BgNbdParams,
    spend: GammaGammaParams | None = None,
    *,
    first_day: dt.date = dt.date(2024, 1, 1),
    acquisition_days: int = 84,
    observation_days: int = 364,
    seed: int = 0,
) -> TransactionLog:
    """A daily purchase log: customers make their first purchase uniformly over the first
    ``acquisition_days`` days and are observed until day ``observation_days`` (time unit
    of ``params``: days). Customer ids are 0 … customers−1; amounts in cents when
    ``spend`` is given."""
    rng = np.random.default_rng(seed)
    start = rng.integers(0, acquisition_days, customers)
    T = (observation_days - start).astype(np.float64)
    purchases = _purchase_times(params, T, rng)
    customer = np.concatenate([np.arange(customers, dtype=np.int64), purchases.customer])
    offset = np.concatenate([np.zeros(customers), np.floor(purchases.time)])
    day = day_number(first_day) + start[customer] + offset.astype(np.int64)
    cents = None
    if spend is not None:
        nu = rng.gamma(spend.q, 1.0 / spend.v, customers)
        values = rng.gamma(spend.p, 1.0, customer.shape[0]) / nu[customer]
        cents = np.maximum(np.round(values * 100), 1).astype(np.int64)
    return TransactionLog(customer_keys=np.arange(customers, dtype=np.int64), customer=customer, day=day, cents=cents)
