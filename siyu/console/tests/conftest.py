"""Console test helpers: a logged-in client for a staff member, in their workspace."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from siyu.accounts.models import Staff


@pytest.fixture
def console_client() -> Callable[[Staff], Client]:
    """``console_client(staff)`` → a client logged in as ``staff`` with its workspace
    chosen, speaking English so assertions read plainly."""

    def make(staff: Staff, lang: str = "en") -> Client:
        client = Client()
        client.force_login(staff.user)
        session = client.session
        session["siyu_workspace_id"] = staff.workspace_id
        session["siyu_workspace_lang"] = staff.workspace.language
        if lang:
            session["siyu_lang"] = lang
        session.save()
        return client

    return make
