"""What each action step does. Called by the engine inside the step's transaction; every
write goes through the owning app's action (tags, owner, coupons, staff tasks, group
membership, outreach sends), and every send carries the step's idempotency key."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db.models import Count, Sum

from siyu.core.errors import NotFound
from siyu.core.models import Workspace
from siyu.journeys.engine import StepResult
from siyu.journeys.models import JourneyRun, RunState


def execute(run: JourneyRun, step: dict[str, Any], now: dt.datetime, key: str) -> StepResult:
    handler = _HANDLERS[step["type"]]
    return handler(run, step, now, key)


def _workspace(run: JourneyRun) -> Workspace:
    return Workspace.objects.get(pk=run.workspace_id)


def _source(run: JourneyRun) -> str:
    return f"journey:{run.journey_id}"


def _send(run: JourneyRun, step: dict[str, Any], now: dt.datetime, key: str) -> StepResult:
    from siyu.outreach.actions import do_send_to_contact, do_send_to_group

    workspace = _workspace(run)
    common: dict[str, Any] = {
        "content": step["content"], "message_class": step["message_class"], "source": _source(run), "idempotency_key": key, "at": now,
    }
    if run.group is not None:
        delivery = do_send_to_group(workspace, group=run.group, **common)
    else:
        assert run.contact is not None
        delivery = do_send_to_contact(workspace, contact=run.contact, **common)
    detail: dict[str, Any] = {"delivery_id": delivery.pk, "status": delivery.status}
    planned = getattr(delivery, "planned_for", None)
    if planned is not None:
        detail["planned_for"] = planned.isoformat()
    return StepResult(str(delivery.status), next_step=step["next"], reason=getattr(delivery, "reason", "") or "", detail=detail)


def _condition(run: JourneyRun, step: dict[str, Any], now: dt.datetime, key: str) -> StepResult:
    from siyu.segments.conditions import contact_matches

    assert run.contact_id is not None
    if "top_value" in step:
        matched, detail = top_value_match(run.workspace_id, run.contact_id, now=now, **step["top_value"])
        reason = f"net spend ¥{detail['spend']} vs top {step['top_value']['percent']}% threshold ¥{detail['threshold']}"
    else:
        matched = contact_matches(_workspace(run), step["if"], run.contact_id, now=now)
        reason, detail = ("condition met" if matched else "condition not met"), {"if": step["if"]}
    return StepResult("yes" if matched else "no", next_step=step["next"]["yes" if matched else "no"], reason=reason, detail=detail)


def top_value_match(workspace_id: int, contact_id: int, *, now: dt.datetime, percent: int, days: int) -> tuple[bool, dict[str, Any]]:
    """Is the contact's net spend in the last ``days`` among the top ``percent`` of the
    workspace's buyers in that window? (Ties at the threshold count as in.)"""
    import math

    from siyu.commerce.models import Order, OrderStatus

    spend = list(
        Order.objects.in_workspace(workspace_id)
        .filter(placed_at__gte=now - dt.timedelta(days=days), placed_at__lte=now, contact__isnull=False)
        .exclude(status=OrderStatus.CANCELLED).values("contact_id").annotate(net=Sum("net_amount")).values_list("contact_id", "net")
    )
    mine = next((net for cid, net in spend if cid == contact_id), None) or Decimal("0.00")
    ranked = sorted((net for _cid, net in spend if net and net > 0), reverse=True)
    if not ranked:
        return False, {"spend": str(mine), "threshold": None, "buyers": 0}
    threshold = ranked[max(1, math.ceil(len(ranked) * percent / 100)) - 1]
    return bool(mine > 0 and mine >= threshold), {"spend": str(mine), "threshold": str(threshold), "buyers": len(ranked)}


def _tag(run: JourneyRun, step: dict[str, Any], now: dt.datetime, key: str) -> StepResult:
    from siyu.contacts.actions import do_tag_contacts, do_untag_contacts
    from siyu.contacts.models import Tag

    tag = Tag.objects.in_workspace(run.workspace_id).filter(pk=step["tag_id"]).first()
    if tag is None:
        return StepResult("skipped", next_step=step["next"], reason=f"tag {step['tag']} no longer exists")
    assert run.contact is not None
    reason = f"旅程「{run.journey.name}」"
    if step["type"] == "add_tag":
        changed = do_tag_contacts(_workspace(run), None, [run.contact], [tag], reason=reason)
    else:
        changed = do_untag_contacts(_workspace(run), None, [run.contact], [tag], reason=reason)
    return StepResult("done" if changed else "unchanged", next_step=step["next"], detail={"tag": step["tag"]})


