"""Score tracks against ground truth with TrackEval's MOTS metrics (``streamseg eval tracking``).

Both sides are MOTS text files (``<frame> <object_id> <class_id> <height> <width> <rle>``, frames
from 1; see :mod:`streamseg.synth.export`). Sequences are found by name in these layouts:

Ground truth (``gt_dir``):
    - one sequence folder as ``streamseg synth --out DIR`` writes it: ``DIR/gt/gt.txt`` and
      ``DIR/seqinfo.ini``; the sequence is named after the folder;
    - or a folder of them: ``DIR/<seq>/gt/gt.txt`` (and ``DIR/<seq>/seqinfo.ini``).

Predictions (``pred_dir``):
    - a folder of one MOTS file per sequence, ``DIR/<seq>.txt``: what ``outputs.mots`` writes (one
      file per stream, named by the source id) and TrackEval's tracker ``data`` folder;
    - a single such file (the sequence is named by its stem);
    - or either ground-truth layout above, so that ground truth can be scored against itself.

Sequences pair by name; every ground-truth sequence needs a prediction and every prediction a
ground truth, except that one ground-truth sequence and one prediction always pair (a synthetic
scene rendered to ``runs/yard`` and a pipeline whose source id is ``cam``). A sequence's length
is ``seqLength`` of its ``seqinfo.ini``, else the last frame number found in either file.

Classes: TrackEval's ``MOTSChallenge`` evaluates one class, ``pedestrian`` (class id 2). Here the
dataset class is extended to every class of :data:`streamseg.synth.CLASS_NAMES` (their ids in
:data:`streamseg.synth.MOTS_CLASS_IDS`; ``person`` keeps id 2) plus :data:`ALL_CLASSES`, the
default: a class-agnostic evaluation of every object together in which a prediction can only match
a ground-truth object of its own class (their similarity is set to 0 otherwise), so a class
mistake costs a miss and a false positive, as in per-class evaluation, while identities are
scored across classes in one HOTA. Per-class scores are available by naming the classes.

Scores are TrackEval's figures as fractions (HOTA 0.85 is "85 points"): HOTA, DetA and AssA
averaged over the localisation thresholds, IDF1, MOTSA (TrackEval's CLEAR ``MOTA`` on masks),
sMOTSA (``sMOTA``) and IDSW; "combined" figures pool the counts of every sequence, as TrackEval's
``COMBINED_SEQ`` does.
"""

from __future__ import annotations

import configparser
import contextlib
import io
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from streamseg.synth.export import MOTS_CLASS_IDS
from streamseg.synth.frame import CLASS_NAMES

logger = logging.getLogger(__name__)

ALL_CLASSES = "all"
"""Class key of the class-agnostic (but class-consistent) evaluation of every object together."""

CLASS_KEYS: tuple[str, ...] = (ALL_CLASSES, *CLASS_NAMES)
"""Every class key :func:`evaluate_tracking` accepts."""

_ALL_CLASS_ID = 0
"""Class id every row is given in the class-agnostic evaluation (no MOTS file uses 0)."""

_TRACKER_NAME = "pred"
_INSTALL_HINT = "pip install 'trackeval>=1.3' (or streamseg[dev])"


class TrackingEvalError(ValueError):
    """The inputs of an evaluation are missing, malformed or do not pair; the message says which."""


@dataclass(frozen=True)
class MotsScores:
    """TrackEval's MOTS figures for one sequence (or all combined) and one class key.

    Attributes:
        hota: HOTA, mean over the localisation thresholds 0.05..0.95, in [0, 1].
        deta: detection accuracy (DetA), in [0, 1].
        assa: association accuracy (AssA), in [0, 1].
        idf1: identity F1, in [0, 1].
        motsa: multi-object tracking and segmentation accuracy, <= 1 (may be negative).
        smotsa: soft MOTSA (true positives weighted by their mask IoU), <= 1.
        idsw: identity switches.
        gt_dets: ground-truth masks evaluated.
        pred_dets: predicted masks evaluated.
        gt_ids: ground-truth identities.
        pred_ids: predicted identities.
    """

    hota: float
    deta: float
    assa: float
    idf1: float
    motsa: float
    smotsa: float
    idsw: int
    gt_dets: int
    pred_dets: int
    gt_ids: int
    pred_ids: int


