"""Broadcast planning (群发计划): who gets which variant when, through the quota ledger,
in bulk.

The same core serves the preview (nothing written) and the real plan: per chunk of
recipients it loads the ledger's counted slots, consent, channels and personalisation
values in a few queries, runs the pure :func:`siyu.outreach.quota.evaluate` for each
recipient (adding each granted slot to the in-memory ledger, so one broadcast never
double-books a person), and writes the deliveries with ``bulk_create``. A chunk is one
transaction that first locks its recipients' rows (PostgreSQL; SQLite serialises write
transactions), so a journey sending to the same person at the same moment queues behind
it. Variants are assigned by a hash of (broadcast, recipient): stable across previews,
retries and re-plans.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Count, DateTimeField, Exists, ExpressionWrapper, OuterRef, Q
from django.utils import timezone

from siyu.accounts.events import record_audit
from siyu.accounts.models import Staff
from siyu.channels.base import Capability
from siyu.channels.models import ChannelAccount
from siyu.channels.registry import adapter_for
from siyu.communities.models import Group
from siyu.contacts.events import EventKind
from siyu.contacts.models import Contact, ContactEvent
from siyu.core.errors import ValidationFailed
from siyu.outreach import quota
from siyu.outreach.content import bulk_values, find_variables, render
from siyu.outreach.models import Broadcast, BroadcastStatus, BroadcastVariant, Delivery, DeliveryStatus, GroupSet, ScheduleMode

__all__ = ["PlanResult", "Preview", "assign_variant", "audience_ids", "broadcast_stats", "plan_broadcast", "preview_broadcast"]

CHUNK = 2000
REPLY_WINDOW = dt.timedelta(hours=48)
CONVERSION_WINDOW = dt.timedelta(days=7)


@dataclass(frozen=True)
class PlanResult:
    """What planning wrote: granted slots (``planned``: sent or queued), deferred,
    skipped, and the deferred + skipped counts by ledger rule."""

    planned: int
    deferred: int
    skipped: int
    by_reason: dict[str, int]


@dataclass
class Preview:
    """What sending would do now, without writing anything."""

    reach: int = 0
    excluded_by_consent: int = 0
    planned: int = 0
    deferred: int = 0
    skipped: int = 0
    deferred_by_reason: dict[str, int] = field(default_factory=dict)
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    by_variant: dict[str, int] = field(default_factory=dict)
    staff_tasks: list[dict[str, Any]] = field(default_factory=list)  # WeCom: tasks per staff member
    direct: int = 0  # sent directly by the channel (sandbox, Matrix)
    #: (staff id, exact text) → recipients: one WeCom task carries one text for all its
    #: recipients, so a personalised text ({name}) makes one task per distinct text
    task_members: Counter[tuple[int | None, str]] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("task_members")
        return out

    def summarise_tasks(self) -> None:
        per_staff: dict[int | None, dict[str, Any]] = {}
        for (staff_id, _text), members in self.task_members.items():
            entry = per_staff.setdefault(staff_id, {"staff_id": staff_id, "tasks": 0, "members": 0})
            entry["tasks"] += 1
            entry["members"] += members
        self.staff_tasks = sorted(per_staff.values(), key=lambda e: (e["staff_id"] is None, e["staff_id"] or 0))


def _hash(*parts: object) -> float:
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).hexdigest()
    return int(digest[:13], 16) / float(16**13)


def in_test_group(broadcast: Broadcast, recipient_id: int) -> bool:
    return _hash(broadcast.pk, "test", recipient_id) < broadcast.test_fraction


def assign_variant(variants: list[BroadcastVariant], broadcast_id: int, recipient_id: int) -> BroadcastVariant:
    """The recipient's variant: a hash of (broadcast, recipient) against the weights."""
    total = sum(max(1, v.weight) for v in variants)
    point = _hash(broadcast_id, "variant", recipient_id) * total
    for variant in variants:
        point -= max(1, variant.weight)
        if point < 0:
            return variant
    return variants[-1]


