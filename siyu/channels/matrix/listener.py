"""The Matrix listener: one ``/sync`` long-poll loop per bot account that turns room
events into inbound events and hands them to the inbox (:func:`do_receive`).

- Every sync's events are stored, and the sync position saved, in one transaction: a
  crash before the commit repeats the sync from the old position, and the event-id
  dedupe of the inbox makes the repeat a no-op.
- Invitations are accepted when they come from an allowed inviter (by default: users of
  the bot's own homeserver; ``config["accept_invites_from"]`` lists user ids or
  ``:server`` suffixes) and declined otherwise.
- A room the process has not seen yet (first sync, or a restart) has its full state
  loaded, so names, display names and power levels are known.
- When a sync's timeline for a room is ``limited`` (more happened while the bot was away
  than one sync carries), the gap is read back with ``/messages`` so no message escapes
  moderation.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import close_old_connections, connection, transaction

from siyu.channels.base import InboundEvent
from siyu.channels.inbox import do_receive
from siyu.channels.matrix.actions import do_save_sync_position
from siyu.channels.matrix.adapter import client_for
from siyu.channels.matrix.client import MatrixClient, MatrixError
from siyu.channels.matrix.events import RoomState, map_event
from siyu.channels.models import ChannelAccount

__all__ = ["MatrixListener", "SyncResult", "run_listener"]

log = logging.getLogger(__name__)

#: what the listener asks /sync for: room state and timelines, nothing else
SYNC_FILTER: dict[str, Any] = {
    "presence": {"not_types": ["*"]},
    "account_data": {"not_types": ["*"]},
    "room": {
        "timeline": {"limit": 100},
        "ephemeral": {"not_types": ["*"]},
        "account_data": {"not_types": ["*"]},
        "state": {"lazy_load_members": False},
    },
}
MAX_GAP_PAGES = 20
BACKOFF_MAX_SECONDS = 60.0


@dataclass
class SyncResult:
    next_batch: str
    stored: int = 0  # inbound events newly stored
    mapped: int = 0  # inbound events mapped (replays included)
    joined: list[str] = field(default_factory=list)  # rooms the bot accepted an invitation to
    declined: list[str] = field(default_factory=list)


def _server_of(user_id: str) -> str:
    return user_id.partition(":")[2]


class MatrixListener:
    """Sync loop of one Matrix account. ``client`` may be given for tests; by default the
    account's own (decrypted) credentials are used."""

    def __init__(self, account: ChannelAccount, *, client: MatrixClient | None = None, poll_timeout_ms: int = 30_000) -> None:
        self.account = account
        config = account.config or {}
        self.bot_user_id = str(config.get("user_id") or account.external_id)
        self.client = client or client_for(account, timeout=30.0)
        self.poll_timeout_ms = poll_timeout_ms
        self.rooms: dict[str, RoomState] = {}

    # -- one sync ---------------------------------------------------------------------
    def sync_once(self, *, timeout_ms: int | None = None) -> SyncResult:
        """One ``/sync``: accept invitations, map the joined rooms' events, store them and
        the new position. Raises :class:`MatrixError` when the homeserver fails."""
        since = (self.account.config or {}).get("since") or None
        response = self.client.sync(since, timeout_ms=self.poll_timeout_ms if timeout_ms is None else timeout_ms,
                                    sync_filter=SYNC_FILTER)
        result = SyncResult(next_batch=str(response.get("next_batch", "")))
        rooms = response.get("rooms") or {}
        self._answer_invites(rooms.get("invite") or {}, result)
        mapped: list[tuple[InboundEvent, str]] = []
        touched = [*(rooms.get("join") or {}), *(rooms.get("leave") or {})]
        try:
            for room_id, room in (rooms.get("join") or {}).items():
                mapped.extend(self._map_room(room_id, room, since))
            for room_id, room in (rooms.get("leave") or {}).items():
                # what happened up to the bot's removal still counts, the removal itself included
                mapped.extend(self._map_room(room_id, room, since, left=True))
            result.mapped = len(mapped)
            with transaction.atomic():
                for inbound, raw in mapped:
                    result.stored += sum(1 for _, created in do_receive(self.account, [inbound], raw=raw) if created)
                if result.next_batch:
                    do_save_sync_position(self.account, result.next_batch)
        except BaseException:
            # the sync will be repeated from the old position: the rooms' state must not
            # already include its events, or they would be judged against the state after them
            for room_id in touched:
                self.rooms.pop(room_id, None)
            raise
        for room_id in rooms.get("leave") or {}:
            self.rooms.pop(room_id, None)  # out of the room: forget its state, it may come back changed
        return result

    def close(self) -> None:
        self.client.close()

    def _answer_invites(self, invites: Mapping[str, Any], result: SyncResult) -> None:
        for room_id, room in invites.items():
            inviter = ""
            for event in (room.get("invite_state") or {}).get("events") or []:
                if event.get("type") == "m.room.member" and event.get("state_key") == self.bot_user_id:
                    inviter = str(event.get("sender", ""))
            try:
                if self._may_invite(inviter):
                    self.client.join(room_id)
                    result.joined.append(room_id)
                    log.info("matrix %s: joined %s (invited by %s)", self.bot_user_id, room_id, inviter)
                else:
                    self.client.leave(room_id, "this bot only joins rooms it is invited to by its own organisation")
                    result.declined.append(room_id)
                    log.warning("matrix %s: declined invitation to %s from %s", self.bot_user_id, room_id, inviter)
            except MatrixError as exc:
                if exc.transient:
                    raise  # the position is not saved: the invitation comes again next sync
                # a room that no longer exists or refuses us: nothing to retry
                log.warning("matrix %s: could not answer invitation to %s: %s", self.bot_user_id, room_id, exc)

    def _may_invite(self, inviter: str) -> bool:
        allowed = (self.account.config or {}).get("accept_invites_from") or [":" + _server_of(self.bot_user_id)]
        return any(inviter == rule or (rule.startswith(":") and inviter.endswith(rule)) for rule in allowed)

    def _room_state(self, room_id: str, since: str | None, *, left: bool = False) -> RoomState:
        state = self.rooms.get(room_id)
        if state is None:
            state = RoomState(room_id)
            if since is not None:
                # incremental sync after a restart: it carries only changes, so load the rest
                try:
                    current = self.client.room_state(room_id)
                except MatrixError as exc:
                    if exc.transient or not left:
                        raise
                    current = []  # a room the bot was removed from may refuse: map with what the sync carries
                for event in current:
                    state.note_bot_join(event, self.bot_user_id)
                    state.apply(event)
            self.rooms[room_id] = state
        return state

    def _map_room(self, room_id: str, room: Mapping[str, Any], since: str | None, *, left: bool = False) -> list[tuple[InboundEvent, str]]:
        state = self._room_state(room_id, since, left=left)
        state_events = list((room.get("state") or {}).get("events") or [])
        timeline = room.get("timeline") or {}
        timeline_events = list(timeline.get("events") or [])
        if timeline.get("limited") and since and timeline.get("prev_batch"):
            timeline_events = self._gap(room_id, str(timeline["prev_batch"]), since) + timeline_events
        for event in (*state_events, *timeline_events):
            state.note_bot_join(event, self.bot_user_id)
        out: list[tuple[InboundEvent, str]] = []
        seen: set[str] = set()
        for event in (*state_events, *timeline_events):
            event_id = str(event.get("event_id", ""))
            if event_id in seen:
                continue
            seen.add(event_id)
            inbound = map_event(event, state, self.bot_user_id)
            state.apply(event)
            if inbound is not None:
                out.append((inbound, json.dumps({"room_id": room_id, **event}, ensure_ascii=False)))
        return out

    def _gap(self, room_id: str, prev_batch: str, since: str) -> list[dict[str, Any]]:
        """Events between the last sync and the start of this timeline, oldest first."""
        events: list[dict[str, Any]] = []
        token = prev_batch
        for _ in range(MAX_GAP_PAGES):
            page = self.client.messages(room_id, from_token=token, to_token=since, direction="b", limit=100)
            chunk = [e for e in page.get("chunk") or [] if isinstance(e, dict)]
            events.extend(chunk)
            if not chunk or not page.get("end") or page.get("end") == token:
                break
            token = str(page["end"])
        else:
            log.warning("matrix %s: gap in %s longer than %d pages; older events skipped", self.bot_user_id, room_id, MAX_GAP_PAGES)
        events.reverse()
        return events

    # -- the loop ---------------------------------------------------------------------
    def run(self, stop_event: threading.Event | None = None, *, once: bool = False) -> None:
        """Sync until ``stop_event`` is set (or one sync with ``once``). Errors back off
        exponentially (honouring ``retry_after_ms``) up to a minute and never end the loop."""
        stop = stop_event or threading.Event()
        failures = 0
        try:
            while not stop.is_set():
                close_old_connections()
                try:
                    result = self.sync_once(timeout_ms=0 if once else None)
                    failures = 0
                    if result.stored or result.joined:
                        log.info("matrix %s: stored %d events, joined %d rooms", self.bot_user_id, result.stored, len(result.joined))
                except MatrixError as exc:
                    failures += 1
                    delay = min(BACKOFF_MAX_SECONDS, 2.0 ** min(failures, 6))
                    if exc.retry_after_ms is not None:
                        delay = max(delay, exc.retry_after_ms / 1000)
                    log.warning("matrix %s: sync failed (%s); retrying in %.0fs", self.bot_user_id, exc, delay)
                    if once:
                        raise
                    stop.wait(delay)
                except Exception:
                    failures += 1
                    log.exception("matrix %s: sync failed", self.bot_user_id)
                    if once:
                        raise
                    stop.wait(min(BACKOFF_MAX_SECONDS, 2.0 ** min(failures, 6)))
                if once:
                    return
        finally:
            self.close()
            connection.close()


def run_listener(account: ChannelAccount, stop_event: threading.Event | None = None, *, once: bool = False,
                 poll_timeout_ms: int = 30_000) -> None:
    """Run the listener of one Matrix account in this thread (what ``siyu channels
    run-matrix`` does per account)."""
    MatrixListener(account, poll_timeout_ms=poll_timeout_ms).run(stop_event, once=once)


def active_accounts(workspace_slug: str | None = None) -> Iterable[ChannelAccount]:
    qs = ChannelAccount.objects.filter(kind="matrix", is_active=True).select_related("workspace")
    if workspace_slug:
        qs = qs.filter(workspace__slug=workspace_slug)
    return list(qs.order_by("id"))
