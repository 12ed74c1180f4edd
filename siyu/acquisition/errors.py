"""Error codes of acquisition (stable; the API and CLI show them)."""

from __future__ import annotations

from siyu.core.errors import Conflict, NotFound, ValidationFailed


class CodeUnavailable(Conflict):
    """A live code that exists but cannot route a scan now (paused, expired, exhausted).
    ``status`` is the HTTP status the public page answers with."""

    code = "live_code_unavailable"

    def __init__(self, message: str, *, code: str, status: int) -> None:
        super().__init__(message, code=code)
        self.status = status


__all__ = ["CodeUnavailable", "Conflict", "NotFound", "ValidationFailed"]
