"""The quota ledger (发送配额): may this contact or group get this message now, and if
not, when is the next allowed slot?

One ledger per workspace, consulted by every sender (broadcasts, columns, journeys, bot
messages that are not direct answers). It counts the deliveries that hold a slot
(``queued``/``sent`` at ``slot_at``) and applies, in this order:

1. consent / do-not-disturb per purpose (no slot will ever come: the send is skipped);
2. platform rules, as data per channel kind (:data:`PLATFORM_RULES`): on WeCom each
   customer or group gets at most as many mass messages per calendar month as the month
   has days — or 7 per week, or 1 per day, as the corp configured (the channel account's
   ``config["mass_limit"]`` = ``month`` | ``week`` | ``day``) — and at most 3 reminders
   in 24 hours;
3. the brand's own caps across every campaign and journey (:class:`QuotaPolicy`): e.g.
   at most 2 marketing messages per contact in any 7 days, 3 posts per group a day;
4. quiet hours in the recipient's time zone (the contact's ``profile["time_zone"]`` when
   known, else the workspace's).

Service replies and order notices (``service``, ``notice``) are exempt from the brand
caps and quiet hours; notices still count as WeCom mass messages (that is how they reach
the customer there), service replies are one-to-one chats and do not.

:func:`evaluate` is a pure function of a :class:`Target` (the recipient's counted slots,
consent and zone) so the bulk planner, the single-send actions and the property tests
share exactly one implementation; :func:`check` loads the target from the database.
A rolling cap is checked exactly, including slots already planned in the future: no
window of the cap's length may ever hold more than the cap. The next allowed slot is the
earliest time every rule accepts (the first of next month, the end of quiet hours, the
moment the oldest counted message leaves the window…).
"""

from __future__ import annotations

import bisect
import calendar
import datetime as dt
import zoneinfo
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from siyu.channels.models import ChannelAccount
from siyu.communities.models import Group
from siyu.contacts.models import ChannelIdentity, Consent, ConsentPurpose, Contact
from siyu.core.errors import ValidationFailed
from siyu.core.models import Workspace

__all__ = [
    "MESSAGE_CLASSES",
    "PLATFORM_RULES",
    "PlatformRules",
    "Policy",
    "QuotaDecision",
    "Slot",
    "Target",
    "check",
    "evaluate",
    "platform_for",
    "policy_for",
]

MARKETING, REMINDER, SERVICE, NOTICE = "marketing", "reminder", "service", "notice"
MESSAGE_CLASSES = (MARKETING, REMINDER, SERVICE, NOTICE)
#: classes held to the brand's caps, quiet hours and marketing consent
_PROMOTIONAL = frozenset({MARKETING, REMINDER})
#: how far back the ledger must look to judge any rule (a month, or the longest window)
LOOKBACK = dt.timedelta(days=32)
HORIZON = dt.timedelta(days=400)


@dataclass(frozen=True)
class QuotaDecision:
    """The ledger's answer. ``rule`` is a machine code (``wecom.monthly_mass``,
    ``brand.weekly_cap``, ``quiet_hours``, ``consent``...), ``reason`` says it for people;
    ``next_allowed_at`` is None when allowed now or when no slot will come."""

    allowed: bool
    next_allowed_at: dt.datetime | None
    reason: str
    rule: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "next_allowed_at": self.next_allowed_at.isoformat() if self.next_allowed_at else None,
            "reason": self.reason,
            "rule": self.rule,
        }


@dataclass(frozen=True)
class PlatformRules:
    """A channel kind's own limits. ``mass_period`` is the calendar period of the mass
    message limit (month: as many as the month has days; week: 7; day: 1)."""

    name: str
    mass_period: str | None = None
    mass_classes: frozenset[str] = frozenset()
    reminder_cap: int | None = None
    reminder_window: dt.timedelta = dt.timedelta(hours=24)


PLATFORM_RULES: dict[str, PlatformRules | None] = {
    "wecom": PlatformRules(
        "wecom", mass_period="month", mass_classes=frozenset({MARKETING, REMINDER, NOTICE}), reminder_cap=3,
        reminder_window=dt.timedelta(hours=24),
    ),
    "matrix": None,
    "sandbox": None,
}
MASS_PERIODS = ("month", "week", "day")


