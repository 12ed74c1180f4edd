"""Fixtures for the Matrix end-to-end tests: one real Synapse per test session (on
127.0.0.1, SQLite, started and stopped here) and fresh users for every test.

Without a Synapse install the tests skip with the reason, except in CI (``CI`` set),
where a missing Synapse fails: the end-to-end test must run there.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.matrix.synapse import MatrixUser, SynapseServer, find_synapse_python
from tests.matrix.users import UserClient

_seq = itertools.count(1)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapseServer]:
    python = find_synapse_python()
    if python is None:
        reason = "no Synapse install: run scripts/synapse.sh (makes .venv-synapse) or set SIYU_SYNAPSE_PYTHON"
        if _in_ci():
            pytest.fail(f"{reason} — CI must run the Matrix end-to-end tests", pytrace=False)
        pytest.skip(reason)
    server = SynapseServer(python, tmp_path_factory.mktemp("synapse"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class MatrixCast:
    """The people of one test: the workspace's bot, alice (creates the room: its owner)
    and bob (a customer who joins)."""

    bot: MatrixUser
    alice: UserClient
    bob: UserClient


@pytest.fixture
def matrix(synapse: SynapseServer) -> Iterator[MatrixCast]:
    # fresh users per test: the bot of one test must not see the rooms of another
    n = next(_seq)
    bot = synapse.register(f"siyu-bot-{n}")
    alice = UserClient(synapse.base_url, synapse.register(f"alice-{n}"))
    bob = UserClient(synapse.base_url, synapse.register(f"bob-{n}"))
    alice.set_displayname("Alice")
    bob.set_displayname("Bob")
    try:
        yield MatrixCast(bot=bot, alice=alice, bob=bob)
    finally:
        alice.close()
        bob.close()
