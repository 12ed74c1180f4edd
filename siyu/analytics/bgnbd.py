"""BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way"): who is
still a customer, and how many purchases each one will make.

Model: while alive, customer *i* buys as a Poisson process with rate λᵢ ~ Gamma(r, α);
after each purchase they drop out with probability pᵢ ~ Beta(a, b). The data per
customer is the classic summary (the ``lifetimes`` package's semantics, so numbers
match): ``x`` = number of distinct purchase periods after the first (for ``freq="D"``
the number of *distinct purchase days* − 1), ``t_x`` = time from the first to the last
purchase period, ``T`` = time from the first purchase period to the end of observation,
and the monetary value = the mean of the repeat periods' purchase totals (the first
purchase excluded; 0 when x = 0).

Log-likelihood of one customer (FHL 2005 eq. 6, in logs)::

    ℓ = ln Γ(r+x) − ln Γ(r) + r ln α + ln B(a, b+x) − ln B(a, b)
        + ln[ (α+T)^−(r+x) + 1{x>0} · a/(b+x−1) · (α+t_x)^−(r+x) ]

The last term is a ``logaddexp``. The terms that depend on x only are computed once per
distinct x; customers with the same (x, t_x, T) are fitted once with a weight (Fader and
Hardie's compressed data). Parameters are fitted on logs with L-BFGS-B and the analytic
gradient; times are scaled so that max T = 10 while fitting (as ``lifetimes`` does),
which changes α only. Standard errors come from the inverse Hessian of the
log-likelihood in log-parameters (central differences of the analytic gradient, delta
method back to the parameters).

Predictions: P(alive) (Fader, Hardie & Lee 2008 note), expected purchases in t for a new
customer (eq. 9) and for a customer with a history (eq. 10, Gauss hypergeometric
function; Euler's transformation when the direct series overflows), and CLV as a
monthly discounted sum (Fader & Hardie's discrete DCF, as in ``lifetimes``)::

    CLV = Σ_{m=1..M} E[AOV] · (E[Y(m·month)] − E[Y((m−1)·month)]) / (1+d)^m

with month = 30 days and d the monthly discount rate.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import digamma, expit, gammaln, hyp2f1

from siyu.analytics.transactions import FloatArray, Freq, IntArray, TransactionLog, day_number, to_periods
from siyu.core.errors import ValidationFailed

PARAM_NAMES = ("r", "alpha", "a", "b")
DAYS_PER_MONTH = 30.0
#: Log-parameters are kept inside ±LOG_BOUND so that exp() cannot overflow mid-search.
LOG_BOUND = 15.0


# --------------------------------------------------------------------------- summary


@dataclass(frozen=True)
class CustomerSummary:
    """The per-customer sufficient statistics (see the module docstring). Times are in
    model units of ``unit_days`` days (1 for daily periods, 7 for weeks)."""

    customer_keys: Any
    frequency: FloatArray
    recency: FloatArray
    T: FloatArray
    monetary: FloatArray | None
    observation_end: dt.date
    freq: Freq
    unit_days: float

    def __len__(self) -> int:
        return int(self.frequency.shape[0])

    @property
    def repeat_customers(self) -> int:
        return int(np.count_nonzero(self.frequency > 0))


@dataclass(frozen=True)
class _PeriodTotals:
    """Per customer (in the order of ``customers``): distinct purchase periods, first and
    last period, the first period's total and the total of all periods (cents)."""

    customers: IntArray
    periods: IntArray
    first: IntArray
    last: IntArray
    first_cents: IntArray | None
    total_cents: IntArray | None


