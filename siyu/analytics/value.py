"""One contact's value (客户价值): P(alive), expected purchases in 90 days, expected order
value, 12-month CLV and RFM scores, for the contact page and the API.

The BG/NBD and Gamma-Gamma parameters are fitted on the whole workspace and kept in
Django's cache, keyed by the workspace, the day and a fingerprint of the purchases (last
order id, count, total, last edit): a new or refunded order refits, anything else reuses.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, Field

from siyu.analytics import bgnbd, gamma_gamma, rfm
from siyu.analytics.queries import RfmCustomerOut
from siyu.analytics.runners import expected_aov, money, rfm_customer_out
from siyu.analytics.sources import WorkspaceSource
from siyu.analytics.transactions import TransactionLog, day_number
from siyu.core.errors import ValidationFailed

if TYPE_CHECKING:
    from siyu.contacts.models import Contact
    from siyu.core.models import Workspace

HORIZON_DAYS = 90
CLV_MONTHS = 12
MONTHLY_DISCOUNT_RATE = 0.01
RFM_WINDOW_DAYS = 365
MIN_REPEAT_CUSTOMERS = 20
CACHE_SECONDS = 24 * 3600


class ContactValueOut(BaseModel):
    contact_id: int
    purchases: int = Field(description="distinct purchase days so far")
    model_available: bool
    model_note: str | None = Field(default=None, description="why there are no model numbers (too little data, no purchase yet)")
    probability_alive: float | None = None
    expected_purchases_90d: float | None = None
    expected_aov: Decimal | None = None
    clv_12m: Decimal | None = None
    rfm: RfmCustomerOut | None = Field(default=None, description="scores among the buyers of the last 365 days; null if no purchase in it")
    fitted_on: dt.date
    parameters: dict[str, float] = Field(default_factory=dict, description="r, alpha, a, b (and p, q, v) of the workspace fit")


@dataclass(frozen=True)
class WorkspaceFit:
    bgnbd: bgnbd.BgNbdParams | None
    gamma_gamma: gamma_gamma.GammaGammaParams | None
    note: str | None
    mean_repeat_value: float | None
    cached: bool


def workspace_fit(source: WorkspaceSource, today: dt.date) -> WorkspaceFit:
    """The workspace's daily BG/NBD (+ Gamma-Gamma) fit, from the cache when the
    purchases have not changed."""
    from django.core.cache import cache

    key = f"siyu:analytics:fit:v1:{source.workspace.pk}:{today.isoformat()}:{source.fingerprint()}"
    stored: dict[str, Any] | None = cache.get(key)
    cached = stored is not None
    if stored is None:
        stored = _fit(source.transactions(), today)
        cache.set(key, stored, CACHE_SECONDS)
    return WorkspaceFit(
        bgnbd=bgnbd.BgNbdParams(**stored["bgnbd"]) if stored["bgnbd"] else None,
        gamma_gamma=gamma_gamma.GammaGammaParams(**stored["gamma_gamma"]) if stored["gamma_gamma"] else None,
        note=stored["note"],
        mean_repeat_value=stored.get("mean_repeat_value"),
        cached=cached,
    )


def _fit(log: TransactionLog, today: dt.date) -> dict[str, Any]:
    summary = bgnbd.summarize(log, today, "D")
    try:
        fit = bgnbd.fit_bgnbd(summary.frequency, summary.recency, summary.T, min_repeat_customers=MIN_REPEAT_CUSTOMERS)
    except ValidationFailed as refusal:
        return {"bgnbd": None, "gamma_gamma": None, "note": refusal.message}
    try:
        assert summary.monetary is not None
        gg = gamma_gamma.fit_gamma_gamma(summary.frequency, summary.monetary, min_repeat_customers=MIN_REPEAT_CUSTOMERS)
    except ValidationFailed as refusal:
        return {"bgnbd": fit.params.as_dict(), "gamma_gamma": None, "note": refusal.message}
    mean_repeat_value = float(summary.monetary[summary.frequency > 0].mean())
    return {"bgnbd": fit.params.as_dict(), "gamma_gamma": gg.params.as_dict(), "note": None, "mean_repeat_value": mean_repeat_value}


def contact_value(contact: Contact, *, today: dt.date | None = None) -> ContactValueOut:
    """The value numbers of one contact of ``contact.workspace`` (see the module docstring)."""
    source = WorkspaceSource(contact.workspace)
    today = today or source.today()
    log = source.transactions()
    fitted = workspace_fit(source, today)
    summary = bgnbd.summarize(log.for_customer(contact.pk), today, "D")
    table = rfm.rfm_table(log, day_number(today), RFM_WINDOW_DAYS)
    row = np.flatnonzero(table.customer_keys == contact.pk)
    out = ContactValueOut(
        contact_id=contact.pk,
        purchases=int(summary.frequency[0]) + 1 if len(summary) else 0,
        model_available=False,
        model_note=fitted.note,
        rfm=rfm_customer_out(table, int(row[0])) if row.size else None,
        fitted_on=today,
        parameters={**(fitted.bgnbd.as_dict() if fitted.bgnbd else {}), **(fitted.gamma_gamma.as_dict() if fitted.gamma_gamma else {})},
    )
    if fitted.bgnbd is None:
        return out
    if not len(summary):
        out.model_note = "no purchase yet: the repurchase model starts at the first purchase"
        return out
    x, t_x, big_t = summary.frequency, summary.recency, summary.T
    out.model_available = True
    out.probability_alive = float(bgnbd.probability_alive(fitted.bgnbd, x, t_x, big_t)[0])
    out.expected_purchases_90d = float(bgnbd.conditional_expected_purchases(fitted.bgnbd, HORIZON_DAYS, x, t_x, big_t)[0])
    if fitted.gamma_gamma is not None and summary.monetary is not None:
        aov = expected_aov(fitted.gamma_gamma, x, summary.monetary, fallback_mean=fitted.mean_repeat_value)
        discounted = bgnbd.discounted_expected_purchases(
            fitted.bgnbd, x, t_x, big_t, months=CLV_MONTHS, monthly_discount_rate=MONTHLY_DISCOUNT_RATE
        )
        out.expected_aov = money(float(aov[0]))
        out.clv_12m = money(float(aov[0] * discounted[0]))
    return out


def workspace_probability_alive(workspace: Workspace, *, today: dt.date | None = None) -> dict[int, float]:
    """P(alive) of every buyer of the workspace (contact id → probability), from the
    cached workspace fit; empty when there is too little data to fit. For the lifecycle
    stages of ``siyu.commerce`` (``do_recompute_lifecycles(p_alive=...)``)."""
    source = WorkspaceSource(workspace)
    today = today or source.today()
    fitted = workspace_fit(source, today)
    if fitted.bgnbd is None:
        return {}
    summary = bgnbd.summarize(source.transactions(), today, "D")
    alive = bgnbd.probability_alive(fitted.bgnbd, summary.frequency, summary.recency, summary.T)
    return {int(key): float(p) for key, p in zip(summary.customer_keys.tolist(), alive.tolist(), strict=True)}
