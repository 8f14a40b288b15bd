"""The encoder and the fragmented MP4 writer: keyframes on time, files that decode as written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamseg.record.encoder import EncodedPacket, EncoderSettings, VideoEncoder
from streamseg.record.mp4 import FragmentedMp4Writer


def encode_all(
    kit: type, times: list[float], interval: float = 0.5, fps: float = 20.0
) -> tuple[VideoEncoder, list[EncodedPacket]]:
    encoder = VideoEncoder(EncoderSettings(keyframe_interval_s=interval, nominal_fps=fps))
    packets: list[EncodedPacket] = []
    for i, t in enumerate(times):
        packets += encoder.encode(kit.index_image(i), t, wall_time=1000.0 + t)
    packets += encoder.flush()
    return encoder, packets


def test_keyframes_follow_the_time_grid_not_the_frame_count(kit: type) -> None:
    """Keyframes every 0.5 s of stream time, even where the source dropped frames."""
    times = [i / 20 for i in range(60) if not 8 <= i < 14]  # no frame from 0.4 to 0.65 s
    encoder, packets = encode_all(kit, times)
    assert encoder.frames_encoded == len(times) == len(packets)  # zerolatency: one out per in
    key_times = [p.pts_s for p in packets if p.is_keyframe]
    # The first frame past the hole takes the missed keyframe; the grid does not drift.
    assert key_times == pytest.approx([0.0, 0.7, 1.0, 1.5, 2.0, 2.5], abs=1e-9)
    assert [p.wall_time for p in packets[:2]] == pytest.approx([1000.0, 1000.05])


def test_repeated_timestamps_are_skipped_and_counted(kit: type) -> None:
    encoder = VideoEncoder(EncoderSettings())
    out = [encoder.encode(kit.index_image(0), t) for t in (0.0, 0.04, 0.04, 0.02, 0.08)]
    assert [len(p) for p in out] == [1, 1, 0, 0, 1]
    assert encoder.frames_skipped == 2 and encoder.frames_encoded == 3


def test_file_decodes_with_the_frames_timestamps_and_duration_written(
    kit: type, tmp_path: Path
) -> None:
    times = [i / 20 for i in range(40) if i != 10]  # one dropped frame: a gap, not a shift
    encoder, packets = encode_all(kit, times)
    assert encoder.format is not None
    writer = FragmentedMp4Writer(tmp_path / "a.mp4", encoder.format, {"title": "cam"})
    for packet in packets:
        writer.write(packet)
    writer.close()
    writer.close()  # idempotent
    decoded = kit.decode(tmp_path / "a.mp4")
    assert decoded.error is None
    assert decoded.indices == list(range(39))
    np.testing.assert_allclose(decoded.pts_s, times, atol=1e-3)
    assert decoded.duration_s == pytest.approx(2.0, abs=0.06)  # 1.95 s + one frame
    assert writer.duration_s == pytest.approx(2.0, abs=1e-6)


def test_file_starts_at_zero_whatever_the_stream_time(kit: type, tmp_path: Path) -> None:
    _, packets = encode_all(kit, [100 + i / 20 for i in range(12)])
    encoder = VideoEncoder(EncoderSettings())
    encoder.encode(kit.index_image(0), 0.0)
    assert encoder.format is not None
    writer = FragmentedMp4Writer(tmp_path / "b.mp4", encoder.format)
    for packet in packets:
        writer.write(packet)
    writer.close()
    decoded = kit.decode(tmp_path / "b.mp4")
    assert decoded.pts_s[0] == 0.0 and len(decoded.pts_s) == 12
    assert writer.first_pts_s == pytest.approx(100.0)


def test_truncated_file_decodes_up_to_its_last_whole_fragment(kit: type, tmp_path: Path) -> None:
    """What SIGKILL leaves (the file cut anywhere): every fragment before the cut decodes."""
    _, packets = encode_all(kit, [i / 20 for i in range(60)])  # fragments of 10 frames
    encoder = VideoEncoder(EncoderSettings())
    encoder.encode(kit.index_image(0), 0.0)
    assert encoder.format is not None
    path = tmp_path / "c.mp4"
    writer = FragmentedMp4Writer(path, encoder.format)
    sizes = []
    for packet in packets:
        writer.write(packet)
        sizes.append(path.stat().st_size)
    writer.close()
    # Bytes reach the file when a fragment closes (at each keyframe), not in between.
    assert len(set(sizes[1:10])) == 1 and sizes[10] > sizes[9]
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: sizes[35]])  # the file as it was after packet 35 went in
    decoded = kit.decode(cut)
    assert decoded.indices == list(range(30))  # three whole fragments; the open one is lost
    cut.write_bytes(data[: sizes[35] + 500])  # torn in the middle of the next fragment
    assert kit.decode(cut).indices[:30] == list(range(30))


def test_first_packet_must_be_a_keyframe(kit: type, tmp_path: Path) -> None:
    encoder, packets = encode_all(kit, [i / 20 for i in range(3)])
    assert encoder.format is not None
    writer = FragmentedMp4Writer(tmp_path / "d.mp4", encoder.format)
    with pytest.raises(ValueError, match="first packet must be a keyframe"):
        writer.write(packets[1])
    writer.close()
    assert not (tmp_path / "d.mp4").exists()  # nothing written: no empty file left behind
