"""The loader: every bad variant points at the right line with a useful message."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from streamseg.config import (
    MISSING,
    ConfigError,
    ConfigIssue,
    FileSourceConfig,
    PipelineConfig,
    RtspSourceConfig,
    TrackerConfig,
    UsbSourceConfig,
    load_pipeline,
    load_pipeline_text,
)

GOOD = """\
name: yard-north
sources:
  - id: gate
    type: file
    path: videos/gate.mp4
"""


def _issues(text: str, env: dict[str, str] | None = None) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as info:
        load_pipeline_text(textwrap.dedent(text), filename="p.yaml", env=env or {})
    error = info.value
    # str(error) is one line per issue, each starting with the file name.
    lines = str(error).splitlines()
    assert len(lines) == len(error.issues)
    assert all(line.startswith("p.yaml") for line in lines)
    return error.issues


# (id, yaml, line of the issue, key path, substring of the message)
BAD: list[tuple[str, str, int | None, str, str]] = [
    (
        "unknown key at top level",
        GOOD + "tracking: {}\n",
        6,
        "tracking",
        "unknown key 'tracking'",
    ),
    (
        "unknown key nested, with suggestion",
        """\
        sources:
          - id: gate
            type: file
            pth: videos/gate.mp4
            path: videos/gate.mp4
        """,
        4,
        "sources[0].pth",
        "did you mean 'path'?",
    ),
    (
        "unknown key under outputs.video lists the valid keys",
        GOOD + "outputs:\n  video:\n    codex: h264\n",
        8,
        "outputs.video.codex",
        "expected one of: path, codec, crf",
    ),
    (
        "wrong type",
        GOOD + "model:\n  batch_size: two\n",
        7,
        "model.batch_size",
        "got 'two', expected an integer",
    ),
    (
        "wrong type: mapping where a list belongs",
        "sources:\n  id: gate\n",
        2,
        "sources",
        "expected a list",
    ),
    (
        "bad enum (the example from the spec)",
        """\
        sources:
          - id: gate
            type: file
            path: a.mp4
          - id: crane
            type: rtsp
            url: rtsp://10.0.0.5/stream1
            transport: tcpp
        """,
        8,
        "sources[1].transport",
        "got 'tcpp', expected one of 'tcp', 'udp'",
    ),
    (
        "out-of-bounds number (upper)",
        GOOD + "model:\n  iou: 1.5\n",
        7,
        "model.iou",
        "got 1.5, expected a number <= 1",
    ),
    (
        "out-of-bounds number (strict upper: nothing scores above 1)",
        GOOD + "model:\n  confidence: 1.0\n",
        7,
        "model.confidence",
        "got 1.0, expected a number < 1",
    ),
    (
        "out-of-bounds number (gt=0)",
        GOOD + "    fps: 0\n",
        6,
        "sources[0].fps",
        "got 0, expected a number > 0",
    ),
    (
        "out-of-bounds port",
        GOOD + "metrics:\n  port: 70000\n",
        7,
        "metrics.port",
        "expected a number <= 65535",
    ),
    (
        "boolean where a number belongs",
        GOOD + "    queue_size: true\n",
        6,
        "sources[0].queue_size",
        "got true, expected a number, not true/false",
    ),
    (
        "infinite number",
        GOOD + "    fps: .inf\n",
        6,
        "sources[0].fps",
        "expected a finite number",
    ),
    (
        "reconnect max below initial",
        """\
        sources:
          - id: crane
            type: rtsp
            url: rtsp://10.0.0.5/s
            reconnect:
              initial_delay_s: 5
              max_delay_s: 1
        """,
        7,
        "sources[0].reconnect.max_delay_s",
        "expected max_delay_s >= initial_delay_s",
    ),
    (
        "missing required key points at the mapping that lacks it",
        """\
        name: x
        sources:
          - id: gate
            type: file
        """,
        3,
        "sources[0].path",
        "missing required key 'path'",
    ),
    (
        "missing sources",
        "name: x\nmodel:\n  device: cpu\n",
        1,
        "sources",
        "missing required key 'sources'",
    ),
    (
        "empty sources",
        "sources: []\n",
        1,
        "sources",
        "expected at least 1 entry",
    ),
    (
        "bad discriminator type",
        """\
        sources:
          - id: cam
            type: webcam
        """,
        3,
        "sources[0].type",
        "got 'webcam', expected one of 'file', 'rtsp', 'usb'",
    ),
    (
        "missing discriminator",
        """\
        sources:
          - id: cam
            path: a.mp4
        """,
        2,
        "sources[0].type",
        "missing required key 'type'",
    ),
    (
        "rtsp url scheme",
        """\
        sources:
          - id: cam
            type: rtsp
            url: http://10.0.0.5/stream
        """,
        4,
        "sources[0].url",
        "expected a URL that starts with rtsp:// or rtsps://",
    ),
    (
        "bad id",
        """\
        sources:
          - id: gate north
            type: file
            path: a.mp4
        """,
        2,
        "sources[0].id",
        "expected only letters, digits, '_' and '-'",
    ),
    (
        "bad device spelling",
        GOOD + "model:\n  device: gpu\n",
        7,
        "model.device",
        "got 'gpu', expected one of 'auto', 'cpu', 'cuda', 'cuda:<index>'",
    ),
    (
        "usb device negative",
        """\
        sources:
          - id: desk
            type: usb
            device: -1
        """,
        4,
        "sources[0].device",
        "index >= 0",
    ),
    (
        "model format cannot be inferred",
        GOOD + "model:\n  weights: models/net.bin\n",
        7,
        "model.format",
        "cannot infer the format of weights 'models/net.bin'",
    ),
    (
        "classes not among class_names",
        GOOD + "model:\n  class_names: [cow, sheep]\n  classes: [cow, horse]\n",
        8,
        "model.classes",
        "not among them: horse",
    ),
    (
        "duplicate source id names the duplicate",
        """\
        sources:
          - id: gate
            type: file
            path: a.mp4
          - id: crane
            type: file
            path: b.mp4
          - id: gate
            type: file
            path: c.mp4
        """,
        8,
        "sources[2].id",
        "duplicate source id 'gate', already used by sources[0]",
    ),
    (
        "duplicate YAML key",
        GOOD + "    path: videos/other.mp4\n",
        6,
        "sources[0].path",
        "duplicate key 'path', already set at line 5",
    ),
    (
        "duplicate top-level section",
        GOOD + "metrics: {}\nmetrics:\n  enabled: true\n",
        7,
        "metrics",
        "duplicate key 'metrics', already set at line 6",
    ),
    (
        "tab indentation",
        "sources:\n\t- id: gate\n",
        2,
        "",
        "YAML syntax error: found character '\\t' that cannot start any token",
    ),
    (
        "tab indentation is named as such",
        "sources:\n\t- id: gate\n",
        2,
        "",
        "(indent with spaces, not tabs)",
    ),
    (
        "a tab before a comment is not called indentation",
        GOOD + "model:\n  weights: builtin\t# the model\n",
        7,
        "",
        "(a tab after a value, such as before a comment: use spaces there)",
    ),
    (
        "a key in the wrong section names where it belongs",
        GOOD + "tracker:\n  type: mask\n  confidence: 0.3\n",
        8,
        "tracker.confidence",
        "unknown key 'confidence' (it belongs elsewhere: model.confidence);",
    ),
    (
        "a key of several sections names them, and a close key too",
        GOOD + "model:\n  low_threshold: 0.1\n  host: x\n",
        7,
        "model.low_threshold",
        "(it belongs elsewhere: tracker.low_threshold; or did you mean 'mask_threshold'?)",
    ),
    (
        "a key of several sections names each",
        GOOD + "model:\n  host: x\n",
        7,
        "model.host",
        "(it belongs elsewhere: outputs.mqtt.host or metrics.host)",
    ),
    (
        "a flat list of zone coordinates is one error that pairs them",
        GOOD + "zones:\n  - {id: z, type: polygon, points: [0.1, 0.2, 0.5, 0.2, 0.5, 0.6]}\n",
        7,
        "zones[0].points",
        "a flat list of 6 numbers; expected [x, y] pairs: [[0.1, 0.2], [0.5, 0.2], [0.5, 0.6]]",
    ),
    (
        "a flat list of calibration points with an odd count says so",
        GOOD + "    calibration: {image_points: [1, 2, 3, 4, 5], ground_points: [[0, 0], [1, "
        "0], [1, 1], [0, 1]]}\n",
        6,
        "sources[0].calibration.image_points",
        "a flat list of 5 numbers (an odd count: a coordinate is missing); expected [x, y] "
        "pairs: [[1, 2], [3, 4]]",
    ),
    (
        "bad indentation",
        "sources:\n  - id: gate\n    type: file\n   path: a.mp4\n",
        4,
        "",
        "YAML syntax error: expected <block end>",
    ),
    (
        "unclosed quote",
        "name: 'yard\nsources: []\n",
        3,
        "",
        "while scanning a quoted scalar started at line 1",
    ),
    (
        "two documents",
        GOOD + "---\nname: other\n",
        6,
        "",
        "expected one document per file",
    ),
    (
        "unknown YAML tag",
        GOOD + "model:\n  weights: !secret w\n",
        7,
        "",
        "could not determine a constructor for the tag '!secret'",
    ),
    (
        "missing env var",
        """\
        sources:
          - id: crane
            type: rtsp
            url: rtsp://admin:${CAM_PASS}@10.0.0.5/stream1
        """,
        4,
        "sources[0].url",
        "environment variable CAM_PASS is not set",
    ),
    (
        "a shell default, which would reach the camera as its password",
        """\
        sources:
          - id: crane
            type: rtsp
            url: rtsp://admin:${CAM_PASS:-changeme}@10.0.0.5/stream1
        """,
        4,
        "sources[0].url",
        "'${CAM_PASS:-changeme}': only ${NAME} is substituted (no defaults or other shell forms)",
    ),
    (
        "{stream} template missing with 2 sources",
        """\
        sources:
          - {id: gate, type: file, path: a.mp4}
          - {id: crane, type: file, path: b.mp4}
        outputs:
          video:
            path: out/annotated.mp4
        """,
        6,
        "outputs.video.path",
        "expected a path containing {stream}: the 2 sources (gate, crane)",
    ),
    (
        "unknown placeholder in the video path",
        GOOD + "outputs:\n  video:\n    path: out/{camera}.mp4\n",
        8,
        "outputs.video.path",
        "found {camera}",
    ),
    (
        "unknown tracker key lists the tracker options",
        GOOD + "tracker:\n  max_age: 30\n",
        7,
        "tracker.max_age",
        "unknown key 'max_age'; expected one of: enabled, type,",
    ),
    (
        "tracker thresholds out of order",
        GOOD + "tracker:\n  high_threshold: 0.3\n  low_threshold: 0.4\n",
        7,
        "tracker",
        "low_threshold (0.4) must not exceed high_threshold (0.3)",
    ),
    (
        "tracker type outside the choices",
        GOOD + "tracker:\n  type: iou\n",
        7,
        "tracker.type",
        "got 'iou', expected one of 'mask', 'box'",
    ),
    (
        "a zone without a type names the types",
        GOOD + "zones:\n  - id: swing\n    points: [[0, 0], [1, 0], [1, 1]]\n",
        7,
        "zones[0].type",
        "missing required key 'type': expected one of 'polygon', 'line'",
    ),
    (
        "a rule without a type names the kinds",
        GOOD + "rules:\n  - id: intrusion\n",
        7,
        "rules[0].type",
        "missing required key 'type': expected one of 'inside', 'enter', 'exit'",
    ),
    (
        "empty file",
        "",
        None,
        "",
        "the file is empty",
    ),
    (
        "comments only",
        "# nothing here yet\n",
        None,
        "",
        "the file is empty",
    ),
    (
        "top-level list",
        "- id: gate\n  type: file\n",
        1,
        "",
        "got a list at the top level, expected a mapping",
    ),
    (
        "top-level scalar",
        "streamseg\n",
        1,
        "",
        "got a single value at the top level",
    ),
    (
        "unprintable character",
        "name: a\x07b\nsources: []\n",
        1,
        "",
        "unacceptable character #x0007",
    ),
]


@pytest.mark.parametrize(
    ("text", "line", "key_path", "message"),
    [pytest.param(text, line, key, msg, id=name) for name, text, line, key, msg in BAD],
)
def test_bad_variant_points_at_line(
    text: str, line: int | None, key_path: str, message: str
) -> None:
    issues = _issues(text)
    matching = [issue for issue in issues if message in issue.message]
    assert matching, f"no issue contains {message!r}; got:\n" + "\n".join(map(str, issues))
    issue = matching[0]
    assert issue.file == "p.yaml"
    assert issue.line == line, str(issue)
    assert issue.key_path == key_path, str(issue)
    if line is not None:
        assert issue.column is not None and issue.column >= 1
    assert "\n" not in issue.message


def test_str_matches_spec_format() -> None:
    """One line per issue: ``file:line:column: key.path: message``."""
    text = "sources:\n  - id: crane\n    type: rtsp\n    url: rtsp://h/s\n    transport: tcpp\n"
    with pytest.raises(ConfigError) as info:
        load_pipeline_text(text, filename="pipelines/yard.yaml", env={})
    assert str(info.value) == (
        "pipelines/yard.yaml:5:16: sources[0].transport: got 'tcpp', expected one of 'tcp', 'udp'"
    )
    issue = info.value.issues[0]
    assert issue.value == "tcpp"
    assert issue.column == 16


def test_all_errors_are_collected_in_file_order() -> None:
    text = """\
    name: bad name
    sources:
      - id: gate
        type: file
        path: a.mp4
        queue_size: 0
      - id: crane
        type: rtsp
        url: rtsp://h/s
        transport: tcpp
    model:
      confidence: 2
    metrics:
      port: 0
    """
    issues = _issues(text)
    assert [(i.line, i.key_path) for i in issues] == [
        (1, "name"),
        (6, "sources[0].queue_size"),
        (10, "sources[1].transport"),
        (12, "model.confidence"),
        (14, "metrics.port"),
    ]


def test_missing_key_value_is_missing_sentinel() -> None:
    issues = _issues("sources:\n  - id: gate\n    type: file\n")
    assert issues[0].value is MISSING


def test_syntax_error_alone_and_file_level_issue_has_no_line() -> None:
    issues = _issues("")
    assert issues[0].line is None and issues[0].column is None
    assert (
        str(issues[0])
        == "p.yaml: the file is empty, expected a mapping with at least a 'sources' list"
    )


def test_several_missing_env_vars_and_same_path_validation_error_suppressed() -> None:
    """A scalar holding an unset ${VAR} gets the missing-variable issue only, not also 'got
    '${PORT}', expected an integer'."""
    text = GOOD + "metrics:\n  host: ${HOST}\n  port: ${PORT}\n"
    issues = _issues(text)
    assert [(i.line, i.key_path) for i in issues] == [(7, "metrics.host"), (8, "metrics.port")]
    assert "HOST" in issues[0].message and "PORT" in issues[1].message
    assert issues[1].value == "${PORT}"