@dataclass(frozen=True)
class Policy:
    """A snapshot of the workspace's :class:`~siyu.outreach.models.QuotaPolicy`."""

    contact_cap: int = 2
    contact_window: dt.timedelta = dt.timedelta(days=7)
    group_cap: int = 3
    group_window: dt.timedelta = dt.timedelta(days=1)
    reminder_cap: int = 3
    reminder_window: dt.timedelta = dt.timedelta(hours=24)
    quiet_start: dt.time = dt.time(22, 0)
    quiet_end: dt.time = dt.time(8, 0)
    consent_mode: str = "opt_in"

    @classmethod
    def from_row(cls, row: Any) -> Policy:
        return cls(
            contact_cap=row.contact_marketing_cap, contact_window=dt.timedelta(days=row.contact_window_days),
            group_cap=row.group_marketing_cap, group_window=dt.timedelta(days=row.group_window_days),
            reminder_cap=row.reminder_cap, reminder_window=dt.timedelta(hours=row.reminder_window_hours),
            quiet_start=row.quiet_start, quiet_end=row.quiet_end, consent_mode=row.consent_mode,
        )


@dataclass(frozen=True)
class Slot:
    """A counted send: when it counts, its class, and whose platform rules it used."""

    at: dt.datetime
    message_class: str
    platform: str = ""


@dataclass
class Target:
    """Everything the ledger needs about one recipient."""

    kind: str  # "contact" | "group"
    tz: zoneinfo.ZoneInfo  # quiet hours are in the recipient's zone
    calendar_tz: zoneinfo.ZoneInfo  # platform periods are in the workspace's zone
    platform: PlatformRules | None = None
    consent: dict[str, tuple[bool, bool]] = field(default_factory=dict)  # purpose -> (granted, dnd)
    slots: list[Slot] = field(default_factory=list)
    quiet: tuple[dt.time, dt.time] | None = None  # overrides the policy's quiet hours

    def add(self, slot: Slot) -> None:
        bisect.insort(self.slots, slot, key=lambda s: s.at)


@dataclass(frozen=True)
class _Failure:
    rule: str
    reason: str
    hint: dt.datetime | None  # earliest time this rule could pass; None = never


Rule = Callable[[dt.datetime], "_Failure | None"]


# ---------------------------------------------------------------- calendar periods


def period_bounds(at: dt.datetime, period: str, tz: zoneinfo.ZoneInfo) -> tuple[dt.datetime, dt.datetime, int]:
    """(start, end, limit) of the calendar period holding ``at`` in zone ``tz``."""
    local = at.astimezone(tz)
    if period == "month":
        start = dt.datetime(local.year, local.month, 1, tzinfo=tz)
        year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
        return start, dt.datetime(year, month, 1, tzinfo=tz), calendar.monthrange(local.year, local.month)[1]
    day = dt.datetime(local.year, local.month, local.day, tzinfo=tz)
    if period == "week":
        start = day - dt.timedelta(days=local.weekday())
        return start, start + dt.timedelta(days=7), 7
    return day, day + dt.timedelta(days=1), 1


def _period_rule(target: Target, rules: PlatformRules) -> Rule:
    assert rules.mass_period is not None
    period = rules.mass_period
    noun = {"month": "month", "week": "week", "day": "day"}[period]

    def rule(t: dt.datetime) -> _Failure | None:
        start, end, cap = period_bounds(t, period, target.calendar_tz)
        used = sum(1 for s in target.slots if s.platform == rules.name and s.message_class in rules.mass_classes and start <= s.at < end)
        if used + 1 <= cap:
            return None
        who = "customer" if target.kind == "contact" else "group"
        return _Failure(
            f"{rules.name}.{ {'month': 'monthly', 'week': 'weekly', 'day': 'daily'}[period]}_mass",
            f"{rules.name} allows {cap} mass messages per {who} per {noun} ({start.astimezone(target.calendar_tz):%Y-%m-%d}"
            f"–{(end - dt.timedelta(seconds=1)).astimezone(target.calendar_tz):%Y-%m-%d}); {used} already counted",
            end,
        )

    return rule


