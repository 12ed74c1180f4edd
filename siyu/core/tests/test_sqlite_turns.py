"""Write transactions on SQLite take turns (siyu/core/sqlite/base.py): a transaction holds
the ``<database>.turn`` file lock from its ``BEGIN`` to its commit or rollback; the
others wait for the turn, not in SQLite's busy handler."""

from __future__ import annotations

import fcntl
import os
import threading

import pytest
from django.db import connection, connections, transaction

from siyu.core.models import Workspace
from siyu.core.sqlite import base as turns

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(os.environ.get("DATABASE_URL", "").startswith("postgres"), reason="SQLite's writer turns"),
]


def _open_turn_file() -> int:
    return os.open(f"{connection.settings_dict['NAME']}.turn", os.O_RDWR | os.O_CREAT, 0o600)


def _turn_is_free() -> bool:
    fd = _open_turn_file()
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


@pytest.fixture
def held_turn():
    """The turn taken by someone else (a file lock with no transaction behind it)."""
    fd = _open_turn_file()
    fcntl.flock(fd, fcntl.LOCK_EX)
    yield fd
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def test_a_transaction_holds_the_turn_until_it_commits():
    assert isinstance(connections["default"], turns.DatabaseWrapper)
    assert _turn_is_free()
    with transaction.atomic():
        Workspace.objects.create(slug="turn-a", name="A")
        assert not _turn_is_free()
        with transaction.atomic():  # a savepoint: the same turn, not a second one
            Workspace.objects.create(slug="turn-b", name="B")
        assert not _turn_is_free()
    assert _turn_is_free()
    assert Workspace.objects.filter(slug__in=["turn-a", "turn-b"]).count() == 2


def test_a_rolled_back_transaction_gives_the_turn_back():
    with pytest.raises(RuntimeError), transaction.atomic():
        Workspace.objects.create(slug="turn-c", name="C")
        raise RuntimeError("boom")
    assert _turn_is_free()
    assert not Workspace.objects.filter(slug="turn-c").exists()


def test_closing_the_connection_mid_transaction_gives_the_turn_back():
    connection.set_autocommit(False, force_begin_transaction_with_broken_autocommit=True)
    assert not _turn_is_free()
    connection.close()
    assert _turn_is_free()


def test_a_second_writer_waits_for_the_turn_then_writes():
    order: list[str] = []
    entered = threading.Event()
    release = threading.Event()

    def first() -> None:
        try:
            with transaction.atomic():
                Workspace.objects.create(slug="turn-first", name="1")
                entered.set()
                release.wait(10)
                order.append("first committed")
        finally:
            connections.close_all()

    def second() -> None:
        try:
            entered.wait(10)
            with transaction.atomic():
                order.append("second began")
                Workspace.objects.create(slug="turn-second", name="2")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    entered.wait(10)
    release.set()
    for thread in threads:
        thread.join(30)
    assert order == ["first committed", "second began"]
    assert Workspace.objects.filter(slug__in=["turn-first", "turn-second"]).count() == 2
    assert _turn_is_free()


def test_a_turn_that_never_comes_is_given_up_and_sqlite_decides(held_turn, monkeypatch):
    monkeypatch.setattr(turns, "TURN_GIVE_UP", 0.05)
    with transaction.atomic():  # the holder has no SQLite transaction: the write goes ahead
        Workspace.objects.create(slug="turn-late", name="late")
    assert Workspace.objects.filter(slug="turn-late").exists()


def test_writes_outside_a_transaction_do_not_wait_for_the_turn(held_turn, monkeypatch):
    monkeypatch.setattr(turns, "TURN_GIVE_UP", 60.0)
    done = threading.Event()

    def write() -> None:
        try:
            Workspace.objects.filter(slug="nobody").update(name="x")  # one autocommit statement
            done.set()
        finally:
            connections.close_all()

    thread = threading.Thread(target=write)
    thread.start()
    thread.join(20)
    assert done.is_set()  # it did not wait the 60 s for a turn held elsewhere


def test_a_forked_child_does_not_release_its_parents_turn():
    with transaction.atomic():
        Workspace.objects.create(slug="turn-fork", name="fork")
        pid = os.fork()
        if pid == 0:  # the child inherits the connection mid-transaction and drops it
            try:
                connection._end_turn()  # type: ignore[attr-defined]
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        assert not _turn_is_free()  # still the parent's
    assert _turn_is_free()
