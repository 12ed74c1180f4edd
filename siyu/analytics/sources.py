"""Where a runner's data comes from: a workspace (orders and the contact timeline) or a
purchase log read from a file (``siyu analytics fit-bgnbd --transactions FILE.csv``).

Workspace data contract (``siyu.commerce.models.Order``): a purchase is an order with
status ``paid`` or ``partially_refunded`` and ``net_amount > 0`` that belongs to a
contact; its day is ``placed_at`` in the workspace's time zone. Orders of a merged
duplicate count for the contact it was merged into. Django models are imported inside
the functions so that the numeric core and the file source work without Django.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from siyu.analytics.sales import SalesFormula
from siyu.analytics.transactions import TransactionLog, day_number, to_cents
from siyu.core.errors import ValidationFailed

if TYPE_CHECKING:
    from siyu.core.models import Workspace

#: Timeline events that count as reaching a contact (traffic of the sales formula).
REACH_EVENT_KINDS = ("message", "scan", "added")


@dataclass(frozen=True)
class SalesFilters:
    """Restrict the sales formula to one group, one acquisition channel or one staff
    member. Orders match on their own ``group``/``source_channel``/``staff``; reached
    contacts on their membership of the group during the period, their first-touch
    ``source_channel``, or their owner."""

    group_id: int | None = None
    channel: str | None = None
    staff_id: int | None = None


class DataSource(Protocol):
    """What runners read. ``today`` is the current date where the data lives."""

    @property
    def label(self) -> str: ...

    def today(self) -> dt.date: ...

    def transactions(self) -> TransactionLog: ...

    def sales(self, start: dt.date, end: dt.date, filters: SalesFilters) -> SalesFormula: ...


@dataclass
class TransactionFileSource:
    """A purchase log already read (e.g. from a CSV file); "today" is its last purchase day."""

    log: TransactionLog
    name: str = "file"

    @property
    def label(self) -> str:
        return self.name

    def today(self) -> dt.date:
        last = self.log.last_day
        if last is None:
            raise ValidationFailed("the file holds no purchases", code="too_little_data")
        return dt.date.fromordinal(last + dt.date(1970, 1, 1).toordinal())

    def transactions(self) -> TransactionLog:
        return self.log

    def sales(self, start: dt.date, end: dt.date, filters: SalesFilters) -> SalesFormula:
        raise ValidationFailed(
            "the sales formula needs workspace data: traffic comes from the contacts' timelines", code="unsupported_source"
        )


def _bounds(workspace: Workspace, start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start 00:00, end+1 00:00) in the workspace's zone, as aware datetimes."""
    tz = workspace.tz
    return (
        dt.datetime.combine(start, dt.time.min, tzinfo=tz),
        dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=tz),
    )


