"""Property: whatever the schedule of sends (mixed classes and sources, times across
month boundaries, deferrals retried in any order), nobody is ever given more than the
ledger allows. The checker below is written independently of the ledger: it scans the
counted slots for any window, month or quiet hour that holds too many."""

from __future__ import annotations

import datetime as dt
import itertools
import zoneinfo
from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siyu.outreach.quota import PLATFORM_RULES, Policy, Slot, Target, evaluate, period_bounds

SH = zoneinfo.ZoneInfo("Asia/Shanghai")
BASE = dt.datetime(2030, 11, 20, tzinfo=SH)  # schedules run across the November/December/January boundaries
CLASSES = ("marketing", "reminder", "service", "notice")
PROMOTIONAL = ("marketing", "reminder")


def violations(slots: list[Slot], policy: Policy, period: str | None, consented: bool) -> list[str]:
    """Every way the counted ``slots`` break the rules (empty = within the ledger)."""
    found: list[str] = []
    times = {c: sorted(s.at for s in slots if s.message_class == c) for c in CLASSES}

    def rolling(xs: list[dt.datetime], cap: int, window: dt.timedelta, name: str) -> None:
        # a window holding too many must start at one of the sends
        for start in xs:
            inside = sum(1 for x in xs if start <= x < start + window)
            if inside > cap:
                found.append(f"{name}: {inside} from {start}")

    rolling(times["marketing"], policy.contact_cap, policy.contact_window, "brand cap")
    rolling(times["reminder"], policy.reminder_cap, policy.reminder_window, "brand reminders")
    if period is not None:
        rolling(times["reminder"], 3, dt.timedelta(hours=24), "wecom reminders")
        per_period = Counter(period_bounds(s.at, period, SH)[:2] for s in slots if s.message_class != "service")
        for (start, _end), n in per_period.items():
            limit = period_bounds(start, period, SH)[2]
            if n > limit:
                found.append(f"wecom {period}: {n} > {limit} from {start}")
    for s in slots:
        if s.message_class in PROMOTIONAL:
            local = s.at.astimezone(SH).time()
            if policy.quiet_start != policy.quiet_end:
                quiet = (policy.quiet_start <= local < policy.quiet_end) if policy.quiet_start < policy.quiet_end else (
                    local >= policy.quiet_start or local < policy.quiet_end)
                if quiet:
                    found.append(f"quiet hours: {s.at}")
            if not consented:
                found.append(f"no consent: {s.at}")
    return found


requests = st.lists(
    st.tuples(
        # minutes after BASE, up to 20 days (BASE is 20 November: across the month end), at a few times of day around the peaks and
        # the quiet-hour edges, so that sends collide at window edges and month ends
        st.tuples(st.integers(min_value=0, max_value=20), st.sampled_from([0, 30, 470, 480, 570, 599, 600, 601, 630, 720, 1200, 1290, 1320, 1410])).map(
            lambda day_minute: day_minute[0] * 1440 + day_minute[1]
        ),
        st.sampled_from(("marketing", "marketing", "reminder", "reminder", "notice", "service")),
        st.integers(min_value=1, max_value=24 * 10),  # hours until the send expires
    ),
    min_size=10,
    max_size=60,
)
policies = st.builds(
    Policy,
    contact_cap=st.integers(min_value=0, max_value=4),
    contact_window=st.sampled_from([dt.timedelta(days=d) for d in (1, 3, 7, 10)]),
    reminder_cap=st.integers(min_value=1, max_value=4),
    reminder_window=st.sampled_from([dt.timedelta(hours=h) for h in (12, 24, 48)]),
    quiet_start=st.sampled_from([dt.time(22), dt.time(0), dt.time(21, 30)]),
    quiet_end=st.sampled_from([dt.time(8), dt.time(0), dt.time(9, 15)]),
    consent_mode=st.sampled_from(["opt_in", "opt_out"]),
)


