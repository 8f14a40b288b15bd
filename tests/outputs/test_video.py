"""Annotated video: the file decodes with PyAV with the frames, timestamps and drawings we wrote."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import supervision as sv

from streamseg.outputs.annotate import FrameAnnotator, detection_labels
from streamseg.outputs.video import AnnotatedVideoSink, VideoFileWriter, pick_encoder
from streamseg.types import Frame


def _detections() -> sv.Detections:
    dense = np.zeros((1, 120, 160), dtype=bool)
    dense[0, 40:80, 50:110] = True
    xyxy = np.array([[50, 40, 109, 79]], dtype=np.float32)
    return sv.Detections(
        xyxy=xyxy,
        confidence=np.array([0.8], np.float32),
        class_id=np.array([1]),
        mask=sv.CompactMask.from_dense(dense, xyxy, image_shape=(120, 160)),
        data={"class_name": np.array(["cow"])},
    )


def test_encoder_choice() -> None:
    assert pick_encoder("auto") == "libx264"
    assert pick_encoder("mpeg4") == "mpeg4"
    with pytest.raises(ValueError, match="expected one of"):
        pick_encoder("divx")


def test_writer_frames_and_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "v.mp4"
    writer = VideoFileWriter(path, nominal_fps=20.0)
    # 30 frames at 20 fps with one dropped (index 10) and one repeated timestamp.
    times = [i / 20 for i in range(30) if i != 10]
    times.insert(5, times[4])
    for t in times:
        writer.write_image(np.full((120, 160, 3), 90, np.uint8), t)
    writer.close()
    writer.close()  # idempotent
    assert writer.frames_written == 29 and writer.frames_skipped == 1
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        pts = [float(f.pts * f.time_base) for f in container.decode(stream)]
    assert len(pts) == 29
    np.testing.assert_allclose(pts[:10], [i / 20 for i in range(10)], atol=1e-3)
    assert pts[10] == pytest.approx(11 / 20, abs=1e-3)  # the drop is a gap, not a shift


def test_sink_annotates_per_stream(tmp_path: Path) -> None:
    sink = AnnotatedVideoSink(str(tmp_path / "{stream}.mp4"), FrameAnnotator(), crf=10)
    detections = _detections()
    for stream in ("a", "b"):
        for i in range(5):
            image = np.zeros((120, 160, 3), np.uint8)
            sink.write(Frame(stream, i, i / 10, 0.0, image), detections)
        sink.close_stream(stream)
    sink.close()
    assert sorted(p.name for p in sink.paths) == ["a.mp4", "b.mp4"]
    with av.open(str(tmp_path / "a.mp4")) as container:
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    assert len(frames) == 5
    inside = frames[0][50:70, 60:100].astype(int).sum(axis=2).mean()
    outside = frames[0][0:30, 0:40].astype(int).sum(axis=2).mean()
    assert inside > 60 > outside  # the mask is drawn where the object is, nothing elsewhere


def test_labels() -> None:
    detections = _detections()
    assert detection_labels(detections) == ["cow 0.80"]
    detections.tracker_id = np.array([4])
    assert detection_labels(detections) == ["cow #4 0.80"]


class SlowAnnotator(FrameAnnotator):
    """Draws like FrameAnnotator but takes 20 ms a frame (a worker that falls behind)."""

    def fresh(self, zones: object = None) -> SlowAnnotator:
        return SlowAnnotator()

    def annotate(
        self, image: np.ndarray, detections: sv.Detections, overlay: object = None
    ) -> np.ndarray:  # type: ignore[override]
        import time

        time.sleep(0.02)
        return super().annotate(image, detections)


@pytest.mark.parametrize("lossless", [False, True])
def test_sink_draws_off_the_analytics_thread(tmp_path: Path, lossless: bool) -> None:
    """Frames of a live stream are dropped and counted when drawing falls behind; a file
    stream (lossless) waits instead and loses none."""
    sink = AnnotatedVideoSink(
        str(tmp_path / "{stream}.mp4"),
        SlowAnnotator(),
        queue_frames=2,
        lossless_streams={"cam"} if lossless else (),
    )
    for i in range(20):
        sink.write(Frame("cam", i, i / 10, 0.0, np.zeros((120, 160, 3), np.uint8)), _detections())
    sink.close_stream("cam")
    sink.close()
    with av.open(str(tmp_path / "cam.mp4")) as container:
        frames = sum(1 for _ in container.decode(video=0))
    dropped = sink.frames_dropped["cam"]
    assert frames + dropped == 20
    assert dropped == 0 if lossless else dropped >= 10


def test_a_frame_size_change_is_letterboxed_into_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: a larger frame was cropped to the file's top-left corner and a smaller one
    raised on every frame (a traceback each, nothing recorded)."""
    sink = AnnotatedVideoSink(str(tmp_path / "{stream}.mp4"), FrameAnnotator(), fps=10)
    index = 0
    with caplog.at_level("WARNING", logger="streamseg.outputs.video"):
        for (h, w), n in [((120, 160), 10), ((240, 320), 10), ((60, 80), 10)]:
            for _ in range(n):
                image = np.zeros((h, w, 3), np.uint8)
                image[h // 2 :, w // 2 :] = 255  # the bottom-right quadrant is white
                sink.write(Frame("cam", index, index / 10, 0.0, image), sv.Detections.empty())
                index += 1
        sink.close()
    with av.open(str(tmp_path / "cam.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (160, 120)
        frames = [f.to_ndarray(format="gray") for f in container.decode(stream)]
    assert len(frames) == 30
    for frame in (frames[5], frames[15], frames[25]):  # the whole picture, at the file's size
        assert frame[90, 120] > 200 and frame[30, 40] < 50 and frame[30, 120] < 50
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2 and all("letterboxed" in m for m in warnings)
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
