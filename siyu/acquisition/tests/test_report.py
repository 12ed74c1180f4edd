import datetime as dt
from decimal import Decimal

import pytest

from siyu.acquisition.actions import do_add_code_group, do_create_channel, do_create_live_code, do_record_spend, do_route_scan
from siyu.acquisition.queries import channel_report
from siyu.commerce.actions import do_record_order
from siyu.communities.actions import do_add_member, do_create_group
from siyu.core.testing import make_contact

pytestmark = pytest.mark.django_db

# 2026-11-10 02:00 UTC = 10:00 Shanghai
DAY1 = dt.datetime(2026, 11, 10, 2, 0, tzinfo=dt.UTC)
DAY2 = DAY1 + dt.timedelta(days=1)


def test_channel_report_follows_scans_to_revenue_by_local_day(workspace, owner, channel):
    # given: 3 scans and 2 adds on day 1 (one joins a group and orders twice), 1 scan and 1 add on day 2
    code = do_create_live_code(workspace, owner, channel=channel, name="进群", kind="group", auto_create_groups=False)
    group = do_create_group(workspace, owner, name="一群")
    do_add_code_group(code, owner, group=group)
    for i, at in enumerate([DAY1, DAY1, DAY1 + dt.timedelta(hours=1), DAY2]):
        do_route_scan(code.code, visitor_key="same" if i < 2 else f"v{i}", now=at)
    buyer = make_contact(workspace, "买家", source_channel="parcel", created_at=DAY1)
    make_contact(workspace, "路人", source_channel="parcel", created_at=DAY1 + dt.timedelta(hours=2))
    make_contact(workspace, "次日", source_channel="parcel", created_at=DAY2)
    make_contact(workspace, "别的渠道", source_channel="store", created_at=DAY1)
    do_add_member(group, buyer, owner, joined_at=DAY1)
    for n, amount in enumerate(("120.00", "80.00")):
        do_record_order(workspace, owner, external_id=f"o{n}", contact=buyer, placed_at=DAY2, gross_amount=amount)

    # when
    report = channel_report(workspace, channel, DAY1.date(), DAY2.date())

    # then (cost per add 1.50)
    day1, day2 = report.days
    assert (day1.scans, day1.visitors, day1.adds, day1.joined_group, day1.first_order, day1.revenue) == (3, 2, 2, 1, 1, Decimal("200.00"))
    assert (day1.cost, day1.cost_per_add, day1.roi) == (Decimal("3.00"), Decimal("1.50"), Decimal("65.6667"))
    assert (day2.scans, day2.adds, day2.revenue, day2.cost) == (1, 1, Decimal("0"), Decimal("1.50"))
    assert (report.total.adds, report.total.cost, report.total.revenue) == (3, Decimal("4.50"), Decimal("200.00"))


def test_per_period_spend_is_spread_over_its_days(workspace, owner):
    store = do_create_channel(workspace, owner, key="store", name="门店海报", kind="store_poster", cost_model="per_period")
    do_record_spend(store, owner, starts_on=dt.date(2026, 11, 1), ends_on=dt.date(2026, 11, 10), amount="300.00")

    report = channel_report(workspace, store, dt.date(2026, 11, 10), dt.date(2026, 11, 11))

    assert [(d.cost, d.cost_per_add) for d in report.days] == [(Decimal("30.00"), None), (Decimal("0.00"), None)]
