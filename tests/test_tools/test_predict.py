"""tools/predict.py as a user runs it: checkpoints in, prediction folder (or a clear refusal) out.

A patient of the shared synthetic cohort (tests/conftest.py); the checkpoints
hold untrained weights (built from the tiny configs and saved the way the
Runner saves them), so the detector finds nothing at a 0.99 threshold: this
checks the command line, the no-detection path and the cut-off rule.
Detections landing on the tumour are tested in tests/test_mmnpc/test_inference
with an oracle detector, and with trained models by ``make validate`` on the
demo (tools/validate.py).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mmnpc.testing import save_untrained

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # runs a ResNet-50 Mask R-CNN on a patient's slices


def _save_untrained(config: str, path: Path) -> Path:
    return save_untrained(REPO / config, path)


@pytest.fixture(scope='module')
def setup(tmp_path_factory, synthetic_cohort):
    tmp = tmp_path_factory.mktemp('predict')
    patient = sorted(p for p in synthetic_cohort.path.iterdir() if p.is_dir())[0]
    det = _save_untrained('configs/det_cet1_tiny.py', tmp / 'det.pth')
    cls_dir = tmp / 'cls'
    cls_dir.mkdir()
    cls = _save_untrained('configs/msom_cet1_tiny.py', cls_dir / 'cls.pth')
    return tmp, patient, det, cls


def _predict(patient: Path, det: Path, cls: Path, out: Path, *extra: str):
    return subprocess.run(
        [sys.executable, 'tools/predict.py', str(patient), '--det-checkpoint', str(det),
         '--cls-checkpoint', str(cls), '--config', 'configs/msom_cet1_tiny.py', '--out', str(out),
         *extra], cwd=REPO, capture_output=True, text=True)


def test_no_cutoff_is_refused(setup):
    tmp, patient, det, cls = setup
    result = _predict(patient, det, cls, tmp / 'out_nocut')
    assert result.returncode != 0
    assert 'no cut-off' in result.stderr and 'metrics.json' in result.stderr
    assert not (tmp / 'out_nocut').exists()


def test_no_detection_gives_a_message_and_exit_status_2(setup):
    tmp, patient, det, cls = setup
    (cls.parent / 'metrics.json').write_text(json.dumps({'cutoff': 0.4}))
    out = tmp / 'out'
    result = _predict(patient, det, cls, out, '--det-score-thr', '0.99', '--seg')
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert not (out / 'detections_seg.dcm').exists()  # nothing detected: no SEG either
    assert 'no MSOM risk' in result.stdout and patient.name in result.stdout
    record = json.loads((out / 'prediction.json').read_text())
    assert record['status'] == 'no_tumour_detected' and record['msom_score'] is None
    assert record['cutoff'] == 0.4 and record['cutoff_source'].endswith('metrics.json')
    assert record['n_slices_total'] > 0 and record['slices'] == []