def _rolling_ok(times: list[dt.datetime], t: dt.datetime, cap: int, window: dt.timedelta) -> bool:
    """True when adding a send at ``t`` keeps every window of length ``window`` at no
    more than ``cap`` sends (any cap+1 consecutive sends span at least ``window``)."""
    if cap <= 0:
        return False
    i = bisect.bisect_right(times, t)
    xs = [*times[:i], t, *times[i:]]
    for start in range(max(0, i - cap), min(i, len(xs) - cap - 1) + 1):
        if xs[start + cap] - xs[start] < window:
            return False
    return True


def _rolling_rule(
    target: Target, code: str, classes: frozenset[str], cap: int, window: dt.timedelta, what: str, platform: str | None = None, *,
    in_hours: bool = False,
) -> Rule:
    span = f"{window.total_seconds() / 3600:g} hours" if in_hours else _span(window)

    def rule(t: dt.datetime) -> _Failure | None:
        times = [s.at for s in target.slots if s.message_class in classes and (platform is None or s.platform == platform)]
        if _rolling_ok(times, t, cap, window):
            return None
        hints = [x + window for x in times if x + window > t]
        inside = sum(1 for x in times if t - window < x <= t)
        planned = sum(1 for x in times if t < x < t + window)
        ahead = f", {planned} planned in the next {span}" if planned else ""
        return _Failure(code, f"{what}: at most {cap} in {span}; {inside} in the last {span}{ahead}", min(hints) if hints and cap > 0 else None)

    return rule


