"""Debouncing and the start/update/end lifecycle of event occurrences.

:class:`Debounce` turns a per-frame condition into a state that changes only after the new value
has held for ``min_duration_s`` of stream time (on the way in and on the way out, so a
flickering detection neither spams starts nor ends an alert early). :class:`OccurrenceBook`
holds one rule's open occurrences on one stream, keyed by track id (or ``None`` for zone-level
rules), and builds their :class:`~streamseg.rules.events.Event` messages: one ``event_id`` per
occurrence, ``seq`` 0 for ``start`` and counting up, cooldown after each ``end``.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from streamseg.config.rules import RuleConfig
from streamseg.rules.events import Event, EventType, Severity, new_event_id

logger = logging.getLogger(__name__)

TIME_EPS_S = 1e-6
"""Slack on duration comparisons: frame times such as ``5 * 0.1`` are not exact in binary."""

COOLDOWN_PRUNE_SIZE = 256
"""Expired cooldown entries are dropped once the table holds more keys than this."""


def max_start_lead_s(rules: Sequence[RuleConfig]) -> float:
    """How far an occurrence's ``started_pts`` can precede the frame of its ``start`` message.

    A debounced start is dated to the first frame its condition held (or, for ``cross``, up to
    half of ``min_duration_s`` before it) and is sent once it has held ``min_duration_s``: so at
    most ``min_duration_s`` plus one frame interval before, while the track is seen on every
    frame. (Frames where it is unseen don't break the wait, so a track unseen for a while during
    it starts with a longer lead, up to its ``lost_timeout_s`` more; that rare case is not
    covered. A track held hidden for longer starts its wait again when it is back.) ``dwell``
    starts are dated to the frame that sends them. Whoever must look back at ``started_pts``
    when the ``start`` arrives (the clips' pre-event ring) keeps this much more history.

    Args:
        rules: the pipeline's ``rules`` section.

    Returns:
        The largest ``min_duration_s`` of the rules, in seconds (0 without rules); the frame
        interval is the caller's to add.
    """
    return max((rule.min_duration_s for rule in rules), default=0.0)


@dataclass(frozen=True, slots=True)
class Stamp:
    """When a frame happened.

    Attributes:
        pts: stream seconds.
        wall: wall-clock UNIX seconds.
        index: frame index in its stream.
    """

    pts: float
    wall: float
    index: int


class Debounce:
    """A boolean state that follows observations only once they hold for a minimum duration.

    Args:
        initial: the state before any observation; ``None`` means unknown (the first value
            that holds long enough becomes the state, reported as a change from ``None``).

    Attributes:
        state: the debounced value.
        since: the first frame of the run of observations that set :attr:`state` (``None``
            until the first change).
        unseen_since: when that run began on the first observation after frames without one,
            the observation before them: the change happened unseen, between this frame and
            :attr:`since`; ``None`` when the run began right after an observation.
    """

    __slots__ = (
        "_pending",
        "_pending_before",
        "_pending_credit",
        "_pending_since",
        "since",
        "state",
        "unseen_since",
    )

    def __init__(self, initial: bool | None = False) -> None:
        self.state: bool | None = initial
        self.since: Stamp | None = None
        self.unseen_since: Stamp | None = None
        self._pending: bool | None = None
        self._pending_since: Stamp | None = None
        self._pending_before: Stamp | None = None
        self._pending_credit = 0.0

    def drop_pending(self) -> None:
        """Forget a change waiting to be confirmed: the next different observation starts
        its wait afresh."""
        self._pending = None

    def update(
        self,
        value: bool,
        stamp: Stamp,
        min_duration_s: float,
        credit_s: float = 0.0,
        unseen_since: Stamp | None = None,
    ) -> bool:
        """Feed the observation of one frame.

        The state changes once ``value`` (different from the state) has been observed on
        every frame from the first such observation up to one at least ``min_duration_s``
        later; one observation equal to the state in between starts the wait again. Frames
        without an observation (the object unseen) neither extend nor break the run.

        Args:
            value: the raw condition on this frame.
            stamp: the frame.
            min_duration_s: how long a new value must hold.
            credit_s: used when this observation starts a run: how long ``value`` probably held
                already before it (``cross``: half the gap since the track's previous
                observation, where the change happened unseen); counted towards
                ``min_duration_s``.
            unseen_since: the previous observation, when frames without one came between it
                and this one (:attr:`unseen_since`, if this observation starts a run).

        Returns:
            True when the state changed on this frame.
        """
        # A numpy bool (a condition computed in numpy) is not `True` to the `is` tests here
        # and in the rules (`state is not target`): every state is a Python bool or None.
        value = bool(value)
        if value == self.state:
            self._pending = None
            return False
        if self._pending is not value or self._pending_since is None:
            self._pending = value
            self._pending_since = stamp
            self._pending_before = unseen_since
            self._pending_credit = max(0.0, credit_s)
        held = stamp.pts - self._pending_since.pts + self._pending_credit
        if held >= min_duration_s - TIME_EPS_S:
            self.state = value
            self.since = self._pending_since
            self.unseen_since = self._pending_before
            self._pending = None
            return True
        return False


@dataclass(slots=True)
class Occurrence:
    """One open occurrence of a rule.

    Attributes:
        event_id: shared by all its messages.
        started: its first frame.
        track_ids: tracks in its last message (sorted).
        class_names: their classes, same order.
        seq: ``seq`` of its last message.
        last_message_pts: stream seconds of its last message.
    """

    event_id: str
    started: Stamp
    track_ids: tuple[int, ...]
    class_names: tuple[str, ...]
    seq: int = 0
    last_message_pts: float = 0.0


def sorted_tracks(
    track_ids: Iterable[int], class_names: Iterable[str]
) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Track ids sorted ascending, with their class names in the same order."""
    pairs = sorted(zip(track_ids, class_names, strict=True))
    return tuple(int(t) for t, _ in pairs), tuple(c for _, c in pairs)


def _retrack(
    occurrence: Occurrence,
    track_ids: Iterable[int] | None,
    class_names: Iterable[str] | None,
) -> None:
    """Give ``occurrence`` the tracks its next message names, when they are given."""
    if track_ids is not None and class_names is not None:
        occurrence.track_ids, occurrence.class_names = sorted_tracks(track_ids, class_names)


class OccurrenceBook:
    """The open occurrences of one rule on one stream, and the events they produce.

    Args:
        rule_id: the rule's id.
        rule_kind: the rule's kind (``inside`` ...).
        stream_id: the stream.
        zone_id: the zone or line watched, or ``None``.
        severity: carried by every event.
        cooldown_s: after an ``end``, no new ``start`` for the same key for this long.
        update_interval_s: periodic ``update`` interval while open, or ``None`` for none.
    """

    def __init__(
        self,
        rule_id: str,
        rule_kind: str,
        stream_id: str,
        zone_id: str | None,
        severity: Severity,
        cooldown_s: float,
        update_interval_s: float | None,
    ) -> None:
        self.rule_id = rule_id
        self.rule_kind = rule_kind
        self.stream_id = stream_id
        self.zone_id = zone_id
        self.severity: Severity = severity
        self.cooldown_s = cooldown_s
        self.update_interval_s = update_interval_s
        self.open: dict[Hashable, Occurrence] = {}
        self._cooldown_until: dict[Hashable, float] = {}

    def can_start(self, key: Hashable, pts: float) -> bool:
        """Whether a new occurrence for ``key`` may start now (none open, not cooling down)."""
        if key in self.open:
            return False
        until = self._cooldown_until.get(key)
        if until is None:
            return True
        if pts >= until - TIME_EPS_S:
            del self._cooldown_until[key]
            return True
        return False

    def _event(
        self,
        occurrence: Occurrence,
        kind: EventType,
        now: Stamp,
        details: dict[str, Any],
        ended_at: float | None = None,
    ) -> Event:
        return Event(
            event_id=occurrence.event_id,
            type=kind,
            rule_id=self.rule_id,
            rule_kind=self.rule_kind,
            stream_id=self.stream_id,
            started_at=occurrence.started.wall,
            started_pts=occurrence.started.pts,
            frame_pts=now.pts,
            frame_index=now.index,
            seq=occurrence.seq,
            zone_id=self.zone_id,
            track_ids=occurrence.track_ids,
            class_names=occurrence.class_names,
            severity=self.severity,
            ended_at=ended_at,
            details=details,
        )

    def start(
        self,
        key: Hashable,
        first: Stamp,
        now: Stamp,
        track_ids: Iterable[int],
        class_names: Iterable[str],
        details: dict[str, Any],
    ) -> Event:
        """Open an occurrence for ``key``; returns its ``start`` message.

        Args:
            key: track id, or ``None`` for a zone-level rule.
            first: the occurrence's first frame (when its condition began to hold).
            now: the frame producing the message.
            track_ids: tracks involved.
            class_names: their classes, same order.
            details: rule-specific figures.
        """
        ids, names = sorted_tracks(track_ids, class_names)
        occurrence = Occurrence(new_event_id(), first, ids, names, 0, now.pts)
        self.open[key] = occurrence
        return self._event(occurrence, "start", now, details)

    def update(
        self,
        key: Hashable,
        now: Stamp,
        details: dict[str, Any],
        track_ids: Iterable[int] | None = None,
        class_names: Iterable[str] | None = None,
    ) -> Event:
        """An ``update`` message of the open occurrence of ``key`` (new tracks when given)."""
        occurrence = self.open[key]
        _retrack(occurrence, track_ids, class_names)
        occurrence.seq += 1
        occurrence.last_message_pts = now.pts
        return self._event(occurrence, "update", now, details)

    def end(
        self,
        key: Hashable,
        now: Stamp,
        last: Stamp,
        details: dict[str, Any],
        track_ids: Iterable[int] | None = None,
        class_names: Iterable[str] | None = None,
    ) -> Event:
        """Close the occurrence of ``key``; returns its ``end`` message.

        Args:
            key: the occurrence's key.
            now: the frame producing the message.
            last: the occurrence's last frame (its condition's last frame), for ``ended_at``;
                never earlier than its first (an occurrence ends no earlier than it started).
            details: rule-specific figures (``reason`` at least).
            track_ids, class_names: the tracks the message names, when they changed.
        """
        occurrence = self.open.pop(key)
        if last.pts < occurrence.started.pts:
            last = occurrence.started
        _retrack(occurrence, track_ids, class_names)
        occurrence.seq += 1
        occurrence.last_message_pts = now.pts
        if self.cooldown_s > 0:
            if len(self._cooldown_until) > COOLDOWN_PRUNE_SIZE:
                self._cooldown_until = {
                    k: t for k, t in self._cooldown_until.items() if t > now.pts
                }
            self._cooldown_until[key] = now.pts + self.cooldown_s
        return self._event(occurrence, "end", now, details, ended_at=last.wall)

    def pulse(
        self,
        key: Hashable,
        first: Stamp,
        now: Stamp,
        track_ids: Iterable[int],
        class_names: Iterable[str],
        details: dict[str, Any],
    ) -> list[Event]:
        """An instantaneous occurrence: its ``start`` and ``end`` messages, on this frame.

        Both carry ``started_at``/``started_pts`` of ``first`` (when the transition happened)
        and the end's ``ended_at`` is ``first``'s wall time too.
        """
        start = self.start(key, first, now, track_ids, class_names, details)
        return [start, self.end(key, now, first, details)]

    def due_updates(self, pts: float) -> list[Hashable]:
        """Keys of the open occurrences whose periodic update is due at ``pts``."""
        interval = self.update_interval_s
        if interval is None or not self.open:
            return []
        return [
            key
            for key, occurrence in self.open.items()
            if pts - occurrence.last_message_pts >= interval - TIME_EPS_S
        ]
