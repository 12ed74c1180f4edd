"""Apply moderation verdicts through the channel, degrading to staff tasks where the
channel cannot act (WeCom customer groups cannot remove members through the API)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from siyu.accounts.events import record_audit
from siyu.channels.actions import do_create_staff_task
from siyu.channels.base import Capability, Command, CommandKind
from siyu.channels.models import ChannelAccount
from siyu.channels.registry import adapter_for
from siyu.communities.actions import do_remove_member
from siyu.communities.models import Group, GroupMessage, Membership
from siyu.moderation.detectors import detect
from siyu.moderation.models import ModerationCase
from siyu.moderation.policy import Decision, Verdict, decide

REMOVAL_NOTICE = "因系统检测到{name}发广告，已移出群聊。本群由机器人监控广告，请大家遵守群规。"
WARNING_NOTICE = "@{name} 请遵守群规：本群禁止发布广告、联系方式和外部链接。"


def check_message(text: str, *, exempt: bool = False) -> Decision:
    """The verdict for a text, without touching anything (CLI/API ``moderation check``)."""
    return decide(detect(text), exempt=exempt)


def _send_or_task(
    account: ChannelAccount, command: Command, applied: list[dict[str, Any]], *, task_title: str, evidence: dict[str, Any]
) -> None:
    from siyu.channels.outbox import do_enqueue

    adapter = adapter_for(account)
    if adapter.can(command.required_capability()):
        row, _ = do_enqueue(account, command)
        applied.append({"outbox": row.pk, "command": command.kind.value})
    else:
        task, _ = do_create_staff_task(
            account.workspace_id, kind=f"moderation_{command.kind.value}", title=task_title, detail=evidence, account=account,
            dedupe_key=f"task:{command.idempotency_key}",
        )
        applied.append({"staff_task": task.pk, "command": command.kind.value, "reason": f"{account.kind} cannot {command.required_capability().value}"})


def do_moderate_message(message: GroupMessage, account: ChannelAccount, *, exempt: bool = False) -> ModerationCase | None:
    """Run detectors and policy on a stored group message and apply the verdict: delete
    the message, remove the member with a public notice, or warn — each through the
    outbox, or as a staff task with the evidence when the channel cannot. Stores a
    :class:`ModerationCase` (once per message) and records ``moderation.applied``."""
    decision = check_message(message.text, exempt=exempt)
    if decision.verdict == Verdict.ALLOW:
        return None
    group: Group = message.group
    sender = message.sender
    name = sender.name if sender else "该成员"
    member_id = message.data.get("sender_external_id", "")
    evidence = {"text": message.text[:500], "sender": member_id, "group": group.name, **decision.as_dict()}
    applied: list[dict[str, Any]] = []
    with transaction.atomic():
        case, created = ModerationCase.objects.get_or_create(
            message=message,
            defaults={
                "workspace_id": message.workspace_id, "group": group, "contact": sender, "verdict": decision.verdict.value,
                "reasons": decision.as_dict()["reasons"], "text": message.text[:2000],
            },
        )
        if not created:
            return case
        base = f"mod:{message.pk}"
        if decision.verdict in (Verdict.DELETE, Verdict.REMOVE, Verdict.BLACKLIST):
            _send_or_task(
                account, Command(CommandKind.DELETE_MESSAGE, f"{base}:delete", group.external_id, {"message_id": message.external_id}),
                applied, task_title=f"删除{name}在「{group.name}」的违规消息", evidence=evidence,
            )
        if decision.verdict in (Verdict.REMOVE, Verdict.BLACKLIST):
            _send_or_task(
                account, Command(CommandKind.REMOVE_MEMBER, f"{base}:remove", group.external_id, {"member": member_id, "reason": "advertising"}),
                applied, task_title=f"将{name}移出「{group.name}」（发广告）", evidence=evidence,
            )
            if adapter_for(account).can(Capability.REMOVE_MEMBER):
                membership = Membership.objects.filter(group=group, contact=sender, left_at__isnull=True).first()
                if membership is not None:
                    do_remove_member(membership, None, reason="removed by moderation: advertising")
                    applied.append({"membership_closed": membership.pk})
                notice = Command(CommandKind.SEND_MESSAGE, f"{base}:notice", group.external_id,
                                 {"to": "group", "text": REMOVAL_NOTICE.format(name=name)})
                _send_or_task(account, notice, applied, task_title="发布移出公告", evidence=evidence)
        if decision.verdict == Verdict.WARN:
            warn = Command(CommandKind.SEND_MESSAGE, f"{base}:warn", group.external_id, {"to": "group", "text": WARNING_NOTICE.format(name=name)})
            _send_or_task(account, warn, applied, task_title=f"提醒{name}遵守群规", evidence=evidence)
        case.applied = applied
        case.save(update_fields=["applied"])
        record_audit(group.workspace, None, "moderation.applied", target=case, summary=f"{decision.verdict.value}: {name} in {group.name}", after=evidence)
    return case
