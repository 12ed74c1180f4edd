"""Tags admin (标签管理): tag groups, tags with their contact counts, and tag rules
(自动打标签)."""

from __future__ import annotations

import json

from django.contrib import messages
from django.db.models import Count, Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from siyu.accounts.permissions import Perm
from siyu.console.forms import TagRuleForm
from siyu.console.workspace import Console, back, console_view
from siyu.contacts.actions import do_create_tag, do_create_tag_group, do_delete_tag, do_rename_tag
from siyu.contacts.models import ContactTag, Tag, TagGroup, TagKind, TagRule
from siyu.contacts.rules import do_create_tag_rule, do_update_tag_rule
from siyu.core.errors import ValidationFailed

#: PostgreSQL's jsonb does not keep key order; show conditions the way they are written.
_CONDITION_KEYS = ("field", "op", "value", "event", "min_count", "max_count", "within_days", "has_tag", "lacks_tag")


def _in_reading_order(condition: dict) -> dict:
    known = {k: condition[k] for k in _CONDITION_KEYS if k in condition}
    return {**known, **{k: v for k, v in condition.items() if k not in known}}


def _tags_page(request: HttpRequest, console: Console, *, rule_form: TagRuleForm | None = None, status: int = 200) -> HttpResponse:
    tags = Tag.objects.in_workspace(console.workspace).annotate(contact_count=Count("contact_links")).order_by("id")
    groups = (
        TagGroup.objects.in_workspace(console.workspace)
        .prefetch_related(Prefetch("tags", queryset=tags, to_attr="tag_rows"))
        .order_by("kind", "id")
    )
    rules = list(TagRule.objects.in_workspace(console.workspace).select_related("tag", "tag__group").order_by("id"))
    for rule in rules:
        rule.conditions_json = json.dumps([_in_reading_order(c) for c in rule.conditions], ensure_ascii=False)  # type: ignore[attr-defined]
    return render(
        request,
        "console/tags/index.html",
        {
            "groups": list(groups),
            "kinds": TagKind.choices,
            "rules": rules,
            "rule_form": rule_form or TagRuleForm(workspace=console.workspace),
            "rule_form_open": rule_form is not None,
            "rule_links": ContactTag.objects.in_workspace(console.workspace).filter(rule__isnull=False).count(),
        },
        status=status,
    )


@require_GET
@console_view()
def tag_index(request: HttpRequest, console: Console) -> HttpResponse:
    return _tags_page(request, console)


@require_POST
@console_view(Perm.MANAGE_TAGS)
def tag_group_create(request: HttpRequest, console: Console) -> HttpResponse:
    group = do_create_tag_group(
        console.workspace,
        console.staff,
        name=request.POST.get("name", ""),
        kind=request.POST.get("kind", TagKind.BUSINESS),
        exclusive=request.POST.get("exclusive") == "on",
    )
    messages.success(request, _("Tag group “%(name)s” created.") % {"name": group.name})
    return back(request, reverse("console:tags"))


@require_POST
@console_view(Perm.MANAGE_TAGS)
def tag_create(request: HttpRequest, console: Console) -> HttpResponse:
    group = TagGroup.objects.get_in_workspace(console.workspace, pk=request.POST.get("group", ""))
    tag = do_create_tag(console.workspace, console.staff, group=group, name=request.POST.get("name", ""))
    messages.success(request, _("Tag “%(tag)s” created.") % {"tag": tag})
    return back(request, reverse("console:tags"))


@require_POST
@console_view(Perm.MANAGE_TAGS)
def tag_rename(request: HttpRequest, console: Console, tag_id: int) -> HttpResponse:
    tag = Tag.objects.select_related("group").get_in_workspace(console.workspace, pk=tag_id)
    old = str(tag)
    do_rename_tag(tag, console.staff, name=request.POST.get("name", ""))
    messages.success(request, _("Tag “%(old)s” renamed to “%(new)s”.") % {"old": old, "new": tag.name})
    return back(request, reverse("console:tags"))


@require_http_methods(["GET", "POST"])
@console_view(Perm.MANAGE_TAGS)
def tag_delete(request: HttpRequest, console: Console, tag_id: int) -> HttpResponse:
    """GET asks for confirmation (with the number of contacts that lose the tag)."""
    tag = Tag.objects.select_related("group").get_in_workspace(console.workspace, pk=tag_id)
    if request.method == "GET":
        holders = ContactTag.objects.filter(tag=tag).count()
        rules = list(TagRule.objects.in_workspace(console.workspace).filter(tag=tag))
        return render(request, "console/tags/confirm_delete.html", {"tag": tag, "holders": holders, "rules": rules})
    name = str(tag)
    do_delete_tag(tag, console.staff)
    messages.success(request, _("Tag “%(tag)s” deleted.") % {"tag": name})
    return back(request, reverse("console:tags"))


@require_POST
@console_view(Perm.MANAGE_RULES)
def rule_create(request: HttpRequest, console: Console) -> HttpResponse:
    form = TagRuleForm(request.POST, workspace=console.workspace)
    if form.is_valid():
        data = form.cleaned_data
        try:
            tag = Tag.objects.get_in_workspace(console.workspace, pk=data["tag"])
            rule = do_create_tag_rule(
                console.workspace,
                console.staff,
                name=data["name"],
                tag=tag,
                conditions=data["conditions"],
                match=data["match"],
                remove_when_unmet=data["remove_when_unmet"],
            )
        except ValidationFailed as exc:
            form.add_error("conditions", exc.message)
        else:
            messages.success(request, _("Tag rule “%(name)s” created; it runs over all contacts now.") % {"name": rule.name})
            return back(request, reverse("console:tags") + "#rules")
    return _tags_page(request, console, rule_form=form, status=422)


@require_POST
@console_view(Perm.MANAGE_RULES)
def rule_toggle(request: HttpRequest, console: Console, rule_id: int) -> HttpResponse:
    rule = TagRule.objects.get_in_workspace(console.workspace, pk=rule_id)
    active = request.POST.get("active") == "1"
    do_update_tag_rule(rule, console.staff, is_active=active)
    text = _("Tag rule “%(name)s” activated.") if active else _("Tag rule “%(name)s” deactivated.")
    messages.success(request, text % {"name": rule.name})
    return back(request, reverse("console:tags") + "#rules")