def _period_totals(log: TransactionLog, freq: Freq) -> _PeriodTotals:
    period = to_periods(log.day, freq)
    order = np.lexsort((period, log.customer))
    cust, per = log.customer[order], period[order]
    new_pair = np.ones(cust.shape[0], dtype=bool)
    new_pair[1:] = (cust[1:] != cust[:-1]) | (per[1:] != per[:-1])
    pair_start = np.flatnonzero(new_pair)
    pair_cust, pair_per = cust[pair_start], per[pair_start]
    pair_cents = np.add.reduceat(log.cents[order], pair_start) if log.cents is not None else None
    new_cust = np.ones(pair_cust.shape[0], dtype=bool)
    new_cust[1:] = pair_cust[1:] != pair_cust[:-1]
    cust_start = np.flatnonzero(new_cust)
    cust_end = np.append(cust_start[1:], pair_cust.shape[0]) - 1
    return _PeriodTotals(
        customers=pair_cust[cust_start],
        periods=np.diff(np.append(cust_start, pair_cust.shape[0])),
        first=pair_per[cust_start],
        last=pair_per[cust_end],
        first_cents=None if pair_cents is None else pair_cents[cust_start],
        total_cents=None if pair_cents is None else np.add.reduceat(pair_cents, cust_start),
    )


def summarize(log: TransactionLog, observation_end: dt.date, freq: Freq = "D", unit_days: float | None = None) -> CustomerSummary:
    """The BG/NBD summary of every customer with a purchase on or before
    ``observation_end`` (later purchases are ignored). ``unit_days`` sets the model's time
    unit (default: one period); CDNOW's published fit uses daily periods in weeks (7)."""
    period_days = 1.0 if freq == "D" else 7.0
    unit = unit_days or period_days
    log = log.between(last_day=day_number(observation_end))
    end_period = int(to_periods(np.array([day_number(observation_end)], dtype=np.int64), freq)[0])
    if len(log) == 0:
        empty = np.empty(0, dtype=np.float64)
        return CustomerSummary(
            customer_keys=log.customer_keys[:0], frequency=empty, recency=empty, T=empty,
            monetary=empty if log.has_amounts else None, observation_end=observation_end, freq=freq, unit_days=unit,
        )
    totals = _period_totals(log, freq)
    scale = period_days / unit
    x = (totals.periods - 1).astype(np.float64)
    monetary = None
    if totals.total_cents is not None and totals.first_cents is not None:
        repeat_cents = (totals.total_cents - totals.first_cents).astype(np.float64)
        monetary = np.divide(repeat_cents / 100.0, x, out=np.zeros_like(x), where=x > 0)
    return CustomerSummary(
        customer_keys=log.customer_keys[totals.customers],
        frequency=x,
        recency=(totals.last - totals.first).astype(np.float64) * scale,
        T=(end_period - totals.first).astype(np.float64) * scale,
        monetary=monetary,
        observation_end=observation_end,
        freq=freq,
        unit_days=unit,
    )


def check_summary(x: FloatArray, t_x: FloatArray, T: FloatArray) -> None:
    """Refuse inconsistent summaries (the same checks as ``lifetimes``)."""
    if not (x.shape == t_x.shape == T.shape):
        raise ValidationFailed("frequency, recency and T must have the same length", code="invalid_summary")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(t_x)) and np.all(np.isfinite(T))):
        raise ValidationFailed("the summary holds non-finite values", code="invalid_summary")
    if np.any(x < 0) or np.any(x != np.round(x)):
        raise ValidationFailed("frequency must be a whole number ≥ 0", code="invalid_summary")
    if np.any(t_x < 0) or np.any(t_x > T):
        raise ValidationFailed("recency must lie between 0 and T", code="invalid_summary")
    if np.any((x == 0) & (t_x != 0)):
        raise ValidationFailed("a customer without repeat purchases must have recency 0", code="invalid_summary")


# --------------------------------------------------------------------------- fitting


@dataclass(frozen=True)
class BgNbdParams:
    r: float
    alpha: float
    a: float
    b: float

    def as_dict(self) -> dict[str, float]:
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b}


@dataclass(frozen=True)
class FitDiagnostics:
    """How a maximum-likelihood fit went. ``log_likelihood`` is the total over customers;
    ``gradient_norm`` is the norm of the gradient of the mean log-likelihood in
    log-parameters at the optimum (≈ 0 at a true maximum)."""

    converged: bool
    message: str
    iterations: int
    evaluations: int
    log_likelihood: float
    gradient_norm: float
    customers: int
    repeat_customers: int
    distinct_patterns: int
    seconds: float
    at_bound: bool
    standard_errors: dict[str, float] | None
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BgNbdFit:
    params: BgNbdParams
    diagnostics: FitDiagnostics


