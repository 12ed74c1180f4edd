"""Error codes of outreach (素材, 配额, 群发, 栏目)."""

from __future__ import annotations

from siyu.core.errors import ValidationFailed


class UnknownVariable(ValidationFailed):
    code = "unknown_variable"


class InvalidMaterial(ValidationFailed):
    code = "invalid_material"


class InvalidAudience(ValidationFailed):
    code = "invalid_audience"
