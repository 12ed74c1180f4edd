"""Moderation (风控): the log of cases the group bot's policy produced with undo (申诉/撤销),
the word lists (敏感词/竞品词库), the workspace policy (分级处理) and a dry-run check."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from siyu.accounts.permissions import Perm
from siyu.channels.models import ChannelAccount
from siyu.communities.models import Group
from siyu.console.workspace import Console, back, console_view, page_numbers
from siyu.contacts.queries import get_visible_contact, get_visible_contacts, visible_contacts
from siyu.core.errors import ValidationFailed
from siyu.core.models import Workspace
from siyu.core.phones import mask_digit_runs
from siyu.moderation.actions import (
    DETECTORS,
    check_message,
    do_blacklist_contact,
    do_blacklist_contacts,
    do_blacklist_identities,
    do_lift_blacklist,
    do_lift_blacklist_entries,
    do_save_word_list,
    do_set_policy,
    do_undo_case,
    parse_channel_ids,
)
from siyu.moderation.models import ModerationCase, ModerationPolicy, WordList, WordListKind
from siyu.moderation.policy import DEFAULT_ACTIONS, Policy, Verdict
from siyu.moderation.queries import find_blacklist, get_visible_entries, visible_blacklist

PAGE_SIZE = 50
#: what a case may have done, in the order the page lists it
VERDICTS = [v.value for v in Verdict if v != Verdict.ALLOW]


def _visible_cases(console: Console) -> Any:
    """Agents see only the cases about their own contacts, as in the API."""
    qs = ModerationCase.objects.in_workspace(console.workspace)
    if not console.can(Perm.VIEW_ALL_CONTACTS):
        qs = qs.filter(contact__in=visible_contacts(console.workspace, console.staff))
    return qs


def _groups(workspace: Workspace) -> list[Group]:
    return list(Group.objects.in_workspace(workspace).order_by("name", "id"))


def _applied(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each thing a case did (or its undo restored), as a row the template can link."""
    rows = []
    for entry in entries:
        if "outbox" in entry:
            rows.append({"kind": "outbox", "id": entry["outbox"], "command": entry.get("command", ""), "undo": entry.get("undo", False)})
        elif "staff_task" in entry:
            rows.append({"kind": "task", "id": entry["staff_task"], "command": entry.get("command", ""), "reason": entry.get("reason", ""),
                         "undo": entry.get("undo", False)})
        elif "membership_closed" in entry:
            rows.append({"kind": "membership_closed", "id": entry["membership_closed"], "undo": False})
        elif "membership" in entry:
            rows.append({"kind": "membership_restored", "id": entry["membership"], "undo": True})
        elif "blacklisted" in entry:
            rows.append({"kind": "blacklisted", "id": entry["blacklisted"], "undo": False})
    return rows


@require_GET
@console_view(Perm.VIEW_GROUPS)
def case_list(request: HttpRequest, console: Console) -> HttpResponse:
    qs = _visible_cases(console).select_related("group", "contact")
    verdict = request.GET.get("verdict", "")
    group = request.GET.get("group", "").strip()
    state = request.GET.get("state", "")
    if verdict in VERDICTS:
        qs = qs.filter(verdict=verdict)
    else:
        verdict = ""
    if group.isdigit():
        qs = qs.filter(group_id=int(group))
    else:
        group = ""
    if state == "open":
        qs = qs.filter(undone_at__isnull=True)
    elif state == "undone":
        qs = qs.filter(undone_at__isnull=False)
    else:
        state = ""
    page = Paginator(qs.order_by("-created_at", "-id"), PAGE_SIZE).get_page(request.GET.get("page"))
    sees_pii = console.can(Perm.VIEW_PII)
    cases = list(page.object_list)
    linkable = set(
        visible_contacts(console.workspace, console.staff).filter(pk__in=[c.contact_id for c in cases if c.contact_id]).values_list("pk", flat=True)
    )
    rows = [
        {
            "case": case,
            # The evidence of the phone detector is the number itself, so it is masked too.
            "text": case.text if sees_pii else mask_digit_runs(case.text),
            "reasons": [
                {"detector": r.get("detector", ""), "evidence": str(r.get("evidence", "")) if sees_pii else mask_digit_runs(str(r.get("evidence", "")))}
                for r in case.reasons
            ],
            "applied": _applied(case.applied),
            "contact_link": case.contact_id in linkable,
        }
        for case in cases
    ]
    return render(
        request,
        "console/moderation/cases.html",
        {
            "section": "moderation", "tab": "cases", "rows": rows, "page": page,
            "page_links": page_numbers(page.number, page.paginator.num_pages),
            "querystring": urlencode([(k, v) for k, v in (("verdict", verdict), ("group", group), ("state", state)) if v]),
            "verdict": verdict, "group": group, "state": state, "verdicts": VERDICTS, "groups": _groups(console.workspace),
        },
    )


