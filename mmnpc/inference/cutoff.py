"""Which risk cut-off a prediction uses, and where it came from.

The score a new patient gets is the mean over *detector-chosen* slices, so the
cut-off that belongs to it is the **deployment cut-off**: Youden's J on the
training patients' end-to-end scores, written as ``deployment.json`` by
``tools/test_end_to_end.py`` (into its work dir and beside the classifier
checkpoint). Order of preference:

1. ``--cutoff X`` (a number you chose yourself);
2. ``--cutoff-file F`` (a ``deployment.json`` or a ``metrics.json``);
3. ``deployment.json`` beside the classifier checkpoint, if it was made with
   this classifier and this detector checkpoint (same file name and size) and
   holds a cut-off;
4. ``metrics.json`` beside the classifier checkpoint (the contour-based
   cut-off of ``tools/test.py``), with a warning that it was fitted on
   contour-chosen slices;
5. otherwise an error: a cut-off is never invented from the patient at hand.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

DEPLOYMENT_FILE = 'deployment.json'
METRICS_FILE = 'metrics.json'


def checkpoint_fingerprint(path: Path) -> dict:
    """What identifies a checkpoint file cheaply: its name and size in bytes."""
    path = Path(path)
    return {'name': path.name, 'bytes': path.stat().st_size}


@dataclass
class CutoffChoice:
    """The cut-off, the file (or 'command line') it came from, its rule, and warnings."""

    value: float
    source: str
    rule: str
    warnings: list = field(default_factory=list)


def _read_cutoff(path: Path) -> tuple[float, str]:
    record = json.loads(Path(path).read_text(encoding='utf-8'))
    value = record.get('cutoff')
    if value is None or not math.isfinite(float(value)):
        raise ValueError(f'{path} holds no finite cutoff ({value!r}); see its notes')
    return float(value), str(record.get('cutoff_rule', 'unknown'))


def _deployment_matches(record: dict, cls_checkpoint: Path, det_checkpoint: Path) -> list[str]:
    """Why a deployment.json does not belong to these checkpoints (empty: it does)."""
    problems = []
    for key, path in (('classifier_checkpoint', cls_checkpoint),
                      ('detector_checkpoint', det_checkpoint)):
        if record.get(key) != checkpoint_fingerprint(path):
            problems.append(f'its {key} {record.get(key)} is not {checkpoint_fingerprint(path)}')
    return problems


def resolve_cutoff(cutoff: Optional[float], cutoff_file: Optional[Path], cls_checkpoint: Path,
                   det_checkpoint: Path) -> CutoffChoice:
    """Choose the cut-off by the order of the module docstring.

    Raises:
        ValueError: no cut-off can be found, or the chosen file holds none.
    """
    if cutoff is not None:
        if not math.isfinite(cutoff):
            raise ValueError(f'--cutoff must be a finite score, got {cutoff}')
        return CutoffChoice(float(cutoff), 'command line', 'fixed')
    if cutoff_file is not None:
        value, rule = _read_cutoff(cutoff_file)
        return CutoffChoice(value, str(cutoff_file), rule)
    warnings: list[str] = []
    folder = Path(cls_checkpoint).parent
    deployment = folder / DEPLOYMENT_FILE
    if deployment.is_file():
        problems = _deployment_matches(json.loads(deployment.read_text(encoding='utf-8')),
                                       Path(cls_checkpoint), Path(det_checkpoint))
        record = json.loads(deployment.read_text(encoding='utf-8'))
        if not problems and record.get('cutoff') is None:
            problems.append('it holds no cut-off (the training patients\' end-to-end scores '
                            'gave none: see the notes of its metrics.json)')
        if not problems:
            value, rule = _read_cutoff(deployment)
            return CutoffChoice(value, str(deployment), rule)
        warnings.append(f'{deployment} not used: ' + '; '.join(problems))
    metrics = folder / METRICS_FILE
    if metrics.is_file() and json.loads(metrics.read_text(encoding='utf-8')).get('cutoff') \
            is not None:
        value, rule = _read_cutoff(metrics)
        warnings.append(f'using the contour-based cut-off of {metrics}: it was fitted on slices '
                        'chosen from contours, not by the detector; run tools/test_end_to_end.py '
                        'for the deployment cut-off')
        return CutoffChoice(value, str(metrics), rule, warnings)
    raise ValueError(
        'no cut-off: pass --cutoff or --cutoff-file, or run tools/test_end_to_end.py (writes '
        f'{deployment}) or tools/test.py --work-dir {folder} (writes {metrics}); '
        + ' '.join(warnings))