def _span(window: dt.timedelta) -> str:
    hours = window.total_seconds() / 3600
    if hours % 24 == 0:
        days = int(hours // 24)
        return "1 day" if days == 1 else f"{days} days"
    return f"{hours:g} hours"


def _quiet_rule(target: Target, start: dt.time, end: dt.time) -> Rule:
    def rule(t: dt.datetime) -> _Failure | None:
        if start == end:
            return None
        local = t.astimezone(target.tz)
        now = local.time()
        quiet = start <= now < end if start < end else (now >= start or now < end)
        if not quiet:
            return None
        wake = dt.datetime.combine(local.date(), end, tzinfo=target.tz)
        if wake <= local:
            wake += dt.timedelta(days=1)
        return _Failure("quiet_hours", f"quiet hours {start:%H:%M}–{end:%H:%M} ({target.tz.key})", wake)

    return rule


def _consent_block(policy: Policy, target: Target, message_class: str) -> str | None:
    if target.kind != "contact":
        return None
    if message_class in _PROMOTIONAL:
        granted, dnd = target.consent.get(ConsentPurpose.MARKETING, (False, False))
        known = ConsentPurpose.MARKETING in target.consent
        if dnd:
            return "the contact asked not to be disturbed (marketing)"
        if policy.consent_mode == "opt_in" and not granted:
            return "no marketing consent from this contact"
        if policy.consent_mode == "opt_out" and known and not granted:
            return "the contact refused marketing messages"
        return None
    _granted, dnd = target.consent.get(ConsentPurpose.SERVICE, (False, False))
    return "the contact asked not to be disturbed (service)" if dnd else None


def _rules(policy: Policy, target: Target, message_class: str) -> list[Rule]:
    rules: list[Rule] = []
    platform = target.platform
    if platform is not None:
        if platform.mass_period and message_class in platform.mass_classes:
            rules.append(_period_rule(target, platform))
        if platform.reminder_cap is not None and message_class == REMINDER:
            rules.append(_rolling_rule(
                target, f"{platform.name}.reminders", frozenset({REMINDER}), platform.reminder_cap, platform.reminder_window,
                f"{platform.name} reminders", platform=platform.name, in_hours=True,
            ))
    if message_class == MARKETING:
        if target.kind == "contact":
            rules.append(_rolling_rule(target, "brand.weekly_cap" if policy.contact_window == dt.timedelta(days=7) else "brand.contact_cap",
                                       frozenset({MARKETING}), policy.contact_cap, policy.contact_window, "brand cap per contact"))
        else:
            rules.append(_rolling_rule(target, "brand.group_cap", frozenset({MARKETING}), policy.group_cap, policy.group_window, "brand cap per group"))
    if message_class == REMINDER:
        rules.append(_rolling_rule(target, "brand.reminder_cap", frozenset({REMINDER}), policy.reminder_cap, policy.reminder_window, "brand reminder cap",
                                   in_hours=True))
    if message_class in _PROMOTIONAL:
        start, end = target.quiet or (policy.quiet_start, policy.quiet_end)
        rules.append(_quiet_rule(target, start, end))
    return rules


def evaluate(policy: Policy, target: Target, message_class: str, at: dt.datetime, *, until: dt.datetime | None = None) -> QuotaDecision:
    """Judge a send at ``at`` against the target's counted slots (pure). Not allowed →
    the reason of the first rule that refused at ``at`` and the earliest slot every rule
    accepts, or no slot when there is none before ``until`` (default: 400 days)."""
    if message_class not in MESSAGE_CLASSES:
        raise ValidationFailed(f"unknown message class {message_class!r} (one of {', '.join(MESSAGE_CLASSES)})", code="unknown_message_class")
    block = _consent_block(policy, target, message_class)
    if block is not None:
        return QuotaDecision(False, None, block, "consent")
    rules = _rules(policy, target, message_class)
    horizon = until if until is not None else at + HORIZON
    first: _Failure | None = None
    t = at
    for _ in range(2000):
        failures = [f for f in (rule(t) for rule in rules) if f is not None]
        if not failures:
            return QuotaDecision(True, None, "", "") if first is None else QuotaDecision(False, t, first.reason, first.rule)
        first = first or failures[0]
        hints = [f.hint for f in failures]
        if any(h is None for h in hints):
            return QuotaDecision(False, None, f"{first.reason}; no later slot", first.rule)
        t = max(h for h in hints if h is not None)
        if t > horizon:
            break
    assert first is not None
    return QuotaDecision(False, None, f"{first.reason}; no slot before {horizon.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC", first.rule)


# ---------------------------------------------------------------- loading targets


def policy_for(workspace: Workspace | int) -> Policy:
    from siyu.outreach.models import QuotaPolicy

    row = QuotaPolicy.objects.in_workspace(workspace).first()
    return Policy.from_row(row) if row is not None else Policy()


def platform_for(account: ChannelAccount | None) -> PlatformRules | None:
    """The platform rules a channel account sends under. A sandbox account imitating
    WeCom (``config["imitate"] = "wecom"``) follows WeCom's rules, so demos and tests
    see the real limits."""
    if account is None:
        return None
    config = account.config or {}
    kind = "wecom" if account.kind == "sandbox" and config.get("imitate") == "wecom" else account.kind
    rules = PLATFORM_RULES.get(kind)
    if rules is not None and rules.mass_period is not None:
        period = str(config.get("mass_limit") or rules.mass_period)
        if period not in MASS_PERIODS:
            raise ValidationFailed(f"channel account {account.pk}: mass_limit must be one of {', '.join(MASS_PERIODS)}", code="invalid_mass_limit")
        rules = replace(rules, mass_period=period)
    return rules


def zone(name: str | None, fallback: zoneinfo.ZoneInfo) -> zoneinfo.ZoneInfo:
    if not name:
        return fallback
    try:
        return zoneinfo.ZoneInfo(str(name))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return fallback


def contact_channels(workspace: Workspace | int, contact_ids: Iterable[int]) -> dict[int, tuple[int, str]]:
    """contact id → (channel account id, external id) the contact is reached through:
    their oldest identity on an active account."""
    ws_id = workspace if isinstance(workspace, int) else workspace.pk
    found: dict[int, tuple[int, str]] = {}
    ids = list(contact_ids)
    for chunk_start in range(0, len(ids), 5000):
        rows = (
            ChannelIdentity.objects.filter(workspace_id=ws_id, contact_id__in=ids[chunk_start:chunk_start + 5000], account__is_active=True)
            .order_by("contact_id", "id").values_list("contact_id", "account_id", "external_id")
        )
        for contact_id, account_id, external_id in rows:
            found.setdefault(contact_id, (account_id, external_id))
    return found


def load_slots(workspace: Workspace | int, *, since: dt.datetime, contact_ids: Iterable[int] = (), group_ids: Iterable[int] = ()) -> dict[tuple[str, int], list[Slot]]:
    """Counted slots from ``since`` on (including planned future ones), keyed by
    ("contact", id) or ("group", id), in a few queries whatever the audience size."""
    from siyu.outreach.models import COUNTED, Delivery

    ws_id = workspace if isinstance(workspace, int) else workspace.pk
    slots: dict[tuple[str, int], list[Slot]] = {}
    for kind, column, ids in (("contact", "contact_id", list(contact_ids)), ("group", "group_id", list(group_ids))):
        for chunk_start in range(0, len(ids), 5000):
            rows = (
                Delivery.objects.filter(workspace_id=ws_id, status__in=COUNTED, slot_at__gte=since, **{f"{column}__in": ids[chunk_start:chunk_start + 5000]})
                .order_by("slot_at").values_list(column, "slot_at", "message_class", "platform")
            )
            for target_id, slot_at, message_class, platform in rows:
                slots.setdefault((kind, target_id), []).append(Slot(slot_at, message_class, platform))
    return slots


def load_consents(workspace: Workspace | int, contact_ids: Iterable[int]) -> dict[int, dict[str, tuple[bool, bool]]]:
    ws_id = workspace if isinstance(workspace, int) else workspace.pk
    consents: dict[int, dict[str, tuple[bool, bool]]] = {}
    ids = list(contact_ids)
    for chunk_start in range(0, len(ids), 5000):
        rows = Consent.objects.filter(workspace_id=ws_id, contact_id__in=ids[chunk_start:chunk_start + 5000]).values_list(
            "contact_id", "purpose", "granted", "do_not_disturb"
        )
        for contact_id, purpose, granted, dnd in rows:
            consents.setdefault(contact_id, {})[purpose] = (granted, dnd)
    return consents


def contact_target(workspace: Workspace, contact: Contact, account: ChannelAccount | None, at: dt.datetime) -> Target:
    ws_tz = workspace.tz
    target = Target(
        kind="contact", tz=zone((contact.profile or {}).get("time_zone"), ws_tz), calendar_tz=ws_tz, platform=platform_for(account),
        consent=load_consents(workspace, [contact.pk]).get(contact.pk, {}),
    )
    target.slots = load_slots(workspace, since=at - LOOKBACK, contact_ids=[contact.pk]).get(("contact", contact.pk), [])
    return target


def group_target(
    workspace: Workspace, group: Group, at: dt.datetime, *, account: ChannelAccount | None = None, tz_name: str = "",
    quiet: tuple[dt.time, dt.time] | None = None,
) -> Target:
    ws_tz = workspace.tz
    account = account if account is not None else group.channel_account
    target = Target(kind="group", tz=zone(tz_name, ws_tz), calendar_tz=ws_tz, platform=platform_for(account), quiet=quiet)
    target.slots = load_slots(workspace, since=at - LOOKBACK, group_ids=[group.pk]).get(("group", group.pk), [])
    return target


def account_for_contact(workspace: Workspace, contact: Contact) -> tuple[ChannelAccount | None, str]:
    found = contact_channels(workspace, [contact.pk]).get(contact.pk)
    if found is None:
        return None, ""
    return ChannelAccount.objects.get(pk=found[0]), found[1]


def check(
    workspace: Workspace,
    *,
    contact: Contact | None = None,
    group: Group | None = None,
    channel_account: ChannelAccount | None = None,
    message_class: str = MARKETING,
    at: dt.datetime,
) -> QuotaDecision:
    """May ``contact`` (or ``group``) get a ``message_class`` message at ``at``? Pure
    read; explains itself. The channel account defaults to the one the recipient is
    reached through (it decides the platform rules)."""
    if (contact is None) == (group is None):
        raise ValidationFailed("check needs exactly one of contact or group", code="invalid_target")
    policy = policy_for(workspace)
    if contact is not None:
        if contact.workspace_id != workspace.pk:
            raise ValidationFailed("contact not found", code="not_found")
        account = channel_account if channel_account is not None else account_for_contact(workspace, contact)[0]
        target = contact_target(workspace, contact, account, at)
    else:
        assert group is not None
        if group.workspace_id != workspace.pk:
            raise ValidationFailed("group not found", code="not_found")
        target = group_target(workspace, group, at, account=channel_account)
    return evaluate(policy, target, message_class, at)


def audit(workspace: Workspace, *, contact_ids: Iterable[int] | None = None) -> list[str]:
    """Re-check every counted slot of the workspace's contacts against today's rules,
    independently of :func:`evaluate` (a plain scan of windows and calendar periods), and
    list each breach. Used by the bench (``quota_violations`` must be 0) and by operators
    after changing the policy (a stricter policy makes past sends show up here)."""
    from siyu.outreach.models import COUNTED, Delivery

    policy = policy_for(workspace)
    ws_tz = workspace.tz
    periods = {a.pk: platform_for(a) for a in ChannelAccount.objects.in_workspace(workspace)}
    rows = Delivery.objects.filter(workspace=workspace, status__in=COUNTED, contact__isnull=False, slot_at__isnull=False)
    if contact_ids is not None:
        rows = rows.filter(contact_id__in=list(contact_ids))
    zones = {pk: zone(tz, ws_tz) for pk, tz in Contact.objects.in_workspace(workspace).exclude(profile__time_zone=None).values_list("pk", "profile__time_zone")}
    per_contact: dict[int, list[tuple[dt.datetime, str, str, int | None]]] = {}
    for contact_id, slot_at, message_class, platform, account_id in rows.order_by("contact_id", "slot_at").values_list(
        "contact_id", "slot_at", "message_class", "platform", "channel_account_id"
    ):
        per_contact.setdefault(contact_id, []).append((slot_at, message_class, platform, account_id))
    found: list[str] = []

    def window(cid: int, times: list[dt.datetime], cap: int, length: dt.timedelta, name: str) -> None:
        for i, start in enumerate(times):
            inside = bisect.bisect_left(times, start + length, lo=i) - i
            if inside > cap:
                found.append(f"contact {cid}: {name} {inside} > {cap} from {start.isoformat()}")

    quiet_start, quiet_end = policy.quiet_start, policy.quiet_end
    for cid, slots in per_contact.items():
        window(cid, [s[0] for s in slots if s[1] == MARKETING], policy.contact_cap, policy.contact_window, "brand cap")
        window(cid, [s[0] for s in slots if s[1] == REMINDER], policy.reminder_cap, policy.reminder_window, "brand reminders")
        counted: dict[tuple[str, dt.datetime], list[int]] = {}
        for at, message_class, platform, account_id in slots:
            rules = periods.get(account_id or 0)
            if rules is not None and rules.name == platform and rules.mass_period and message_class in rules.mass_classes:
                start, _end, cap = period_bounds(at, rules.mass_period, ws_tz)
                counted.setdefault((platform, start), [cap, 0])[1] += 1
            if message_class in _PROMOTIONAL and quiet_start != quiet_end:
                local = at.astimezone(zones.get(cid, ws_tz)).time()
                if (quiet_start <= local < quiet_end) if quiet_start < quiet_end else (local >= quiet_start or local < quiet_end):
                    found.append(f"contact {cid}: {message_class} at {at.isoformat()} inside quiet hours")
        for (platform, start), (cap, n) in counted.items():
            if n > cap:
                found.append(f"contact {cid}: {platform} {n} mass messages > {cap} in the period from {start.isoformat()}")
        window(cid, [s[0] for s in slots if s[1] == REMINDER and s[2] == "wecom"], 3, dt.timedelta(hours=24), "wecom reminders")
    return found
