"""The running pipeline: sources -> batched segmentation -> per-stream analytics -> sinks.

Threads (DESIGN.md): one reader per source (inside the source), one inference worker, one
analytics thread per stream. Queues between them are bounded: a file run blocks (nothing is
dropped), a live source keeps only its newest frame (drops counted by the source), and a live
stream whose analytics fall behind loses its oldest waiting frame rather than holding up the
model and every other stream (drops counted, ``stage="analytics"``).

Lifecycle (STYLE.md): :meth:`Pipeline.start` runs the ordered ``start_*`` steps; one stop event
ends the run; :meth:`Pipeline.stop` joins in reverse order and closes every sink so files are
finalized.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import supervision as sv
import torch

from streamseg.config import PipelineConfig
from streamseg.config.pipeline import check_class_names, format_loc
from streamseg.models import Segmenter, load_segmenter
from streamseg.models.device import default_inference_workers
from streamseg.outputs.annotate import FrameAnnotator
from streamseg.outputs.base import Sink
from streamseg.outputs.events import EventLog
from streamseg.outputs.jsonl import JsonlWriter
from streamseg.outputs.mots import MotsWriter
from streamseg.outputs.mqtt import MqttPublisher, build_mqtt_publisher
from streamseg.outputs.video import AnnotatedVideoSink
from streamseg.record import Recorder, RecordingListeners, build_recorder, lossless_stream_ids
from streamseg.rules import build_rules_stage_factory
from streamseg.rules.events import EventListener
from streamseg.runtime.analytics import AnalyticsChain, FailureLog, StageFactory
from streamseg.runtime.batcher import FrameBatcher, Turnstile
from streamseg.runtime.health import OpsServer, Readiness
from streamseg.runtime.metrics import EventCounter, PipelineMetrics
from streamseg.runtime.shard import Shard
from streamseg.runtime.timing import StageSummary, StageTimings
from streamseg.sources import build_source
from streamseg.sources.base import Source, SourceStats
from streamseg.track.stage import model_for_tracking, tracker_stage_factory
from streamseg.types import Frame, SourceState

logger = logging.getLogger(__name__)


SOURCE_STOP_S = 5.0
"""How long :meth:`Pipeline.stop` waits for the sources' readers, all of them together (a
reader blocked in a hung camera's open is a daemon and ends when its timeout fires)."""

DOWN_STATES = frozenset(
    {SourceState.CONNECTING, SourceState.FAILED, SourceState.STALLED, SourceState.RECONNECTING}
)
"""States of a source that delivers no frames and has not ended (:meth:`Pipeline.readiness`);
a camera that has not answered yet is one of them."""

_Item = tuple[Frame, sv.Detections] | None
"""What a stream's analytics queue carries; ``None`` says the stream delivers no more frames."""


@dataclass
class StreamProgress:
    """Frames analysed so far for one stream (read by progress displays)."""

    frames: int = 0
    detections: int = 0
    last_pts_s: float | None = None


@dataclass(frozen=True)
class RunSummary:
    """What a finished run did."""

    wall_s: float
    frames: dict[str, int]
    detections: dict[str, int]
    sources: dict[str, SourceStats]
    timings: list[StageSummary]
    outputs: list[str] = field(default_factory=list)
    frames_dropped: dict[str, dict[str, int]] = field(default_factory=dict)
    """Frames dropped after the source, per stream, by stage (``analytics``, ``video``,
    ``record``; :data:`~streamseg.runtime.metrics.DROP_STAGES`), zeros left out."""
    started_wall: float | None = None
    """``time.time()`` when the run was built: an output older than this is an earlier run's."""

    @property
    def total_frames(self) -> int:
        """Frames analysed over every stream."""
        return sum(self.frames.values())

    @property
    def fps(self) -> float:
        """Frames analysed per wall-clock second, all streams together."""
        return self.total_frames / self.wall_s if self.wall_s > 0 else 0.0