@dataclass(frozen=True)
class TrackingScores:
    """What :func:`evaluate_tracking` measured.

    Attributes:
        classes: the class keys evaluated, in the order asked.
        sequences: ``sequences[class_key][sequence_name]``: figures of one sequence.
        combined: ``combined[class_key]``: figures over every sequence together.
        pairs: ``pairs[sequence_name] = (gt_file, pred_file)``: the files that were scored.
    """

    classes: tuple[str, ...]
    sequences: dict[str, dict[str, MotsScores]]
    combined: dict[str, MotsScores]
    pairs: dict[str, tuple[str, str]]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the same structure."""
        return {
            "classes": list(self.classes),
            "sequences": {
                cls: {seq: asdict(s) for seq, s in by_seq.items()}
                for cls, by_seq in self.sequences.items()
            },
            "combined": {cls: asdict(s) for cls, s in self.combined.items()},
            "pairs": {seq: list(pair) for seq, pair in self.pairs.items()},
        }


@dataclass(frozen=True)
class GtSequence:
    """One ground-truth sequence.

    Attributes:
        path: its MOTS text file (``<seq>/gt/gt.txt``).
        length: ``seqLength`` of its ``seqinfo.ini``; None when there is none.
    """

    path: Path
    length: int | None


def _seq_length(seqinfo: Path) -> int | None:
    if not seqinfo.is_file():
        return None
    parser = configparser.ConfigParser()
    try:
        parser.read(seqinfo, encoding="utf-8")
        return int(parser["Sequence"]["seqLength"])
    except (configparser.Error, KeyError, ValueError) as exc:
        raise TrackingEvalError(f"{seqinfo}: expected [Sequence] seqLength=<int>: {exc}") from None


def _sequence_folders(root: Path) -> dict[str, GtSequence]:
    """MOTSChallenge sequence folders: ``root`` itself or its children with ``gt/gt.txt``."""
    own = root / "gt" / "gt.txt"
    if own.is_file():
        return {root.resolve().name: GtSequence(own, _seq_length(root / "seqinfo.ini"))}
    found = {}
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        gt = child / "gt" / "gt.txt"
        if gt.is_file():
            found[child.name] = GtSequence(gt, _seq_length(child / "seqinfo.ini"))
    return found


def find_gt_sequences(gt_dir: str | os.PathLike[str]) -> dict[str, GtSequence]:
    """Ground-truth sequences of ``gt_dir`` by name (layouts in the module docstring).

    Raises:
        TrackingEvalError: ``gt_dir`` is not a directory or holds no sequence.
    """
    root = Path(gt_dir)
    if not root.is_dir():
        raise TrackingEvalError(f"--gt {root}: no such directory")
    found = _sequence_folders(root)
    if not found:
        raise TrackingEvalError(
            f"--gt {root}: no ground truth found; expected {root}/gt/gt.txt (one sequence, as "
            f"'streamseg synth' writes it) or {root}/<seq>/gt/gt.txt"
        )
    return found


def find_pred_sequences(pred_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Prediction files of ``pred_dir`` by sequence name (layouts in the module docstring).

    Raises:
        TrackingEvalError: ``pred_dir`` does not exist, holds no prediction, or names one
            sequence twice.
    """
    root = Path(pred_dir)
    if root.is_file():
        return {root.stem: root}
    if not root.is_dir():
        raise TrackingEvalError(f"--pred {root}: no such file or directory")
    found = {name: seq.path for name, seq in _sequence_folders(root).items()}
    for file in sorted(root.glob("*.txt")):
        if file.stem in found:
            raise TrackingEvalError(
                f"--pred {root}: sequence {file.stem!r} is both {file} and {found[file.stem]}"
            )
        found[file.stem] = file
    if not found:
        raise TrackingEvalError(
            f"--pred {root}: no predictions found; expected {root}/<seq>.txt MOTS files (as "
            f"outputs.mots writes them) or the ground-truth layout ({root}/<seq>/gt/gt.txt)"
        )
    return found


SHORT_PREDICTIONS = 0.5
"""Predictions whose last frame is under this fraction of the ground truth's get a warning."""