@settings(max_examples=300, deadline=None)
@given(
    schedule=requests,
    policy=policies,
    period=st.sampled_from([None, "month", "week", "day"]),
    consented=st.booleans(),
    order=st.randoms(use_true_random=False),
)
def test_no_schedule_ever_gives_anyone_more_than_the_ledger_allows(schedule, policy, period, consented, order):
    wecom = PLATFORM_RULES["wecom"]
    assert wecom is not None
    platform = replace(wecom, mass_period=period) if period else None
    target = Target(kind="contact", tz=SH, calendar_tz=SH, platform=platform, consent={"marketing": (consented, False)} if consented else {})
    # work items: (ask at, class, expires at); deferred ones come back at their slot,
    # interleaved in a random order with the rest, as the minute sweep and new sends do
    work = [(BASE + dt.timedelta(minutes=m), c, BASE + dt.timedelta(minutes=m, hours=h)) for m, c, h in schedule]
    outcomes: Counter[str] = Counter()
    for _step in range(10_000):
        if not work:
            break
        at, message_class, expires = work.pop(order.randrange(len(work)))
        decision = evaluate(policy, target, message_class, at, until=expires)
        if decision.allowed:
            target.add(Slot(at, message_class, platform.name if platform else ""))
            outcomes["sent"] += 1
        elif decision.next_allowed_at is not None:
            assert at < decision.next_allowed_at <= expires
            work.append((decision.next_allowed_at, message_class, expires))
            outcomes["deferred"] += 1
        else:
            outcomes["skipped"] += 1
    assert work == []
    assert outcomes["sent"] + outcomes["skipped"] == len(schedule)
    assert violations(target.slots, policy, period, consented or policy.consent_mode == "opt_out") == []


def test_the_checker_itself_sees_a_breach():
    policy = Policy()
    slots = [Slot(BASE + dt.timedelta(hours=10 + h), "marketing") for h in range(3)]

    assert violations(slots, policy, None, True) == [f"brand cap: 3 from {BASE + dt.timedelta(hours=10)}"]


# ---------------------------------------------------------------- through the real actions


_keys = itertools.count()


@pytest.mark.django_db
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    schedule=st.lists(
        st.tuples(st.integers(min_value=0, max_value=60 * 24 * 40), st.sampled_from(CLASSES), st.sampled_from(["broadcast:1", "journey:2", "column:3"])),
        min_size=1, max_size=14,
    ),
    cap=st.integers(min_value=1, max_value=3),
    period=st.sampled_from(["month", "day"]),
)
def test_sends_and_deferred_retries_through_the_actions_stay_within_the_ledger(workspace, owner, reachable, schedule, cap, period):
    from siyu.channels.actions import do_create_channel_account
    from siyu.outreach.actions import do_send_due_deliveries, do_send_to_contact, do_set_quota_policy
    from siyu.outreach.models import COUNTED, Delivery

    do_set_quota_policy(workspace, None, contact_marketing_cap=cap, default_expiry_hours=24 * 20)
    account = do_create_channel_account(workspace, owner, kind="sandbox", name=f"wecom-{next(_keys)}", config={"imitate": "wecom", "mass_limit": period})
    contact = reachable(account)
    for minutes, message_class, source in schedule:
        do_send_to_contact(workspace, contact=contact, content={"kind": "text", "text": "hi"}, message_class=message_class,
                           source=source, idempotency_key=f"p{next(_keys)}", at=BASE + dt.timedelta(minutes=minutes))
    for _ in range(200):
        due = Delivery.objects.filter(contact=contact, status="deferred").order_by("planned_for").values_list("planned_for", flat=True).first()
        if due is None:
            break
        do_send_due_deliveries(now=due)
    rows = Delivery.objects.filter(contact=contact)
    assert rows.count() == len(schedule)
    assert set(rows.values_list("status", flat=True)) <= {"queued", "sent", "skipped"}
    slots = [Slot(at, c, p) for at, c, p in rows.filter(status__in=COUNTED).values_list("slot_at", "message_class", "platform")]
    policy = Policy(contact_cap=cap)
    assert violations(slots, policy, period, True) == []
    from siyu.outreach.quota import audit

    assert audit(workspace, contact_ids=[contact.pk]) == []
