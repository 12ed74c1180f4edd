"""The quota ledger as a pure function: platform rules, brand caps, quiet hours,
consent, exempt classes, and the exact next allowed slot."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from siyu.outreach.quota import PLATFORM_RULES, Policy, QuotaDecision, Slot, Target, evaluate, period_bounds

SH = zoneinfo.ZoneInfo("Asia/Shanghai")
WECOM = PLATFORM_RULES["wecom"]
MARKETING_OK = {"marketing": (True, False)}


def at(*args: int, tz: zoneinfo.ZoneInfo = SH) -> dt.datetime:
    return dt.datetime(*args, tzinfo=tz)  # type: ignore[misc, arg-type]


def target(*slots: Slot, platform=WECOM, consent=None, tz=SH, kind="contact") -> Target:  # type: ignore[no-untyped-def]
    return Target(kind=kind, tz=tz, calendar_tz=SH, platform=platform, consent=MARKETING_OK if consent is None else consent,
                  slots=sorted(slots, key=lambda s: s.at))


def test_a_customer_at_the_wecom_monthly_limit_is_deferred_to_the_first_of_next_month():
    # given 30 notices counted in November 2030 (30 days) on WeCom
    used = [Slot(at(2030, 11, day, 10), "notice", "wecom") for day in range(1, 31)]

    # when a marketing message is asked for on 30 November at 10:00
    decision = evaluate(Policy(), target(*used), "marketing", at(2030, 11, 30, 10))

    # then it waits for 1 December, after the quiet hours end at 08:00
    assert decision == QuotaDecision(
        allowed=False,
        next_allowed_at=at(2030, 12, 1, 8),
        reason="wecom allows 30 mass messages per customer per month (2030-11-01–2030-11-30); 30 already counted",
        rule="wecom.monthly_mass",
    )


def test_a_notice_is_exempt_from_quiet_hours_so_it_waits_only_for_midnight():
    used = [Slot(at(2030, 2, day, 10), "notice", "wecom") for day in range(1, 29)]

    decision = evaluate(Policy(), target(*used), "notice", at(2030, 2, 28, 12))

    assert (decision.allowed, decision.next_allowed_at, decision.rule) == (False, at(2030, 3, 1, 0), "wecom.monthly_mass")


@pytest.mark.parametrize(
    ("period", "used", "when", "expected_next", "rule"),
    [
        # 7 per calendar week (Monday–Sunday): the 8th waits for next Monday
        ("week", [at(2030, 11, d, 9) for d in (4, 4, 5, 5, 6, 6, 7)], at(2030, 11, 8, 12), at(2030, 11, 11, 0), "wecom.weekly_mass"),
        # 1 per day: the second waits for tomorrow
        ("day", [at(2030, 11, 4, 9)], at(2030, 11, 4, 15), at(2030, 11, 5, 0), "wecom.daily_mass"),
    ],
)
def test_the_corp_may_set_7_per_week_or_1_per_day(period, used, when, expected_next, rule):
    from dataclasses import replace

    assert WECOM is not None
    platform = replace(WECOM, mass_period=period)

    decision = evaluate(Policy(), target(*[Slot(t, "notice", "wecom") for t in used], platform=platform), "notice", when)

    assert (decision.allowed, decision.next_allowed_at, decision.rule) == (False, expected_next, rule)


def test_the_brand_weekly_cap_defers_until_the_oldest_message_leaves_the_7_day_window():
    # given marketing messages on Monday and Wednesday at 10:00 (brand cap: 2 per 7 days)
    used = [Slot(at(2030, 11, 4, 10), "marketing", "wecom"), Slot(at(2030, 11, 6, 10), "marketing", "wecom")]

    decision = evaluate(Policy(), target(*used), "marketing", at(2030, 11, 8, 10))

    assert decision == QuotaDecision(
        False, at(2030, 11, 11, 10), "brand cap per contact: at most 2 in 7 days; 2 in the last 7 days", "brand.weekly_cap"
    )


def test_a_slot_already_planned_in_the_future_counts_too():
    # given one message sent on Monday the 4th and one planned for Saturday the 9th
    used = [Slot(at(2030, 11, 4, 10), "marketing"), Slot(at(2030, 11, 9, 10), "marketing")]

    # when a third is asked for on Thursday the 7th: three within 7 days
    decision = evaluate(Policy(), target(*used, platform=None), "marketing", at(2030, 11, 7, 10))

    # then it waits until Monday's message leaves the window (4th + 7 days)
    assert decision == QuotaDecision(
        False, at(2030, 11, 11, 10), "brand cap per contact: at most 2 in 7 days; 1 in the last 7 days, 1 planned in the next 7 days",
        "brand.weekly_cap",
    )


def test_quiet_hours_defer_to_their_end_in_the_contacts_own_time_zone():
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")

    # 23:30 in Berlin (06:30 the next morning in Shanghai)
    decision = evaluate(Policy(), target(platform=None, tz=berlin), "marketing", at(2030, 11, 4, 23, 30, tz=berlin))

    assert decision == QuotaDecision(False, at(2030, 11, 5, 8, tz=berlin), "quiet hours 22:00–08:00 (Europe/Berlin)", "quiet_hours")


def test_reminders_are_limited_to_3_in_24_hours_on_wecom():
    used = [Slot(at(2030, 11, 4, h), "reminder", "wecom") for h in (9, 12, 18)]

    decision = evaluate(Policy(reminder_cap=10), target(*used), "reminder", at(2030, 11, 4, 20))

    assert decision == QuotaDecision(False, at(2030, 11, 5, 9), "wecom reminders: at most 3 in 24 hours; 3 in the last 24 hours", "wecom.reminders")


def test_no_marketing_consent_skips_with_no_slot_and_opt_out_mode_lets_it_through():
    no_consent = target(platform=None, consent={})

    assert evaluate(Policy(), no_consent, "marketing", at(2030, 11, 4, 10)) == QuotaDecision(
        False, None, "no marketing consent from this contact", "consent"
    )
    assert evaluate(Policy(consent_mode="opt_out"), no_consent, "marketing", at(2030, 11, 4, 10)).allowed is True


def test_do_not_disturb_blocks_marketing_even_in_opt_out_mode():
    dnd = target(platform=None, consent={"marketing": (True, True)})

    decision = evaluate(Policy(consent_mode="opt_out"), dnd, "marketing", at(2030, 11, 4, 10))

    assert (decision.allowed, decision.next_allowed_at, decision.rule) == (False, None, "consent")


def test_service_replies_ignore_caps_quiet_hours_and_the_wecom_mass_limit_but_not_service_dnd():
    used = [Slot(at(2030, 11, d, 10), "marketing", "wecom") for d in range(1, 31)]

    assert evaluate(Policy(), target(*used, consent={}), "service", at(2030, 11, 30, 23)).allowed is True
    blocked = evaluate(Policy(), target(consent={"service": (False, True)}), "service", at(2030, 11, 30, 23))
    assert (blocked.allowed, blocked.rule) == (False, "consent")


def test_a_zero_cap_means_never_and_no_slot():
    decision = evaluate(Policy(contact_cap=0), target(platform=None), "marketing", at(2030, 11, 4, 10))

    assert (decision.allowed, decision.next_allowed_at, decision.rule) == (False, None, "brand.weekly_cap")


def test_no_slot_before_the_expiry_answers_none():
    used = [Slot(at(2030, 11, 4, 10), "marketing"), Slot(at(2030, 11, 6, 10), "marketing")]

    decision = evaluate(Policy(), target(*used, platform=None), "marketing", at(2030, 11, 8, 10), until=at(2030, 11, 9, 10))

    assert decision.next_allowed_at is None
    assert decision.rule == "brand.weekly_cap"
    assert decision.reason.endswith("no slot before 2030-11-09 02:00 UTC")


def test_group_posts_follow_the_group_cap_and_the_monthly_limit_per_group():
    used = [Slot(at(2030, 11, 4, h), "marketing", "wecom") for h in (9, 12, 18)]

    decision = evaluate(Policy(), target(*used, kind="group"), "marketing", at(2030, 11, 4, 20))

    assert decision == QuotaDecision(False, at(2030, 11, 5, 9), "brand cap per group: at most 3 in 1 day; 3 in the last 1 day", "brand.group_cap")


def test_period_bounds_of_february_in_a_leap_year():
    assert period_bounds(at(2028, 2, 15, 12), "month", SH) == (at(2028, 2, 1), at(2028, 3, 1), 29)


def test_the_window_edge_is_exact_to_the_second():
    used = [Slot(at(2030, 11, 4, 10), "marketing"), Slot(at(2030, 11, 6, 10), "marketing")]
    edge = at(2030, 11, 11, 10)

    assert evaluate(Policy(), target(*used, platform=None), "marketing", edge - dt.timedelta(seconds=1)).next_allowed_at == edge
    assert evaluate(Policy(), target(*used, platform=None), "marketing", edge).allowed is True