def audience_ids(broadcast: Broadcast) -> tuple[str, list[int]]:
    """("contact", ids) or ("group", ids) of the broadcast's audience, sorted."""
    audience, ws = broadcast.audience or {}, broadcast.workspace_id
    if "segment" in audience:
        from siyu.segments.queries import segment_member_ids

        ids = segment_member_ids(ws, int(audience["segment"]))
        return "contact", sorted(Contact.objects.filter(workspace_id=ws, pk__in=ids, merged_into__isnull=True).values_list("pk", flat=True))
    if "contacts" in audience:
        wanted = [int(c) for c in audience["contacts"]]
        return "contact", sorted(Contact.objects.filter(workspace_id=ws, pk__in=wanted, merged_into__isnull=True).values_list("pk", flat=True))
    if "groups" in audience:
        wanted = [int(g) for g in audience["groups"]]
        return "group", sorted(Group.objects.filter(workspace_id=ws, pk__in=wanted, archived_at__isnull=True).values_list("pk", flat=True))
    if "group_set" in audience:
        group_set = GroupSet.objects.filter(workspace_id=ws, pk=int(audience["group_set"])).first()
        if group_set is None:
            return "group", []
        return "group", sorted(group_set.groups.filter(archived_at__isnull=True).values_list("pk", flat=True))
    raise ValidationFailed("audience must be a segment, contacts, groups or a group set", code="invalid_audience")


def _variant_content(variant: BroadcastVariant) -> Any:
    """A material to render: the variant's own, or its inline content as an unsaved
    material (validated when the broadcast was saved, so rendering skips it)."""
    if variant.material_id:
        return variant.material
    cached = getattr(variant, "_as_material", None)
    if cached is None:
        from siyu.outreach.models import Material

        content = dict(variant.content)
        kind = str(content.pop("kind", "text"))
        text = str(content.pop("text", ""))
        cached = Material(workspace_id=variant.workspace_id, kind=kind, text=text, data=content)
        variant._as_material = cached  # type: ignore[attr-defined]
    return cached


def _variables(variants: Iterable[BroadcastVariant]) -> set[str]:
    used: set[str] = set()
    for variant in variants:
        if variant.material_id:
            used.update(variant.material.variables)  # type: ignore[union-attr]
        else:
            used.update(find_variables(str(variant.content.get("text", ""))))
    return used


def _start(broadcast: Broadcast, now: dt.datetime) -> dt.datetime:
    if broadcast.schedule_mode == ScheduleMode.AT and broadcast.scheduled_at is not None and broadcast.scheduled_at > now:
        return broadcast.scheduled_at
    return now


def _contact_best_times(broadcast: Broadcast, ids: list[int], start: dt.datetime, tz_names: dict[int, str | None]) -> dict[int, dt.datetime]:
    """Per contact, the next busiest hour of their own messages (90 days), else the next
    workspace peak — in bulk (one pass over the message events of the chunk)."""
    from siyu.outreach.timing import _next_hour_start, next_peak

    ws_tz = broadcast.workspace.tz
    hours: dict[int, Counter[int]] = defaultdict(Counter)
    zones = {cid: quota.zone(tz_names.get(cid), ws_tz) for cid in ids}
    rows = ContactEvent.objects.filter(
        workspace_id=broadcast.workspace_id, contact_id__in=ids, kind=EventKind.MESSAGE, occurred_at__gte=start - dt.timedelta(days=90),
        occurred_at__lt=start,
    ).values_list("contact_id", "occurred_at")
    for cid, occurred in rows:
        hours[cid][occurred.astimezone(zones[cid]).hour] += 1
    out: dict[int, dt.datetime] = {}
    for cid in ids:
        counts = hours.get(cid)
        if not counts:
            out[cid] = next_peak(start, zones[cid])
            continue
        top, first = max(counts.values()), _next_hour_start(start, zones[cid])
        out[cid] = next(first + dt.timedelta(hours=h) for h in range(24) if counts.get((first + dt.timedelta(hours=h)).hour, 0) == top)
    return out


@dataclass
class _Outcome:
    deliveries: list[Delivery] = field(default_factory=list)
    external_ids: dict[int, str] = field(default_factory=dict)
    preview: Preview = field(default_factory=Preview)