@require_POST
@console_view(Perm.MANAGE_GROUPS)
def case_undo(request: HttpRequest, console: Console, case_id: int) -> HttpResponse:
    case = _visible_cases(console).select_related("group__workspace", "group__channel_account", "contact").get_in_workspace(
        console.workspace, pk=case_id
    )
    do_undo_case(case, console.staff, note=request.POST.get("note", "").strip())
    messages.success(request, _("Case #%(id)s undone: the strike is cleared.") % {"id": case.pk})
    return back(request, reverse("console:moderation"))


@require_GET
@console_view(Perm.VIEW_GROUPS)
def blacklist(request: HttpRequest, console: Console) -> HttpResponse:
    """The blacklist (黑名单): who is banned from every group, why, since when; lift."""
    state = request.GET.get("state", "")
    if state not in ("lifted", "all"):
        state = ""
    q = request.GET.get("q", "").strip()[:100]
    qs = find_blacklist(console.workspace, console.staff, q=q, state=state or "standing").select_related("contact", "case")
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    linkable = set(visible_contacts(console.workspace, console.staff).filter(pk__in=[e.contact_id for e in page.object_list])
                   .values_list("pk", flat=True))
    accounts = list(ChannelAccount.objects.in_workspace(console.workspace).order_by("name")) if console.can(Perm.MANAGE_GROUPS) else []
    return render(request, "console/moderation/blacklist.html", {
        "section": "moderation", "tab": "blacklist", "page": page, "state": state, "linkable": linkable, "accounts": accounts,
        "page_links": page_numbers(page.number, page.paginator.num_pages), "q": q,
        "querystring": urlencode({k: v for k, v in (("state", state), ("q", q)) if v}),
    })


@require_POST
@console_view(Perm.MANAGE_GROUPS)
def blacklist_lift(request: HttpRequest, console: Console, entry_id: int) -> HttpResponse:
    entry = visible_blacklist(console.workspace, console.staff).select_related("contact").get_in_workspace(console.workspace, pk=entry_id)
    do_lift_blacklist(entry, console.staff, note=request.POST.get("note", ""))
    messages.success(request, _("%(name)s is no longer blacklisted: they may join groups again.") % {"name": entry.contact.name})
    return back(request, reverse("console:moderation_blacklist"))


@require_POST
@console_view(Perm.MANAGE_GROUPS)
def blacklist_bulk_lift(request: HttpRequest, console: Console) -> HttpResponse:
    """Lift the ticked entries of the blacklist tab at once."""
    fallback = reverse("console:moderation_blacklist")
    ids = [int(v) for v in request.POST.getlist("entry") if v.isdigit()]
    if not ids:
        messages.warning(request, _("Select at least one entry."))
        return back(request, fallback)
    entries = get_visible_entries(console.workspace, console.staff, ids)
    lifted = do_lift_blacklist_entries(entries, console.staff, note=request.POST.get("note", ""))
    messages.success(request, _("Lifted %(count)d of %(selected)d selected entries: those contacts may join groups again.")
                     % {"count": len(lifted), "selected": len(entries)})
    return back(request, fallback)


@require_POST
@console_view(Perm.MANAGE_GROUPS)
def blacklist_by_channel_id(request: HttpRequest, console: Console) -> HttpResponse:
    """Blacklist people by the id they use on a channel account, pasted one per line
    (按渠道账号拉黑): known spammers are out the moment they join any group."""
    fallback = reverse("console:moderation_blacklist")
    people = parse_channel_ids(request.POST.get("ids", ""))
    if not people:
        messages.warning(request, _("Paste at least one channel id."))
        return back(request, fallback)
    account = ChannelAccount.objects.get_in_workspace(console.workspace, pk=request.POST.get("account", ""))
    created, existing = do_blacklist_identities(account, console.staff, people, reason=request.POST.get("reason", ""))
    messages.success(request, _("Blacklisted %(count)d channel ids (%(already)d were already): they are removed the moment they join or speak in any group.")
                     % {"count": len(created), "already": len(existing)})
    return back(request, fallback)


