"""The pre-event ring: whole groups of pictures, bounded in time and in bytes."""

from __future__ import annotations

import pytest

from streamseg.record.encoder import EncodedPacket
from streamseg.record.ring import PacketRing


def packet(i: int, fps: float = 10.0, gop: int = 5, size: int = 100) -> EncodedPacket:
    pts = round(i / fps * 1000)
    return EncodedPacket(b"x" * size, pts, pts, i % gop == 0, 0.0)


def test_keeps_keep_s_plus_at_most_one_group() -> None:
    ring = PacketRing(keep_s=1.0, max_bytes=10**9)
    for i in range(50):  # 5 s at 10 fps, a keyframe every 0.5 s
        ring.append(packet(i))
        assert ring.span_s < 1.0 + 0.5  # never more than keep_s plus one group
    # Newest is 4.9 s: the oldest kept keyframe is the last one at or before 3.9 s.
    assert ring.since(0.0)[0].pts_s == pytest.approx(3.5)
    assert len(ring) == 15 and ring.nbytes == 1500


@pytest.mark.parametrize(
    ("start_s", "first_s"),
    [
        (4.0, 4.0),  # on a keyframe: starts there
        (4.2, 4.0),  # between keyframes: the one before
        (4.49, 4.0),
        (4.5, 4.5),
        (0.0, 3.5),  # before what the ring holds: its oldest keyframe
        (9.0, 4.5),  # in the future: the newest keyframe
    ],
)
def test_since_starts_at_the_last_keyframe_at_or_before(start_s: float, first_s: float) -> None:
    ring = PacketRing(keep_s=1.0, max_bytes=10**9)
    for i in range(50):
        ring.append(packet(i))
    out = ring.since(start_s)
    assert out[0].is_keyframe and out[0].pts_s == pytest.approx(first_s)
    assert out[-1].pts_s == pytest.approx(4.9)
    assert [p.pts for p in out] == sorted(p.pts for p in out)


def test_byte_cap_drops_oldest_groups_but_keeps_the_newest() -> None:
    ring = PacketRing(keep_s=10.0, max_bytes=1200)
    for i in range(40):
        ring.append(packet(i))
        assert ring.nbytes <= 1200 or len(ring) <= 5  # the open group may exceed alone
    assert ring.groups_trimmed_for_size > 0
    assert ring.since(0.0)[0].pts_s == pytest.approx(3.0)  # only 10 packets fit


def test_packets_before_the_first_keyframe_are_ignored() -> None:
    ring = PacketRing(keep_s=1.0, max_bytes=10**9)
    for i in range(3, 8):
        ring.append(packet(i))
    assert [p.pts_s for p in ring.since(0.0)] == pytest.approx([0.5, 0.6, 0.7])
    ring.clear()
    assert len(ring) == 0 and ring.nbytes == 0 and ring.since(0.0) == []


@pytest.mark.parametrize(("keep_s", "max_bytes", "error"), [(-1.0, 10, "keep_s"), (1.0, 0, "max")])
def test_rejects_bad_bounds(keep_s: float, max_bytes: int, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        PacketRing(keep_s, max_bytes)


def test_a_start_in_a_stall_begins_after_it_not_with_the_footage_before() -> None:
    """Regression: the first clip after a 9 s stall opened with the last second before the
    stall, then jumped 9 s: the clip of an event 1 s after the camera came back held 18 s."""
    ring = PacketRing(keep_s=5.0, max_bytes=10**9)
    for i in range(30):  # 0.0-2.9 s, keyframes every 0.5 s
        ring.append(packet(i))
    for i in range(5):  # the camera is back at 12.0 s; the time grid makes it a keyframe
        pts = 12_000 + 100 * i
        ring.append(EncodedPacket(b"x" * 100, pts, pts, i == 0, 0.0))
    assert ring.since(11.0)[0].pts_s == pytest.approx(12.0)  # pre-roll reaching into the stall
    assert ring.since(2.7)[0].pts_s == pytest.approx(2.5)  # before the stall: as always
    assert ring.since(12.2)[0].pts_s == pytest.approx(12.0)
    assert ring.since(2.95)[0].pts_s == pytest.approx(12.0)  # in the hole, however early
