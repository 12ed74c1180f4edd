"""Contacts (客户): the filtered list, bulk tagging, export, and the contact page with its
timeline (客户动态)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.http import content_disposition_header, urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from siyu.accounts.permissions import Perm
from siyu.communities.models import Membership
from siyu.console.forms import ContactEditForm, staff_choices, tag_choices
from siyu.console.views.commerce import value_panel
from siyu.console.workspace import Console, back, console_view, page_numbers
from siyu.contacts.actions import (
    check_can_edit,
    do_merge_contacts,
    do_set_consent,
    do_tag_contacts,
    do_untag_contacts,
    do_update_contact,
)
from siyu.contacts.events import EventKind
from siyu.contacts.models import (
    Consent,
    ConsentPurpose,
    Contact,
    ContactEvent,
    ContactTag,
    LifecycleStage,
    ProfileField,
    Tag,
    TagSource,
)
from siyu.contacts.queries import (
    contact_tags,
    filter_contacts,
    get_visible_contact,
    get_visible_contacts,
    resolve_tags,
    visible_contacts,
)
from siyu.contacts.rules import explain_contact
from siyu.core.errors import NotFound, ValidationFailed
from siyu.moderation.models import BlacklistEntry

PAGE_SIZE = 50
TIMELINE_LIMIT = 200
TAG_PARAMS = ("tags_all", "tags_any", "tags_none")


@dataclass
class ContactFilters:
    """The list filters as they arrive in the query string (shared by list and export)."""

    tags_all: list[str] = field(default_factory=list)
    tags_any: list[str] = field(default_factory=list)
    tags_none: list[str] = field(default_factory=list)
    stage: str = ""
    owner: str = ""
    channel: str = ""
    q: str = ""

    @classmethod
    def from_query(cls, query: QueryDict) -> ContactFilters:
        def tags(key: str) -> list[str]:
            return [v.strip() for v in query.getlist(key) if v.strip()]

        return cls(
            tags_all=tags("tags_all"),
            tags_any=tags("tags_any"),
            tags_none=tags("tags_none"),
            stage=query.get("stage", "").strip(),
            owner=query.get("owner", "").strip(),
            channel=query.get("channel", "").strip(),
            q=query.get("q", "").strip(),
        )

    def owner_id(self) -> int | None:
        if not self.owner:
            return None
        try:
            return int(self.owner)
        except ValueError as exc:
            raise ValidationFailed(_("owner must be a staff id, got %(value)r") % {"value": self.owner}, code="invalid_owner") from exc

    def as_kwargs(self) -> dict[str, Any]:
        """The filters for ``filter_contacts`` and ``export_contacts``."""
        return {
            "tags_all": self.tags_all,
            "tags_any": self.tags_any,
            "tags_none": self.tags_none,
            "stage": self.stage or None,
            "owner_id": self.owner_id(),
            "channel": self.channel or None,
            "q": self.q or None,
        }

    def querystring(self) -> str:
        pairs: list[tuple[str, str]] = [(key, value) for key in TAG_PARAMS for value in getattr(self, key)]
        pairs += [(key, getattr(self, key)) for key in ("stage", "owner", "channel", "q") if getattr(self, key)]
        return urlencode(pairs)

    @property
    def active(self) -> bool:
        return bool(self.querystring())


def _with_tags(qs: QuerySet[Contact]) -> QuerySet[Contact]:
    return qs.select_related("owner").prefetch_related(
        Prefetch("tag_links", queryset=ContactTag.objects.select_related("tag", "tag__group").order_by("tag__group_id", "tag_id"))
    )


def _channels(console: Console) -> list[str]:
    rows = visible_contacts(console.workspace, console.staff).exclude(source_channel="").values_list("source_channel", flat=True)
    return sorted(set(rows.order_by().distinct()))


def _chosen_tags(console: Console, refs: list[str]) -> dict[str, Any]:
    """The selected tags of one filter mode as checkbox ids and chip names; a reference
    by name (``?tags_all=VIP`` in a shared link) ticks the same box as its id."""
    try:
        tags = resolve_tags(console.workspace, refs)
    except ValidationFailed:
        return {"ids": set(refs), "names": refs}
    return {"ids": {str(t.pk) for t in tags}, "names": [t.name for t in tags]}


@require_GET
@console_view()
def contact_list(request: HttpRequest, console: Console) -> HttpResponse:
    filters = ContactFilters.from_query(request.GET)
    error = ""
    try:
        qs = filter_contacts(visible_contacts(console.workspace, console.staff), console.workspace, **filters.as_kwargs())
        total = qs.count()
    except ValidationFailed as exc:
        # An unknown tag in a shared link is the operator's typo, not a server error.
        error, qs, total = exc.message, Contact.objects.none(), 0
    page = Paginator(_with_tags(qs), PAGE_SIZE).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    sees_pii = console.can(Perm.VIEW_PII)
    selected = {key: _chosen_tags(console, getattr(filters, key)) for key in TAG_PARAMS}
    context: dict[str, Any] = {
        "filters": filters,
        "querystring": filters.querystring(),
        "error": error,
        "page": page,
        "page_links": page_numbers(page.number, page.paginator.num_pages),
        "total": total,
        "rows": [{"contact": c, "phone": (c.phone if sees_pii else c.phone_masked)} for c in rows],
        "tag_groups": tag_choices(console.workspace),
        "tag_modes": [
            ("tags_all", gettext_lazy("Has all of"), selected["tags_all"]),
            ("tags_any", gettext_lazy("Has any of"), selected["tags_any"]),
            ("tags_none", gettext_lazy("Has none of"), selected["tags_none"]),
        ],
        "list_url": reverse("console:contacts"),
    }
    partial = request.headers.get("HX-Request") == "true" and request.headers.get("HX-Target") == "contact-results"
    if partial and not request.headers.get("HX-History-Restore-Request"):
        # Only the table is replaced; the filter form (and its summaries, sent
        # out-of-band) stays as the operator left it.
        response = render(request, "console/contacts/_results.html", {**context, "oob": True})
        # Push the tidy URL (no empty parameters) rather than the raw form serialisation.
        query = "&".join(p for p in (filters.querystring(), f"page={page.number}" if page.number > 1 else "") if p)
        response["HX-Push-Url"] = reverse("console:contacts") + ("?" + query if query else "")
    else:
        context.update(
            stages=LifecycleStage.choices,
            owners=staff_choices(console.workspace) if console.can(Perm.VIEW_ALL_CONTACTS) else [],
            channels=_channels(console),
        )
        response = render(request, "console/contacts/list.html", context)
    patch_vary_headers(response, ["HX-Request"])
    return response


@require_POST
@console_view(Perm.TAG_CONTACTS)
def contact_bulk_tag(request: HttpRequest, console: Console) -> HttpResponse:
    fallback = reverse("console:contacts")
    ids = [int(v) for v in request.POST.getlist("contact") if v.isdigit()]
    if not ids:
        messages.warning(request, _("Select at least one contact."))
        return back(request, fallback)
    tag_id = request.POST.get("tag", "")
    if not tag_id:
        messages.warning(request, _("Pick a tag."))
        return back(request, fallback)
    tag = Tag.objects.select_related("group").get_in_workspace(console.workspace, pk=tag_id)
    contacts = get_visible_contacts(console.workspace, console.staff, ids)  # all, or a 404
    if request.POST.get("op") == "remove":
        removed = do_untag_contacts(console.workspace, console.staff, contacts, [tag])
        messages.success(
            request, _("Removed tag “%(tag)s” from %(count)d of %(selected)d selected contacts.") % {"tag": tag, "count": removed, "selected": len(contacts)}
        )
    else:
        added = do_tag_contacts(console.workspace, console.staff, contacts, [tag])
        messages.success(
            request, _("Tagged %(count)d of %(selected)d selected contacts with “%(tag)s”.") % {"tag": tag, "count": added, "selected": len(contacts)}
        )
    return back(request, fallback)


@require_GET
@console_view(Perm.EXPORT_CONTACTS)
def contact_export(request: HttpRequest, console: Console) -> HttpResponse:
    # Imported here: the exporter is its own module, and the list must keep working
    # while it is being changed.
    from siyu.contacts.exporting import export_contacts

    fmt = request.GET.get("fmt", "csv")
    if fmt not in ("csv", "xlsx"):
        raise ValidationFailed(_("export format must be csv or xlsx"), code="invalid_format")
    filters = ContactFilters.from_query(request.GET)
    export = export_contacts(console.workspace, console.staff, fmt=fmt, filters=filters.as_kwargs())
    response = HttpResponse(export.content, content_type=export.content_type)
    response["Content-Disposition"] = content_disposition_header(True, export.filename) or "attachment"
    response["Cache-Control"] = "no-store"
    return response


# ---------------------------------------------------------------- contact page

# Icons are plain text symbols: no emoji font is assumed on operators' machines.
EVENT_LABELS = {
    EventKind.ADDED: ("+", gettext_lazy("Contact added")),
    EventKind.UPDATED: ("✎", gettext_lazy("Profile updated")),
    EventKind.TAGGED: ("#", gettext_lazy("Tagged")),
    EventKind.UNTAGGED: ("−", gettext_lazy("Tag removed")),
    EventKind.JOINED_GROUP: ("→", gettext_lazy("Joined group")),
    EventKind.LEFT_GROUP: ("←", gettext_lazy("Left group")),
    EventKind.MESSAGE: ("✉", gettext_lazy("Message")),
    EventKind.ORDER: ("¥", gettext_lazy("Order")),
    EventKind.SCAN: ("▣", gettext_lazy("Scanned a code")),
    EventKind.MERGED: ("⇉", gettext_lazy("Merged a duplicate")),
    EventKind.CONSENT: ("✓", gettext_lazy("Consent changed")),
    EventKind.OWNER_CHANGED: ("⇄", gettext_lazy("Owner changed")),
}
SOURCE_LABELS = dict(TagSource.choices)
PURPOSE_LABELS = dict(ConsentPurpose.choices)
_HIDDEN_KEYS = {"tag_id", "group_id"}


def describe_event(event: ContactEvent) -> str:
    """One line of what happened, from the event's data (keys differ per kind)."""
    data = event.data or {}
    if event.kind == EventKind.ADDED:
        parts = [str(data[k]) for k in ("source_channel", "source_campaign") if data.get(k)]
        return _("source: %(source)s") % {"source": " / ".join(parts)} if parts else ""
    if event.kind in (EventKind.TAGGED, EventKind.UNTAGGED):
        text = str(data.get("tag", ""))
        if data.get("source"):
            text += f" ({SOURCE_LABELS.get(data['source'], data['source'])})"
        if data.get("reason"):
            text += " — " + str(data["reason"])
        return text
    if event.kind == EventKind.UPDATED:
        return _("changed: %(fields)s") % {"fields": ", ".join(str(f) for f in data.get("fields", []))}
    if event.kind in (EventKind.JOINED_GROUP, EventKind.LEFT_GROUP):
        text = str(data.get("group", ""))
        extra = data.get("join_source") or data.get("reason")
        return f"{text} ({extra})" if extra else text
    if event.kind == EventKind.CONSENT:
        purpose = PURPOSE_LABELS.get(data.get("purpose", ""), data.get("purpose", ""))
        state = _("granted") if data.get("granted") else _("not granted")
        dnd = _(", do not disturb") if data.get("do_not_disturb") else ""
        return f"{purpose}: {state}{dnd}"
    if event.kind == EventKind.MERGED:
        return _("merged contact #%(id)s %(name)s") % {"id": data.get("merged_contact", ""), "name": data.get("name", "")}
    return ", ".join(f"{k}: {v}" for k, v in data.items() if k not in _HIDDEN_KEYS)


