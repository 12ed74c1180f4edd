"""Shared API pieces: error body, pagination, small schemas."""

from __future__ import annotations

from typing import Any

from ninja import Schema
from ninja.pagination import LimitOffsetPagination


class ErrorBody(Schema):
    code: str
    message: str
    details: Any = None


class ErrorOut(Schema):
    error: ErrorBody


class Page(LimitOffsetPagination):
    """``{"count": N, "items": [...]}`` with ``limit`` (≤ 500, default 50) and ``offset``."""

    class Input(Schema):
        limit: int = 50
        offset: int = 0

    def paginate_queryset(self, queryset: Any, pagination: Any, request: Any, **params: Any) -> Any:
        from siyu.core.errors import ValidationFailed

        if not 1 <= pagination.limit <= 500:
            raise ValidationFailed("limit must be between 1 and 500", code="invalid_pagination")
        if pagination.offset < 0:
            raise ValidationFailed("offset must be ≥ 0", code="invalid_pagination")
        return super().paginate_queryset(queryset, pagination, request, **params)


ERRORS: dict[int | tuple[int, ...], Any] = {(400, 401, 403, 404, 409, 422): ErrorOut}
