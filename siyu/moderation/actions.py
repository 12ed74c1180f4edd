"""Apply moderation verdicts through the channel, degrading to staff tasks where the
channel cannot act (WeCom customer groups cannot remove members through the API), and
the writes that configure moderation: word lists, policies, appeals (申诉/撤销)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from siyu.accounts.events import record_audit
from siyu.accounts.models import Staff
from siyu.accounts.permissions import Perm, require
from siyu.channels.actions import do_command_or_task
from siyu.channels.base import Command, CommandKind
from siyu.channels.models import ChannelAccount, StaffTask
from siyu.communities.actions import do_add_member, do_remove_member
from siyu.communities.models import Group, GroupMessage, MemberRole, Membership, Threshold
from siyu.contacts.models import ChannelIdentity, Contact
from siyu.core.errors import Conflict, NotFound, ValidationFailed
from siyu.core.models import Workspace
from siyu.moderation import engine
from siyu.moderation.detectors import CARD_MSGTYPES
from siyu.moderation.models import BlacklistEntry, ModerationCase, ModerationPolicy, Strike, WordList, WordListKind
from siyu.moderation.policy import DEFAULT_ACTIONS, Decision, Verdict

REMOVAL_NOTICE = "因系统检测到{name}发广告，已移出群聊。本群由机器人监控广告，请大家遵守群规。"
WARNING_NOTICE = "@{name} 请遵守群规：本群禁止发布广告、联系方式和外部链接。"
MAX_WORDS = 50_000
MAX_BULK_BLACKLIST = 500  # contacts or entries per bulk blacklist / lift
POLICY_KEYS = {"actions", "escalation", "vip_tags", "own_domains", "own_qr_prefixes", "flood_count", "flood_window_seconds"}
DETECTORS = set(DEFAULT_ACTIONS)


def check_message(text: str, *, exempt: bool = False, workspace_id: int | None = None, group_id: int | None = None,
                  image: bytes | None = None, msgtype: str = "text") -> Decision:
    """The verdict for a text, without touching anything (CLI/API ``moderation check``).
    Without a workspace the built-in defaults apply."""
    if workspace_id is None:
        from siyu.moderation.detectors import detect
        from siyu.moderation.policy import decide
        from siyu.moderation.qr import decode_qr

        return decide(detect(text, msgtype=msgtype, qr_payloads=decode_qr(image) if image else ()), exempt=exempt)
    return engine.check_message(workspace_id, text, group_id=group_id, image=image, msgtype=msgtype, exempt=exempt)


def _send_or_task(
    account: ChannelAccount, command: Command, applied: list[dict[str, Any]], *, task_title: str, evidence: dict[str, Any]
) -> bool:
    """Enqueue the command, or a staff task with the evidence; True when enqueued."""
    where, pk = do_command_or_task(account, command, task_kind=f"moderation_{command.kind.value}", title=task_title, detail=evidence)
    if where == "outbox":
        applied.append({"outbox": pk, "command": command.kind.value})
        return True
    applied.append({"staff_task": pk, "command": command.kind.value, "reason": f"{account.kind} cannot {command.required_capability().value}"})
    return False


def _is_group_admin(group: Group, contact: Contact | None) -> bool:
    if contact is None:
        return False
    return Membership.objects.filter(
        group=group, contact=contact, left_at__isnull=True, role__in=(MemberRole.OWNER, MemberRole.ADMIN), role_assigned=True
    ).exists()


def _repeats(message: GroupMessage, window_seconds: int) -> int:
    if message.sender_id is None or not message.text.strip():
        return 0
    since = message.sent_at - dt.timedelta(seconds=window_seconds)
    return GroupMessage.objects.filter(
        group_id=message.group_id, sender_id=message.sender_id, text=message.text, sent_at__gte=since, sent_at__lte=message.sent_at,
    ).exclude(pk=message.pk).count()


def decide_message(message: GroupMessage, *, exempt: bool = False, image: bytes | None = None) -> Decision:
    """The verdict for a stored group message (reads only)."""
    from siyu.moderation.detectors import detect
    from siyu.moderation.policy import decide

    loaded = engine.load(message.workspace_id, message.group_id)
    qr: list[str] = []
    if image:
        from siyu.moderation.qr import decode_qr

        qr = decode_qr(image)
    repeats = _repeats(message, loaded.policy.flood_window_seconds) if loaded.policy.flood_count > 1 else 0
    findings = detect(message.text, loaded.detectors, msgtype=message.msgtype, data=message.data, qr_payloads=qr, repeats=repeats)
    if not findings:
        return Decision(Verdict.ALLOW)
    policy = loaded.policy
    sender_id = message.sender_id
    exempt = exempt or _is_group_admin(message.group, message.sender) or (
        sender_id is not None and engine.is_vip(sender_id, policy.vip_tags)
    )
    strikes = engine.prior_strikes(sender_id, policy.escalation.window_days, now=message.sent_at) if sender_id and not exempt else 0
    return decide(findings, policy.actions, exempt=exempt, escalation=policy.escalation, prior_strikes=strikes)


def do_moderate_message(
    message: GroupMessage, account: ChannelAccount, *, exempt: bool = False, image: bytes | None = None
) -> ModerationCase | None:
    """Run detectors and policy on a stored group message and apply the verdict: delete
    the message, remove the member with a public notice, blacklist them from every group,
    or warn — each through the outbox, or as a staff task with the evidence when the
    channel cannot. Stores a :class:`ModerationCase` (once per message) with the rule
    that fired and a :class:`Strike`, and records ``moderation.applied``."""
    decision = decide_message(message, exempt=exempt, image=image)
    if decision.verdict == Verdict.ALLOW:
        return None
    group: Group = message.group
    sender = message.sender
    name = sender.name if sender else "该成员"
    member_id = message.data.get("sender_external_id", "")
    evidence = {"text": message.text[:500], "sender": member_id, "group": group.name, "rule": decision.rule, **decision.as_dict()}
    applied: list[dict[str, Any]] = []
    with transaction.atomic():
        case, created = ModerationCase.objects.get_or_create(
            message=message,
            defaults={
                "workspace_id": message.workspace_id, "group": group, "contact": sender, "verdict": decision.verdict.value,
                "reasons": decision.as_dict()["reasons"], "text": message.text[:2000], "rule": decision.rule[:100],
                "note": decision.note[:300],
            },
        )
        if not created:
            return case
        if sender is not None:
            Strike.objects.create(workspace_id=message.workspace_id, contact=sender, group=group, case=case, created_at=message.sent_at)
        base = f"mod:{message.pk}"
        if decision.verdict in (Verdict.DELETE, Verdict.REMOVE, Verdict.BLACKLIST):
            _send_or_task(
                account, Command(CommandKind.DELETE_MESSAGE, f"{base}:delete", group.external_id, {"message_id": message.external_id}),
                applied, task_title=f"删除{name}在「{group.name}」的违规消息", evidence=evidence,
            )
        if decision.verdict in (Verdict.REMOVE, Verdict.BLACKLIST):
            _remove_from_group(account, group, sender, member_id, name, base, applied, evidence)
        if decision.verdict == Verdict.BLACKLIST and sender is not None:
            _blacklist(sender, case, applied, evidence, except_group=group)
        if decision.verdict == Verdict.WARN:
            warn = Command(CommandKind.SEND_MESSAGE, f"{base}:warn", group.external_id,
                           {"to": "group", "text": WARNING_NOTICE.format(name=name), "mention": member_id})
            _send_or_task(account, warn, applied, task_title=f"提醒{name}遵守群规", evidence=evidence)
        case.applied = applied
        case.save(update_fields=["applied"])
        record_audit(group.workspace, None, "moderation.applied", target=case, summary=f"{decision.verdict.value}: {name} in {group.name}", after=evidence)
    return case


@dataclass(frozen=True)
class PendingVerdict:
    """A verdict decided inside a batch, for :func:`do_apply_verdicts`."""

    account: ChannelAccount
    group: Group
    message_id: int
    external_id: str
    text: str
    sent_at: dt.datetime
    sender_id: int
    sender_name: str
    member_id: str
    decision: Decision
    membership_id: int | None  # the sender's open membership, closed on removal


#: what the batch applies itself; anything else goes through :func:`do_moderate_message`
BATCH_VERDICTS = (Verdict.WARN, Verdict.DELETE, Verdict.REMOVE)


def batch_commands(verdict: Verdict) -> tuple[CommandKind, ...]:
    """The outbox commands a verdict sends (the channel must be able to run them all for
    the batch to apply it; otherwise staff tasks are the per-event path's work)."""
    return {
        Verdict.WARN: (CommandKind.SEND_MESSAGE,),
        Verdict.DELETE: (CommandKind.DELETE_MESSAGE,),
        Verdict.REMOVE: (CommandKind.DELETE_MESSAGE, CommandKind.REMOVE_MEMBER, CommandKind.SEND_MESSAGE),
    }.get(verdict, ())


def do_apply_verdicts(items: list[PendingVerdict]) -> dict[int, int]:
    """The batch twin of :func:`do_moderate_message` for verdicts the batch processor
    decided (warn, delete, remove on channels that can do them): the same
    :class:`ModerationCase` (once per message), :class:`Strike`, outbox commands,
    closed membership with its ``left_group`` timeline event and ``member.left`` audit,
    and ``moderation.applied`` audit — written with a few bulk statements; the outbox
    rows are delivered by one task after commit. Returns case ids by message id."""
    from siyu.accounts.events import _jsonable, current_via
    from siyu.accounts.models import AuditEntry
    from siyu.channels.inbox import insert_new_rows, insert_rows, select_in
    from siyu.channels.outbox import do_enqueue_many
    from siyu.contacts.actions import schedule_rule_evaluation
    from siyu.contacts.events import EventKind, schedule_event_fanout
    from siyu.contacts.models import ContactEvent

    if not items:
        return {}
    with transaction.atomic():
        # plain statements (``select_in``/``insert_rows``): a few rows each, where the
        # ORM's per-statement preparation would cost more than the database's work
        taken = {m for (m,) in select_in(ModerationCase, ("message_id",), "message_id", {i.message_id for i in items})}
        items = [i for i in items if i.message_id not in taken]
        if not items:
            return {}
        plans: list[list[tuple[str, Any]]] = []
        commands: list[tuple[ChannelAccount, Command, dt.datetime | None]] = []
        for item in items:
            group, verdict, base, name = item.group, item.decision.verdict, f"mod:{item.message_id}", item.sender_name
            plan: list[tuple[str, Any]] = []
            if verdict in (Verdict.DELETE, Verdict.REMOVE):
                plan.append(("command", Command(CommandKind.DELETE_MESSAGE, f"{base}:delete", group.external_id, {"message_id": item.external_id})))
            if verdict == Verdict.REMOVE:
                plan.append(("command", Command(CommandKind.REMOVE_MEMBER, f"{base}:remove", group.external_id,
                                                {"member": item.member_id, "reason": "advertising"})))
                if item.membership_id is not None:
                    plan.append(("membership_closed", item.membership_id))
                plan.append(("command", Command(CommandKind.SEND_MESSAGE, f"{base}:notice", group.external_id,
                                                {"to": "group", "text": REMOVAL_NOTICE.format(name=name)})))
            if verdict == Verdict.WARN:
                plan.append(("command", Command(CommandKind.SEND_MESSAGE, f"{base}:warn", group.external_id,
                                                {"to": "group", "text": WARNING_NOTICE.format(name=name), "mention": item.member_id})))
            plans.append(plan)
            commands.extend((item.account, command, None) for kind, command in plan if kind == "command")
        outbox = do_enqueue_many(commands)
        now = timezone.now()
        reason = "removed by moderation: advertising"
        closing = {pk: item for item, plan in zip(items, plans, strict=True) for kind, pk in plan if kind == "membership_closed"}
        if closing:
            Membership.objects.filter(pk__in=list(closing), left_at__isnull=True).update(left_at=now)
            schedule_event_fanout(list(insert_new_rows(
                ContactEvent, ("workspace_id", "contact_id", "kind", "occurred_at", "idempotency_key", "data", "created_at"),
                [(item.group.workspace_id, item.sender_id, EventKind.LEFT_GROUP, now, f"leave:{pk}",
                  {"group_id": item.group.pk, "group": item.group.name, "reason": reason}, now) for pk, item in closing.items()],
            ).values()))
            schedule_rule_evaluation([i.sender_id for i in closing.values()])
        via = current_via.get()
        cases = []
        evidences = []
        for item, plan in zip(items, plans, strict=True):
            decision = item.decision
            applied: list[dict[str, Any]] = []
            for kind, value in plan:
                if kind == "command":
                    applied.append({"outbox": outbox[value.idempotency_key[:200]], "command": value.kind.value})
                else:
                    applied.append({"membership_closed": value})
            evidences.append({"text": item.text[:500], "sender": item.member_id, "group": item.group.name, "rule": decision.rule,
                              **decision.as_dict()})
            cases.append((item.group.workspace_id, item.group.pk, item.message_id, item.sender_id, decision.verdict.value, decision.rule[:100],
                          decision.note[:300], decision.as_dict()["reasons"], item.text[:2000], applied, now))
        insert_rows(ModerationCase, ("workspace_id", "group_id", "message_id", "contact_id", "verdict", "rule", "note", "reasons", "text", "applied",
                                     "created_at"), cases)
        case_ids = dict(select_in(ModerationCase, ("message_id", "id"), "message_id", [i.message_id for i in items]))
        insert_rows(Strike, ("workspace_id", "contact_id", "group_id", "case_id", "created_at"),
                    [(i.group.workspace_id, i.sender_id, i.group.pk, case_ids[i.message_id], i.sent_at) for i in items])
        columns = ("workspace_id", "actor_id", "action", "target_type", "target_id", "summary", "before", "after", "via", "created_at")
        audits = [(closing[pk].group.workspace_id, None, "member.left", "membership", str(pk), reason, None, None, via, now) for pk in closing]
        audits += [
            (i.group.workspace_id, None, "moderation.applied", "moderationcase", str(case_ids[i.message_id]),
             f"{i.decision.verdict.value}: {i.sender_name} in {i.group.name}"[:300], None, _jsonable(evidence), via, now)
            for i, evidence in zip(items, evidences, strict=True)
        ]
        insert_rows(AuditEntry, columns, audits)
    return case_ids


def _remove_from_group(
    account: ChannelAccount, group: Group, contact: Contact | None, member_id: str, name: str, base: str,
    applied: list[dict[str, Any]], evidence: dict[str, Any],
) -> None:
    # the task names the stay it is about, so the platform's member-left report closes it
    # (siyu.communities.actions.do_close_removal_task)
    removed = _send_or_task(
        account, Command(CommandKind.REMOVE_MEMBER, f"{base}:remove", group.external_id, {"member": member_id, "reason": "advertising"}),
        applied, task_title=f"将{name}移出「{group.name}」（发广告）",
        evidence={**evidence, "group_id": group.pk, "contact_id": contact.pk if contact else None},
    )
    if contact is not None and group.threshold == Threshold.PRICE:
        ask_for_refund(account, group, contact, name, base, applied, evidence)
    if not removed:
        return  # a person must remove them: the membership stays open until they do
    membership = Membership.objects.filter(group=group, contact=contact, left_at__isnull=True).first() if contact else None
    if membership is not None:
        do_remove_member(membership, None, reason="removed by moderation: advertising")
        applied.append({"membership_closed": membership.pk})
    notice = Command(CommandKind.SEND_MESSAGE, f"{base}:notice", group.external_id, {"to": "group", "text": REMOVAL_NOTICE.format(name=name)})
    _send_or_task(account, notice, applied, task_title="发布移出公告", evidence=evidence)


def ask_for_refund(account: ChannelAccount, group: Group, contact: Contact, name: str, base: str,
                   applied: list[dict[str, Any]], evidence: dict[str, Any]) -> StaffTask | None:
    """A member removed from a paid group (门槛: price) by moderation gets their fee back
    (seed: "remove, and refund in paid groups"): siyu cannot pay anyone, so the group
    owner gets a task with the evidence. Not where the group's settings say fees are not
    refunded (``refund_on_removal`` off, on the group, its type's template or the
    workspace default): then nothing is asked and ``None`` is answered."""
    from siyu.channels.actions import do_create_staff_task
    from siyu.communities.group_settings import effective

    if not effective(group)["refund_on_removal"]:
        applied.append({"refund": "not asked: the group's settings say fees are not refunded"})
        return None
    price = f"（{group.threshold_detail}）" if group.threshold_detail else ""
    task, _ = do_create_staff_task(
        group.workspace_id, kind="moderation_refund", title=f"为{name}退还「{group.name}」的入群费用{price}", account=account,
        assignee=group.owner, dedupe_key=f"task:{base}:refund",
        detail={**evidence, "group_id": group.pk, "contact_id": contact.pk, "threshold_detail": group.threshold_detail},
    )
    applied.append({"staff_task": task.pk, "command": "refund", "reason": "paid group"})
    return task


def _blacklist(contact: Contact, case: ModerationCase | None, applied: list[dict[str, Any]], evidence: dict[str, Any],
               *, except_group: Group | None = None) -> None:
    if not BlacklistEntry.objects.filter(contact=contact, lifted_at__isnull=True).exists():
        try:
            with transaction.atomic():
                entry = BlacklistEntry.objects.create(workspace_id=contact.workspace_id, contact=contact, case=case,
                                                      reason=str(evidence.get("rule", ""))[:300])
            applied.append({"blacklisted": entry.pk})
        except IntegrityError:
            pass
    others = Membership.objects.filter(workspace_id=contact.workspace_id, contact=contact, left_at__isnull=True).select_related("group")
    if except_group is not None:
        others = others.exclude(group=except_group)
    for membership in others:
        other = membership.group
        account = other.channel_account
        if account is None:
            do_remove_member(membership, None, reason="blacklisted")
            continue
        identity = ChannelIdentity.objects.filter(account=account, contact=contact).values_list("external_id", flat=True).first() or ""
        base = f"blacklist:{case.pk if case else contact.pk}:{other.pk}"
        _remove_from_group(account, other, contact, identity, contact.name, base, applied, {**evidence, "group": other.name})


def is_blacklisted(contact: Contact) -> bool:
    return BlacklistEntry.objects.filter(contact=contact, lifted_at__isnull=True).exists()


def do_blacklist_contact(contact: Contact, actor: Staff | None, *, reason: str = "") -> BlacklistEntry:
    """Ban a contact from every group of the workspace by hand (拉黑): removed (or a staff
    task where the channel cannot) from each open group, and from any group they join
    while the entry stands (:func:`do_enforce_blacklist`). A contact already blacklisted
    keeps their entry (nothing more is done). Records ``moderation.blacklisted``."""
    require(actor, Perm.MANAGE_GROUPS)
    reason = reason.strip()
    if len(reason) > 300:
        raise ValidationFailed("the reason is at most 300 characters", code="invalid_reason")
    applied: list[dict[str, Any]] = []
    with transaction.atomic():
        existing = BlacklistEntry.objects.filter(contact=contact, lifted_at__isnull=True).first()
        if existing is not None:
            return existing
        _blacklist(contact, None, applied, {"rule": reason or "manual", "text": "", "sender": "", "group": ""})
        entry = BlacklistEntry.objects.get(contact=contact, lifted_at__isnull=True)
        record_audit(Workspace.objects.get(pk=contact.workspace_id), actor, "moderation.blacklisted", target=entry,
                     summary=reason[:300], after={"applied": applied})
    return entry


def do_lift_blacklist(entry: BlacklistEntry, actor: Staff | None, *, note: str = "") -> BlacklistEntry:
    """Lift a blacklist entry (解除拉黑): the contact may join groups again. Memberships
    the ban ended stay ended (they come back through a live code or an invitation, like
    anyone); to undo a verdict with its strike and re-invite, undo its case instead.
    Lifting twice changes nothing. Records ``moderation.blacklist_lifted``."""
    require(actor, Perm.MANAGE_GROUPS)
    note = note.strip()
    if len(note) > 200:
        raise ValidationFailed("the note is at most 200 characters", code="invalid_note")
    with transaction.atomic():
        locked = BlacklistEntry.objects.select_for_update().get(pk=entry.pk)
        if locked.lifted_at is None:
            locked.lifted_at = timezone.now()
            locked.save(update_fields=["lifted_at"])
            record_audit(Workspace.objects.get(pk=locked.workspace_id), actor, "moderation.blacklist_lifted", target=locked,
                         summary=note, after={"contact": locked.contact_id})
    entry.lifted_at = locked.lifted_at
    return entry


def _bulk(rows: list[Any], noun: str) -> list[Any]:
    """The rows of a bulk blacklist/lift, each once, in the order given; between 1 and
    ``MAX_BULK_BLACKLIST`` of them."""
    unique = list({row.pk: row for row in rows}.values())
    if not unique:
        raise ValidationFailed(f"name at least one of the {noun}", code=f"no_{noun}")
    if len(unique) > MAX_BULK_BLACKLIST:
        raise ValidationFailed(f"at most {MAX_BULK_BLACKLIST} {noun} at once", code=f"too_many_{noun}")
    return unique


def do_blacklist_contacts(contacts: list[Contact], actor: Staff | None, *, reason: str = "") -> tuple[list[BlacklistEntry], list[BlacklistEntry]]:
    """Blacklist several contacts of one workspace at once (批量拉黑) — each as
    :func:`do_blacklist_contact` does, all or none. Returns (new entries, entries of the
    contacts already blacklisted), in the order given; a contact given twice counts once."""
    require(actor, Perm.MANAGE_GROUPS)
    unique = _bulk(contacts, "contacts")
    if len({c.workspace_id for c in unique}) > 1:
        raise ValidationFailed("the contacts belong to different workspaces", code="mixed_workspaces")
    with transaction.atomic():
        standing = set(BlacklistEntry.objects.filter(contact__in=unique, lifted_at__isnull=True).values_list("contact_id", flat=True))
        entries = [do_blacklist_contact(contact, actor, reason=reason) for contact in unique]
    return [e for e in entries if e.contact_id not in standing], [e for e in entries if e.contact_id in standing]


def parse_channel_ids(text: str) -> list[tuple[str, str]]:
    """(channel id, name) pairs from a list as operators paste or share it: one person per
    line, ``id`` or ``id<TAB>name`` (``id,name`` too); blank lines and ``#`` comments skipped."""
    people = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            external_id, _sep, name = line.partition("\t") if "\t" in line else line.partition(",")
            people.append((external_id.strip(), name.strip()))
    return people


def do_blacklist_identities(
    account: ChannelAccount, actor: Staff | None, people: list[tuple[str, str]], *, reason: str = "",
) -> tuple[list[BlacklistEntry], list[BlacklistEntry]]:
    """Blacklist people by the id they use on a channel account (按渠道账号拉黑), whether
    or not they were ever seen: a shared list of known spammers' Matrix ids, a WeCom
    external id copied from another group. ``people`` are (external id, name — may be
    empty) pairs. Each unknown id becomes a contact with that identity (source: the
    account's channel, campaign ``blacklist``), so the blacklist holds the moment they
    join or speak in any group; a known id is its contact. Then as
    :func:`do_blacklist_contacts`, all or none. Returns (new entries, entries that stood
    already), in the order given; an id given twice counts once."""
    from siyu.contacts.actions import do_ensure_contact_for_identity

    require(actor, Perm.MANAGE_GROUPS)
    if actor is not None and actor.workspace_id != account.workspace_id:
        raise NotFound("channel account not found", code="account_not_found")
    unique: dict[str, str] = {}
    for external_id, name in people:
        external_id, name = str(external_id).strip(), str(name or "").strip()
        if not external_id or len(external_id) > 200:
            raise ValidationFailed(f"a channel id is 1 to 200 characters: {external_id[:40]!r}", code="invalid_external_id")
        if len(name) > 100:
            raise ValidationFailed(f"a name is at most 100 characters: {name[:40]!r}…", code="invalid_name")
        unique.setdefault(external_id, name)
    if not unique:
        raise ValidationFailed("name at least one channel id", code="no_external_ids")
    if len(unique) > MAX_BULK_BLACKLIST:
        raise ValidationFailed(f"at most {MAX_BULK_BLACKLIST} channel ids at once", code="too_many_external_ids")
    with transaction.atomic():  # a refusal below (the reason, say) takes the new contacts back too
        contacts = [
            do_ensure_contact_for_identity(account, external_id, name=name, source_channel=account.kind, source_campaign="blacklist", actor=actor)[0]
            for external_id, name in unique.items()
        ]
        return do_blacklist_contacts(contacts, actor, reason=reason)


def do_lift_blacklist_entries(entries: list[BlacklistEntry], actor: Staff | None, *, note: str = "") -> list[BlacklistEntry]:
    """Lift several entries at once (批量解除), each as :func:`do_lift_blacklist` does, all
    or none. Returns the entries that were standing and are lifted now."""
    require(actor, Perm.MANAGE_GROUPS)
    unique = _bulk(entries, "entries")
    if len(note.strip()) > 200:
        raise ValidationFailed("the note is at most 200 characters", code="invalid_note")
    with transaction.atomic():
        standing = set(BlacklistEntry.objects.filter(pk__in=[e.pk for e in unique], lifted_at__isnull=True).values_list("pk", flat=True))
        return [do_lift_blacklist(e, actor, note=note) for e in unique if e.pk in standing]


def do_enforce_blacklist(membership: Membership) -> list[dict[str, Any]]:
    """A blacklisted contact joined a group (or was seen in one): out again at once — on
    the channel where it can, else a staff task — with the removal notice; nothing if the
    contact is not blacklisted. A system action (the join is the platform's fact).
    Returns what was done; records ``moderation.blacklist_enforced`` when it acted."""
    contact, group = membership.contact, membership.group
    entry = BlacklistEntry.objects.filter(contact=contact, lifted_at__isnull=True).first()
    if entry is None or membership.left_at is not None:
        return []
    applied: list[dict[str, Any]] = []
    evidence = {"rule": "blacklisted", "text": "", "sender": contact.name, "group": group.name, "blacklist": entry.pk}
    with transaction.atomic():
        account = group.channel_account
        if account is None or not group.external_id:
            do_remove_member(membership, None, reason="blacklisted")
            applied.append({"membership_closed": membership.pk})
        else:
            identity = ChannelIdentity.objects.filter(account=account, contact=contact).values_list("external_id", flat=True).first() or ""
            _remove_from_group(account, group, contact, identity, contact.name, f"blacklist:join:{membership.pk}", applied, evidence)
        record_audit(group.workspace, None, "moderation.blacklist_enforced", target=membership, summary=f"{contact.name} in {group.name}"[:300],
                     after={"blacklist": entry.pk, "applied": applied})
    return applied


def do_undo_case(case: ModerationCase, actor: Staff | None, *, note: str = "") -> ModerationCase:
    """Appeal granted (申诉/撤销): clear the strike, lift a blacklist entry this case made,
    and restore the membership — re-invite through the channel where it can, else a staff
    task. Records ``moderation.undone``."""
    require(actor, Perm.MANAGE_GROUPS)
    if case.undone_at is not None:
        raise Conflict("this case was already undone", code="already_undone")
    now = timezone.now()
    restored: list[dict[str, Any]] = []
    with transaction.atomic():
        Strike.objects.filter(case=case, cleared_at__isnull=True).update(cleared_at=now)
        BlacklistEntry.objects.filter(case=case, lifted_at__isnull=True).update(lifted_at=now)
        group = case.group
        contact = case.contact
        removed = case.verdict in (Verdict.REMOVE, Verdict.BLACKLIST)
        if removed and contact is not None and group.archived_at is None and group.channel_account is not None:
            account = group.channel_account
            identity = ChannelIdentity.objects.filter(account=account, contact=contact).values_list("external_id", flat=True).first() or ""
            invite = Command(CommandKind.INVITE_MEMBER, f"undo:{case.pk}:invite", group.external_id, {"member": identity})
            if _send_or_task(account, invite, restored, task_title=f"将{contact.name}重新拉回「{group.name}」（申诉通过）",
                             evidence={"case": case.pk, "note": note}):
                membership, _ = do_add_member(group, contact, None, join_source="moderation_undo")
                restored.append({"membership": membership.pk})
        case.undone_at = now
        case.note = (f"undone: {note}" if note else "undone")[:300]
        case.applied = [*case.applied, *[{**r, "undo": True} for r in restored]]
        case.save(update_fields=["undone_at", "note", "applied"])
        record_audit(group.workspace, actor, "moderation.undone", target=case, summary=note[:300], after={"restored": restored})
    return case


def _clean_words(words: Any) -> list[str]:
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise ValidationFailed("words must be a list of strings", code="invalid_words")
    clean = list(dict.fromkeys(w.strip() for w in words if w.strip()))
    if len(clean) > MAX_WORDS:
        raise ValidationFailed(f"a word list holds at most {MAX_WORDS} words", code="too_many_words")
    return clean


def do_save_word_list(
    workspace: Workspace, actor: Staff | None, *, name: str, words: list[str], kind: str = WordListKind.SENSITIVE,
    group: Group | None = None, is_active: bool = True,
) -> WordList:
    """Create or replace a word list (敏感词/竞品词库) by name. Records ``word_list.saved``."""
    require(actor, Perm.MANAGE_GROUPS)
    name = (name or "").strip()
    if not name:
        raise ValidationFailed("a word list needs a name", code="name_required")
    if kind not in WordListKind.values:
        raise ValidationFailed(f"unknown word list kind {kind!r}; expected {', '.join(WordListKind.values)}", code="invalid_kind")
    if group is not None and group.workspace_id != workspace.pk:
        raise NotFound("group not found")
    clean = _clean_words(words)
    with transaction.atomic():
        row = WordList.objects.in_workspace(workspace).filter(name=name).first()
        before = {"words": len(row.words), "kind": row.kind} if row else None
        if row is None:
            row = WordList.objects.create(workspace=workspace, name=name, words=clean, kind=kind, group=group, is_active=is_active)
        else:
            row.words, row.kind, row.group, row.is_active = clean, kind, group, is_active
            row.save(update_fields=["words", "kind", "group", "is_active", "updated_at"])
        record_audit(workspace, actor, "word_list.saved", target=row, before=before,
                     after={"words": len(clean), "kind": kind, "group": group.pk if group else None})
        transaction.on_commit(engine.invalidate)
    return row


def do_delete_word_list(word_list: WordList, actor: Staff | None) -> None:
    """Delete a word list. Records ``word_list.deleted``."""
    require(actor, Perm.MANAGE_GROUPS)
    with transaction.atomic():
        record_audit(word_list.workspace, actor, "word_list.deleted", target=word_list, before={"name": word_list.name})
        word_list.delete()
        transaction.on_commit(engine.invalidate)


def _clean_policy(config: Any) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise ValidationFailed("policy must be an object", code="invalid_policy")
    unknown = set(config) - POLICY_KEYS
    if unknown:
        raise ValidationFailed(f"unknown policy keys: {', '.join(sorted(unknown))}", code="invalid_policy")
    for detector, verdict in (config.get("actions") or {}).items():
        if detector not in DETECTORS:
            raise ValidationFailed(f"unknown detector {detector!r}", code="unknown_detector")
        if verdict not in {v.value for v in Verdict}:
            raise ValidationFailed(f"unknown verdict {verdict!r}; expected {', '.join(v.value for v in Verdict)}", code="invalid_verdict")
    for key in ("window_days", "remove_after", "blacklist_after"):
        value = (config.get("escalation") or {}).get(key, 0)
        if not isinstance(value, int) or value < 0:
            raise ValidationFailed(f"escalation.{key} must be a whole number ≥ 0", code="invalid_escalation")
    for key in ("vip_tags", "own_domains", "own_qr_prefixes"):
        if not isinstance(config.get(key, []), list):
            raise ValidationFailed(f"{key} must be a list", code="invalid_policy")
    return config


def do_set_policy(workspace: Workspace, actor: Staff | None, config: dict[str, Any], *, group: Group | None = None) -> ModerationPolicy:
    """Store the workspace default policy, or a group's own (it overrides the default key
    by key). Records ``moderation.policy_set``."""
    require(actor, Perm.MANAGE_GROUPS)
    if group is not None and group.workspace_id != workspace.pk:
        raise NotFound("group not found")
    clean = _clean_policy(config)
    with transaction.atomic():
        row = ModerationPolicy.objects.in_workspace(workspace).filter(group=group).first()
        before = row.config if row else None
        if row is None:
            row = ModerationPolicy.objects.create(workspace=workspace, group=group, config=clean)
        else:
            row.config = clean
            row.save(update_fields=["config", "updated_at"])
        record_audit(workspace, actor, "moderation.policy_set", target=row, before=before, after=clean)
        transaction.on_commit(engine.invalidate)
    return row


__all__ = [
    "BATCH_VERDICTS", "CARD_MSGTYPES", "PendingVerdict", "batch_commands", "check_message", "decide_message", "do_apply_verdicts",
    "do_blacklist_contact", "do_delete_word_list", "do_enforce_blacklist", "do_lift_blacklist", "do_moderate_message",
    "do_save_word_list", "do_set_policy", "do_undo_case", "is_blacklisted",
]
