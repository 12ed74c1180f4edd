"""Commerce console (交易): the customer value panel of the contact page, coupon templates,
满减 promotions with a basket calculator, and orders with refunds.

Writes go through :mod:`siyu.commerce.actions`, which check the permissions themselves
(coupons and promotions: ``check_can_manage``; refunds: edit rights on the contact).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from siyu.accounts.permissions import Perm
from siyu.analytics.rfm import SEGMENTS
from siyu.analytics.value import contact_value
from siyu.commerce import promotions as calc
from siyu.commerce.actions import do_create_coupon_template, do_create_promotion, do_refund_order
from siyu.commerce.models import (
    Coupon,
    CouponKind,
    CouponStatus,
    CouponTemplate,
    Order,
    OrderStatus,
    PointsEntry,
    Promotion,
    PromotionMode,
    StageTransition,
)
from siyu.commerce.queries import active_promotions, lifetime_spend, points_balance, promotion_rule, visible_orders
from siyu.console.workspace import Console, console_view, page_numbers
from siyu.contacts.models import Contact
from siyu.core.errors import ValidationFailed

PAGE_SIZE = 50
PANEL_TRANSITIONS = 5
PANEL_POINTS = 5
PANEL_COUPONS = 10


# ---------------------------------------------------------------- value panel


def value_panel(console: Console, contact: Contact) -> dict[str, Any]:
    """Context of ``console/commerce/_value_panel.html`` for the contact page: stage
    history, RFM, the repurchase model's numbers (or why there are none), points and
    coupons. The contact is one the staff member may see already."""
    value = contact_value(contact)
    return {
        "value": value,
        # "Champions (重要价值客户)": the segment's name in both languages, without its definition.
        "value_segment": SEGMENTS.get(value.rfm.segment, value.rfm.segment).split(":")[0] if value.rfm else "",
        "value_transitions": list(StageTransition.objects.in_workspace(console.workspace).filter(contact=contact)[:PANEL_TRANSITIONS]),
        "value_points": points_balance(contact),
        "value_points_entries": list(PointsEntry.objects.in_workspace(console.workspace).filter(contact=contact)[:PANEL_POINTS]),
        "value_coupons": list(
            Coupon.objects.in_workspace(console.workspace).filter(contact=contact, status=CouponStatus.ISSUED)
            .select_related("template").order_by("expires_at", "id")[:PANEL_COUPONS]
        ),
        "value_spend": lifetime_spend(contact),
        "value_orders": visible_orders(console.workspace, console.staff).filter(contact=contact).count(),
    }


# ---------------------------------------------------------------- coupons


class CouponTemplateForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=100)
    kind = forms.ChoiceField(label=gettext_lazy("Kind"), choices=CouponKind.choices)
    value = forms.DecimalField(
        label=gettext_lazy("Value"), max_digits=14, decimal_places=2, help_text=gettext_lazy("yuan; percent off for a percentage coupon")
    )
    threshold_amount = forms.DecimalField(label=gettext_lazy("Minimum basket"), max_digits=14, decimal_places=2, required=False)
    percent_cap = forms.DecimalField(label=gettext_lazy("Largest discount"), max_digits=14, decimal_places=2, required=False)
    validity_days = forms.IntegerField(label=gettext_lazy("Valid for (days)"), min_value=1, max_value=3650, initial=30)
    per_contact_limit = forms.IntegerField(label=gettext_lazy("Per contact (0 = no limit)"), min_value=0, initial=1)
    total_stock = forms.IntegerField(label=gettext_lazy("Stock (empty = unlimited)"), min_value=1, required=False)


def _coupons_page(request: HttpRequest, console: Console, form: CouponTemplateForm | None = None, status: int = 200) -> HttpResponse:
    templates = CouponTemplate.objects.in_workspace(console.workspace).order_by("-created_at", "-id")
    return render(
        request,
        "console/commerce/coupons.html",
        {"templates": list(templates), "form": form or CouponTemplateForm(), "form_open": form is not None},
        status=status,
    )


@require_http_methods(["GET", "POST"])
@console_view(Perm.VIEW_ALL_CONTACTS)
def commerce_coupons(request: HttpRequest, console: Console) -> HttpResponse:
    if request.method != "POST":
        return _coupons_page(request, console)
    form = CouponTemplateForm(request.POST)
    if not form.is_valid():
        return _coupons_page(request, console, form, status=422)
    data = form.cleaned_data
    try:
        template = do_create_coupon_template(
            console.workspace, console.staff, name=data["name"], kind=data["kind"], value=data["value"],
            threshold_amount=data["threshold_amount"], percent_cap=data["percent_cap"], validity_days=data["validity_days"],
            per_contact_limit=data["per_contact_limit"], total_stock=data["total_stock"],
        )
    except ValidationFailed as exc:
        form.add_error(None, exc.message)
        return _coupons_page(request, console, form, status=422)
    messages.success(request, _("Coupon “%(name)s” created.") % {"name": template.name})
    return HttpResponseRedirect(reverse("console:commerce_coupons"))


# ---------------------------------------------------------------- promotions


def parse_tiers(text: str) -> list[list[str]]:
    """Tiers typed one per line as ``200-50`` (满200减50); ValidationFailed on a bad line."""
    tiers = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip().replace("，", ",").replace("－", "-")
        if not line:
            continue
        threshold, sep, discount = line.partition("-")
        if not sep or not threshold.strip() or not discount.strip():
            raise ValidationFailed(
                _("line %(n)s: write a tier as threshold-discount, e.g. 200-50") % {"n": number}, code="invalid_promotion"
            )
        tiers.append([threshold.strip(), discount.strip()])
    if not tiers:
        raise ValidationFailed(_("a promotion needs at least one tier, e.g. 200-50"), code="invalid_promotion")
    return tiers


class PromotionForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=100)
    mode = forms.ChoiceField(label=gettext_lazy("Mode"), choices=PromotionMode.choices)
    tiers = forms.CharField(
        label=gettext_lazy("Tiers"), widget=forms.Textarea(attrs={"rows": 3, "placeholder": "200-50\n500-150"}),
        help_text=gettext_lazy("one per line: threshold-discount, e.g. 200-50 for 满200减50"),
    )
    cap = forms.DecimalField(label=gettext_lazy("Largest total discount"), max_digits=14, decimal_places=2, required=False)
    stacks_with_coupons = forms.BooleanField(label=gettext_lazy("Combines with coupons"), required=False, initial=True)


def _basket(raw: str | None) -> Decimal | None:
    if not raw:
        return None
    try:
        amount = Decimal(raw.strip().lstrip("¥"))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() and Decimal(0) <= amount < Decimal("10000000") else None


def basket_calculation(console: Console, amount: Decimal) -> dict[str, Any]:
    """The best plan of the active promotions for a basket, and the anchoring hint
    (再买 ¥X 立减 Y), as the calculator box shows them."""
    rules = [promotion_rule(p) for p in active_promotions(console.workspace)]
    return {"plan": calc.best_promotion(amount, rules), "hint": calc.anchoring_hint(amount, rules), "rules": len(rules)}


def _promotions_page(request: HttpRequest, console: Console, form: PromotionForm | None = None, status: int = 200) -> HttpResponse:
    rows = list(Promotion.objects.in_workspace(console.workspace).order_by("-created_at", "-id"))
    for row in rows:
        row.tier_labels = [f"满{calc.format_yuan(Decimal(t))}减{calc.format_yuan(Decimal(d))}" for t, d in row.tiers]  # type: ignore[attr-defined]
    basket_raw = request.GET.get("basket", "")
    basket = _basket(basket_raw)
    return render(
        request,
        "console/commerce/promotions.html",
        {
            "promotions": rows,
            "form": form or PromotionForm(),
            "form_open": form is not None,
            "basket_raw": basket_raw,
            "basket_invalid": bool(basket_raw) and basket is None,
            "calc": basket_calculation(console, basket) if basket is not None else None,
        },
        status=status,
    )


@require_http_methods(["GET", "POST"])
@console_view(Perm.VIEW_ALL_CONTACTS)
def commerce_promotions(request: HttpRequest, console: Console) -> HttpResponse:
    if request.method != "POST":
        return _promotions_page(request, console)
    form = PromotionForm(request.POST)
    if not form.is_valid():
        return _promotions_page(request, console, form, status=422)
    data = form.cleaned_data
    try:
        promotion = do_create_promotion(
            console.workspace, console.staff, name=data["name"], mode=data["mode"], tiers=parse_tiers(data["tiers"]),
            cap=data["cap"], stacks_with_coupons=data["stacks_with_coupons"],
        )
    except ValidationFailed as exc:
        form.add_error(None, exc.message)
        return _promotions_page(request, console, form, status=422)
    messages.success(request, _("Promotion “%(name)s” created.") % {"name": promotion.name})
    return HttpResponseRedirect(reverse("console:commerce_promotions"))


# ---------------------------------------------------------------- orders


def _day(raw: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(raw.strip())
    except ValueError:
        return None


@require_GET
@console_view()
def commerce_orders(request: HttpRequest, console: Console) -> HttpResponse:
    """Orders the staff member may see (agents: their own contacts'), filtered by status,
    store and placing day (in the workspace's time zone)."""
    orders = visible_orders(console.workspace, console.staff).select_related("contact", "staff")
    status = request.GET.get("status", "").strip()
    store = request.GET.get("store", "").strip()
    start, end = _day(request.GET.get("from", "")), _day(request.GET.get("to", ""))
    if status in OrderStatus.values:
        orders = orders.filter(status=status)
    if store:
        orders = orders.filter(store=store)
    tz = console.workspace.tz
    if start is not None:
        orders = orders.filter(placed_at__gte=dt.datetime.combine(start, dt.time.min, tzinfo=tz))
    if end is not None:
        orders = orders.filter(placed_at__lt=dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=tz))
    page = Paginator(orders.order_by("-placed_at", "-id"), PAGE_SIZE).get_page(request.GET.get("page"))
    stores = sorted(s for s in visible_orders(console.workspace, console.staff).order_by().values_list("store", flat=True).distinct() if s)
    query = {k: v for k, v in {"status": status, "store": store, "from": request.GET.get("from", ""), "to": request.GET.get("to", "")}.items() if v}
    return render(
        request,
        "console/commerce/orders.html",
        {
            "page": page,
            "page_links": page_numbers(page.number, page.paginator.num_pages),
            "querystring": urlencode(query),
            "statuses": OrderStatus.choices,
            "stores": stores,
            "filters": {"status": status, "store": store, "from": request.GET.get("from", ""), "to": request.GET.get("to", "")},
        },
    )


def _visible_order(console: Console, order_id: int) -> Order:
    return visible_orders(console.workspace, console.staff).select_related("contact", "staff", "coupon").get_in_workspace(
        console.workspace, pk=order_id
    )


@require_GET
@console_view()
def commerce_order(request: HttpRequest, console: Console, order_id: int) -> HttpResponse:
    order = _visible_order(console, order_id)
    return render(
        request,
        "console/commerce/order_detail.html",
        {
            "order": order,
            "lines": list(order.lines.all()),
            "refunds": list(order.refunds.select_related("actor")),
            "refundable": order.paid_amount - order.refunded_amount,
            "may_refund": console.can(Perm.EDIT_CONTACTS) and order.status != OrderStatus.CANCELLED and order.net_amount > 0,
            "now": timezone.now(),
        },
    )


@require_POST
@console_view(Perm.EDIT_CONTACTS)
def commerce_order_refund(request: HttpRequest, console: Console, order_id: int) -> HttpResponse:
    order = _visible_order(console, order_id)
    refund = do_refund_order(order, console.staff, request.POST.get("amount", ""), request.POST.get("reason", ""))
    messages.success(request, _("Refunded ¥%(amount)s.") % {"amount": refund.amount})
    return HttpResponseRedirect(reverse("console:commerce_order", args=[order.pk]))
