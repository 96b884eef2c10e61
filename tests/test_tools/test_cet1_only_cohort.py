"""A cohort with CE-T1WI only, end to end with the tiny configs, as a user runs it.

Many groups have only the contrast-enhanced T1 series. The synthetic cohort is
written with all three sequences and the T1 / T2 series (and the RTSTRUCTs drawn
on them) are deleted; then: ``data_prep convert --sequences cet1``, stage 1
(train + test), stage 2 from the stage-1 checkpoint (train + test) and
``tools/predict.py`` on a test patient's DICOM folder. A few iterations only:
what is checked is that nothing in the chain asks for a T1 or T2 series, not
the quality of the models.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from data_prep.discover import scan_patient
from data_prep.options import PrepOptions
from data_prep.rtstruct import read_references
from data_prep.synth import synthesize_cohort

REPO = Path(__file__).resolve().parents[2]
DET_CONFIG = 'configs/det_cet1_tiny.py'
CLS_CONFIG = 'configs/msom_fusion_tiny.py'
pytestmark = pytest.mark.slow  # five tool runs of a ResNet-50 Mask R-CNN / classifier (~3 min)


def _run(*args: str) -> str:
    """Run a tool from the repo root; fail the test with its output if it fails."""
    result = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, (f'{args[0]} failed:\n{result.stdout[-3000:]}\n'
                                    f'{result.stderr[-3000:]}')
    return result.stdout + result.stderr


def _keep_cet1_only(patient_dir: Path) -> None:
    """Delete the patient's T1 / T2 series and the RTSTRUCTs that refer to them."""
    options = PrepOptions()
    series = scan_patient(patient_dir, patient_dir.name)
    cet1 = {s.series_uid for s in series
            if s.modality == 'MR' and options.sequence_of(s.description) == 'cet1'}
    assert len(cet1) == 1
    for info in series:
        if info.modality == 'MR':
            keep = info.series_uid in cet1
        else:
            refs = read_references(info.files[0], patient_dir.name, None)
            keep = bool(refs.series_uids & cet1)
        if not keep:
            for path in info.files:
                path.unlink()


def _iters(n: int) -> list[str]:
    return ['--cfg-options', f'train_cfg.max_iters={n}', f'train_cfg.val_interval={n}',
            f'default_hooks.checkpoint.interval={n}']


@pytest.fixture(scope='module')
def pipeline(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('cet1_only')
    cohort = synthesize_cohort(tmp / 'cohort', 6, seed=3, matrix=48, pixel_mm=4.8, n_slices=6,
                               slice_mm=6.0, progress=False)
    for patient_dir in sorted(p for p in cohort.iterdir() if p.is_dir()):
        _keep_cet1_only(patient_dir)
    table = pd.read_csv(cohort / 'clinical.csv', dtype=str)
    by_label = table.sort_values(['msom', 'patient_id'])
    ids = list(by_label['patient_id'])  # 0s first, then 1s: both classes in train and test
    splits = {ids[0]: 'test', ids[-1]: 'test', ids[1]: 'val'}
    splits.update({p: 'train' for p in ids if p not in splits})
    (tmp / 'split.csv').write_text('patient_id,split\n' + ''.join(
        f'{p},{s}\n' for p, s in splits.items()))
    data = tmp / 'data'
    _run('-m', 'data_prep', 'convert', str(cohort), str(data), '--sequences', 'cet1',
         '--split-file', str(tmp / 'split.csv'), '--no-progress')
    det = tmp / 'det'
    _run('tools/train.py', DET_CONFIG, '--data-root', str(data), '--work-dir', str(det),
         *_iters(2))
    _run('tools/test.py', DET_CONFIG, str(det / 'iter_2.pth'), '--data-root', str(data),
         '--work-dir', str(det / 'test'))
    cls = tmp / 'cls'
    _run('tools/train.py', CLS_CONFIG, '--data-root', str(data), '--work-dir', str(cls),
         '--det-checkpoint', str(det / 'iter_2.pth'), *_iters(2))
    _run('tools/test.py', CLS_CONFIG, str(cls / 'iter_2.pth'), '--data-root', str(data),
         '--work-dir', str(cls / 'test'))
    patient = ids[0]
    row = table.set_index('patient_id').loc[patient]
    clinical = {k: (None if pd.isna(v) else v) for k, v in row.items()}
    (tmp / 'patient.json').write_text(json.dumps(clinical))
    out = tmp / 'prediction'
    _run('tools/predict.py', str(cohort / patient), '--det-checkpoint', str(det / 'iter_2.pth'),
         '--cls-checkpoint', str(cls / 'iter_2.pth'), '--config', CLS_CONFIG,
         '--clinical', str(tmp / 'patient.json'), '--cutoff', '0.5', '--out', str(out),
         '--det-score-thr', '0', '--coarse-step', '1')
    return tmp, cohort, data, splits, out


def test_the_cohort_has_no_t1_or_t2_left(pipeline):
    _, cohort, data, _, _ = pipeline
    options = PrepOptions()
    for patient_dir in sorted(p for p in cohort.iterdir() if p.is_dir()):
        kinds = {options.sequence_of(s.description) for s in scan_patient(patient_dir,
                                                                            patient_dir.name)
                 if s.modality == 'MR'}
        assert kinds == {'cet1'}
    assert sorted(p.name for p in data.iterdir() if p.is_dir()) == ['cet1']
    manifest = json.loads((data / 'manifest.json').read_text())
    assert manifest['parameters']['sequences'] == ['cet1']


def test_both_stages_report_on_the_test_patients(pipeline):
    tmp, _, _, splits, _ = pipeline
    det_metrics = json.loads((tmp / 'det' / 'test' / 'metrics.json').read_text())
    assert det_metrics['split'] == 'test'
    cls_metrics = json.loads((tmp / 'cls' / 'test' / 'metrics.json').read_text())
    assert cls_metrics['eval_split'] == 'test'
    rows = pd.read_csv(tmp / 'cls' / 'test' / 'patient_scores.csv', dtype={'patient_id': str})
    tested = set(rows.loc[rows['split'] == 'test', 'patient_id'])
    assert tested == {p for p, s in splits.items() if s == 'test'}
    assert rows['score'].between(0, 1).all()


def test_a_new_cet1_only_patient_gets_a_score(pipeline):
    _, _, _, _, out = pipeline
    prediction = json.loads((out / 'prediction.json').read_text())
    assert prediction['status'] == 'ok'
    assert 0.0 <= prediction['msom_score'] <= 1.0
    assert (out / 'detections_rtstruct.dcm').exists()
    shutil.rmtree(out)  # keep tmp small
