"""Error codes of campaigns."""

from __future__ import annotations

from siyu.core.errors import ValidationFailed

#: 分销 legal line, quoted to the operator when a third level is asked for
DISTRIBUTION_LEGAL_REASON = (
    "分销最多两级：三级及以上分销可能构成传销（《禁止传销条例》），siyu 拒绝第三级及以上佣金。"
    " Distribution is limited to two levels: three or more levels may constitute pyramid selling (传销) under Chinese law."
)


class DistributionLevelRefused(ValidationFailed):
    code = "distribution_level_refused"

    def __init__(self, levels: int) -> None:
        super().__init__(f"{levels} commission levels requested. {DISTRIBUTION_LEGAL_REASON}", details={"max_levels": 2})