@require_POST
@console_view(Perm.MANAGE_GROUPS)
def contacts_bulk_blacklist(request: HttpRequest, console: Console) -> HttpResponse:
    """Blacklist the contacts ticked on the contact list (批量拉黑)."""
    fallback = reverse("console:contacts")
    ids = [int(v) for v in request.POST.getlist("contact") if v.isdigit()]
    if not ids:
        messages.warning(request, _("Select at least one contact."))
        return back(request, fallback)
    created, existing = do_blacklist_contacts(get_visible_contacts(console.workspace, console.staff, ids), console.staff,
                                              reason=request.POST.get("reason", ""))
    messages.success(request, _("Blacklisted %(count)d contacts (%(already)d were already): removed from every group, and again whenever they join one.")
                     % {"count": len(created), "already": len(existing)})
    return back(request, fallback)


@require_POST
@console_view(Perm.MANAGE_GROUPS)
def contact_blacklist(request: HttpRequest, console: Console, contact_id: int) -> HttpResponse:
    contact = get_visible_contact(console.workspace, console.staff, contact_id)
    do_blacklist_contact(contact, console.staff, reason=request.POST.get("reason", ""))
    messages.success(request, _("%(name)s is blacklisted: removed from every group, and again whenever they join one.") % {"name": contact.name})
    return HttpResponseRedirect(reverse("console:contact", args=[contact.pk]))


