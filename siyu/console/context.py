from __future__ import annotations

from typing import Any

from django.http import HttpRequest


def console_context(request: HttpRequest) -> dict[str, Any]:
    return {"siyu_version": "0.1.0"}