def _assign_owner(run: JourneyRun, step: dict[str, Any], now: dt.datetime, key: str) -> StepResult:
    from siyu.accounts.models import Staff
    from siyu.contacts.actions import do_update_contact

    staff = Staff.objects.in_workspace(run.workspace_id).filter(pk=step["staff_id"], is_active=True).first()
    if staff is None:
        return StepResult("skipped", next_step=step["next"], reason=f"staff member {step['staff']} is not active")
    assert run.contact is not None
    do_update_contact(run.contact, None, owner=staff)
    return StepResult("done", next_step=step["next"], detail={"owner": step["staff"]})


def _target_group(run: JourneyRun, step: dict[str, Any]) -> Any:
    from siyu.communities.models import Group

    group_id = run.context.get(step["group_var"]) if "group_var" in step else step.get("group_id")
    group = Group.objects.in_workspace(run.workspace_id).filter(pk=group_id).first() if group_id else None
    if group is None:
        raise NotFound(f"group {step.get('group') or '$' + step.get('group_var', '')} not found", code="group_not_found")
    return group


def _invite(run: JourneyRun, group: Any, contacts: list[Any], key: str) -> dict[str, Any]:
    """Invite contacts to a group: through the channel where it can invite (the member
    is recorded at once, as a sandbox or Matrix room does), else one staff task."""
    from siyu.channels.actions import do_create_staff_task
    from siyu.channels.base import Capability, Command, CommandKind
    from siyu.channels.models import ChannelKind
    from siyu.channels.outbox import do_enqueue
    from siyu.channels.registry import adapter_for
    from siyu.communities.actions import do_add_member
    from siyu.communities.models import Membership
    from siyu.contacts.models import ChannelIdentity

    already = set(Membership.objects.filter(group=group, left_at__isnull=True).values_list("contact_id", flat=True))
    todo = [c for c in contacts if c.pk not in already]
    account = group.channel_account
    if not todo:
        return {"invited": 0, "already_members": len(contacts)}
    if account is None or not adapter_for(account).can(Capability.INVITE_MEMBER):
        task, _ = do_create_staff_task(
            run.workspace_id, kind="journey_invite", account=account, assignee=group.owner, dedupe_key=f"{key}:invite",
            title=f"旅程「{run.journey.name}」：请将 {len(todo)} 位客户拉进群「{group.name}」",
            detail={"group": group.pk, "contacts": [c.pk for c in todo][:500], "run": run.pk},
        )
        return {"invited": 0, "staff_task": task.pk, "contacts": len(todo)}
    for contact in todo:
        identity = ChannelIdentity.objects.filter(account=account, contact=contact).values_list("external_id", flat=True).first()
        if account.kind != ChannelKind.SANDBOX or identity:
            do_enqueue(account, Command(CommandKind.INVITE_MEMBER, f"{key}:invite:{contact.pk}", group.external_id,
                                        {"member": identity or ""}))
        do_add_member(group, contact, None, join_source=f"journey:{run.journey_id}", idempotency_key=f"{key}:join:{contact.pk}")
    return {"invited": len(todo), "already_members": len(contacts) - len(todo)}


def _invite_to_group(run: JourneyRun, step: dict[str, Any], now: dt.datetime, key: str) -> StepResult:
    group = _target_group(run, step)
    assert run.contact is not None
    detail = _invite(run, group, [run.contact], key)
    outcome = "invited" if detail.get("invited") else "task" if "staff_task" in detail else "unchanged"
    return StepResult(outcome, next_step=step["next"], detail={"group_id": group.pk, **detail})