def _plan_chunk(broadcast: Broadcast, kind: str, ids: list[int], variants: list[BroadcastVariant], now: dt.datetime, *, write: bool) -> _Outcome:
    workspace = broadcast.workspace
    start = _start(broadcast, now)
    expires = start + dt.timedelta(hours=broadcast.expires_after_hours)
    policy = quota.policy_for(workspace)
    out = _Outcome()
    preview = out.preview
    prefix = f"broadcast:{broadcast.pk}:{'c' if kind == 'contact' else 'g'}:"
    done = set(Delivery.objects.filter(workspace=workspace, broadcast=broadcast).values_list("idempotency_key", flat=True)) if write else set()
    values: dict[int, dict[str, str]] = {}
    owners: dict[int, int | None] = {}
    if kind == "contact":
        if write and transaction.get_connection().features.has_select_for_update:
            list(Contact.objects.select_for_update().filter(pk__in=ids).values_list("pk", flat=True))
        channels = quota.contact_channels(workspace, ids)
        consents = quota.load_consents(workspace, ids)
        rows = Contact.objects.filter(workspace=workspace, pk__in=ids).values_list("pk", "profile__time_zone", "owner_id")
        tz_names = {pk: tz for pk, tz, _owner in rows}
        owners = {pk: owner for pk, _tz, owner in rows}
        values = bulk_values(workspace.pk, ids, _variables(variants))
        times = _contact_best_times(broadcast, ids, start, tz_names) if broadcast.schedule_mode == ScheduleMode.BEST_TIME else {}
        groups: dict[int, Group] = {}
    else:
        if write and transaction.get_connection().features.has_select_for_update:
            list(Group.objects.select_for_update().filter(pk__in=ids).values_list("pk", flat=True))
        groups = {g.pk: g for g in Group.objects.filter(workspace=workspace, pk__in=ids).select_related("channel_account", "owner")}
        channels = {
            g.pk: (g.channel_account_id, g.external_id) for g in groups.values()
            if g.channel_account_id and g.external_id and g.channel_account and g.channel_account.is_active
        }
        consents, tz_names = {}, {}
        owners = {g.pk: g.owner_id for g in groups.values()}
        if broadcast.schedule_mode == ScheduleMode.BEST_TIME:
            from siyu.outreach.timing import best_send_time

            times = {pk: best_send_time(workspace, group=g, after=start) for pk, g in groups.items()}
        else:
            times = {}
    accounts = {a.pk: a for a in ChannelAccount.objects.filter(pk__in={acc for acc, _ext in channels.values()})}
    platforms = {pk: quota.platform_for(a) for pk, a in accounts.items()}
    mass_only = {
        pk for pk, a in accounts.items()
        if not adapter_for(a).can(Capability.SEND_GROUP_MESSAGE if kind == "group" else Capability.SEND_DIRECT_MESSAGE)
        and adapter_for(a).can(Capability.MASS_MESSAGE_TASK)
    }
    slots = quota.load_slots(workspace, since=start - quota.LOOKBACK, **({"contact_ids": ids} if kind == "contact" else {"group_ids": ids}))
    ws_tz = workspace.tz
    for rid in ids:
        key = f"{prefix}{rid}"
        if key in done:
            continue
        variant = broadcast.winner if broadcast.winner_id else assign_variant(variants, broadcast.pk, rid)
        assert variant is not None
        at = times.get(rid, start)
        preview.reach += 1
        preview.by_variant[variant.label] = preview.by_variant.get(variant.label, 0) + 1
        # ids, not instances: the related-object descriptors cost more than the row itself
        delivery = Delivery(
            workspace_id=workspace.pk, idempotency_key=key, broadcast_id=broadcast.pk, variant_id=variant.pk, message_class=broadcast.message_class,
            source=f"broadcast:{broadcast.pk}", requested_at=at, expires_at=expires,
            contact_id=rid if kind == "contact" else None, group_id=rid if kind == "group" else None,
        )
        channel = channels.get(rid)
        if channel is None:
            delivery.status, delivery.rule = DeliveryStatus.SKIPPED, "no_channel"
            delivery.reason = "no identity on an active channel" if kind == "contact" else "the group is not connected to an active channel"
        else:
            account_id, external_id = channel
            out.external_ids[rid] = external_id
            platform = platforms.get(account_id)
            delivery.channel_account_id, delivery.platform = account_id, platform.name if platform else ""
            if kind == "contact":
                target = quota.Target(
                    kind="contact", tz=quota.zone(tz_names.get(rid), ws_tz), calendar_tz=ws_tz, platform=platform,
                    consent=consents.get(rid, {}), slots=list(slots.get(("contact", rid), [])),
                )
            else:
                from siyu.outreach.actions import _group_quiet

                target = quota.Target(
                    kind="group", tz=ws_tz, calendar_tz=ws_tz, platform=platform, slots=list(slots.get(("group", rid), [])),
                    quiet=_group_quiet(groups[rid]),
                )
            decision = quota.evaluate(policy, target, broadcast.message_class, at, until=expires)
            if write:
                from siyu.outreach.actions import _apply_decision

                _apply_decision(delivery, decision, at, expires)
            elif decision.allowed:
                delivery.status = DeliveryStatus.QUEUED
            else:
                delivery.status = DeliveryStatus.DEFERRED if decision.next_allowed_at and decision.next_allowed_at <= expires else DeliveryStatus.SKIPPED
                delivery.rule = decision.rule
            if decision.allowed:
                slots.setdefault((kind, rid), []).append(quota.Slot(at, broadcast.message_class, delivery.platform))
                if account_id in mass_only:
                    rendered = _render(variant, kind, rid, values, groups)
                    preview.task_members[(owners.get(rid), str(rendered.get("text", "")))] += 1
                else:
                    preview.direct += 1
        if delivery.status in (DeliveryStatus.QUEUED, DeliveryStatus.SENT):
            preview.planned += 1
        elif delivery.status == DeliveryStatus.DEFERRED:
            preview.deferred += 1
            preview.deferred_by_reason[delivery.rule] = preview.deferred_by_reason.get(delivery.rule, 0) + 1
        else:
            preview.skipped += 1
            preview.skipped_by_reason[delivery.rule] = preview.skipped_by_reason.get(delivery.rule, 0) + 1
            if delivery.rule == "consent":
                preview.excluded_by_consent += 1
        if write:
            delivery.content = _render(variant, kind, rid, values, groups)
            out.deliveries.append(delivery)
    return out