def _timeline(contact: Contact) -> tuple[list[dict[str, Any]], int]:
    events = ContactEvent.objects.in_workspace(contact.workspace_id).filter(contact=contact)
    total = events.count()
    rows = []
    for event in events.order_by("-occurred_at", "-id")[:TIMELINE_LIMIT]:
        icon, label = EVENT_LABELS.get(event.kind, ("•", event.kind))
        rows.append({"event": event, "icon": icon, "label": label, "summary": describe_event(event)})
    return rows, total


def _contact_page(request: HttpRequest, console: Console, contact: Contact, *, form: ContactEditForm | None = None, status: int = 200) -> HttpResponse:
    sees_pii = console.can(Perm.VIEW_PII)
    profile_fields = list(ProfileField.objects.in_workspace(console.workspace))
    may_edit = console.can(Perm.EDIT_CONTACTS)
    if form is None and may_edit:
        form = ContactEditForm(contact=contact, profile_fields=profile_fields, may_reassign=console.can(Perm.VIEW_ALL_CONTACTS), sees_pii=sees_pii)
    known_keys = {f.key for f in profile_fields}
    profile_rows = [(f.label, contact.profile.get(f.key, "")) for f in profile_fields]
    profile_rows += [(key, value) for key, value in sorted(contact.profile.items()) if key not in known_keys]
    consents = {c.purpose: c for c in Consent.objects.in_workspace(console.workspace).filter(contact=contact)}
    held = contact_tags(contact)
    held_ids = {link.tag_id for link in held}
    timeline, timeline_total = _timeline(contact)
    context = {
        "contact": contact,
        "phone": contact.phone if sees_pii else contact.phone_masked,
        "sees_pii": sees_pii,
        "identities": list(contact.identities.select_related("account").order_by("id")),
        "profile_rows": profile_rows,
        "tag_links": held,
        "addable_tags": [(g, [(pk, n) for pk, n in tags if int(pk) not in held_ids]) for g, tags in tag_choices(console.workspace)],
        "consents": [(value, label, consents.get(value)) for value, label in ConsentPurpose.choices],
        "memberships": list(Membership.objects.in_workspace(console.workspace).filter(contact=contact).select_related("group").order_by("-joined_at")),
        "blacklist_entry": BlacklistEntry.objects.in_workspace(console.workspace).filter(contact=contact, lifted_at__isnull=True).first(),
        "explanations": explain_contact(contact),
        "timeline": timeline,
        "timeline_total": timeline_total,
        "timeline_limit": TIMELINE_LIMIT,
        "form": form,
        "may_edit": may_edit,
        "edit_open": form is not None and form.is_bound,
    }
    context.update(value_panel(console, contact))
    return render(request, "console/contacts/detail.html", context, status=status)


