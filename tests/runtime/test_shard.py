"""Sharding sources by rendezvous hashing; the ``--shard`` and ``--shard-from-hostname`` flags."""

from __future__ import annotations

import random
import subprocess
import sys
from collections import Counter

import pytest

from streamseg.cli import build_parser
from streamseg.config import load_pipeline_text
from streamseg.runtime.shard import (
    Shard,
    parse_shard,
    select_sources,
    shard_config,
    shard_from_hostname,
    shard_of,
)


def _ids(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [f"cam-{rng.getrandbits(48):012x}" for _ in range(count)]


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_every_source_goes_to_exactly_one_shard(count: int) -> None:
    ids = _ids(200)
    owners = [[i for i in range(count) if Shard(i, count).owns(s)] for s in ids]
    assert all(len(o) == 1 for o in owners)
    assigned = [s for i in range(count) for s in select_sources(ids, Shard(i, count))]
    assert sorted(assigned) == sorted(ids)


def test_assignment_is_the_same_in_another_process() -> None:
    """Pins the use of a stable hash: Python's hash() of a str changes between processes."""
    ids = _ids(50)
    here = [shard_of(s, 5) for s in ids]
    code = (
        "import sys; from streamseg.runtime.shard import shard_of; "
        "print(','.join(str(shard_of(s, 5)) for s in sys.argv[1:]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *ids],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123"},
    ).stdout.strip()
    assert [int(x) for x in out.split(",")] == here


def test_known_assignment_does_not_drift() -> None:
    """A change of hash or key format would reshuffle every deployed site's cameras."""
    assert [shard_of(f"cam{i}", 3) for i in range(12)] == [1, 0, 2, 2, 2, 2, 2, 1, 0, 0, 1, 0]
    assert shard_of("anything", 1) == 0


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8])
def test_adding_a_shard_moves_sources_only_to_the_new_shard(count: int) -> None:
    ids = _ids(1000, seed=count)
    moved = 0
    for s in ids:
        before, after = shard_of(s, count), shard_of(s, count + 1)
        if before != after:
            assert after == count, f"{s} moved from {before} to {after}, not to the new shard"
            moved += 1
    # The new shard takes about its fair share, 1/(n+1), of the sources.
    assert moved == pytest.approx(len(ids) / (count + 1), rel=0.25)


def test_shards_are_roughly_balanced() -> None:
    ids = _ids(2000, seed=7)
    sizes = Counter(shard_of(s, 4) for s in ids)
    assert set(sizes) == {0, 1, 2, 3}
    assert all(400 <= n <= 600 for n in sizes.values()), sizes


@pytest.mark.parametrize(
    ("text", "expected", "error"),
    [
        ("0/1", Shard(0, 1), None),
        ("2/3", Shard(2, 3), None),
        (" 1 / 4 ", Shard(1, 4), None),
        ("3/3", None, "expected 0 <= i < 3, got 3"),
        ("0/0", None, "expected a whole number >= 1, got 0"),
        ("-1/3", None, "expected i/n"),
        ("1", None, "expected i/n"),
        ("a/b", None, "expected i/n"),
    ],
)
def test_parse_shard(text: str, expected: Shard | None, error: str | None) -> None:
    if error is None:
        assert parse_shard(text) == expected
    else:
        with pytest.raises(ValueError, match=error):
            parse_shard(text)


@pytest.mark.parametrize(
    ("hostname", "count", "expected", "error"),
    [
        ("streamseg-0", 3, Shard(0, 3), None),
        ("site-a-streamseg-12", 13, Shard(12, 13), None),
        ("streamseg-3", 3, None, "expected 0 <= i < 3, got 3"),
        ("streamseg", 3, None, "ending in -<ordinal>"),
        ("", 3, None, "ending in -<ordinal>"),
    ],
)
def test_shard_from_hostname(
    hostname: str, count: int, expected: Shard | None, error: str | None
) -> None:
    if error is None:
        assert shard_from_hostname(hostname, count) == expected
    else:
        with pytest.raises(ValueError, match=error):
            shard_from_hostname(hostname, count)


def test_shard_config_keeps_owned_sources_in_order() -> None:
    ids = [f"cam{i}" for i in range(12)]
    text = "sources:\n" + "".join(f"  - {{id: {s}, type: file, path: /v/{s}.mp4}}\n" for s in ids)
    config = load_pipeline_text(text)
    kept = [[s.id for s in shard_config(config, Shard(i, 3)).sources] for i in range(3)]
    assert sorted(s for part in kept for s in part) == sorted(ids)
    for i, part in enumerate(kept):
        assert part == [s for s in ids if shard_of(s, 3) == i]
    assert [s.id for s in config.sources] == ids  # the original is not changed


def test_cli_parses_shard_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    parser = build_parser()
    assert parser.parse_args(["run", "p.yaml"]).shard is None
    assert parser.parse_args(["run", "p.yaml", "--shard", "1/3"]).shard == Shard(1, 3)
    monkeypatch.setenv("HOSTNAME", "streamseg-2")
    args = parser.parse_args(["run", "p.yaml", "--shard-from-hostname", "4"])
    assert args.shard == Shard(2, 4)


@pytest.mark.parametrize(
    ("argv", "hostname", "message"),
    [
        (["--shard", "3/3"], None, "argument --shard: shard index: expected 0 <= i < 3, got 3"),
        (["--shard", "x"], None, "argument --shard: shard: expected i/n"),
        (["--shard-from-hostname", "0"], "s-0", "expected a whole number of shards >= 1"),
        (["--shard-from-hostname", "2"], "s-2", "expected 0 <= i < 2, got 2"),
        (["--shard-from-hostname", "2"], "laptop", "expected a name ending in -<ordinal>"),
        (["--shard", "0/2", "--shard-from-hostname", "2"], "s-0", "not allowed with argument"),
    ],
)
def test_cli_refuses_bad_shard_values_with_one_line(
    argv: list[str],
    hostname: str | None,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if hostname is not None:
        monkeypatch.setenv("HOSTNAME", hostname)
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["run", "p.yaml", *argv])
    assert exc.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0], errors


def test_several_shards_write_their_own_all_stream_files() -> None:
    """Regression: two shards on one machine truncated and wrote the same JSONL file (frames
    lost, a line corrupted, both exiting 0)."""
    text = (
        "sources:\n"
        "  - {id: a, type: file, path: /v/a.mp4}\n"
        "  - {id: b, type: file, path: /v/b.mp4}\n"
        "outputs:\n"
        "  jsonl: {path: out/det.jsonl}\n"
        "  events: {path: /var/log/streamseg/events}\n"
        "  video: {path: 'out/{stream}.mp4'}\n"
    )
    config = load_pipeline_text(text)
    outputs = [shard_config(config, Shard(i, 2)).outputs for i in range(2)]
    assert [o.jsonl.path for o in outputs if o.jsonl] == [
        "out/det.shard0.jsonl",
        "out/det.shard1.jsonl",
    ]
    assert [o.events.path for o in outputs if o.events] == [
        "/var/log/streamseg/events.shard0",
        "/var/log/streamseg/events.shard1",
    ]
    assert [o.video.path for o in outputs if o.video] == ["out/{stream}.mp4"] * 2  # per stream
    alone = shard_config(config, Shard(0, 1)).outputs
    assert alone.jsonl is not None and alone.jsonl.path == "out/det.jsonl"
    assert config.outputs.jsonl is not None and config.outputs.jsonl.path == "out/det.jsonl"