def pair_sequences(
    gt: dict[str, GtSequence], pred: dict[str, Path]
) -> dict[str, tuple[GtSequence, Path]]:
    """Pair ground truth and predictions by sequence name (one and one always pair).

    Raises:
        TrackingEvalError: a sequence is on one side only; the message lists both sides.
    """
    if len(gt) == 1 and len(pred) == 1:
        (name, gt_seq), (pred_name, pred_path) = next(iter(gt.items())), next(iter(pred.items()))
        if pred_name != name:
            logger.warning(
                "scoring predictions %r against ground truth %r: one sequence on each side "
                "always pairs; make sure they are of the same video",
                pred_name,
                name,
            )
        return {name: (gt_seq, pred_path)}
    missing = sorted(set(gt) - set(pred))
    extra = sorted(set(pred) - set(gt))
    if missing or extra:
        problems = []
        if missing:
            problems.append(f"no prediction for {', '.join(missing)}")
        if extra:
            problems.append(f"no ground truth for {', '.join(extra)}")
        raise TrackingEvalError(
            f"mismatched sequences: {'; '.join(problems)} (ground truth: {', '.join(sorted(gt))}; "
            f"predictions: {', '.join(sorted(pred))})"
        )
    return {name: (gt[name], pred[name]) for name in sorted(gt)}


