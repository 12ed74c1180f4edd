"""Staff admin (员工): who works in the workspace, with which role; API tokens."""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from siyu.accounts.actions import do_create_api_token, do_create_staff, do_update_staff
from siyu.accounts.models import Role, Staff
from siyu.accounts.permissions import Perm
from siyu.console.forms import StaffAddForm
from siyu.console.workspace import Console, back, console_view
from siyu.core.errors import ValidationFailed


def _staff_page(
    request: HttpRequest, console: Console, *, form: StaffAddForm | None = None, new_token: dict[str, str] | None = None, status: int = 200
) -> HttpResponse:
    rows = (
        Staff.objects.in_workspace(console.workspace)
        .select_related("user")
        .annotate(live_tokens=Count("tokens", filter=Q(tokens__revoked_at__isnull=True)), contact_count=Count("contacts", distinct=True))
        .order_by("-is_active", "role", "display_name")
    )
    response = render(
        request,
        "console/staff/list.html",
        {
            "rows": list(rows),
            "roles": Role.choices,
            "form": form or StaffAddForm(),
            "form_open": form is not None,
            "new_token": new_token,
        },
        status=status,
    )
    if new_token:
        # The secret is in this page only; no cache may keep it.
        response["Cache-Control"] = "no-store"
    return response


@require_GET
@console_view()
def staff_list(request: HttpRequest, console: Console) -> HttpResponse:
    return _staff_page(request, console)


@require_POST
@console_view(Perm.MANAGE_STAFF)
def staff_create(request: HttpRequest, console: Console) -> HttpResponse:
    form = StaffAddForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            staff = do_create_staff(
                console.workspace,
                console.staff,
                email=data["email"],
                display_name=data["display_name"],
                role=data["role"],
                password=data["password"] or None,
                store=data["store"],
            )
        except ValidationFailed as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, _("%(email)s added as %(role)s.") % {"email": staff.email, "role": staff.get_role_display()})
            return back(request, reverse("console:staff"))
    return _staff_page(request, console, form=form, status=422)


def _member(console: Console, staff_id: int) -> Staff:
    return Staff.objects.select_related("user", "workspace").get_in_workspace(console.workspace, pk=staff_id)


@require_POST
@console_view(Perm.MANAGE_STAFF)
def staff_role(request: HttpRequest, console: Console, staff_id: int) -> HttpResponse:
    member = _member(console, staff_id)
    do_update_staff(member, console.staff, role=request.POST.get("role", ""))
    messages.success(request, _("%(name)s is now %(role)s.") % {"name": member.display_name, "role": member.get_role_display()})
    return back(request, reverse("console:staff"))


@require_POST
@console_view(Perm.MANAGE_STAFF)
def staff_active(request: HttpRequest, console: Console, staff_id: int) -> HttpResponse:
    member = _member(console, staff_id)
    active = request.POST.get("active") == "1"
    do_update_staff(member, console.staff, is_active=active)
    text = _("%(name)s reactivated.") if active else _("%(name)s deactivated; their API tokens are revoked.")
    messages.success(request, text % {"name": member.display_name})
    return back(request, reverse("console:staff"))


@require_POST
@console_view(Perm.MANAGE_STAFF)
def staff_token(request: HttpRequest, console: Console, staff_id: int) -> HttpResponse:
    member = _member(console, staff_id)
    token, secret = do_create_api_token(member, console.staff, name=request.POST.get("name", "").strip() or "console")
    return _staff_page(request, console, new_token={"secret": secret, "email": member.email, "name": token.name})
