"""Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV"; Fader & Hardie's
note 025): the expected average order value (客单价) of each customer.

A customer's purchase values are Gamma(p, νᵢ) around their own mean p/νᵢ, and νᵢ ~
Gamma(q, v) across customers. Fitted on customers with at least one repeat purchase
(x > 0) from x and their mean repeat value m̄ (the BG/NBD summary's monetary value).
Log-likelihood of one customer (the density of m̄ given x)::

    ℓ = ln Γ(px+q) − ln Γ(px) − ln Γ(q) + q ln v + (px−1) ln m̄ + px ln x − (px+q) ln(x m̄ + v)

Fitted on logs with L-BFGS-B and the analytic gradient; values are divided by their mean
while fitting (only v changes, by the same factor). The conditional expectation is a
credibility-weighted mean of the population mean and the customer's own::

    E[M | x, m̄] = (q−1)/(px+q−1) · pv/(q−1) + px/(px+q−1) · m̄ = p(v + x m̄)/(px + q − 1)

(the population mean pv/(q−1) exists only when q > 1). The model assumes spend does not
depend on purchase frequency: the fit reports the correlation of x and m̄ to check it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import digamma, gammaln

from siyu.analytics.bgnbd import (
    LOG_BOUND,
    FitDiagnostics,
    _numeric_hessian,
    single_threaded_blas,
    standard_errors_from_hessian,
    too_little_data,
)
from siyu.analytics.transactions import FloatArray
from siyu.core.errors import ValidationFailed

PARAM_NAMES = ("p", "q", "v")


@dataclass(frozen=True)
class GammaGammaParams:
    p: float
    q: float
    v: float

    def as_dict(self) -> dict[str, float]:
        return {"p": self.p, "q": self.q, "v": self.v}

    @property
    def population_mean(self) -> float | None:
        """Mean spend per order across customers; None when q ≤ 1 (infinite)."""
        return self.p * self.v / (self.q - 1) if self.q > 1 else None


@dataclass(frozen=True)
class GammaGammaFit:
    params: GammaGammaParams
    diagnostics: FitDiagnostics
    frequency_monetary_correlation: float


@dataclass(frozen=True)
class _Data:
    """Repeat customers' x and m̄ (weights w), with what does not depend on the
    parameters computed once: the distinct x values and the constant logs."""

    x: FloatArray
    m: FloatArray
    w: FloatArray
    ux: FloatArray
    ux_weight: FloatArray
    wx_by_ux: FloatArray
    sum_w_log_m: float
    sum_wx_log_mx: float


def _prepare(x: FloatArray, m: FloatArray, w: FloatArray) -> _Data:
    ux, index = np.unique(x, return_inverse=True)
    index = index.reshape(-1)
    ux_weight = np.bincount(index, weights=w, minlength=ux.shape[0]).astype(np.float64)
    return _Data(
        x=x, m=m, w=w, ux=ux.astype(np.float64), ux_weight=ux_weight, wx_by_ux=ux_weight * ux,
        sum_w_log_m=float(np.sum(w * np.log(m))), sum_wx_log_mx=float(np.sum(w * x * (np.log(m) + np.log(x)))),
    )


def log_likelihood_and_gradient(log_params: FloatArray, data: _Data) -> tuple[float, FloatArray]:
    """Total log-likelihood and its gradient with respect to (ln p, ln q, ln v). The Γ and
    ψ terms depend on x only and are evaluated once per distinct x."""
    p, q, v = np.exp(log_params)
    ux, nx = data.ux, data.ux_weight
    pux = p * ux
    gl = gammaln(pux + q) - gammaln(pux)
    dg_pxq, dg_px = digamma(pux + q), digamma(pux)
    total_w = float(np.sum(nx))
    xmv = data.x * data.m + v
    log_xmv = np.log(xmv)
    w = data.w
    sum_w_log_xmv = float(np.sum(w * log_xmv))
    sum_wx_log_xmv = float(np.sum(w * data.x * log_xmv))
    ll = (
        float(np.sum(nx * gl)) - total_w * gammaln(q) + total_w * q * np.log(v)
        + p * data.sum_wx_log_mx - data.sum_w_log_m - p * sum_wx_log_xmv - q * sum_w_log_xmv
    )
    g_p = float(np.sum(data.wx_by_ux * (dg_pxq - dg_px))) + data.sum_wx_log_mx - sum_wx_log_xmv
    g_q = float(np.sum(nx * dg_pxq)) - total_w * digamma(q) + total_w * np.log(v) - sum_w_log_xmv
    g_v = total_w * q / v - float(np.sum(w * (p * data.x + q) / xmv))
    return float(ll), np.array([g_p * p, g_q * q, g_v * v])


def fit_gamma_gamma(
    frequency: FloatArray, monetary: FloatArray, *, weights: FloatArray | None = None, min_repeat_customers: int = 20
) -> GammaGammaFit:
    """Fit (p, q, v) by maximum likelihood on the customers with x > 0 and a positive
    mean repeat value; refuses with ``too_little_data`` below ``min_repeat_customers``."""
    started = time.perf_counter()
    x_all = np.asarray(frequency, dtype=np.float64).reshape(-1)
    m_all = np.asarray(monetary, dtype=np.float64).reshape(-1)
    w_all = np.ones_like(x_all) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if not (x_all.shape == m_all.shape == w_all.shape):
        raise ValidationFailed("frequency and monetary value must have the same length", code="invalid_summary")
    keep = (x_all > 0) & (m_all > 0) & np.isfinite(m_all)
    x, m, w = x_all[keep], m_all[keep], w_all[keep]
    n = round(float(w.sum()))
    if n < min_repeat_customers:
        raise too_little_data("Gamma-Gamma", n, min_repeat_customers)
    scale = float(np.average(m, weights=w))
    m_scaled = m / scale
    total = float(w.sum())

    data = _prepare(x, m_scaled, w)

    def objective(theta: FloatArray) -> tuple[float, FloatArray]:
        ll, grad = log_likelihood_and_gradient(theta, data)
        return -ll / total, -grad / total

    with single_threaded_blas():
        result = minimize(
            objective, np.zeros(3), jac=True, method="L-BFGS-B", bounds=[(-LOG_BOUND, LOG_BOUND)] * 3,
            options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-10},
        )
    theta = result.x
    p, q, v_scaled = np.exp(theta)
    params = GammaGammaParams(p=float(p), q=float(q), v=float(v_scaled * scale))
    warnings: list[str] = []
    neg_hessian = -_numeric_hessian(lambda th: log_likelihood_and_gradient(th, data)[1], theta)
    errors, why = standard_errors_from_hessian(neg_hessian, np.array([params.p, params.q, params.v]), PARAM_NAMES)
    if why:
        warnings.append(why)
    at_bound = bool(np.any(np.abs(theta) >= LOG_BOUND - 1e-6))
    if at_bound:
        warnings.append("a parameter reached the search bound: the data do not identify the model well")
    if not result.success:
        # L-BFGS-B's "ABNORMAL" ends often sit at the optimum, but nobody should have to
        # read the diagnostics to find out that it did not confirm convergence
        warnings.append(f"the optimiser stopped without confirming convergence ({str(result.message).strip()}): compare with a holdout before relying on it")
    if params.q <= 1:
        warnings.append("q ≤ 1: the population mean order value is infinite; customers without repeat purchases get their own first value")
    correlation = float(np.corrcoef(x, m)[0, 1]) if x.shape[0] > 1 and np.std(x) > 0 and np.std(m) > 0 else 0.0
    if abs(correlation) > 0.3:
        warnings.append(f"frequency and order value are correlated ({correlation:.2f}): Gamma-Gamma assumes they are independent")
    ll_original = log_likelihood_and_gradient(np.log([params.p, params.q, params.v]), _prepare(x, m, w))[0]
    return GammaGammaFit(
        params=params,
        diagnostics=FitDiagnostics(
            converged=bool(result.success) and not at_bound,
            message=str(result.message),
            iterations=int(result.nit),
            evaluations=int(result.nfev),
            log_likelihood=ll_original,
            gradient_norm=float(np.linalg.norm(objective(theta)[1])),
            customers=n,
            repeat_customers=n,
            distinct_patterns=int(x.shape[0]),
            seconds=time.perf_counter() - started,
            at_bound=at_bound,
            standard_errors=errors,
            warnings=warnings,
        ),
        frequency_monetary_correlation=correlation,
    )


def conditional_expected_average_value(
    params: GammaGammaParams, frequency: FloatArray, monetary: FloatArray, fallback: FloatArray | None = None
) -> FloatArray:
    """E[average order value | x, m̄] per customer. For x = 0 this is the population mean;
    when that is infinite (q ≤ 1) ``fallback`` (e.g. the first order's value) is used."""
    p, q, v = params.p, params.q, params.v
    x = np.asarray(frequency, dtype=np.float64)
    m = np.asarray(monetary, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = p * (v + x * m) / (p * x + q - 1)
    if q <= 1:
        backup = m if fallback is None else np.asarray(fallback, dtype=np.float64)
        value = np.where((x == 0) | ~np.isfinite(value) | (value <= 0), backup, value)
    return np.asarray(value)