def _invite_responders(run: JourneyRun, step: dict[str, Any], now: dt.datetime, key: str) -> StepResult:
    """Everyone who spoke in the run's group since the first notice ("people who
    respond") is invited to the target group (the temporary sale group)."""
    from siyu.communities.models import GroupMessage
    from siyu.contacts.models import Contact

    group = _target_group(run, step)
    since = dt.datetime.fromisoformat(step["since"]) if step.get("since") else run.entered_at
    sender_ids = set(
        GroupMessage.objects.filter(group=run.group, sent_at__gte=since, sent_at__lte=now, sender__isnull=False, deleted_at__isnull=True)
        .values_list("sender_id", flat=True)
    )
    contacts = list(Contact.objects.in_workspace(run.workspace_id).filter(pk__in=sender_ids, merged_into__isnull=True).order_by("id"))
    detail = _invite(run, group, contacts, key)
    return StepResult("invited", next_step=step["next"], reason=f"{len(contacts)} responders", detail={"group_id": group.pk, **detail})


def _issue_coupon(run: JourneyRun, step: dict[str, Any], now: dt.datetime, key: str) -> StepResult:
    from siyu.commerce.actions import do_issue_coupon
    from siyu.commerce.models import CouponSource, CouponTemplate

    template = CouponTemplate.objects.in_workspace(run.workspace_id).filter(pk=step["template_id"]).first()
    if template is None:
        return StepResult("skipped", next_step=step["next"], reason=f"coupon template {step['template']} no longer exists")
    assert run.contact is not None
    coupon = do_issue_coupon(template, run.contact, None, source=CouponSource.MANUAL, source_ref=_source(run))
    return StepResult("issued", next_step=step["next"], detail={"coupon_id": coupon.pk, "code": coupon.code})


def _create_task(run: JourneyRun, step: dict[str, Any], now: dt.datetime, key: str) -> StepResult:
    from siyu.accounts.models import Staff
    from siyu.channels.actions import do_create_staff_task

    if step.get("assignee") == "owner":
        assignee = run.contact.owner if run.contact is not None else run.group.owner if run.group is not None else None
    else:
        assignee = Staff.objects.in_workspace(run.workspace_id).filter(pk=step.get("staff_id")).first()
    subject = run.contact.name if run.contact is not None else run.group.name if run.group is not None else ""
    task, _ = do_create_staff_task(
        run.workspace_id, kind="journey_task", title=f"{step['title']}（{subject}）", assignee=assignee, dedupe_key=key,
        detail={"journey": run.journey_id, "run": run.pk, "contact": run.contact_id, "group": run.group_id},
    )
    return StepResult("done", next_step=step["next"], detail={"task_id": task.pk})


def sales_report(workspace_id: int, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """Orders placed in the sale window (cancelled ones left out): count, buyers, net."""
    from siyu.commerce.models import Order, OrderStatus

    totals = (
        Order.objects.in_workspace(workspace_id).filter(placed_at__gte=start, placed_at__lt=end)
        .exclude(status=OrderStatus.CANCELLED)
        .aggregate(orders=Count("id"), buyers=Count("contact", distinct=True), net=Sum("net_amount"))
    )
    return {"from": start.isoformat(), "to": end.isoformat(), "orders": totals["orders"], "buyers": totals["buyers"],
            "net_amount": str(Decimal(totals["net"] or 0).quantize(Decimal("0.01")))}


def _report(run: JourneyRun, step: dict[str, Any], now: dt.datetime, key: str) -> StepResult:
    from siyu.channels.actions import do_create_staff_task

    report = sales_report(run.workspace_id, dt.datetime.fromisoformat(step["from"]), dt.datetime.fromisoformat(step["to"]))
    assignee = run.group.owner if run.group is not None else None
    task, _ = do_create_staff_task(
        run.workspace_id, kind="journey_report", assignee=assignee, dedupe_key=key,
        title=f"{step['title']}：{report['orders']} 单，{report['buyers']} 位买家，实收 ¥{report['net_amount']}",
        detail={"journey": run.journey_id, "run": run.pk, **report},
    )
    return StepResult("reported", next_step=step["next"], detail={**report, "task_id": task.pk},
                      context={"report": report})


def _exit(run: JourneyRun, step: dict[str, Any], now: dt.datetime, key: str) -> StepResult:
    return StepResult("exited", reason=step.get("reason") or "exit step", finish=RunState.EXITED)


_HANDLERS = {
    "send": _send,
    "condition": _condition,
    "add_tag": _tag,
    "remove_tag": _tag,
    "assign_owner": _assign_owner,
    "invite_to_group": _invite_to_group,
    "invite_responders": _invite_responders,
    "issue_coupon": _issue_coupon,
    "create_task": _create_task,
    "report": _report,
    "exit": _exit,
}