def _render(variant: BroadcastVariant, kind: str, rid: int, values: dict[int, dict[str, str]], groups: dict[int, Group]) -> dict[str, Any]:
    content = _variant_content(variant)
    return render(content, values=values.get(rid)) if kind == "contact" else render(content, group=groups[rid])


def _merge(total: Preview, part: Preview) -> None:
    for name in ("reach", "excluded_by_consent", "planned", "deferred", "skipped", "direct"):
        setattr(total, name, getattr(total, name) + getattr(part, name))
    for name in ("deferred_by_reason", "skipped_by_reason", "by_variant"):
        merged = getattr(total, name)
        for key, value in getattr(part, name).items():
            merged[key] = merged.get(key, 0) + value
    total.task_members.update(part.task_members)


def _recipients(broadcast: Broadcast) -> tuple[str, list[int], list[BroadcastVariant]]:
    kind, ids = audience_ids(broadcast)
    variants = list(broadcast.variants.select_related("material").order_by("label"))
    if not variants:
        raise ValidationFailed("the broadcast has no variants", code="no_variants")
    if broadcast.auto_winner and len(variants) > 1:
        # test phase: only the test fraction; the rest waits for the winner
        ids = [rid for rid in ids if in_test_group(broadcast, rid) != bool(broadcast.winner_id)]
    return kind, ids, variants


def preview_broadcast(broadcast: Broadcast, *, now: dt.datetime | None = None) -> Preview:
    """Reach, consent exclusions, what the ledger would send now / defer / skip (with the
    counts by rule), the split by variant, and on WeCom the mass-message tasks per staff
    member — computed exactly as sending would, but nothing is written."""
    now = now or timezone.now()
    kind, ids, variants = _recipients(broadcast)
    total = Preview()
    for chunk_start in range(0, len(ids), CHUNK):
        _merge(total, _plan_chunk(broadcast, kind, ids[chunk_start:chunk_start + CHUNK], variants, now, write=False).preview)
    total.summarise_tasks()
    names = dict(Staff.objects.filter(pk__in=[e["staff_id"] for e in total.staff_tasks if e["staff_id"]]).values_list("pk", "display_name"))
    for entry in total.staff_tasks:
        entry["staff"] = names.get(entry["staff_id"], "") if entry["staff_id"] else ""
    return total


def plan_broadcast(broadcast: Broadcast, *, now: dt.datetime | None = None) -> PlanResult:
    """Write the broadcast's deliveries through the quota ledger (bulk; idempotent: a
    recipient already planned is left alone). Due sends are handed to their channels."""
    from siyu.outreach.actions import _dispatch, _write_gate

    now = now or timezone.now()
    kind, ids, variants = _recipients(broadcast)
    counts = Preview()
    for chunk_start in range(0, len(ids), CHUNK):
        chunk = ids[chunk_start:chunk_start + CHUNK]
        with _write_gate(), transaction.atomic():
            outcome = _plan_chunk(broadcast, kind, chunk, variants, now, write=True)
            created = Delivery.objects.bulk_create(outcome.deliveries, batch_size=500)
            due = [d for d in created if d.status == DeliveryStatus.QUEUED and d.requested_at <= now]
            if due:
                _dispatch(due, outcome.external_ids if kind == "contact" else {})
        _merge(counts, outcome.preview)
    by_reason = dict(Counter(counts.deferred_by_reason) + Counter(counts.skipped_by_reason))
    return PlanResult(planned=counts.planned, deferred=counts.deferred, skipped=counts.skipped, by_reason=by_reason)


