"""Policy (pure): findings in, a graded verdict out (分级处理)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from siyu.moderation.detectors import Finding


class Verdict(StrEnum):
    ALLOW = "allow"
    WARN = "warn"  # public reminder (@member, rules)
    DELETE = "delete"  # delete the message
    REMOVE = "remove"  # remove the member with a notice
    BLACKLIST = "blacklist"  # remove from every group of the workspace

    @property
    def rank(self) -> int:
        return list(Verdict).index(self)


#: the default grading: contact details and links are advertising in a customer group
DEFAULT_ACTIONS: Mapping[str, Verdict] = {
    "phone": Verdict.REMOVE,
    "wechat_id": Verdict.REMOVE,
    "short_link": Verdict.DELETE,
    "url": Verdict.DELETE,
}


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reasons: tuple[Finding, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, object]:
        return {"verdict": self.verdict.value, "reasons": [{"detector": f.detector, "evidence": f.evidence} for f in self.reasons]}


def decide(findings: Sequence[Finding], actions: Mapping[str, Verdict] | None = None, *, exempt: bool = False) -> Decision:
    """The strongest action any finding calls for; exempt senders (staff, allow-listed
    VIPs) are always allowed."""
    if exempt or not findings:
        return Decision(Verdict.ALLOW)
    table = {**DEFAULT_ACTIONS, **(actions or {})}
    verdict = max((table.get(f.detector, Verdict.WARN) for f in findings), key=lambda v: v.rank)
    return Decision(verdict, tuple(findings))
