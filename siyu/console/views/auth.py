"""Login, logout and picking the workspace to work in."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from siyu.console.forms import LoginForm
from siyu.console.workspace import Console, choose_workspace, console_view, error_page, memberships, safe_next
from siyu.core.errors import NotFound


class LoginView(auth_views.LoginView):
    template_name = "console/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    next_page = "console:login"


@require_http_methods(["GET", "POST"])
def workspaces(request: HttpRequest) -> HttpResponse:
    """GET: the picker. POST ``workspace=<id>``: switch, then go to ``next``."""
    if not request.user.is_authenticated:
        return auth_views.redirect_to_login(request.get_full_path())
    home = reverse("console:contacts")
    if request.method == "POST":
        try:
            choose_workspace(request, request.POST.get("workspace", ""))
        except NotFound as exc:
            return error_page(request, exc, 404)
        # A page of the old workspace (a contact id) means nothing in the new one.
        return HttpResponseRedirect(safe_next(request, request.POST.get("next"), home))
    rows = memberships(request)
    return render(request, "console/workspaces.html", {"rows": rows, "next": safe_next(request, request.GET.get("next"), home)})


@console_view()
def home(request: HttpRequest, console: Console) -> HttpResponse:
    return HttpResponseRedirect(reverse("console:contacts"))