def broadcast_stats(broadcast: Broadcast) -> list[dict[str, Any]]:
    """Per variant: recipients, sent, queued, deferred, skipped; replied (a message from
    the recipient within 48 h of the send), converted (an order within 7 days); read is
    None until a channel reports reads."""
    sent_at = OuterRef("sent_at")
    replied = ContactEvent.objects.filter(
        contact_id=OuterRef("contact_id"), kind=EventKind.MESSAGE, occurred_at__gt=sent_at,
        occurred_at__lte=ExpressionWrapper(sent_at + REPLY_WINDOW, output_field=DateTimeField()),
    )
    converted = ContactEvent.objects.filter(
        contact_id=OuterRef("contact_id"), kind=EventKind.ORDER, occurred_at__gt=sent_at,
        occurred_at__lte=ExpressionWrapper(sent_at + CONVERSION_WINDOW, output_field=DateTimeField()),
    )
    rows = {
        row["variant_id"]: row
        for row in Delivery.objects.filter(broadcast=broadcast)
        .annotate(did_reply=Exists(replied), did_convert=Exists(converted))
        .values("variant_id")
        .annotate(
            recipients=Count("id"),
            sent=Count("id", filter=Q(status=DeliveryStatus.SENT)),
            queued=Count("id", filter=Q(status=DeliveryStatus.QUEUED)),
            deferred=Count("id", filter=Q(status=DeliveryStatus.DEFERRED)),
            skipped=Count("id", filter=Q(status=DeliveryStatus.SKIPPED)),
            replied=Count("id", filter=Q(status=DeliveryStatus.SENT, did_reply=True)),
            converted=Count("id", filter=Q(status=DeliveryStatus.SENT, did_convert=True)),
        )
        .order_by()
    }
    stats = []
    for variant in broadcast.variants.order_by("label"):
        row = rows.get(variant.pk, {})
        sent = int(row.get("sent", 0))
        entry: dict[str, Any] = {"variant": variant.label, "variant_id": variant.pk, "winner": broadcast.winner_id == variant.pk, "read": None}
        for name in ("recipients", "sent", "queued", "deferred", "skipped", "replied", "converted"):
            entry[name] = int(row.get(name, 0))
        entry["reply_rate"] = round(int(row.get("replied", 0)) / sent, 4) if sent else None
        entry["conversion_rate"] = round(int(row.get("converted", 0)) / sent, 4) if sent else None
        stats.append(entry)
    return stats


def pick_winner(broadcast: Broadcast) -> BroadcastVariant | None:
    """The variant with the best reply rate in the test (then conversions, then label)."""
    stats = [s for s in broadcast_stats(broadcast) if s["sent"] > 0]
    if not stats:
        return None
    best = max(stats, key=lambda s: (s["reply_rate"] or 0, s["conversion_rate"] or 0, [-ord(ch) for ch in s["variant"]]))
    return BroadcastVariant.objects.get(pk=best["variant_id"])


def do_pick_due_winners(now: dt.datetime | None = None) -> list[int]:
    """Broadcasts with an automatic winner whose test wait is over: choose the winner and
    plan the remainder of the audience with it. Records ``broadcast.winner_chosen``."""
    now = now or timezone.now()
    chosen: list[int] = []
    candidates = Broadcast.objects.filter(auto_winner=True, winner__isnull=True, status=BroadcastStatus.SENDING, planned_at__isnull=False)
    for broadcast in candidates.select_related("workspace"):
        assert broadcast.planned_at is not None
        if broadcast.planned_at + dt.timedelta(hours=broadcast.winner_wait_hours) > now:
            continue
        winner = pick_winner(broadcast)
        if winner is None:
            continue
        with transaction.atomic():
            if not Broadcast.objects.filter(pk=broadcast.pk, winner__isnull=True).update(winner=winner, winner_chosen_at=now):
                continue
            record_audit(broadcast.workspace, None, "broadcast.winner_chosen", target=broadcast, after={"winner": winner.label})
        broadcast.winner, broadcast.winner_chosen_at = winner, now
        result = plan_broadcast(broadcast, now=now)
        summary = {**broadcast.plan_summary, "remainder": asdict(result)}
        Broadcast.objects.filter(pk=broadcast.pk).update(plan_summary=summary)
        chosen.append(broadcast.pk)
    return chosen
