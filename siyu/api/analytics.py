"""Analytics API: typed queries (BG/NBD + CLV, RFM, Pareto, the sales formula) over the
caller's workspace, and one contact's value numbers."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router

from siyu.accounts.permissions import Perm, require
from siyu.analytics.queries import AnalyticsQuery, AnalyticsResult
from siyu.analytics.runners import run_query
from siyu.analytics.sources import WorkspaceSource
from siyu.analytics.value import ContactValueOut, contact_value
from siyu.api.auth import me, ws
from siyu.api.common import ERRORS
from siyu.contacts.queries import get_visible_contact

router = Router(tags=["analytics"])


@router.post("/analytics/query", response={200: AnalyticsResult, **ERRORS})
def analytics_query(request: HttpRequest, payload: AnalyticsQuery) -> Any:
    """Run one analytics query on this workspace's data. The body's ``kind`` picks the
    query: ``bgnbd``, ``rfm``, ``pareto`` or ``sales_formula``. Needs a role that sees all
    contacts (owners, admins, operators, analysts). Too little data to fit a model answers
    422 with code ``too_little_data``."""
    require(me(request), Perm.VIEW_ALL_CONTACTS)
    return run_query(payload, WorkspaceSource(ws(request)))


@router.get("/contacts/{int:contact_id}/value", response={200: ContactValueOut, **ERRORS})
def get_contact_value(request: HttpRequest, contact_id: int) -> Any:
    """P(alive), expected purchases in 90 days, expected order value, 12-month CLV and RFM
    scores of a contact you can see. The models are fitted on the whole workspace (cached
    until its purchases change)."""
    return contact_value(get_visible_contact(ws(request), me(request), contact_id))
