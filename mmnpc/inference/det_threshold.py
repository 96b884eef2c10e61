"""The detection score that marks a slice: ``--det-score-thr`` of tools/predict.py
and tools/test_end_to_end.py.

A slice is used for the MSOM score when a GTV or GTVln detection on it scores at
least this threshold. It is either

* a number (default 0.5, which nothing was fitted on), or
* a detector ``metrics.json`` written by ``tools/test.py`` on patients other than
  the reported test patients (e.g. the validation split,
  ``--cfg-options test_dataloader.dataset.ann_file=annotations/val.json``): its
  ``slice_scores.any.youden_thr``, the threshold that best separates those
  patients' tumour slices from their tumour-free ones (Youden's J on each
  slice's best score; :mod:`mmnpc.evaluation.slice_scores`).

A metrics.json of the test split is refused (and tools/test_end_to_end.py refuses
one of the split it reports): a threshold chosen on the patients the end-to-end
figures are reported on would make those figures optimistic. So is one written
for another detector checkpoint (tools/test.py records the checkpoint's name and
size; files without that record are taken as they are).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from .cutoff import checkpoint_fingerprint

DEFAULT_DET_SCORE_THR = 0.5
REPORTED_SPLIT = 'test'


@dataclass(frozen=True)
class DetThreshold:
    """The slice threshold and where it came from (for the outputs' provenance)."""

    value: float
    source: str
    split: str | None = None  # the split a fitted threshold came from


def parse_det_threshold(text: str | float | None,
                        det_checkpoint: Path | None = None) -> DetThreshold:
    """A number, or a non-test detector metrics.json (see the module docstring).

    Raises:
        ValueError: not a finite number in [0, 1], an unreadable file, a test-split
            file, a file of another checkpoint than ``det_checkpoint``, or a file
            without a fitted threshold; the message names the file.
    """
    if text is None:
        return DetThreshold(DEFAULT_DET_SCORE_THR, 'default')
    try:
        value = float(text)
    except ValueError:
        return _from_metrics(Path(str(text)), det_checkpoint)
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f'--det-score-thr must be a score in [0, 1], got {text}')
    return DetThreshold(value, 'command line')


def _from_metrics(path: Path, det_checkpoint: Path | None) -> DetThreshold:
    if not path.is_file():
        raise ValueError(f'--det-score-thr {path}: neither a number nor a file')
    try:
        record = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f'--det-score-thr {path}: not a readable metrics.json '
                         f'({error})') from None
    split = record.get('split')
    if split is None or 'slice_scores' not in record:
        raise ValueError(f'--det-score-thr {path}: not a detector metrics.json of tools/test.py '
                         '(no split / slice_scores)')
    if _patients_of(str(split)) == REPORTED_SPLIT:
        raise ValueError(f'--det-score-thr {path}: fitted on the test patients; evaluate the '
                         'detector on the validation patients (tools/test.py ... --cfg-options '
                         'test_dataloader.dataset.ann_file=annotations/val.json) and pass that '
                         'metrics.json')
    if det_checkpoint is not None and record.get('checkpoint') is not None:
        if record['checkpoint'] != checkpoint_fingerprint(Path(det_checkpoint)):
            raise ValueError(f'--det-score-thr {path}: written for the detector checkpoint '
                             f'{record["checkpoint"]}, not {det_checkpoint}')
    value = (record['slice_scores'].get('any') or {}).get('youden_thr')
    if value is None:
        raise ValueError(f'--det-score-thr {path}: no fitted threshold (slice_scores.any.'
                         f'youden_thr is null: the {split} slices lack tumour or tumour-free '
                         'slices, or the file predates the threshold)')
    return DetThreshold(float(value), f'{path} ({split} slices, Youden)', str(split))


def _patients_of(split: str) -> str:
    """The split a subset name belongs to: 'test_step4' (every 4th slice) -> 'test'."""
    return split.split('_')[0]


def refuse_reported_split(threshold: DetThreshold, eval_split: str) -> None:
    """Raise ValueError when ``threshold`` was fitted on the split being reported
    (e.g. the validation patients of a cohort without a test split)."""
    if threshold.split is not None and _patients_of(threshold.split) == eval_split:
        raise ValueError(f'--det-score-thr {threshold.source}: fitted on the {eval_split} '
                         f'patients, the ones this evaluation reports; fit it on others')


def deployment_det_threshold(cutoff_source: str) -> float | None:
    """The slice threshold the cut-off's file records (``det_score_thr`` of a
    deployment.json or an end-to-end metrics.json; None: the cut-off came from the
    command line or a file without it, e.g. a contour-based metrics.json)."""
    path = Path(cutoff_source)
    if path.suffix != '.json' or not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding='utf-8')).get('det_score_thr')
    except (OSError, json.JSONDecodeError, AttributeError):
        return None
    return None if value is None else float(value)


def threshold_for_prediction(requested: str | None, cutoff_source: str,
                             det_checkpoint: Path | None = None
                             ) -> tuple[DetThreshold, list[str]]:
    """tools/predict.py's slice threshold and warnings.

    Without ``--det-score-thr``: the threshold the deployment cut-off was fitted with
    (the end-to-end scores behind it used it), else the default. With it: that value,
    and a warning when it differs from the deployment cut-off's.

    Raises:
        ValueError: as :func:`parse_det_threshold`.
    """
    fitted_with = deployment_det_threshold(cutoff_source)
    if requested is None:
        if fitted_with is None:
            return parse_det_threshold(None), []
        return DetThreshold(fitted_with, f'{cutoff_source} (the threshold of its end-to-end '
                                         'scores)'), []
    chosen = parse_det_threshold(requested, det_checkpoint)
    warnings = []
    if fitted_with is not None and not math.isclose(chosen.value, fitted_with, abs_tol=1e-9):
        warnings.append(f'slice threshold {chosen.value:g} differs from the {fitted_with:g} '
                        f'the cut-off of {cutoff_source} was fitted with: the risk group may '
                        'not mean what it did there')
    return chosen, warnings
