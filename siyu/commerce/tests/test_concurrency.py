"""Points and coupons cannot go negative or be redeemed twice under concurrency: real
threads, real commits, each thread on its own database connection."""

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from siyu.commerce.actions import do_create_coupon_template, do_earn_points, do_issue_coupon, do_redeem_coupon, do_spend_points
from siyu.commerce.models import Coupon, CouponStatus, CouponTemplate, PointsEntry
from siyu.commerce.queries import points_balance
from siyu.core.errors import SiyuError
from siyu.core.testing import make_contact, make_workspace

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 8


def race(work: Callable[[int], Any], threads: int = THREADS) -> list[str]:
    """Run ``work(i)`` in parallel threads released together; returns "ok" or the
    error code of each."""
    barrier = threading.Barrier(threads)
    outcomes: list[str] = []
    lock = threading.Lock()

    def run(index: int) -> None:
        try:
            barrier.wait()
            work(index)
            outcome = "ok"
        except SiyuError as exc:
            outcome = str(exc.code)
        except Exception as exc:  # noqa: BLE001 — a crash must show up in the outcomes, not vanish in the thread
            outcome = repr(exc)
        finally:
            connection.close()
        with lock:
            outcomes.append(outcome)

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sorted(outcomes)


def test_concurrent_redemptions_of_one_coupon_give_exactly_one_success():
    ws = make_workspace()
    contact = make_contact(ws)
    template = do_create_coupon_template(ws, None, name="无门槛20", kind="fixed", value="20", validity_days=7)
    coupon = do_issue_coupon(template, contact)

    outcomes = race(lambda _: do_redeem_coupon(coupon.code, contact, "100"))

    assert outcomes == ["coupon_used"] * (THREADS - 1) + ["ok"]
    coupon.refresh_from_db()
    assert coupon.status == CouponStatus.REDEEMED


def test_concurrent_spending_never_takes_the_balance_below_zero():
    # given 100 points and eight tills each trying to spend 30
    ws = make_workspace()
    contact = make_contact(ws)
    do_earn_points(contact, None, points=100, idempotency_key="seed")

    outcomes = race(lambda i: do_spend_points(contact, None, points=30, idempotency_key=f"till-{i}"))

    assert outcomes == ["insufficient_points"] * (THREADS - 3) + ["ok"] * 3
    assert points_balance(contact) == 10
    assert PointsEntry.objects.filter(delta=-30).count() == 3


def test_a_replayed_spend_racing_itself_is_written_once():
    ws = make_workspace()
    contact = make_contact(ws)
    do_earn_points(contact, None, points=50, idempotency_key="seed")

    outcomes = race(lambda _: do_spend_points(contact, None, points=50, idempotency_key="same-request"))

    assert outcomes == ["ok"] * THREADS
    assert points_balance(contact) == 0
    assert PointsEntry.objects.filter(idempotency_key="same-request").count() == 1


def test_concurrent_issuing_respects_stock_and_the_per_contact_limit():
    ws = make_workspace()
    contacts = [make_contact(ws) for _ in range(THREADS)]
    limited = do_create_coupon_template(ws, None, name="限量5张", kind="fixed", value="5", validity_days=7, total_stock=5)
    once = do_create_coupon_template(ws, None, name="每人一张", kind="fixed", value="5", validity_days=7, per_contact_limit=1)

    stock_outcomes = race(lambda i: do_issue_coupon(limited, contacts[i]))
    limit_outcomes = race(lambda _: do_issue_coupon(once, contacts[0]))

    assert stock_outcomes == ["ok"] * 5 + ["out_of_stock"] * (THREADS - 5)
    assert limit_outcomes == ["ok"] + ["per_contact_limit"] * (THREADS - 1)
    assert CouponTemplate.objects.get(pk=limited.pk).issued_count == 5
    assert Coupon.objects.filter(template=limited).count() == 5
    assert Coupon.objects.filter(template=once).count() == 1