def test_substituted_secret_never_reaches_errors() -> None:
    secret = "hunter2-very-secret"
    text = """\
    sources:
      - id: crane
        type: rtsp
        url: http://admin:${CAM_PASS}@10.0.0.5/stream1
    """
    with pytest.raises(ConfigError) as info:
        load_pipeline_text(textwrap.dedent(text), env={"CAM_PASS": secret})
    error = info.value
    rendered = str(error) + repr(error.issues)
    assert secret not in rendered
    assert "${CAM_PASS}" in rendered
    assert error.issues[0].key_path == "sources[0].url"
    assert error.issues[0].line == 4


def test_env_substitution_and_escape() -> None:
    text = """\
    name: ${SITE}-north
    sources:
      - id: crane
        type: rtsp
        url: rtsp://admin:${CAM_PASS}@10.0.0.5/stream1?tag=$${NOT_A_VAR}
    metrics:
      enabled: ${METRICS_ON}
      port: ${METRICS_PORT}
    """
    env = {"SITE": "yard", "CAM_PASS": "p@ss:w$rd", "METRICS_ON": "true", "METRICS_PORT": "9200"}
    config = load_pipeline_text(textwrap.dedent(text), env=env)
    assert config.name == "yard-north"
    source = config.sources[0]
    assert isinstance(source, RtspSourceConfig)
    # The "@" of the password is percent-encoded (FFmpeg decodes it), the rest as given.
    assert source.url == "rtsp://admin:p%40ss:w$rd@10.0.0.5/stream1?tag=${NOT_A_VAR}"
    assert "p@ss" not in source.redacted_url and source.redacted_url.startswith("rtsp://admin:***@")
    assert config.metrics.enabled is True
    assert config.metrics.port == 9200