def _visible(console: Console, contact_id: int) -> Contact:
    """A contact this staff member may see (merged duplicates are not among them)."""
    return get_visible_contact(console.workspace, console.staff, contact_id)


@require_GET
@console_view()
def contact_detail(request: HttpRequest, console: Console, contact_id: int) -> HttpResponse:
    return _contact_page(request, console, _visible(console, contact_id))


@require_POST
@console_view(Perm.EDIT_CONTACTS)
def contact_edit(request: HttpRequest, console: Console, contact_id: int) -> HttpResponse:
    contact = _visible(console, contact_id)
    check_can_edit(console.staff, contact)
    form = ContactEditForm(
        request.POST,
        contact=contact,
        profile_fields=list(ProfileField.objects.in_workspace(console.workspace)),
        may_reassign=console.can(Perm.VIEW_ALL_CONTACTS),
        sees_pii=console.can(Perm.VIEW_PII),
    )
    if form.is_valid():
        try:
            do_update_contact(contact, console.staff, **form.changes())
        except ValidationFailed as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, _("Contact saved."))
            return back(request, reverse("console:contact", args=[contact.pk]))
    contact.refresh_from_db()
    return _contact_page(request, console, contact, form=form, status=422)


@require_POST
@console_view(Perm.TAG_CONTACTS)
def contact_tag(request: HttpRequest, console: Console, contact_id: int) -> HttpResponse:
    contact = _visible(console, contact_id)
    tag = Tag.objects.select_related("group").get_in_workspace(console.workspace, pk=request.POST.get("tag", ""))
    if request.POST.get("op") == "remove":
        do_untag_contacts(console.workspace, console.staff, [contact], [tag])
        messages.success(request, _("Removed tag “%(tag)s”.") % {"tag": tag})
    else:
        do_tag_contacts(console.workspace, console.staff, [contact], [tag])
        messages.success(request, _("Added tag “%(tag)s”.") % {"tag": tag})
    return back(request, reverse("console:contact", args=[contact.pk]))


