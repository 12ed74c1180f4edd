"""Lookups shared by the bulk endpoints of the API, the console and the CLI."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from siyu.core.errors import NotFound


def every_one(queryset: Any, ids: Iterable[int], *, noun: str, error: type[NotFound] = NotFound) -> list[Any]:
    """The rows of ``queryset`` behind ``ids``, in the order given (a repeated id once) —
    all of them, or ``error`` naming the ids that are not there (the first 20 in the
    message, the first 100 in ``details["missing"]``). Callers pass a queryset already
    narrowed to what the caller may see, so a row of another workspace is simply missing."""
    wanted = list(dict.fromkeys(ids))
    found = {row.pk: row for row in queryset.filter(pk__in=wanted)}
    missing = [pk for pk in wanted if pk not in found]
    if missing:
        raise error(f"{noun} not found: {missing[:20]}", details={"missing": missing[:100]})
    return [found[pk] for pk in wanted]