def test_env_value_is_not_substituted_twice_through_aliases() -> None:
    """An alias shares its node: the value ${A} -> '${B}' must not be expanded again."""
    text = """\
    sources:
      - id: a
        type: file
        path: &p ${A}
      - id: b
        type: file
        path: *p
    outputs:
      jsonl:
        path: ${A}
    """
    config = load_pipeline_text(textwrap.dedent(text), env={"A": "${B}", "B": "nope"})
    paths = [s.path for s in config.sources if isinstance(s, FileSourceConfig)]
    assert paths == ["${B}", "${B}"]
    assert config.outputs.jsonl is not None and config.outputs.jsonl.path == "${B}"


def test_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMSEG_TEST_VIDEO", "videos/from-env.mp4")
    config = load_pipeline_text(
        "sources:\n  - {id: a, type: file, path: '${STREAMSEG_TEST_VIDEO}'}\n"
    )
    source = config.sources[0]
    assert isinstance(source, FileSourceConfig) and source.path == "videos/from-env.mp4"


def test_defaults() -> None:
    config = load_pipeline_text("sources:\n  - {id: gate, type: file, path: a.mp4}\n", env={})
    assert config.name == "streamseg"
    source = config.sources[0]
    assert isinstance(source, FileSourceConfig)
    assert (source.realtime, source.queue_size, source.fps) == (False, 8, None)
    model = config.model
    assert (model.weights, model.format, model.device, model.precision) == (
        "builtin",
        "auto",
        "auto",
        "auto",
    )
    assert model.resolved_format == "torchscript"
    assert (model.confidence, model.iou, model.max_detections) == (0.25, 0.45, 100)
    assert (model.classes, model.class_names, model.threads) == (None, None, None)
    assert (model.batch_size, model.batch_timeout_ms) == (4, 5.0)
    assert config.tracker == TrackerConfig() and config.tracker.enabled
    assert config.zones == [] and config.rules == []
    assert config.outputs.jsonl is None and config.outputs.video is None
    assert (config.metrics.enabled, config.metrics.host, config.metrics.port) == (
        False,
        "127.0.0.1",
        9108,
    )


