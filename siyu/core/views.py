"""Health check: database and queue reachable."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET


def _database_status() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return {"ok": True, "engine": connection.vendor}
    except Exception as exc:  # noqa: BLE001 - a health check reports, it does not raise
        return {"ok": False, "engine": connection.vendor, "error": str(exc)[:200]}


def _queue_status() -> dict[str, Any]:
    from huey.contrib.djhuey import HUEY

    try:
        pending = HUEY.pending_count()
        return {"ok": True, "backend": type(HUEY).__name__, "pending": pending, "immediate": HUEY.immediate}
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "backend": type(HUEY).__name__, "error": str(exc)[:200]}


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    db, queue = _database_status(), _queue_status()
    ok = db["ok"] and queue["ok"]
    return JsonResponse({"status": "ok" if ok else "degraded", "database": db, "queue": queue}, status=200 if ok else 503)