@require_POST
@console_view(Perm.EDIT_CONTACTS)
def contact_consent(request: HttpRequest, console: Console, contact_id: int) -> HttpResponse:
    contact = _visible(console, contact_id)
    purpose = request.POST.get("purpose", "")
    do_set_consent(
        contact,
        console.staff,
        purpose=purpose,
        granted=request.POST.get("granted") == "on",
        do_not_disturb=request.POST.get("do_not_disturb") == "on",
        source="console",
    )
    messages.success(request, _("Consent saved: %(purpose)s.") % {"purpose": PURPOSE_LABELS.get(purpose, purpose)})
    return back(request, reverse("console:contact", args=[contact.pk]) + "#consent")


@require_POST
@console_view(Perm.MERGE_CONTACTS)
def contact_merge(request: HttpRequest, console: Console, contact_id: int) -> HttpResponse:
    """Merge the contact numbered in the form (a duplicate) into this one."""
    primary = _visible(console, contact_id)
    ref = request.POST.get("duplicate", "").strip().lstrip("#")
    try:
        duplicate = _visible(console, int(ref))
    except (ValueError, NotFound) as exc:
        # A mistyped number is an input error on this page, not a missing page.
        raise ValidationFailed(_("no contact #%(ref)s to merge") % {"ref": ref}, code="contact_not_found") from exc
    do_merge_contacts(primary, duplicate, console.staff)
    messages.success(request, _("Merged #%(id)d %(name)s into this contact.") % {"id": duplicate.pk, "name": duplicate.name})
    return back(request, reverse("console:contact", args=[primary.pk]))