@dataclass(frozen=True)
class _Compressed:
    """Distinct (x, t_x, T) histories with their weights (``inverse`` maps each customer
    to its history), laid out for the likelihood: every distinct time value once
    (``times``), every distinct x once, the x = 0 histories aggregated by T, and the
    repeat histories with indexes into those tables."""

    x: FloatArray
    t_x: FloatArray
    T: FloatArray
    weight: FloatArray
    inverse: IntArray
    times: FloatArray
    ux: FloatArray
    ux_weight: FloatArray
    zero_T: IntArray
    zero_weight: FloatArray
    rep_x: FloatArray
    rep_weight: FloatArray
    rep_T: IntArray
    rep_tx: IntArray
    rep_ux: IntArray


def compress(x: FloatArray, t_x: FloatArray, T: FloatArray, weights: FloatArray | None = None) -> _Compressed:
    """Collapse customers with identical histories into one weighted row."""
    n = x.shape[0]
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    order = np.lexsort((T, t_x, x))
    xs, ts, Ts = x[order], t_x[order], T[order]
    new = np.ones(n, dtype=bool)
    if n:
        new[1:] = (xs[1:] != xs[:-1]) | (ts[1:] != ts[:-1]) | (Ts[1:] != Ts[:-1])
    group = np.cumsum(new) - 1
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = group
    rows = np.flatnonzero(new)
    hx, htx, hT = xs[rows], ts[rows], Ts[rows]
    weight = np.bincount(group, weights=w[order], minlength=rows.shape[0]).astype(np.float64)
    times, time_index = np.unique(np.concatenate([hT, htx]), return_inverse=True)
    time_index = time_index.reshape(-1)
    T_index, tx_index = time_index[: hT.shape[0]], time_index[hT.shape[0] :]
    ux, ux_index = np.unique(hx, return_inverse=True)
    ux_index = ux_index.reshape(-1)
    zero, rep = hx == 0, hx > 0
    zero_T = T_index[zero]
    zero_weight = np.bincount(zero_T, weights=weight[zero], minlength=times.shape[0]).astype(np.float64)
    used = np.flatnonzero(zero_weight)
    return _Compressed(
        x=hx, t_x=htx, T=hT, weight=weight, inverse=inverse,
        times=times, ux=ux.astype(np.float64), ux_weight=np.bincount(ux_index, weights=weight, minlength=ux.shape[0]).astype(np.float64),
        zero_T=used, zero_weight=zero_weight[used],
        rep_x=hx[rep], rep_weight=weight[rep], rep_T=T_index[rep], rep_tx=tx_index[rep], rep_ux=ux_index[rep],
    )


def _wsum(weights: FloatArray, values: FloatArray) -> float:
    # Not np.dot: a multi-threaded BLAS dot is slower than this on a busy machine.
    return float(np.sum(weights * values))


