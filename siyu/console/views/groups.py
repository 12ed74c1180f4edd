"""Groups (社群): list, creation with positioning (定位), detail with members and roles."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from siyu.accounts.permissions import Perm
from siyu.communities.actions import do_create_group, do_set_member_role
from siyu.communities.models import Group, GroupType, MemberRole, Membership
from siyu.communities.queries import groups_with_counts, open_members
from siyu.console.forms import GroupForm
from siyu.console.workspace import Console, back, console_view, page_numbers
from siyu.contacts.queries import visible_contacts
from siyu.core.errors import ValidationFailed

PAGE_SIZE = 50


@require_GET
@console_view(Perm.VIEW_GROUPS)
def group_list(request: HttpRequest, console: Console) -> HttpResponse:
    group_type = request.GET.get("type", "")
    qs = groups_with_counts(console.workspace).select_related("owner").order_by("-created_at", "-id")
    if group_type in GroupType.values:
        qs = qs.filter(group_type=group_type)
    else:
        group_type = ""
    if request.GET.get("archived") != "1":
        qs = qs.filter(archived_at__isnull=True)
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    keep = [(k, v) for k, v in (("type", group_type), ("archived", request.GET.get("archived", ""))) if v]
    return render(
        request,
        "console/groups/list.html",
        {
            "page": page,
            "page_links": page_numbers(page.number, page.paginator.num_pages),
            "querystring": urlencode(keep),
            "group_type": group_type,
            "show_archived": request.GET.get("archived") == "1",
            "types": GroupType.choices,
        },
    )


@require_http_methods(["GET", "POST"])
@console_view(Perm.MANAGE_GROUPS)
def group_create(request: HttpRequest, console: Console) -> HttpResponse:
    if request.method == "GET":
        form = GroupForm(workspace=console.workspace)
        return render(request, "console/groups/form.html", {"form": form})
    form = GroupForm(request.POST, workspace=console.workspace)
    if form.is_valid():
        values = form.values()
        try:
            group = do_create_group(console.workspace, console.staff, name=values.pop("name"), **values)
        except ValidationFailed as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, _("Group “%(name)s” created.") % {"name": group.name})
            return HttpResponseRedirect(reverse("console:group", args=[group.pk]))
    return render(request, "console/groups/form.html", {"form": form}, status=422)


@require_GET
@console_view(Perm.VIEW_GROUPS)
def group_detail(request: HttpRequest, console: Console, group_id: int) -> HttpResponse:
    group = Group.objects.select_related("owner").get_in_workspace(console.workspace, pk=group_id)
    members = list(open_members(group))
    group.member_count = len(members)  # type: ignore[attr-defined]  # as in the list, which annotates it
    # Agents see the group's members but may open only the contacts they own.
    linkable = set(visible_contacts(console.workspace, console.staff).filter(pk__in=[m.contact_id for m in members]).values_list("pk", flat=True))
    return render(
        request,
        "console/groups/detail.html",
        {"group": group, "members": members, "linkable": linkable, "roles": MemberRole.choices, "admins": list(group.admins.all())},
    )


@require_POST
@console_view(Perm.MANAGE_GROUPS)
def member_role(request: HttpRequest, console: Console, group_id: int, membership_id: int) -> HttpResponse:
    membership = (
        Membership.objects.select_related("contact", "group", "group__workspace")
        .filter(group_id=group_id)
        .get_in_workspace(console.workspace, pk=membership_id)
    )
    role = request.POST.get("role", "")
    do_set_member_role(membership, console.staff, role=role)
    messages.success(
        request, _("%(name)s is now %(role)s.") % {"name": membership.contact.name, "role": membership.get_role_display()}
    )
    return back(request, reverse("console:group", args=[group_id]))