@dataclass
class WorkspaceSource:
    """One workspace's orders and timeline. The purchase log is read once per source."""

    workspace: Workspace
    _log: TransactionLog | None = field(default=None, init=False, repr=False)

    @property
    def label(self) -> str:
        return f"workspace {self.workspace.slug}"

    def today(self) -> dt.date:
        from django.utils import timezone

        return timezone.now().astimezone(self.workspace.tz).date()

    def _merged_into(self) -> dict[int, int]:
        from siyu.contacts.models import Contact

        pairs = dict(
            Contact.objects.in_workspace(self.workspace).filter(merged_into__isnull=False).values_list("pk", "merged_into_id")
        )
        # Follow chains (a merged into b, b later merged into c) to the contact still shown.
        resolved: dict[int, int] = {}
        for pk in pairs:
            target, seen = pairs[pk], {pk}
            while target in pairs and target not in seen:
                seen.add(target)
                target = pairs[target]
            resolved[pk] = target
        return resolved

    def buying_orders(self) -> Any:
        from siyu.commerce.models import BUYING_STATUSES, Order

        return Order.objects.in_workspace(self.workspace).filter(
            status__in=BUYING_STATUSES, net_amount__gt=0, contact_id__isnull=False
        )

    def transactions(self) -> TransactionLog:
        if self._log is None:
            from django.db.models.functions import TruncDate

            rows = self.buying_orders().annotate(day=TruncDate("placed_at", tzinfo=self.workspace.tz)).values_list(
                "contact_id", "day", "net_amount"
            )
            merged = self._merged_into()
            customers: list[int] = []
            days: list[int] = []
            cents: list[int] = []
            for contact_id, day, amount in rows.iterator(chunk_size=5000):
                customers.append(merged.get(contact_id, contact_id))
                days.append(day_number(day))
                cents.append(to_cents(amount))
            self._log = TransactionLog.from_rows(customers, days, cents)
        return self._log

    def fingerprint(self) -> str:
        """Changes whenever the purchases change (a new, edited or refunded order)."""
        from django.db.models import Count, Max, Sum

        agg = self.buying_orders().aggregate(last=Max("id"), n=Count("id"), total=Sum("net_amount"), edited=Max("updated_at"))
        edited = agg["edited"].isoformat() if agg["edited"] else "-"
        return f"{agg['last']}:{agg['n']}:{agg['total']}:{edited}"

    def sales(self, start: dt.date, end: dt.date, filters: SalesFilters) -> SalesFormula:
        from django.db.models import Count, Q, Sum

        from siyu.commerce.models import BUYING_STATUSES, Order
        from siyu.contacts.models import ContactEvent

        begin, finish = _bounds(self.workspace, start, end)
        orders = Order.objects.in_workspace(self.workspace).filter(
            status__in=BUYING_STATUSES, net_amount__gt=0, placed_at__gte=begin, placed_at__lt=finish
        )
        events = ContactEvent.objects.in_workspace(self.workspace).filter(
            kind__in=REACH_EVENT_KINDS, occurred_at__gte=begin, occurred_at__lt=finish
        )
        if filters.group_id is not None:
            from siyu.communities.models import Group, Membership

            group = Group.objects.get_in_workspace(self.workspace, pk=filters.group_id)
            orders = orders.filter(group=group)
            members = Membership.objects.in_workspace(self.workspace).filter(
                Q(left_at__isnull=True) | Q(left_at__gte=begin), group=group, joined_at__lt=finish
            )
            events = events.filter(contact_id__in=members.values("contact_id"))
        if filters.channel is not None:
            orders = orders.filter(source_channel=filters.channel)
            events = events.filter(contact__source_channel=filters.channel)
        if filters.staff_id is not None:
            from siyu.accounts.models import Staff

            staff = Staff.objects.get_in_workspace(self.workspace, pk=filters.staff_id)
            orders = orders.filter(staff=staff)
            events = events.filter(contact__owner=staff)
        merged = self._merged_into()

        def canonical(ids: Any) -> set[int]:
            return {merged.get(pk, pk) for pk in ids}

        reached = canonical(events.values_list("contact_id", flat=True).distinct())
        known = orders.filter(contact_id__isnull=False)
        buyers = canonical(known.values_list("contact_id", flat=True).distinct())
        totals = known.aggregate(n=Count("id"), revenue=Sum("net_amount"))
        with_margin = known.filter(margin_amount__isnull=False).aggregate(
            n=Count("id"), margin=Sum("margin_amount"), revenue=Sum("net_amount")
        )
        return SalesFormula(
            reached=len(reached),
            traffic=len(reached | buyers),
            buyers=len(buyers),
            purchases=int(totals["n"] or 0),
            revenue=totals["revenue"] or Decimal("0.00"),
            margin=with_margin["margin"] if with_margin["n"] else None,
            margin_orders=int(with_margin["n"] or 0),
            margin_revenue=with_margin["revenue"] or Decimal("0.00"),
            unattributed_revenue=orders.filter(contact_id__isnull=True).aggregate(total=Sum("net_amount"))["total"]
            or Decimal("0.00"),
        )