def log_likelihood_and_gradient(log_params: FloatArray, data: _Compressed) -> tuple[float, FloatArray]:
    """Total BG/NBD log-likelihood of the compressed data and its gradient with respect
    to (ln r, ln α, ln a, ln b).

    For a repeat customer write δ = ln a − ln(b+x−1) + (r+x)(ln(α+T) − ln(α+t_x)); then
    the bracket of the likelihood is (α+T)^−(r+x) · (1 + e^δ), so its log is
    −(r+x) ln(α+T) + softplus(δ), and s = expit(δ) is the share of the second term, which
    is all the gradient needs."""
    r, alpha, a, b = np.exp(log_params)
    ux, nx = data.ux, data.ux_weight
    n_total = float(np.sum(nx))
    # Terms that depend on x only: one evaluation per distinct x.
    ll = _wsum(nx, gammaln(r + ux) + gammaln(b + ux) - gammaln(a + b + ux)) + n_total * (
        r * np.log(alpha) - gammaln(r) + gammaln(a + b) - gammaln(b)
    )
    dg_abx = digamma(a + b + ux)
    g_r = _wsum(nx, digamma(r + ux)) + n_total * (np.log(alpha) - digamma(r))
    g_alpha = n_total * r / alpha
    g_a = _wsum(nx, -dg_abx) + n_total * digamma(a + b)
    g_b = _wsum(nx, digamma(b + ux) - dg_abx) + n_total * (digamma(a + b) - digamma(b))

    log_t = np.log(alpha + data.times)
    inv_t = 1.0 / (alpha + data.times)
    # Customers who never bought again: the bracket is (α+T)^−r.
    zw, z_log = data.zero_weight, log_t[data.zero_T]
    ll -= r * _wsum(zw, z_log)
    g_r -= _wsum(zw, z_log)
    g_alpha -= r * _wsum(zw, inv_t[data.zero_T])

    if data.rep_x.shape[0]:
        w = data.rep_weight
        log_bx1 = np.log(b + np.maximum(ux, 1.0) - 1.0)[data.rep_ux]
        inv_bx1 = np.exp(-log_bx1)
        l_T, l_tx = log_t[data.rep_T], log_t[data.rep_tx]
        rx = r + data.rep_x
        delta = np.log(a) - log_bx1 + rx * (l_T - l_tx)
        share = expit(delta)
        ws = w * share
        ll += float(np.sum(w * (np.logaddexp(0.0, delta) - rx * l_T)))
        g_r += float(np.sum(ws * (l_T - l_tx) - w * l_T))
        i_T, i_tx = inv_t[data.rep_T], inv_t[data.rep_tx]
        g_alpha -= float(np.sum(rx * (w * i_T + ws * (i_tx - i_T))))
        g_a += float(np.sum(ws)) / a
        g_b -= float(np.sum(ws * inv_bx1))
    return float(ll), np.array([g_r * r, g_alpha * alpha, g_a * a, g_b * b])


def log_likelihood(params: BgNbdParams, x: FloatArray, t_x: FloatArray, T: FloatArray) -> float:
    """Total log-likelihood of customers' summaries under ``params`` (original time units)."""
    data = compress(np.asarray(x, float), np.asarray(t_x, float), np.asarray(T, float))
    return log_likelihood_and_gradient(np.log([params.r, params.alpha, params.a, params.b]), data)[0]


def _numeric_hessian(grad: Callable[[FloatArray], FloatArray], at: FloatArray, step: float = 1e-5) -> FloatArray:
    k = at.shape[0]
    hessian = np.empty((k, k))
    for i in range(k):
        delta = np.zeros(k)
        delta[i] = step
        hessian[:, i] = (grad(at + delta) - grad(at - delta)) / (2 * step)
    return (hessian + hessian.T) / 2


def standard_errors_from_hessian(
    neg_hessian_log: FloatArray, params: FloatArray, names: tuple[str, ...]
) -> tuple[dict[str, float] | None, str | None]:
    """Delta-method standard errors of the parameters from the negative Hessian of the
    total log-likelihood in log-parameters; None with a reason when it is not invertible."""
    try:
        cov_log = np.linalg.inv(neg_hessian_log)
    except np.linalg.LinAlgError:
        return None, "the Hessian is singular: standard errors are not available"
    variances = np.diag(cov_log)
    if np.any(variances <= 0) or not np.all(np.isfinite(variances)):
        return None, "the Hessian is not negative definite: the optimum may be a saddle or on a flat ridge"
    return {name: float(p * np.sqrt(v)) for name, p, v in zip(names, params, variances, strict=True)}, None


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run with one BLAS thread. The optimiser's tiny matrix products gain nothing from
    threads, and on a busy two-core machine OpenBLAS's thread hand-offs cost ~7 ms per
    L-BFGS-B step (10× the whole likelihood). Uses ``threadpoolctl`` when installed."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it the fit is the same, only slower under load
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def too_little_data(what: str, have: int, need: int) -> ValidationFailed:
    return ValidationFailed(
        f"too little data to fit {what}: {have} customers with repeat purchases, at least {need} are needed",
        code="too_little_data",
        details={"repeat_customers": have, "required": need},
    )