def test_rtsp_and_usb_defaults_and_empty_sections() -> None:
    text = """\
    sources:
      - id: crane
        type: rtsp
        url: rtsps://10.0.0.5/s
        reconnect:
      - id: desk
        type: usb
        device: 2
    model:
    outputs:
      video: {}
    zones:
    tracker: {}
    """
    config = load_pipeline_text(textwrap.dedent(text), env={})
    rtsp, usb = config.sources
    assert isinstance(rtsp, RtspSourceConfig) and isinstance(usb, UsbSourceConfig)
    assert (rtsp.transport, rtsp.open_timeout_s, rtsp.read_timeout_s, rtsp.stall_timeout_s) == (
        "tcp",
        5.0,
        5.0,
        5.0,
    )
    assert (rtsp.reconnect.initial_delay_s, rtsp.reconnect.max_delay_s) == (0.5, 30.0)
    assert rtsp.reconnect.max_attempts is None
    assert usb.device == 2 and usb.device_path == "/dev/video2"
    assert usb.stall_timeout_s == 5.0 and usb.reconnect.max_delay_s == 30.0
    assert config.model.batch_size == 4
    video = config.outputs.video
    assert video is not None
    assert (video.path, video.codec, video.crf, video.fps) == ("out/{stream}.mp4", "auto", 23, None)
    assert video.path_for("desk") == "out/desk.mp4"
    assert config.zones == [] and config.tracker is not None


