"""Policy (pure): findings in, a graded verdict out (分级处理), with escalation for
repeat offenders and exemptions for staff, VIPs and group admins."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from django.utils.translation import gettext, ngettext

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


#: the default grading: contact details, QR codes and cards are advertising in a customer
#: group; links and red-packet solicitation are deleted; word-list hits warn
DEFAULT_ACTIONS: Mapping[str, Verdict] = {
    "phone": Verdict.REMOVE,
    "wechat_id": Verdict.REMOVE,
    "qr_code": Verdict.REMOVE,
    "mini_program": Verdict.DELETE,
    "link_card": Verdict.DELETE,
    "contact_card": Verdict.REMOVE,
    "short_link": Verdict.DELETE,
    "url": Verdict.DELETE,
    "red_packet": Verdict.DELETE,
    "flood": Verdict.DELETE,
    "sensitive_word": Verdict.DELETE,
    "competitor": Verdict.REMOVE,
}


@dataclass(frozen=True)
class Escalation:
    """Repeat offenders within ``window_days``: with ``remove_after`` earlier strikes the
    verdict is at least remove, with ``blacklist_after`` at least blacklist (0 = never)."""

    window_days: int = 30
    remove_after: int = 1
    blacklist_after: int = 2

    def apply(self, verdict: Verdict, prior_strikes: int) -> Verdict:
        if verdict == Verdict.ALLOW:
            return verdict
        if self.blacklist_after and prior_strikes >= self.blacklist_after:
            return Verdict.BLACKLIST
        if self.remove_after and prior_strikes >= self.remove_after and verdict.rank < Verdict.REMOVE.rank:
            return Verdict.REMOVE
        return verdict


@dataclass(frozen=True)
class Policy:
    actions: Mapping[str, Verdict] = field(default_factory=lambda: dict(DEFAULT_ACTIONS))
    escalation: Escalation = Escalation()
    vip_tags: tuple[str, ...] = ("VIP",)
    own_domains: tuple[str, ...] = ()
    own_qr_prefixes: tuple[str, ...] = ()
    flood_count: int = 3
    flood_window_seconds: int = 120

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Policy:
        """A policy from its stored JSON; unknown detectors or verdicts are refused by
        the action that stores it, so here they are simply read."""
        esc = config.get("escalation") or {}
        return cls(
            actions={**DEFAULT_ACTIONS, **{k: Verdict(v) for k, v in (config.get("actions") or {}).items()}},
            escalation=Escalation(**{k: int(v) for k, v in esc.items() if k in ("window_days", "remove_after", "blacklist_after")}),
            vip_tags=tuple(config.get("vip_tags", ("VIP",))),
            own_domains=tuple(d.lower() for d in config.get("own_domains", ())),
            own_qr_prefixes=tuple(config.get("own_qr_prefixes", ())),
            flood_count=int(config.get("flood_count", 3)),
            flood_window_seconds=int(config.get("flood_window_seconds", 120)),
        )


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reasons: tuple[Finding, ...] = field(default_factory=tuple)
    #: why the verdict is stronger than the findings alone (repeat offender), or why allowed
    note: str = ""

    @property
    def rule(self) -> str:
        """The rule that fired: the strongest finding's word list or detector."""
        if not self.reasons:
            return ""
        top = self.reasons[0]
        return top.rule or top.detector

    def as_dict(self) -> dict[str, object]:
        return {"verdict": self.verdict.value, "reasons": [{"detector": f.detector, "evidence": f.evidence} for f in self.reasons]}


def decide(
    findings: Sequence[Finding],
    actions: Mapping[str, Verdict] | None = None,
    *,
    exempt: bool = False,
    escalation: Escalation | None = None,
    prior_strikes: int = 0,
) -> Decision:
    """The strongest action any finding calls for, raised for repeat offenders; exempt
    senders (staff, allow-listed VIPs, group admins) are always allowed. Reasons are
    ordered strongest first."""
    if exempt or not findings:
        return Decision(Verdict.ALLOW, note=gettext("exempt sender") if exempt and findings else "")
    table = {**DEFAULT_ACTIONS, **(actions or {})}
    ranked = sorted(findings, key=lambda f: -table.get(f.detector, Verdict.WARN).rank)
    verdict = table.get(ranked[0].detector, Verdict.WARN)
    if verdict == Verdict.ALLOW:
        return Decision(Verdict.ALLOW)
    raised = (escalation or Escalation()).apply(verdict, prior_strikes) if prior_strikes else verdict
    note = ngettext("repeat offender: %(n)s earlier strike", "repeat offender: %(n)s earlier strikes", prior_strikes) % {"n": prior_strikes} \
        if raised != verdict else ""
    return Decision(raised, tuple(f for f in ranked if table.get(f.detector, Verdict.WARN) != Verdict.ALLOW), note)