def fit_bgnbd(
    frequency: FloatArray,
    recency: FloatArray,
    T: FloatArray,
    *,
    weights: FloatArray | None = None,
    min_repeat_customers: int = 20,
    initial: BgNbdParams | None = None,
) -> BgNbdFit:
    """Fit (r, α, a, b) by maximum likelihood. Refuses with ``too_little_data`` when fewer
    than ``min_repeat_customers`` customers bought more than once."""
    started = time.perf_counter()
    x, t_x, big_t = (np.asarray(v, dtype=np.float64).reshape(-1) for v in (frequency, recency, T))
    check_summary(x, t_x, big_t)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    repeaters = round(float(w[x > 0].sum()))
    if repeaters < min_repeat_customers:
        raise too_little_data("BG/NBD", repeaters, min_repeat_customers)
    max_t = float(big_t.max())
    if max_t <= 0:
        raise ValidationFailed("every customer made their first purchase at the end of observation", code="too_little_data")
    scale = 10.0 / max_t
    data = compress(x, t_x * scale, big_t * scale, w)
    total = float(data.weight.sum())

    def objective(theta: FloatArray) -> tuple[float, FloatArray]:
        ll, grad = log_likelihood_and_gradient(theta, data)
        return -ll / total, -grad / total

    if initial is None:
        x0 = np.zeros(4)
    else:
        x0 = np.log([initial.r, initial.alpha * scale, initial.a, initial.b])
    with single_threaded_blas():
        result = minimize(
            objective, x0, jac=True, method="L-BFGS-B", bounds=[(-LOG_BOUND, LOG_BOUND)] * 4,
            options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-10},
        )
    theta = result.x
    r, alpha_s, a, b = np.exp(theta)
    params = BgNbdParams(r=float(r), alpha=float(alpha_s / scale), a=float(a), b=float(b))
    warnings: list[str] = []
    neg_hessian = -_numeric_hessian(lambda th: log_likelihood_and_gradient(th, data)[1], theta)
    errors, why = standard_errors_from_hessian(neg_hessian, np.array([params.r, params.alpha, params.a, params.b]), PARAM_NAMES)
    if why:
        warnings.append(why)
    at_bound = bool(np.any(np.abs(theta) >= LOG_BOUND - 1e-6))
    if at_bound:
        warnings.append("a parameter reached the search bound: the data do not identify the model well")
    if not result.success:
        # L-BFGS-B's "ABNORMAL" ends often sit at the optimum, but nobody should have to
        # read the diagnostics to find out that it did not confirm convergence
        warnings.append(f"the optimiser stopped without confirming convergence ({str(result.message).strip()}): compare with a holdout before relying on it")
    grad_norm = float(np.linalg.norm(objective(theta)[1]))
    ll_original = log_likelihood_and_gradient(theta, data)[0] + _wsum(data.weight, data.x) * np.log(scale)
    return BgNbdFit(
        params=params,
        diagnostics=FitDiagnostics(
            converged=bool(result.success) and not at_bound,
            message=str(result.message),
            iterations=int(result.nit),
            evaluations=int(result.nfev),
            log_likelihood=float(ll_original),
            gradient_norm=grad_norm,
            customers=round(total),
            repeat_customers=repeaters,
            distinct_patterns=int(data.x.shape[0]),
            seconds=time.perf_counter() - started,
            at_bound=at_bound,
            standard_errors=errors,
            warnings=warnings,
        ),
    )


# --------------------------------------------------------------------------- predictions


