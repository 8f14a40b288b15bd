"""The last seconds of one stream, kept in memory as encoded packets, for clip pre-roll.

Memory against CPU: the ring holds the packets the stream's encoder produces anyway (for
continuous recording, or for clips alone), grouped by keyframe. A clip starts by remuxing them,
which costs no encoding. Raw frames would cost 2.7 MB each at 1280x720 (5 s at 25 fps: 345 MB
per stream), JPEG frames 5-10 ms of CPU each plus a second encode at clip time; H.264 at
1-4 Mbit/s keeps 5 s in 1-3 MB. The price: a clip can only start on a keyframe, so it starts up
to one keyframe interval before the asked time (never after, while the ring reaches back far
enough).

Bounds: the ring keeps the fewest whole groups of pictures that still start at or before
``keep_s`` seconds before the newest packet (so at most ``keep_s`` plus one keyframe interval),
and never more than ``max_bytes`` (oldest groups go first; the newest group always stays).
"""

from __future__ import annotations

import logging
from collections import deque

from streamseg.record.encoder import EncodedPacket

logger = logging.getLogger(__name__)

HOLE_S = 2.0
"""Stream seconds without a packet that count as a hole (a stall) for :meth:`PacketRing.since`,
above the frame interval of any camera worth recording (1 fps and up)."""


class PacketRing:
    """Recent packets of one encoder, in whole groups of pictures.

    Not thread-safe: it lives on its stream's worker thread.

    Args:
        keep_s: seconds of history a clip may ask for (the clips' ``pre_s``).
        max_bytes: memory cap for the packet data.
    """

    def __init__(self, keep_s: float, max_bytes: int) -> None:
        if keep_s < 0:
            raise ValueError(f"keep_s must be >= 0, got {keep_s}")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        self.keep_s = keep_s
        self.max_bytes = max_bytes
        self.nbytes = 0
        self.groups_trimmed_for_size = 0
        self._groups: deque[list[EncodedPacket]] = deque()

    def __len__(self) -> int:
        return sum(len(group) for group in self._groups)

    @property
    def span_s(self) -> float:
        """Stream seconds from the oldest kept packet to the newest (0 when empty)."""
        if not self._groups:
            return 0.0
        return self._groups[-1][-1].pts_s - self._groups[0][0].pts_s

    def append(self, packet: EncodedPacket) -> None:
        """Add the encoder's next packet and trim what no clip can need any more."""
        if packet.is_keyframe:
            self._groups.append([packet])
        elif self._groups:
            self._groups[-1].append(packet)
        else:
            return  # nothing decodable before the first keyframe
        self.nbytes += packet.size
        newest = packet.pts_s
        # The second group can serve every clip the first could: drop the first.
        while len(self._groups) >= 2 and self._groups[1][0].pts_s <= newest - self.keep_s:
            self._drop_oldest()
        while self.nbytes > self.max_bytes and len(self._groups) >= 2:
            self._drop_oldest()
            self.groups_trimmed_for_size += 1
            if self.groups_trimmed_for_size == 1:
                logger.warning(
                    "pre-event ring over its %.1f MB cap: keeping %.1f s only",
                    self.max_bytes / 1e6,
                    self.span_s,
                )

    def _drop_oldest(self) -> None:
        group = self._groups.popleft()
        self.nbytes -= sum(p.size for p in group)

    def since(self, start_pts_s: float) -> list[EncodedPacket]:
        """Packets from the last keyframe at or before ``start_pts_s`` to the newest.

        When the ring does not reach back that far, it starts at its oldest keyframe. When
        ``start_pts_s`` falls in a hole of over :data:`HOLE_S` (the stream stalled, then came
        back: the encoder's time grid makes its first frame after a keyframe), it starts at the
        first keyframe after the hole: the group before it holds only footage from before the
        stall, which would open the clip with the wrong scene and a jump in time.
        """
        groups = list(self._groups)
        chosen = 0
        for index, group in enumerate(groups):
            if group[0].pts_s <= start_pts_s + 1e-6:
                chosen = index
            else:
                break
        if (
            chosen + 1 < len(groups)
            and groups[chosen][-1].pts_s < start_pts_s
            and groups[chosen + 1][0].pts_s - groups[chosen][-1].pts_s > HOLE_S
        ):
            chosen += 1
        return [packet for group in groups[chosen:] for packet in group]

    def clear(self) -> None:
        """Forget everything (the stream restarted or ended)."""
        self._groups.clear()
        self.nbytes = 0