class Pipeline:
    """Runs one pipeline file.

    Args:
        config: the validated pipeline.
        segmenter: a loaded model; ``None`` loads ``config.model`` in :meth:`start`.
        stage_factories: analytics stages, in order, each built once per stream.
        extra_sinks: sinks beside the ones the config asks for (tests, embedding programs).
        stream_queue_size: frames waiting between the inference worker and a stream's analytics
            (a live stream's oldest is dropped when it is full; a file's wait).
        shard: the shard this process runs (``streamseg run --shard i/n``; ``config`` is then
            the shard's copy); it gives the MQTT publisher its own availability topic.
    """

    def __init__(
        self,
        config: PipelineConfig,
        segmenter: Segmenter | None = None,
        stage_factories: Sequence[StageFactory] = (),
        extra_sinks: Sequence[Sink] = (),
        stream_queue_size: int = 8,
        shard: Shard | None = None,
    ) -> None:
        self.config = config
        self.shard = shard
        self.segmenter = segmenter
        self.stage_factories = list(stage_factories)
        self.sinks: list[Sink] = list(extra_sinks)
        self.stream_queue_size = stream_queue_size
        self.stop_event = threading.Event()
        self.timings = StageTimings()
        self.metrics = PipelineMetrics(sources=self.source_stats, drops=self.frame_drops)
        self.sources: list[Source] = []
        self.progress: dict[str, StreamProgress] = {s.id: StreamProgress() for s in config.sources}
        self.output_paths: list[str] = []
        self._queues: dict[str, queue.Queue[_Item]] = {}
        self._lossless = lossless_stream_ids(config)
        """Streams whose frames wait for the analytics (file sources) instead of dropping."""
        self._analytics_dropped = dict.fromkeys(self.progress, 0)
        self._failures = FailureLog(logger, self.metrics.count_failure)
        """Stages and sinks that raised on a frame: logged without flooding, counted."""
        self._threads: list[threading.Thread] = []
        self._inference_threads: list[threading.Thread] = []
        self._take_lock = threading.Lock()
        self._next_batch_number = 0
        self._turnstile = Turnstile()
        self._workers_running = 0
        self._started_at: float | None = None
        self._built_wall = time.time()
        self._analysed_at: float | None = None
        """When the last stream's analytics ended: the run's figures stop there, not after
        the flushing of outputs in :meth:`stop` (up to 5 s more waiting for the broker)."""
        self._finished = threading.Event()
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._streams_open = len(config.sources)
        self._streams_ended: set[str] = set()
        """Streams whose end the inference workers have handed on (:meth:`_end_stream`)."""
        self._video_sink: AnnotatedVideoSink | None = None
        self.publisher: MqttPublisher | None = None
        self.recorder: Recorder | None = None
        self._event_log: EventLog | None = None
        self._publisher_closed = False
        self.ops_server: OpsServer | None = None
        self._sources_started = False

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Start every part, in order; on failure stop what was started and re-raise."""
        steps: list[Callable[[], None]] = [
            self.start_model,
            self.start_outputs,
            self.start_metrics,
            self.start_analytics,
            self.start_sources,
            self.start_inference,
        ]
        try:
            for step in steps:
                if self.stop_event.is_set():
                    # Stopped while an earlier step ran (SIGTERM during the model load): start
                    # nothing more, least of all the cameras.
                    logger.info("stopped while starting: %s and later steps skipped", step.__name__)
                    break
                step()
        except BaseException:
            self.stop()
            raise

    def start_model(self) -> None:
        """Load the segmentation model unless one was given, and check the classes named.

        Raises:
            ValueError: a rule or ``model.classes`` names a class the model does not output
                (the same check ``load_pipeline`` makes with ``class_names_of``, here for
                models whose names only loading tells, such as a file without metadata).
        """
        if self.segmenter is None:
            # With a tracker, the weak detections it needs too (TrackerStage hides the rest).
            self.segmenter = load_segmenter(
                model_for_tracking(self.config.model, self.config.tracker)
            )
        info = self.segmenter.info
        unknown = check_class_names(self.config, info.class_names)
        if unknown:
            raise ValueError(
                "; ".join(f"{format_loc(failure.loc)}: {failure.message}" for failure in unknown)
            )
        logger.info(
            "model %s (%s) input %dx%d (WxH), %d classes on %s/%s, mask threshold %g",
            info.path,
            info.format,
            info.input_hw[1],
            info.input_hw[0],
            len(info.class_names),
            info.device,
            info.precision,
            self.segmenter.mask_threshold,
        )

    def start_outputs(self) -> None:
        """Open the outputs the config asks for.

        The MQTT publisher comes first: its outbox lock is what refuses a second copy of a
        running pipeline, and it must refuse before any file is opened (``open("w")`` of the
        first copy's detections file would empty it under the writer).
        """
        outputs = self.config.outputs
        self.publisher = build_mqtt_publisher(
            self.config, registry=self.metrics.registry, shard=self.shard
        )
        if outputs.jsonl is not None:
            writer = JsonlWriter(outputs.jsonl.path, masks=outputs.jsonl.masks)
            self.sinks.append(writer)
            self.output_paths.append(str(writer.path))
        if outputs.video is not None:
            video = outputs.video
            self._video_sink = AnnotatedVideoSink(
                video.path,
                FrameAnnotator(masks=video.masks, boxes=video.boxes, labels=video.labels),
                codec=video.codec,
                crf=video.crf,
                fps=video.fps,
                nominal_fps=self._nominal_fps,
                lossless_streams=self._lossless,
            )
            self.sinks.append(self._video_sink)
            self.output_paths.extend(
                str(self._video_sink.path_for(s.id)) for s in self.config.sources
            )
        if outputs.mots is not None:
            mots = MotsWriter(outputs.mots.dir)
            self.sinks.append(mots)
            self.output_paths.extend(str(mots.path_for(s.id)) for s in self.config.sources)
        if outputs.events is not None:
            self._event_log = EventLog(outputs.events.path)
            self.output_paths.append(str(self._event_log.path))
        # The recorder reports each snapshot to the publisher once the file exists (at the
        # start event's on_event the file cannot exist yet).
        self.recorder = build_recorder(
            self.config,
            nominal_fps=self._nominal_fps,
            on_snapshot=self.publisher.on_snapshot if self.publisher is not None else None,
        )
        if self.recorder is not None:
            self.sinks.append(self.recorder)
        if self.publisher is not None:
            self.publisher.start()

    def event_listeners(self) -> list[EventListener]:
        """Who hears the rules' events, in order: the recorder first (it adds its snapshot and
        clip paths to each event), then the event log and the MQTT publisher."""
        others: list[EventListener] = [
            listener for listener in (self._event_log, self.publisher) if listener is not None
        ]
        others.append(EventCounter(self.metrics))
        if self.recorder is not None:
            return [RecordingListeners(self.recorder, others)]
        return others

    def start_metrics(self) -> None:
        """Serve ``/metrics``, ``/healthz`` and ``/readyz`` when ``metrics.enabled``."""
        if self.config.metrics.enabled:
            cfg = self.config.metrics
            self.ops_server = self.metrics.serve(cfg.host, cfg.port, self.readiness)

    def readiness(self) -> Readiness:
        """What ``/readyz`` answers: ready once the model is loaded and the sources started, until
        :meth:`stop`, except while every source that has not ended is down.

        A source is down while it is ``connecting`` (no frame yet), ``failed``, ``stalled`` or
        ``reconnecting``. With some down
        and others delivering, the pipeline is still ready and the reason names the ones down
        (``"degraded: cam2 reconnecting"``); with all of them down it is not (``"no source
        delivering frames: cam1 failed, cam2 stalled"``), so an orchestrator sees a pipeline
        that analyses nothing.
        """
        if self.stop_event.is_set():
            return Readiness(False, "stopping")
        if self.segmenter is None:
            return Readiness(False, "model not loaded")
        if not self._sources_started:
            return Readiness(False, "sources not started")
        states = [(source.stream_id, source.state) for source in self.sources]
        down = [f"{stream} {state.value}" for stream, state in states if state in DOWN_STATES]
        if not down:
            return Readiness(True, "ok")
        live = [
            stream for stream, state in states if state not in DOWN_STATES and not state.terminal
        ]
        if live:
            return Readiness(True, "degraded: " + ", ".join(down))
        return Readiness(False, "no source delivering frames: " + ", ".join(down))

    def start_analytics(self) -> None:
        """One thread per stream runs its stages and sinks, in frame order.

        Each stream's chain runs, in order: its own tracker stage when ``config.tracker.enabled``
        (timed by ``frame.pts_s``), its rules stage when the pipeline has rules (events go to
        :meth:`event_listeners`), then the stages given to the constructor.
        """
        tracker_factory = tracker_stage_factory(self.config.tracker, self.config.model.confidence)
        rules_factory = build_rules_stage_factory(self.config, self.event_listeners())
        factories = [f for f in (tracker_factory, rules_factory) if f is not None]
        factories += self.stage_factories
        for source_cfg in self.config.sources:
            stream_id = source_cfg.id
            chain = AnalyticsChain(
                stream_id,
                [factory(stream_id) for factory in factories],
                record=self._record_stage,
                failures=self._failures,
            )
            q: queue.Queue[_Item] = queue.Queue(maxsize=self.stream_queue_size)
            self._queues[stream_id] = q
            thread = threading.Thread(
                target=self._analytics_loop,
                args=(stream_id, chain, q),
                name=f"analytics-{stream_id}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()

    def start_sources(self) -> None:
        """Build and start every source (a source that fails to open fails alone)."""
        for source_cfg in self.config.sources:
            source = build_source(source_cfg)
            source.add_state_listener(self._on_state_change)
            if self.publisher is not None:
                source.add_state_listener(self.publisher.on_source_state)
                # Its first state (connecting) is no transition: said here, it replaces the
                # retained status an earlier run left (streaming, after a kill -9).
                self.publisher.on_source_state(source.stream_id, source.state, source.state)
            self.metrics.set_state(source.stream_id, source.state)
            self.sources.append(source)
        self._started_at = time.monotonic()  # run time counts from the first read, not model load
        for source in self.sources:
            source.start()
        self._sources_started = True

    def start_inference(self) -> None:
        """Start the workers that batch frames through the model (``model.workers``)."""
        assert self.segmenter is not None
        model_cfg = self.config.model
        self._batcher = FrameBatcher(
            self.sources, model_cfg.batch_size, model_cfg.batch_timeout_ms / 1000.0, self.stop_event
        )
        workers = model_cfg.workers or default_inference_workers(
            torch.device(self.segmenter.info.device).type, torch.get_num_threads()
        )
        logger.info("%d inference worker(s), %d torch thread(s)", workers, torch.get_num_threads())
        self._workers_running = workers
        self._inference_threads = [
            threading.Thread(target=self._inference_loop, name=f"inference-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._inference_threads:
            thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every stream is done or the run is stopped; True when finished."""
        return self._finished.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop reading, finish the frames in flight, close every sink (idempotent)."""
        self.stop_event.set()
        for source in self.sources:  # all at once: one hung camera delays no other
            source.request_stop()
        # One join budget for all of them: N cameras hung in an open cost 5 s, not N x 5 s.
        deadline = time.monotonic() + SOURCE_STOP_S
        for source in self.sources:
            source.stop(timeout=max(0.05, deadline - time.monotonic()))
        for thread in self._inference_threads:
            thread.join(timeout)
        if not self._inference_threads:
            # start() failed before the inference workers, whose last one ends each stream's
            # analytics: end them here, or each would be joined for `timeout` and left blocked.
            for stream_id in self._queues:
                self._put(stream_id, None, force=True)
        for thread in self._threads:
            thread.join(timeout)
            if thread.is_alive():
                logger.error("thread %s did not stop within %.0f s", thread.name, timeout)
        with self._lock:
            sinks, self.sinks = self.sinks, []
            if self._analysed_at is None:
                self._analysed_at = time.monotonic()
        for sink in sinks:
            try:
                sink.close()
            except Exception:
                logger.exception("closing %s failed", type(sink).__name__)
        # Events are final once the analytics threads are done: flush them last.
        if self._event_log is not None:
            self._event_log.close()
        if self.publisher is not None and not self._publisher_closed:
            self._publisher_closed = True
            # Waits up to 5 s for the broker to acknowledge what is pending; what is not
            # acknowledged stays in the outbox and goes out on the next start.
            self.publisher.close(timeout=5.0)
        if self.ops_server is not None:
            self.ops_server.stop()  # last: /metrics stays up while outputs are flushed
        self._finished.set()

    def run(self) -> RunSummary:
        """Start, wait until done (or stopped), stop, and summarize."""
        self.start()
        try:
            while not self._finished.wait(0.2):
                if self.stop_event.is_set():
                    break
        finally:
            self.stop()
        if self._error is not None:
            raise self._error
        return self.summary()

    def summary(self) -> RunSummary:
        """Figures of the run so far (its wall time ends when the analytics did)."""
        with self._lock:
            ended = self._analysed_at if self._analysed_at is not None else time.monotonic()
        started = self._started_at if self._started_at is not None else ended
        dropped: dict[str, dict[str, int]] = {}
        for (stream_id, stage), count in self.frame_drops().items():
            if count:
                dropped.setdefault(stream_id, {})[stage] = count
        return RunSummary(
            wall_s=max(0.0, ended - started),
            frames={k: v.frames for k, v in self.progress.items()},
            detections={k: v.detections for k, v in self.progress.items()},
            sources=self.source_stats(),
            timings=self.timings.summary(),
            outputs=list(self.output_paths),
            frames_dropped=dropped,
            started_wall=self._built_wall,
        )

    # ----------------------------------------------------------------- workers
    def _inference_loop(self) -> None:
        """One inference worker: take the next batch, segment it, hand it on in batch order.

        Batches are numbered as they are taken; the segmenter holds no per-call state, so
        workers run their forwards at once, and the :class:`Turnstile` makes them hand results
        to the streams in number order. The last worker to finish closes the streams' queues.
        """
        assert self.segmenter is not None
        try:
            while True:
                with self._take_lock:
                    batch = self._batcher.next_batch()
                    if batch is None:
                        break
                    number = self._next_batch_number
                    self._next_batch_number += 1
                frames = batch.frames
                results: list[sv.Detections] | None = [] if not frames else None
                try:
                    if frames:
                        start = time.perf_counter()
                        results = self.segmenter.segment([f.image for f in frames])
                        elapsed = time.perf_counter() - start
                        self.timings.record("inference", elapsed)
                        self.metrics.inference_latency.observe(elapsed)
                        self.metrics.batch_size.observe(len(frames))
                finally:
                    # Even a failed batch takes its turn, or the workers behind it would wait
                    # for ever.
                    self._turnstile.wait(number)
                    try:
                        if results is not None:
                            for frame, detections in zip(frames, results, strict=True):
                                self._put(frame.stream_id, (frame, detections))
                            # A stream whose source ended gets its end after its last frame
                            # (in this batch or an earlier one, handed on before): its open
                            # events end and its files are finished now, not at shutdown.
                            for stream_id in batch.ended:
                                self._end_stream(stream_id)
                    finally:
                        self._turnstile.done(number)
        except BaseException as exc:
            logger.exception("inference worker failed")
            self._error = exc
            self.stop_event.set()
        finally:
            with self._lock:
                self._workers_running -= 1
                last = self._workers_running == 0
            if last:
                for stream_id in self._queues:
                    self._end_stream(stream_id)

    def _end_stream(self, stream_id: str) -> None:
        """Hand a stream's analytics its end, once."""
        with self._lock:
            if stream_id in self._streams_ended:
                return
            self._streams_ended.add(stream_id)
        self._put(stream_id, None, force=True)

    def _put(self, stream_id: str, item: _Item, force: bool = False) -> None:
        """Hand an item to a stream's analytics.

        A file stream's frame, and the end of any stream, wait while the queue is full (nothing
        is dropped; ``force`` waits on even after the stop). A live stream's frame never waits:
        :meth:`_put_newest`.
        """
        q = self._queues[stream_id]
        if item is not None and stream_id not in self._lossless:
            self._put_newest(stream_id, q, item)
            return
        while True:
            try:
                q.put(item, timeout=0.2)
                return
            except queue.Full:
                if self.stop_event.is_set() and not force:
                    return

    def _put_newest(self, stream_id: str, q: queue.Queue[_Item], item: _Item) -> None:
        """Queue a live stream's frame without waiting: when its analytics have fallen
        ``stream_queue_size`` frames behind, the oldest waiting frame is dropped and counted.

        Waiting here would hold up the model, and through it every other stream, for one slow
        sink or stage (DESIGN.md: no stage blocks another without bound). A live stream's
        analytics are timed by pts, so a gap reads as frames the source dropped.
        """
        while True:
            try:
                q.put_nowait(item)
                return
            except queue.Full:
                pass
            try:
                oldest = q.get_nowait()
            except queue.Empty:
                continue
            if oldest is None:  # the stream is ending: its end goes back, this frame is late
                with contextlib.suppress(queue.Full):  # full: stop() has put an end of its own
                    q.put_nowait(None)
                return
            with self._lock:
                self._analytics_dropped[stream_id] += 1
                dropped = self._analytics_dropped[stream_id]
            if dropped & (dropped - 1) == 0:  # 1, 2, 4, 8, ...: loud, never a flood
                logger.warning(
                    "%s: analytics %d frames behind the model; dropped %d frame(s) so far "
                    "(stage timings show which stage or sink is slow)",
                    stream_id,
                    q.maxsize,
                    dropped,
                )

    def _analytics_loop(self, stream_id: str, chain: AnalyticsChain, q: queue.Queue[_Item]) -> None:
        progress = self.progress[stream_id]
        processed = self.metrics.frames_processed.labels(stream=stream_id)
        detected = self.metrics.detections.labels(stream=stream_id)
        while True:
            item = q.get()
            if item is None:
                break
            frame, detections = item
            try:
                self._analyse(chain, frame, detections)
            except Exception:
                # One broken frame must not end the stream's analytics; it is logged loudly.
                logger.exception("analytics failed on %s frame %d", stream_id, frame.index)
            progress.frames += 1
            progress.detections += len(detections)
            progress.last_pts_s = frame.pts_s
            processed.inc()
            detected.inc(len(detections))
        chain.close()
        with self._lock:
            sinks = list(self.sinks)
        for sink in sinks:
            try:
                sink.close_stream(stream_id)
            except Exception:
                logger.exception("closing %s for %s failed", type(sink).__name__, stream_id)
        self._on_stream_done()

    def _analyse(self, chain: AnalyticsChain, frame: Frame, detections: sv.Detections) -> None:
        """The stream's stages, then every sink; a failing sink does not keep the frame from
        the sinks after it (it goes to :attr:`_failures`)."""
        detections = chain.process(frame, detections)
        with self._lock:
            sinks = list(self.sinks)
        for sink in sinks:
            step = f"sink.{type(sink).__name__}"
            start = time.perf_counter()
            try:
                sink.write(frame, detections)
            except Exception:
                self._failures.failed(step, frame)
                continue
            self._record_stage(step, time.perf_counter() - start)

    def _on_stream_done(self) -> None:
        with self._lock:
            self._streams_open -= 1
            done = self._streams_open == 0
            if done:
                self._analysed_at = time.monotonic()
        if done:
            self._finished.set()

    def source_stats(self) -> dict[str, SourceStats]:
        """Each started source's stats (``/metrics`` reads them at every scrape)."""
        return {source.stream_id: source.stats() for source in list(self.sources)}

    def frame_drops(self) -> dict[tuple[str, str], int]:
        """Frames dropped after the sources by ``(stream, stage)``; every stream's
        ``analytics`` count is there from the start, zeros included."""
        with self._lock:
            drops = {(sid, "analytics"): n for sid, n in self._analytics_dropped.items()}
        for stage, sink in (("video", self._video_sink), ("record", self.recorder)):
            if sink is not None:
                drops.update(((sid, stage), n) for sid, n in sink.frames_dropped.items())
        return drops

    def _nominal_fps(self, stream_id: str) -> float | None:
        for source in self.sources:
            if source.stream_id == stream_id:
                return source.stats().nominal_fps
        return None

    def _record_stage(self, stage: str, seconds: float) -> None:
        self.timings.record(stage, seconds)
        self.metrics.stage_latency.labels(stage=stage).observe(seconds)

    def _on_state_change(self, stream_id: str, old: SourceState, new: SourceState) -> None:
        self.metrics.set_state(stream_id, new)
