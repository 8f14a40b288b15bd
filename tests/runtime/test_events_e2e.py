"""End to end: ``streamseg run`` on a yard video -> built-in model -> tracker -> rules -> events.

The example pipeline ``pipelines/machinery_zone.yaml`` (zones, a calibration, inside and near
rules) runs on the synthetic yard scene its comments name, through the real model forward, the
mask tracker and the rule engine; events go to a JSONL log, to a real mosquitto broker through the
durable outbox, and to the recorder (snapshots and clips). Nothing is mocked.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import jsonschema
import paho.mqtt.client as paho
from helpers.machinery import PREFIX, machinery_pipeline, yard_video
from helpers.mosquitto import Mosquitto, Subscriber, free_port

from streamseg.cli import main
from streamseg.config import load_pipeline_text
from streamseg.rules import event_schema
from streamseg.runtime.pipeline import Pipeline


def test_run_raises_events_that_reach_the_log_the_broker_and_the_recorder(
    tmp_path: Path, mosquitto: Callable[..., Mosquitto]
) -> None:
    video = yard_video(tmp_path, 90)
    broker = mosquitto()
    subscriber = Subscriber(broker.port, f"{PREFIX}/#")
    try:
        assert (
            main(
                [
                    "run",
                    str(
                        machinery_pipeline(
                            tmp_path,
                            video,
                            broker.port,
                            record={
                                "snapshots": {"dir": str(tmp_path / "snapshots")},
                                "clips": {
                                    "dir": str(tmp_path / "clips"),
                                    "pre_s": 1.0,
                                    "post_s": 0.5,
                                },
                            },
                        )
                    ),
                ]
            )
            == 0
        )

        lines = (tmp_path / "events.jsonl").read_text().splitlines()
        logged = [json.loads(line) for line in lines]
        assert logged, "the yard scene raised no event end to end"
        validator = jsonschema.Draft202012Validator(
            event_schema(), format_checker=jsonschema.FormatChecker()
        )
        for payload in logged:
            validator.validate(payload)
        rules = {p["rule_id"] for p in logged}
        assert "worker-in-swing-near" in rules

        # Every occurrence has a lifecycle that ends (the stream's end closes open ones).
        by_id: dict[str, list[str]] = {}
        for p in logged:
            by_id.setdefault(p["event_id"], []).append(p["type"])
        assert all(types[0] == "start" and types[-1] == "end" for types in by_id.values())

        # The broker got exactly the logged messages (the outbox was flushed at close).
        key = lambda p: (p["event_id"], p["type"], p["seq"])  # noqa: E731
        subscriber.wait_for(lambda s: len(s.on(f"{PREFIX}/events")) >= len(logged), timeout=10)
        published = [json.loads(m) for m in subscriber.on(f"{PREFIX}/events")]
        assert {key(p) for p in published} == {key(p) for p in logged}

        # Retained state: the rules that fired were ON, all are OFF once the stream ended.
        state = subscriber.on(f"{PREFIX}/yard/worker-in-swing-near/state")
        assert b"ON" in state and state[-1] == b"OFF"
        assert subscriber.on(f"{PREFIX}/yard/status")[-1] == b"ended"
        assert subscriber.on(f"{PREFIX}/available")[-1] == b"offline"

        # The recorder's paths are in the payload and the files exist and decode.
        snapshots = {p["snapshot"] for p in logged if p["snapshot"]}
        assert snapshots, "no event carries a snapshot path"
        for path in snapshots:
            image: Any = cv2.imread(path)
            assert image is not None and image.shape == (360, 640, 3), path
        clips = {p["clip"] for p in logged if p["type"] == "end" and p["clip"]}
        assert clips and all(Path(c).is_file() and Path(c).stat().st_size > 0 for c in clips)
    finally:
        subscriber.close()


def test_a_restart_with_the_camera_down_replaces_what_a_crashed_run_left_retained(
    tmp_path: Path, mosquitto: Callable[..., Mosquitto]
) -> None:
    """Regression: a run killed while a rule was ON left ``ON``, a count and ``streaming``
    retained; the next run published states and counts only on its stream's first frame, so
    with the camera down the broker (and Home Assistant) showed the old alert as current."""
    broker = mosquitto()
    prefix = "streamseg/gate"
    earlier = {
        f"{prefix}/cam/in-pen/state": b"ON",
        f"{prefix}/cam/pen/person/count": b"3",
        f"{prefix}/cam/status": b"streaming",
    }
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="crashed-run")
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    for topic, payload in earlier.items():
        client.publish(topic, payload, qos=1, retain=True).wait_for_publish(timeout=5)
    client.disconnect()
    client.loop_stop()
    config = load_pipeline_text(
        f"""name: gate
sources:
  - {{id: cam, type: rtsp, url: 'rtsp://127.0.0.1:{free_port()}/live', open_timeout_s: 1}}
model: {{weights: builtin, device: cpu}}
zones:
  - {{id: pen, type: polygon, points: [[0, 0], [100, 0], [100, 100], [0, 100]]}}
rules:
  - {{id: in-pen, type: inside, zone: pen, classes: [person]}}
outputs:
  mqtt: {{host: 127.0.0.1, port: {broker.port}, outbox: {{path: '{tmp_path / "outbox"}'}}}}
"""
    )
    pipeline = Pipeline(config)
    subscriber = Subscriber(broker.port, f"{prefix}/cam/#")
    runner = threading.Thread(target=pipeline.run, daemon=True)
    runner.start()
    try:
        subscriber.wait_for(
            lambda s: (
                s.on(f"{prefix}/cam/in-pen/state")[-1:] == [b"OFF"]
                and s.on(f"{prefix}/cam/pen/person/count")[-1:] == [b"0"]
                and b"reconnecting" in s.on(f"{prefix}/cam/status")
            ),
            timeout=30,
        )
        assert pipeline.source_stats()["cam"].frames_decoded == 0  # no frame ever came
        assert subscriber.on(f"{prefix}/cam/in-pen/state") == [b"ON", b"OFF"]
        # The earlier run's "streaming", then this run's states: connecting, or already
        # reconnecting when the camera refused before the broker connection came up (the
        # publisher sends each retained topic's latest value on connect).
        status = subscriber.on(f"{prefix}/cam/status")
        assert status[0] == b"streaming" and status[1] in (b"connecting", b"reconnecting")
    finally:
        pipeline.stop_event.set()
        runner.join(timeout=30)
        subscriber.close()
    assert not runner.is_alive()
    # Stopped with the run, the camera is left retained as "stopped", not "ended" (which a
    # file that has run out says): nothing says its stream ended.
    retained = Subscriber(broker.port, f"{prefix}/cam/status")
    try:
        retained.wait_for(lambda s: s.on(f"{prefix}/cam/status") == [b"stopped"], timeout=10)
    finally:
        retained.close()