def _words(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _word_list_page(request: HttpRequest, console: Console, form: dict[str, Any], *, status: int = 200, error: str = "") -> HttpResponse:
    lists = list(WordList.objects.in_workspace(console.workspace).select_related("group").order_by("name", "id"))
    return render(
        request,
        "console/moderation/word_lists.html",
        {
            "section": "moderation", "tab": "word_lists", "lists": lists, "form": form, "error": error,
            "kinds": WordListKind.choices, "groups": _groups(console.workspace),
        },
        status=status,
    )


@require_http_methods(["GET", "POST"])
@console_view(Perm.VIEW_GROUPS)
def word_lists(request: HttpRequest, console: Console) -> HttpResponse:
    if request.method == "GET":
        form: dict[str, Any] = {"name": "", "kind": WordListKind.SENSITIVE, "group": "", "words": "", "is_active": True, "editing": False}
        edit = request.GET.get("edit", "")
        if edit:
            row = WordList.objects.get_in_workspace(console.workspace, pk=edit)
            form = {"name": row.name, "kind": row.kind, "group": str(row.group_id or ""), "words": "\n".join(row.words),
                    "is_active": row.is_active, "editing": True, "id": row.pk}
        return _word_list_page(request, console, form)
    console.require(Perm.MANAGE_GROUPS)
    group_id = request.POST.get("group", "").strip()
    form = {
        "name": request.POST.get("name", "").strip(), "kind": request.POST.get("kind", ""), "group": group_id,
        "words": request.POST.get("words", ""), "is_active": request.POST.get("is_active") == "on",
        "editing": request.POST.get("editing") == "1",
    }
    group = Group.objects.get_in_workspace(console.workspace, pk=group_id) if group_id else None
    try:
        row = do_save_word_list(
            console.workspace, console.staff, name=form["name"], words=_words(form["words"]), kind=form["kind"], group=group,
            is_active=form["is_active"],
        )
    except ValidationFailed as exc:
        return _word_list_page(request, console, form, status=422, error=exc.message)
    messages.success(request, _("Word list “%(name)s” saved with %(count)s words.") % {"name": row.name, "count": len(row.words)})
    return HttpResponseRedirect(reverse("console:moderation_word_lists"))


def _lines(values: Any) -> str:
    return "\n".join(str(v) for v in values)


def _policy_form(config: dict[str, Any]) -> dict[str, Any]:
    """The stored config as the form shows it: every detector with its effective verdict."""
    policy = Policy.from_config(config)
    return {
        "actions": [(d, policy.actions[d].value, DEFAULT_ACTIONS[d].value) for d in sorted(DETECTORS)],
        "window_days": policy.escalation.window_days, "remove_after": policy.escalation.remove_after,
        "blacklist_after": policy.escalation.blacklist_after, "vip_tags": _lines(policy.vip_tags),
        "own_domains": _lines(policy.own_domains), "own_qr_prefixes": _lines(policy.own_qr_prefixes),
        "flood_count": policy.flood_count, "flood_window_seconds": policy.flood_window_seconds,
    }


def _whole(request: HttpRequest, name: str, label: str) -> int:
    raw = request.POST.get(name, "").strip()
    try:
        value = int(raw)
    except ValueError:
        raise ValidationFailed(_("%(field)s must be a whole number") % {"field": label}, code="invalid_policy") from None
    if value < 0:
        raise ValidationFailed(_("%(field)s must be a whole number") % {"field": label}, code="invalid_policy")
    return value


def _posted_policy(request: HttpRequest) -> dict[str, Any]:
    """The config the form describes. Only verdicts that differ from the built-in default
    are stored, so a later change of a default reaches workspaces that never chose."""
    actions = {}
    for detector in sorted(DETECTORS):
        chosen = request.POST.get(f"action__{detector}", DEFAULT_ACTIONS[detector].value)
        if chosen != DEFAULT_ACTIONS[detector].value:
            actions[detector] = chosen
    return {
        "actions": actions,
        "escalation": {
            "window_days": _whole(request, "window_days", _("Strike window (days)")),
            "remove_after": _whole(request, "remove_after", _("Remove after strikes")),
            "blacklist_after": _whole(request, "blacklist_after", _("Blacklist after strikes")),
        },
        "vip_tags": _words(request.POST.get("vip_tags", "")),
        "own_domains": _words(request.POST.get("own_domains", "")),
        "own_qr_prefixes": _words(request.POST.get("own_qr_prefixes", "")),
        "flood_count": _whole(request, "flood_count", _("Flood: messages")),
        "flood_window_seconds": _whole(request, "flood_window_seconds", _("Flood: window (seconds)")),
    }


def _policy_page(request: HttpRequest, console: Console, form: dict[str, Any], *, status: int = 200, error: str = "",
                 check: dict[str, Any] | None = None) -> HttpResponse:
    return render(
        request,
        "console/moderation/policy.html",
        {
            "section": "moderation", "tab": "policy", "form": form, "error": error, "check": check,
            "verdicts": [v.value for v in Verdict], "groups": _groups(console.workspace),
        },
        status=status,
    )


def _stored_config(workspace: Workspace) -> dict[str, Any]:
    row = ModerationPolicy.objects.in_workspace(workspace).filter(group__isnull=True).first()
    return dict(row.config) if row else {}


@require_http_methods(["GET", "POST"])
@console_view(Perm.VIEW_GROUPS)
def policy(request: HttpRequest, console: Console) -> HttpResponse:
    if request.method == "GET":
        return _policy_page(request, console, _policy_form(_stored_config(console.workspace)))
    console.require(Perm.MANAGE_GROUPS)
    try:
        config = _posted_policy(request)
        do_set_policy(console.workspace, console.staff, config)
    except ValidationFailed as exc:
        # Show what the operator typed next to the message, not the stored policy.
        form = _policy_form({})
        form["actions"] = [(d, request.POST.get(f"action__{d}", cur), default) for d, cur, default in form["actions"]]
        form.update({k: request.POST.get(k, "") for k in form if k != "actions"})
        return _policy_page(request, console, form, status=422, error=exc.message)
    messages.success(request, _("Moderation policy saved."))
    return HttpResponseRedirect(reverse("console:moderation_policy"))


@require_POST
@console_view(Perm.VIEW_GROUPS)
def check(request: HttpRequest, console: Console) -> HttpResponse:
    """Dry run: the verdict the policy would give a text. Writes nothing."""
    text = request.POST.get("text", "")[:10000]
    group_id = request.POST.get("group", "").strip()
    group = Group.objects.get_in_workspace(console.workspace, pk=group_id) if group_id else None
    decision = check_message(text, workspace_id=console.workspace.pk, group_id=group.pk if group else None)
    result = {"text": text, "group": group_id, **decision.as_dict(), "note": decision.note}
    return _policy_page(request, console, _policy_form(_stored_config(console.workspace)), check=result)
