"""The rewards ledger keeps its tiers (RESTRICT): a tier with entries cannot be deleted
alone, yet deleting the whole workspace cascades through the ledger."""

from __future__ import annotations

import pytest
from django.db.models import RestrictedError
from django.utils import timezone

from siyu.campaigns.actions import do_confirm_due_invites
from siyu.campaigns.models import RewardEntry, RewardTier
from siyu.campaigns.tests.test_fission import LATER, _invite, _sharer
from siyu.campaigns.tests.test_fission import campaign as campaign  # a fixture: imported so pytest finds it
from siyu.campaigns.tests.test_fission import workspace as workspace  # a fixture: imported so pytest finds it
from siyu.core.models import Workspace

pytestmark = pytest.mark.django_db


def _rewarded(campaign) -> RewardEntry:
    sharer = _sharer(campaign)
    for i in range(3):
        _invite(sharer, f"新客{i}")
    do_confirm_due_invites(campaign, now=timezone.now() + LATER)
    return RewardEntry.objects.get(participant=sharer)


def test_a_tier_with_ledger_entries_cannot_be_deleted_alone(campaign):
    # given
    entry = _rewarded(campaign)

    # when / then
    with pytest.raises(RestrictedError):
        RewardTier.objects.get(pk=entry.tier_id).delete()
    assert RewardEntry.objects.filter(pk=entry.pk).exists()


def test_deleting_the_workspace_cascades_through_the_ledger(campaign, workspace):
    # given
    _rewarded(campaign)

    # when
    workspace.delete()

    # then
    assert (Workspace.objects.filter(slug="fission").exists(), RewardEntry.objects.count(), RewardTier.objects.count()) == (False, 0, 0)
