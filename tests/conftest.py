"""Fixtures shared by the whole test run (session scope): built once, read by many slow tests.

The slow tests need a DICOM cohort, its converted slices, trained stage-1 /
stage-2 checkpoints and a full demo run; each used to build its own. Here they
are built once per ``pytest`` run, on first use, in this order (each from the
one before):

* ``synthetic_cohort``: 12 small synthetic patients (48 x 48 px of 4.8 mm, 6
  slices of 6 mm: about 36 converted 1 mm slices each) with planted
  identifiers (names, IDs, dates, institution) in every DICOM header and two
  identifier columns in clinical.csv, so every output made from it can be
  scanned for PHI;
* ``converted_cohort``: ``python -m data_prep convert`` of it (6 training, 3
  validation, 3 test patients);
* ``tiny_models``: ``tools/train.py`` of the tiny CE-T1 detector on the
  converted cohort (2 iterations, then ``--resume`` to 4; trained classifiers
  come from ``tiny_demo`` and the README walk-through);
* ``tiny_demo``: ``tools/demo.py`` -- every step of ``make demo`` and its
  ``--end-to-end`` / ``--cnn-baselines`` steps -- on the same DICOM cohort,
  with short schedules (10 detector, 6 classifier iterations).

Consumers treat them as read-only (a test that changes files copies them
first) and write their own outputs under their own ``tmp_path``. The models
are far too small to mean anything: the model-quality checks are
``make validate`` (tools/validate.py), on the full demo.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
COHORT_PATIENTS = 12
COHORT_GEOMETRY = dict(matrix=48, pixel_mm=4.8, n_slices=6, slice_mm=6.0)
DET_CONFIG = 'configs/det_cet1_tiny.py'
MODEL_ITERS = 4
DEMO_ARGS = ['--patients', str(COHORT_PATIENTS), '--val-fraction', '0.25', '--test-fraction',
             '0.25', '--det-iters', '10', '--cls-iters', '6', '--val-slice-step', '4',
             '--test-slice-step', '8', '--end-to-end', '--cnn-baselines']


def run_tool(*args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
    """Run ``python ARGS`` from the repository root as a user would; fail with its output."""
    result = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True)
    assert result.returncode in ok, (f'{" ".join(args[:2])} exited {result.returncode}:\n'
                                     f'{result.stdout[-3000:]}\n{result.stderr[-3000:]}')
    return result


class SyntheticCohort(NamedTuple):
    path: Path
    identifiers: list[str]  # planted PHI values to look for in outputs


class ConvertedCohort(NamedTuple):
    cohort: Path
    data: Path
    splits: dict[str, str]  # patient id -> train / val / test

    def patients(self, split: str) -> list[str]:
        return sorted(p for p, s in self.splits.items() if s == split)

    def labels(self) -> dict[str, int]:
        table = pd.read_csv(self.data / 'clinical.csv', dtype=str)
        return dict(zip(table['patient_id'], table['msom'].astype(int)))

    def subset(self, dest: Path, patients: Iterable[str]) -> Path:
        """A converter output folder at ``dest`` holding only ``patients``: the COCO files
        and clinical rows filtered, the images linked, manifest.json copied as it is (it
        still lists every patient; the tools read its parameters, not its patients). For
        tests whose cost grows with the patients scored (end-to-end evaluation)."""
        keep = set(patients)
        dest.mkdir(parents=True)
        for sequence in (p for p in self.data.iterdir() if (p / 'annotations').is_dir()):
            (dest / sequence.name / 'annotations').mkdir(parents=True)
            (dest / sequence.name / 'images').symlink_to(sequence / 'images',
                                                         target_is_directory=True)
            for ann in (sequence / 'annotations').glob('*.json'):
                coco = json.loads(ann.read_text())
                coco['images'] = [im for im in coco['images'] if im['patient_id'] in keep]
                ids = {im['id'] for im in coco['images']}
                coco['annotations'] = [a for a in coco['annotations'] if a['image_id'] in ids]
                (dest / sequence.name / 'annotations' / ann.name).write_text(json.dumps(coco))
        table = pd.read_csv(self.data / 'clinical.csv', dtype=str, keep_default_na=False)
        table[table['patient_id'].isin(keep)].to_csv(dest / 'clinical.csv', index=False)
        if (self.data / 'manifest.json').is_file():
            shutil.copy(self.data / 'manifest.json', dest / 'manifest.json')
        return dest


class TinyModels(NamedTuple):
    det_dir: Path
    det: Path  # iter_4.pth, after the resume
    det_first: dict  # iter_2.pth as the first run left it (loaded before the resume)
    det_resume_log: str


class TinyDemo(NamedTuple):
    work: Path
    identifiers: list[str]
    log: str


@pytest.fixture(scope='session')
def synthetic_cohort(tmp_path_factory) -> SyntheticCohort:
    from data_prep.synth import synthesize_cohort
    from data_prep.testing.phi import plant_identifiers

    path = synthesize_cohort(tmp_path_factory.mktemp('shared') / 'cohort', COHORT_PATIENTS,
                             seed=0, progress=False, **COHORT_GEOMETRY)
    return SyntheticCohort(path, plant_identifiers(path))


@pytest.fixture(scope='session')
def converted_cohort(synthetic_cohort) -> ConvertedCohort:
    data = synthetic_cohort.path.parent / 'data'
    run_tool('-m', 'data_prep', 'convert', str(synthetic_cohort.path), str(data),
             '--val-fraction', '0.25', '--test-fraction', '0.25', '--seed', '0', '--no-progress')
    table = pd.read_csv(data / 'clinical.csv', dtype=str)
    return ConvertedCohort(synthetic_cohort.path, data,
                           dict(zip(table['patient_id'], table['split'])))


def _iters(n: int, *extra: str) -> list[str]:
    return ['--cfg-options', f'train_cfg.max_iters={n}', f'train_cfg.val_interval={n}',
            f'default_hooks.checkpoint.interval={n}', *extra]


@pytest.fixture(scope='session')
def tiny_models(converted_cohort) -> TinyModels:
    import torch

    root, data = converted_cohort.data.parent, str(converted_cohort.data)
    det_dir = root / 'det'
    # a checkpoint every 2 iterations (after _iters' interval=n: the later value wins), so
    # the first run's iter_2.pth stays beside the resumed run's iter_4.pth
    det_options = ('train_cfg.val_begin=1000000', 'default_hooks.checkpoint.interval=2',
                   'default_hooks.checkpoint.max_keep_ckpts=5', 'default_hooks.logger.interval=1')
    run_tool('tools/train.py', DET_CONFIG, '--data-root', data, '--work-dir', str(det_dir),
             *_iters(MODEL_ITERS // 2, *det_options))
    first = torch.load(det_dir / f'iter_{MODEL_ITERS // 2}.pth', map_location='cpu',
                       weights_only=False)
    resumed = run_tool('tools/train.py', DET_CONFIG, '--data-root', data, '--work-dir',
                       str(det_dir), '--resume', *_iters(MODEL_ITERS, *det_options))
    return TinyModels(det_dir, det_dir / f'iter_{MODEL_ITERS}.pth', first,
                      resumed.stdout + resumed.stderr)


@pytest.fixture(scope='session')
def tiny_demo(synthetic_cohort, tmp_path_factory) -> TinyDemo:
    """tools/demo.py with DEMO_ARGS; the demo finds the cohort in place and converts it."""
    work = tmp_path_factory.mktemp('demo')
    (work / 'cohort').symlink_to(synthetic_cohort.path, target_is_directory=True)
    result = subprocess.run([sys.executable, 'tools/demo.py', '--work-dir', str(work),
                             *DEMO_ARGS], cwd=REPO, capture_output=True, text=True)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]
    return TinyDemo(work, synthetic_cohort.identifiers, log)


# ---------------------------------------------------------------- a finished demo's files, faked

def _write_json(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def _demo_folder(root: Path, **changes) -> Path:
    """A finished demo's files with figures that pass every bar (the detector's and the
    held-out patient's are the README run's; the late-fusion ones are made up, above
    their bars), ``changes`` applied as ``file_key=value`` (files: det_test, det_val,
    prediction, gtv, fusion, clinical)."""
    det_test = {'split': 'test_step16', 'GTV_AP50': 0.868, 'GTVln_AP50': 0.632}
    det_val = {'split': 'val_step4', 'slice_scores': {'any': {'youden_thr': 0.655}}}
    prediction = {'patient_id': 'NPC001', 'status': 'ok', 'n_slices_with_tumour': 38,
                  'n_slices_total': 85}
    gtv = {'slice_recall': 1.0, 'slice_precision': 1.0,
           'centroid_distance_mm': {'median': 1.1, 'max': 2.9, 'n': 38}}
    fusion = {'eval_split': 'test', 'auc': 0.760, 'auc_ci_low': 0.650, 'auc_ci_high': 0.870}
    clinical = {'model': 'clinical_only', 'n_patients': 80, 'auc': 0.66, 'auc_ci_low': 0.539,
                'auc_ci_high': 0.782, 'difference_vs_reference': 0.10, 'p_value': 0.04}
    records = {'det_test': det_test, 'det_val': det_val, 'prediction': prediction, 'gtv': gtv,
               'fusion': fusion, 'clinical': clinical}
    for key, value in changes.items():
        file, field = key.split('__')
        records[file][field] = value
    _write_json(root / 'detector' / 'test' / 'metrics.json', det_test)
    _write_json(root / 'detector' / 'val' / 'metrics.json', det_val)
    _write_json(root / 'predict_NPC001' / 'prediction.json', prediction)
    _write_json(root / 'predict_NPC001' / 'detection_check.json', {'classes': {'GTV': gtv}})
    _write_json(root / 'late_fusion' / 'metrics.json', fusion)
    _write_json(root / 'comparison' / 'comparison.json', {'models': [
        {'model': 'late_fusion', 'auc': 0.76}, clinical,
        {'model': 'image_only', 'n_patients': 80, 'auc': 0.70, 'auc_ci_low': 0.58,
         'auc_ci_high': 0.82, 'p_value': 0.2}]})
    return root


@pytest.fixture
def demo_folder():
    """``demo_folder(root, file__field=value, ...)``: the files make validate reads, every
    bar passed (files: det_test, det_val, prediction, gtv, fusion, clinical)."""
    return _demo_folder
