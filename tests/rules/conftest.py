"""A small world for rule tests: rectangle masks on a 120x80 frame, a recording listener."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pytest
import supervision as sv

from streamseg.config import load_pipeline_text
from streamseg.rules import Event, RuleEngine
from streamseg.types import HIDDEN_TRACK_IDS, Frame

WIDTH, HEIGHT = 120, 80


@dataclass
class Recorder:
    """An EventListener that keeps everything it is told."""

    events: list[Event] = field(default_factory=list)
    states: list[tuple[str, str, bool]] = field(default_factory=list)
    counts: list[tuple[str, str, str, int]] = field(default_factory=list)

    def on_event(self, event: Event) -> None:
        self.events.append(event)

    def on_rule_state(self, stream_id: str, rule_id: str, active: bool) -> None:
        self.states.append((stream_id, rule_id, active))

    def on_zone_count(self, stream_id: str, zone_id: str, class_name: str, count: int) -> None:
        self.counts.append((stream_id, zone_id, class_name, count))


@dataclass(frozen=True)
class Obj:
    """One object of a frame: its track id (-1: unconfirmed), class and mask."""

    track_id: int
    class_name: str
    mask: npt.NDArray[np.bool_]


class Kit:
    """Builders shared by the rule tests."""

    width = WIDTH
    height = HEIGHT
    Obj = Obj
    Recorder = Recorder

    @staticmethod
    def rect(x1: int, y1: int, x2: int, y2: int) -> npt.NDArray[np.bool_]:
        """A (HEIGHT, WIDTH) mask with the inclusive pixel rectangle x1..x2, y1..y2 set."""
        mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
        mask[max(y1, 0) : y2 + 1, max(x1, 0) : x2 + 1] = True
        return mask

    @staticmethod
    def box(track_id: int, x1: int, y1: int, x2: int, y2: int, cls: str = "person") -> Obj:
        """A rectangular object."""
        return Obj(track_id, cls, Kit.rect(x1, y1, x2, y2))

    @staticmethod
    def obj(spec: Obj | Sequence[object]) -> Obj:
        """An :class:`Obj`, or one from a ``(track_id, x1, y1, x2, y2[, class])`` tuple."""
        if isinstance(spec, Obj):
            return spec
        track_id, x1, y1, x2, y2, *rest = spec
        cls = str(rest[0]) if rest else "person"
        return Kit.box(int(track_id), int(x1), int(y1), int(x2), int(y2), cls)  # type: ignore[call-overload]

    @staticmethod
    def detections(specs: Sequence[Obj | Sequence[object]]) -> sv.Detections:
        """Tracker-like detections with CompactMask masks (boxes from the masks)."""
        objects = [Kit.obj(spec) for spec in specs]
        if not objects:
            return sv.Detections.empty()
        dense = np.stack([obj.mask for obj in objects])
        boxes = []
        for mask in dense:
            rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            boxes.append([cols[0], rows[0], cols[-1], rows[-1]])
        xyxy = np.array(boxes, dtype=np.float32)
        names = [obj.class_name for obj in objects]
        return sv.Detections(
            xyxy=xyxy,
            mask=sv.CompactMask.from_dense(dense, xyxy, image_shape=(HEIGHT, WIDTH)),
            confidence=np.ones(len(objects), dtype=np.float32),
            class_id=np.array([sorted(set(names)).index(n) for n in names], dtype=int),
            tracker_id=np.array([obj.track_id for obj in objects], dtype=int),
            data={"class_name": np.array(names)},
        )

    @staticmethod
    def config(zones_and_rules: str, calibration: str | None = None) -> object:
        """A pipeline with one file source 'cam' and the given zones/rules YAML."""
        source = "  - {id: cam, type: file, path: cam.mp4"
        source += f", calibration: {calibration}}}\n" if calibration else "}\n"
        text = "sources:\n" + source + textwrap.dedent(zones_and_rules)
        return load_pipeline_text(text)

    @staticmethod
    def engine(zones_and_rules: str, calibration: str | None = None) -> tuple[RuleEngine, Recorder]:
        """The engine of stream 'cam' and a recorder listening to it."""
        recorder = Recorder()
        config = Kit.config(zones_and_rules, calibration)
        return RuleEngine.from_config(config, "cam", [recorder]), recorder  # type: ignore[arg-type]

    @staticmethod
    def frame(index: int, pts: float) -> Frame:
        """A blank frame of stream 'cam' (wall time = 1000 + pts)."""
        image = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
        return Frame("cam", index, pts, 1000.0 + pts, image)

    @staticmethod
    def kinds(events: Iterable[Event]) -> list[tuple[str, str]]:
        """(rule_id, type) of each event, in order."""
        return [(event.rule_id, event.type) for event in events]

    @staticmethod
    def run(
        engine: RuleEngine,
        timeline: Iterable[Sequence[Obj | Sequence[object]]],
        fps: float = 10.0,
        start: int = 0,
        hidden: Mapping[int, tuple[int, ...]] | None = None,
    ) -> list[Event]:
        """Feed one frame per entry of ``timeline`` (at ``fps``); returns all events.

        ``hidden`` maps frame indices to the track ids the tracker reports hidden on them
        (``HIDDEN_TRACK_IDS`` of the detections' metadata).
        """
        events: list[Event] = []
        for offset, objects in enumerate(timeline):
            index = start + offset
            detections = Kit.detections(objects)
            if hidden is not None:
                detections.metadata[HIDDEN_TRACK_IDS] = hidden.get(index, ())
            events += engine.evaluate(Kit.frame(index, index / fps), detections)
        return events


@pytest.fixture
def kit() -> type[Kit]:
    """The rule-test builders."""
    return Kit