def _last_frame(path: Path) -> int:
    last = 0
    with path.open(encoding="ascii", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            head = line.split(" ", 1)[0].strip()
            if not head:
                continue
            try:
                last = max(last, int(head))
            except ValueError:
                raise TrackingEvalError(
                    f"{path}:{number}: expected '<frame> <id> <class> <height> <width> <rle>', "
                    f"got {line.strip()[:60]!r}"
                ) from None
    return last


def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    try:
        link.symlink_to(target.resolve())
    except OSError:  # no symlinks on this file system: copy
        shutil.copyfile(target, link)


def _check_classes(classes: Sequence[str]) -> tuple[str, ...]:
    keys = tuple(dict.fromkeys(classes))
    unknown = [c for c in keys if c not in CLASS_KEYS]
    if not keys or unknown:
        raise TrackingEvalError(
            f"classes: expected one or more of {', '.join(CLASS_KEYS)}, got {list(classes)}"
        )
    return keys


@contextlib.contextmanager
def _quiet(verbose: bool) -> Iterator[None]:
    """Swallow TrackEval's prints (config dumps, progress, tracebacks) unless ``verbose``."""
    if verbose:
        yield
        return
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield


def _dataset_class() -> Any:
    """TrackEval's MOTSChallenge extended to streamseg's classes (imported on first use)."""
    try:
        import trackeval
    except ImportError as exc:
        raise TrackingEvalError(f"tracking evaluation needs TrackEval: {_INSTALL_HINT}") from exc

    class StreamsegMOTS(trackeval.datasets.MOTSChallenge):
        """MOTSChallenge with every streamseg class and the class-agnostic key."""

        def __init__(self, config: dict[str, Any], classes: Sequence[str]) -> None:
            super().__init__({**config, "CLASSES_TO_EVAL": ["pedestrian"]})
            self.valid_classes = list(CLASS_KEYS)
            self.class_list = list(classes)
            self.class_name_to_class_id = {
                **{name: str(MOTS_CLASS_IDS[name]) for name in CLASS_NAMES},
                ALL_CLASSES: str(_ALL_CLASS_ID),
                "ignore": "10",
            }

        def get_preprocessed_seq_data(self, raw_data: dict[str, Any], cls: str) -> Any:
            if cls != ALL_CLASSES:
                return super().get_preprocessed_seq_data(raw_data, cls)
            data = dict(raw_data)
            similarity = []
            for gt_cls, pred_cls, sim in zip(
                raw_data["gt_classes"],
                raw_data["tracker_classes"],
                raw_data["similarity_scores"],
                strict=True,
            ):
                same = np.asarray(gt_cls)[:, None] == np.asarray(pred_cls)[None, :]
                similarity.append(np.where(same, sim, 0.0) if np.size(sim) else sim)
            data["similarity_scores"] = similarity
            data["gt_classes"] = [np.full_like(c, _ALL_CLASS_ID) for c in raw_data["gt_classes"]]
            data["tracker_classes"] = [
                np.full_like(c, _ALL_CLASS_ID) for c in raw_data["tracker_classes"]
            ]
            return super().get_preprocessed_seq_data(data, cls)

    return StreamsegMOTS


def _scores(res: dict[str, Any]) -> MotsScores:
    hota, clear, identity, count = res["HOTA"], res["CLEAR"], res["Identity"], res["Count"]
    return MotsScores(
        hota=float(np.mean(hota["HOTA"])),
        deta=float(np.mean(hota["DetA"])),
        assa=float(np.mean(hota["AssA"])),
        idf1=float(identity["IDF1"]),
        motsa=float(clear["MOTA"]),
        smotsa=float(clear["sMOTA"]),
        idsw=int(clear["IDSW"]),
        gt_dets=int(count["GT_Dets"]),
        pred_dets=int(count["Dets"]),
        gt_ids=int(count["GT_IDs"]),
        pred_ids=int(count["IDs"]),
    )


def evaluate_tracking(
    gt_dir: str | os.PathLike[str],
    pred_dir: str | os.PathLike[str],
    classes: Sequence[str] = (ALL_CLASSES,),
    verbose: bool = False,
) -> TrackingScores:
    """Score the predicted tracks of ``pred_dir`` against the ground truth of ``gt_dir``.

    Args:
        gt_dir: ground truth, in a layout of the module docstring.
        pred_dir: predictions (folder or single file), in a layout of the module docstring.
        classes: class keys to evaluate: :data:`ALL_CLASSES` (every object together, matched
            only within its class) and/or names of :data:`streamseg.synth.CLASS_NAMES`.
        verbose: let TrackEval print its configuration and progress.

    Returns:
        Per-sequence and combined figures for every class key.

    Raises:
        TrackingEvalError: missing or empty folders, unpaired sequences, an unknown class,
            malformed files, or anything TrackEval refuses (overlapping masks, a repeated id in
            one frame, frames outside ``1..seqLength``); the message names the file or sequence.
    """
    keys = _check_classes(classes)
    pairs = pair_sequences(find_gt_sequences(gt_dir), find_pred_sequences(pred_dir))
    dataset_class = _dataset_class()
    import trackeval

    lengths = {}
    for name, (gt_seq, pred_path) in pairs.items():
        gt_last, pred_last = _last_frame(gt_seq.path), _last_frame(pred_path)
        lengths[name] = gt_seq.length if gt_seq.length is not None else max(1, gt_last, pred_last)
        if pred_last < SHORT_PREDICTIONS * gt_last:
            # A run on another (or a cut) video: everything after is scored as missed.
            logger.warning(
                "%s: the predictions end at frame %d, the ground truth at %d: the frames after "
                "count as missed (another video, or a run stopped early?)",
                name,
                pred_last,
                gt_last,
            )

    with tempfile.TemporaryDirectory(prefix="streamseg-eval-") as tmp:
        stage = Path(tmp)
        for name, (gt_seq, pred_path) in pairs.items():
            _link(gt_seq.path, stage / "gt" / name / "gt" / "gt.txt")
            _link(pred_path, stage / "trackers" / _TRACKER_NAME / "data" / f"{name}.txt")
        eval_config = trackeval.Evaluator.get_default_eval_config()
        eval_config.update(
            USE_PARALLEL=False,
            BREAK_ON_ERROR=True,
            LOG_ON_ERROR=None,
            PRINT_RESULTS=verbose,
            PRINT_CONFIG=verbose,
            TIME_PROGRESS=False,
            OUTPUT_SUMMARY=False,
            OUTPUT_DETAILED=False,
            PLOT_CURVES=False,
        )
        dataset_config = {
            **trackeval.datasets.MOTSChallenge.get_default_dataset_config(),
            "GT_FOLDER": str(stage / "gt"),
            "TRACKERS_FOLDER": str(stage / "trackers"),
            "OUTPUT_FOLDER": str(stage / "out"),
            "TRACKERS_TO_EVAL": [_TRACKER_NAME],
            "SKIP_SPLIT_FOL": True,
            "SEQ_INFO": dict(lengths),
            "PRINT_CONFIG": verbose,
        }
        metric_config = {"PRINT_CONFIG": verbose}
        metrics = [
            trackeval.metrics.HOTA(metric_config),
            trackeval.metrics.CLEAR(metric_config),
            trackeval.metrics.Identity(metric_config),
        ]
        try:
            with _quiet(verbose):
                dataset = dataset_class(dataset_config, keys)
                results, _ = trackeval.Evaluator(eval_config).evaluate([dataset], metrics)
        except trackeval.utils.TrackEvalException as exc:
            reason = str(exc).strip().rstrip(",")
            raise TrackingEvalError(f"TrackEval refused the input: {reason}") from None
        except (ValueError, IndexError, TypeError) as exc:
            # pycocotools and numpy errors on malformed RLE strings or sizes
            raise TrackingEvalError(f"could not read the MOTS files: {exc}") from None
    res = results[dataset.get_name()][_TRACKER_NAME]
    return TrackingScores(
        classes=keys,
        sequences={cls: {seq: _scores(res[seq][cls]) for seq in pairs} for cls in keys},
        combined={cls: _scores(res["COMBINED_SEQ"][cls]) for cls in keys},
        pairs={name: (str(g.path), str(p)) for name, (g, p) in pairs.items()},
    )