def probability_alive(params: BgNbdParams, x: FloatArray, t_x: FloatArray, T: FloatArray) -> FloatArray:
    """P(still a customer | x, t_x, T); 1 for customers who never bought again."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x = np.asarray(x, dtype=np.float64)
    log_ratio = (r + x) * (np.log(alpha + np.asarray(T)) - np.log(alpha + np.asarray(t_x))) + np.log(a) - np.log(b + np.maximum(x, 1) - 1)
    return np.where(x > 0, 1.0 / (1.0 + np.exp(log_ratio)), 1.0)


def _log_hyp2f1(a: FloatArray, b: FloatArray, c: FloatArray, z: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        direct = np.log(hyp2f1(a, b, c, z))
        # Euler's transformation 2F1(a,b;c;z) = (1−z)^(c−a−b) 2F1(c−a, c−b; c; z), for
        # the histories where the direct series overflows.
        euler = np.log(hyp2f1(c - a, c - b, c, z)) + (c - a - b) * np.log1p(-z)
    return np.where(np.isfinite(direct), direct, euler)


def expected_purchases(params: BgNbdParams, t: float | FloatArray) -> FloatArray:
    """E[X(t)]: expected repeat purchases in t for a customer just acquired (FHL eq. 9)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    t_arr = np.asarray(t, dtype=np.float64)
    hyp = hyp2f1(r, b, a + b - 1, t_arr / (alpha + t_arr))
    return np.asarray((a + b - 1) / (a - 1) * (1 - hyp * (alpha / (alpha + t_arr)) ** r))


def conditional_expected_purchases(
    params: BgNbdParams, t: float | FloatArray, x: FloatArray, t_x: FloatArray, T: FloatArray
) -> FloatArray:
    """E[Y(t) | x, t_x, T]: expected purchases in the next t (FHL eq. 10)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x = np.asarray(x, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    t_x = np.asarray(t_x, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    ha, hb, hc = r + x, b + x, a + b + x - 1
    z = t / (alpha + T + t)
    log_hyp = _log_hyp2f1(ha, hb, hc, z)
    numerator = (a + b + x - 1) / (a - 1) * (1 - np.exp(log_hyp + (r + x) * (np.log(alpha + T) - np.log(alpha + t + T))))
    denominator = 1 + (x > 0) * (a / (b + x - 1)) * np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + t_x)))
    return np.asarray(numerator / denominator)


def discounted_expected_purchases(
    params: BgNbdParams,
    x: FloatArray,
    t_x: FloatArray,
    T: FloatArray,
    *,
    months: int = 12,
    monthly_discount_rate: float = 0.01,
    unit_days: float = 1.0,
) -> FloatArray:
    """Σ_m (E[Y(m·month)] − E[Y((m−1)·month)]) / (1+d)^m: the discounted purchases of the
    next ``months`` months; times the expected order value it is the CLV."""
    month = DAYS_PER_MONTH / unit_days
    total = np.zeros(np.shape(x), dtype=np.float64)
    previous = np.zeros_like(total)
    for m in range(1, months + 1):
        cumulative = conditional_expected_purchases(params, m * month, x, t_x, T)
        total += (cumulative - previous) / (1 + monthly_discount_rate) ** m
        previous = cumulative
    return total


def customer_lifetime_value(
    params: BgNbdParams,
    x: FloatArray,
    t_x: FloatArray,
    T: FloatArray,
    expected_value: FloatArray,
    *,
    months: int = 12,
    monthly_discount_rate: float = 0.01,
    unit_days: float = 1.0,
) -> FloatArray:
    """Discounted value of the next ``months`` months (see the module docstring)."""
    discounted = discounted_expected_purchases(
        params, x, t_x, T, months=months, monthly_discount_rate=monthly_discount_rate, unit_days=unit_days
    )
    return np.asarray(expected_value, dtype=np.float64) * discounted


@dataclass(frozen=True)
class Scores:
    """Per customer: P(alive), expected purchases in the horizon, and discounted expected
    purchases over the CLV months (multiply by the expected order value for CLV)."""

    probability_alive: FloatArray
    expected_purchases: FloatArray
    discounted_purchases: FloatArray


def score(
    params: BgNbdParams,
    x: FloatArray,
    t_x: FloatArray,
    T: FloatArray,
    *,
    horizon: float,
    months: int = 12,
    monthly_discount_rate: float = 0.01,
    unit_days: float = 1.0,
) -> Scores:
    """Score every customer; each distinct history is computed once (``horizon`` is in
    model time units)."""
    data = compress(np.asarray(x, dtype=np.float64), np.asarray(t_x, dtype=np.float64), np.asarray(T, dtype=np.float64))
    alive = probability_alive(params, data.x, data.t_x, data.T)
    expected = conditional_expected_purchases(params, horizon, data.x, data.t_x, data.T)
    discounted = discounted_expected_purchases(
        params, data.x, data.t_x, data.T, months=months, monthly_discount_rate=monthly_discount_rate, unit_days=unit_days
    )
    return Scores(
        probability_alive=alive[data.inverse],
        expected_purchases=expected[data.inverse],
        discounted_purchases=discounted[data.inverse],
    )


# --------------------------------------------------------------------------- calibration / holdout


@dataclass(frozen=True)
class CalibrationHoldout:
    """The calibration summary, each of its customers' distinct purchase periods in the
    holdout, and the holdout's length in model units."""

    calibration: CustomerSummary
    holdout_purchases: FloatArray
    holdout_duration: float


