"""Domain errors. Every error has a stable machine code and a human message.

The API turns them into ``{"error": {"code": ..., "message": ...}}`` with the status
given here; the CLI prints them and exits non-zero; the console shows the message.
"""

from __future__ import annotations

from typing import Any


class SiyuError(Exception):
    status = 400
    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return body


class ValidationFailed(SiyuError):
    status = 422
    code = "validation_failed"


class NotFound(SiyuError):
    """Also used for rows of another workspace, so that existence does not leak."""

    status = 404
    code = "not_found"


class Forbidden(SiyuError):
    status = 403
    code = "forbidden"


class Conflict(SiyuError):
    status = 409
    code = "conflict"