def test_merge_keys_work_and_errors_inside_point_at_the_anchor() -> None:
    text = """\
    sources:
      - &cam
        id: a
        type: rtsp
        url: rtsp://10.0.0.5/a
        stall_timeout_s: 2
      - <<: *cam
        id: b
        url: rtsp://10.0.0.5/b
    """
    config = load_pipeline_text(textwrap.dedent(text), env={})
    b = config.sources[1]
    assert isinstance(b, RtspSourceConfig)
    assert (b.id, b.url, b.stall_timeout_s) == ("b", "rtsp://10.0.0.5/b", 2.0)
    bad = textwrap.dedent(text).replace("stall_timeout_s: 2", "stall_timeout_s: -2")
    with pytest.raises(ConfigError) as info:
        load_pipeline_text(bad, env={})
    assert {(i.line, i.key_path) for i in info.value.issues} == {
        (6, "sources[0].stall_timeout_s"),
        (6, "sources[1].stall_timeout_s"),
    }


def test_numbers_are_accepted_as_ids_and_names() -> None:
    config = load_pipeline_text("name: 2024\nsources:\n  - {id: 7, type: file, path: a}\n", env={})
    assert config.name == "2024" and config.sources[0].id == "7"


def test_load_pipeline_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("\ufeff" + GOOD, encoding="utf-8")  # a BOM from a Windows editor
    config = load_pipeline(path, env={})
    assert config.name == "yard-north"
    path.write_text(GOOD + "    fps: -1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_pipeline(str(path), env={})
    assert str(info.value).startswith(f"{path}:6:")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "absent.yaml", "file not found"),
        (lambda d: d, "is a directory"),
        (lambda d: _write_bytes(d / "latin1.yaml", b"name: caf\xe9\n"), "expected UTF-8 text"),
    ],
    ids=["missing", "directory", "not-utf8"],
)
def test_unreadable_files(tmp_path: Path, make: object, message: str) -> None:
    assert callable(make)
    path = make(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_pipeline(path, env={})
    issue = info.value.issues[0]
    assert message in issue.message
    assert issue.file == str(path) and issue.line is None


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_result_is_a_pipeline_config() -> None:
    assert isinstance(load_pipeline_text(GOOD, env={}), PipelineConfig)


def test_substitution_leaves_keys_numbers_and_pyyaml_alone() -> None:
    """Only string values are substituted, and PyYAML's own SafeLoader is not modified."""
    import yaml

    text = GOOD + "model:\n  weights: '${W}'\n  threads: 2\n"
    config = load_pipeline_text(text, env={"W": "models/net.onnx"})
    assert config.model.weights == "models/net.onnx" and config.model.resolved_format == "onnx"
    assert yaml.safe_load("a: ${W}") == {"a": "${W}"}
    issues = _issues(GOOD + "${KEY}: 1\n", env={"KEY": "name"})
    assert issues[0].key_path == "${KEY}" and "unknown key" in issues[0].message


def test_a_password_that_would_break_the_url_is_percent_encoded() -> None:
    """Regression: a password with "/", "@" or "#" moved the URL's host (FFmpeg then said
    "cannot resolve host 'ss'", a piece of the password) and leaked into the logs. Only
    values substituted into ``user:password@`` are encoded; the same variable elsewhere is
    not."""
    text = """\
sources:
  - {id: crane, type: rtsp, url: 'rtsp://${CAM_USER}:${CAM_PASS}@10.0.0.5/s/${CAM_PASS}'}
"""
    config = load_pipeline_text(text, env={"CAM_USER": "ad min", "CAM_PASS": "p@ss/w:rd#1?"})
    assert config.sources[0].url == ("rtsp://ad%20min:p%40ss%2Fw:rd%231%3F@10.0.0.5/s/p@ss/w:rd#1?")


@pytest.mark.parametrize(
    "text",
    [
        "sources: [{id: a, type: file, path: a.mp4}]\noutputs:\n  video:\n    path: {stream}.mp4\n",
        "sources:\n  - {id: a, type: file, path: ${HOME}/v.mp4}\n",
    ],
    ids=["template", "variable-in-flow-mapping"],
)
def test_an_unquoted_brace_gets_a_hint_to_quote(text: str) -> None:
    """Regression: ``path: {stream}.mp4`` said only "expected <block end>, but found
    '<scalar>'"."""
    with pytest.raises(ConfigError) as info:
        load_pipeline_text(text, filename="p.yaml", env={"HOME": "/h"})
    (issue,) = info.value.issues
    assert "YAML syntax error" in issue.message
    assert 'needs quotes: path: "out/{stream}.mp4"' in issue.message


def test_a_flat_list_of_points_is_one_error_not_one_per_number() -> None:
    issues = _issues(GOOD + "zones:\n  - {id: l, type: line, points: [1, 2, 30, 40]}\n")
    assert [issue.key_path for issue in issues] == ["zones[0].points"]
    assert "expected [x, y] pairs: [[1, 2], [30, 40]]" in issues[0].message


def test_no_base_60_numbers() -> None:
    # YAML 1.1 reads 1:30 as 90; the loader reads it as text (YAML 1.2), so a number field
    # says what it got instead of taking 90.
    [issue] = _issues("sources:\n  - {id: cam, type: file, path: a.mp4, fps: 1:30}\n")
    assert issue.key_path == "sources[0].fps"
    assert issue.message.startswith("got '1:30', expected a number")