def calibration_and_holdout(
    log: TransactionLog, calibration_end: dt.date, observation_end: dt.date, freq: Freq = "D", unit_days: float | None = None
) -> CalibrationHoldout:
    """Split at ``calibration_end`` (inclusive): the summary up to it, and how many distinct
    periods each calibration customer bought in (calibration_end, observation_end]."""
    if calibration_end >= observation_end:
        raise ValidationFailed("calibration_end must be before the end of observation", code="invalid_calibration_end")
    calibration = summarize(log, calibration_end, freq, unit_days)
    holdout_log = log.between(first_day=day_number(calibration_end) + 1, last_day=day_number(observation_end))
    purchases = np.zeros(len(calibration), dtype=np.float64)
    if len(holdout_log):
        totals = _period_totals(holdout_log, freq)
        keys = holdout_log.customer_keys[totals.customers]
        position = {key: i for i, key in enumerate(calibration.customer_keys.tolist())}
        for key, count in zip(keys.tolist(), totals.periods.tolist(), strict=True):
            i = position.get(key)
            if i is not None:  # customers first seen in the holdout are not part of the test
                purchases[i] = count
    ends = to_periods(np.array([day_number(calibration_end), day_number(observation_end)], dtype=np.int64), freq)
    period_days = 1.0 if freq == "D" else 7.0
    duration = float(ends[1] - ends[0]) * period_days / calibration.unit_days
    return CalibrationHoldout(calibration=calibration, holdout_purchases=purchases, holdout_duration=duration)


@dataclass(frozen=True)
class HoldoutBucket:
    frequency: str
    customers: int
    actual_purchases: float
    predicted_purchases: float
    actual_mean: float
    predicted_mean: float


def holdout_report(params: BgNbdParams, split: CalibrationHoldout, top_bucket: int = 7) -> list[HoldoutBucket]:
    """Predicted vs actual holdout repeat purchases, by calibration frequency 0, 1, …,
    ``top_bucket``+ (FHL 2005, figure 4)."""
    cal = split.calibration
    predicted = conditional_expected_purchases(params, split.holdout_duration, cal.frequency, cal.recency, cal.T)
    buckets: list[HoldoutBucket] = []
    bucket_of = np.minimum(cal.frequency, top_bucket).astype(np.int64)
    for k in range(top_bucket + 1):
        mask = bucket_of == k
        n = int(mask.sum())
        actual, pred = float(split.holdout_purchases[mask].sum()), float(predicted[mask].sum())
        buckets.append(
            HoldoutBucket(
                frequency=f"{k}+" if k == top_bucket else str(k),
                customers=n,
                actual_purchases=actual,
                predicted_purchases=pred,
                actual_mean=actual / n if n else 0.0,
                predicted_mean=pred / n if n else 0.0,
            )
        )
    return buckets
