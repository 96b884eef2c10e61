"""tools/check_detections.py: a prediction.json against the patient's own RTSTRUCT.

Predictions are written by hand from the contours (an oracle on every contour
plane, the same shifted in-plane, one that marks every slice), so the figures
the tool reports are known in advance; the trained-model case is the demo's
end-to-end test.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from data_prep.synth import synthesize_cohort
from mmnpc.evaluation.detection_check import reference_planes
from mmnpc.evaluation.reference_contours import reference_contours

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def patient(tmp_path_factory):
    cohort = synthesize_cohort(tmp_path_factory.mktemp('check') / 'cohort', 1, seed=2, matrix=48,
                               progress=False)
    return next(p for p in Path(cohort).iterdir() if p.is_dir())


def _prediction(folder: Path, patient_id: str, planes: dict, shift=(0.0, 0.0),
                extra_z=(), n_total: int = 200) -> Path:
    slices = [{'z_mm': z, 'detections': [{'class': 'GTV', 'score': 0.9, 'centroid_lps_mm': [
        float(c[0] + shift[0]), float(c[1] + shift[1]), z]}]} for z, c in planes.items()]
    slices += [{'z_mm': z, 'detections': [{'class': 'GTV', 'score': 0.6,
                                           'centroid_lps_mm': [0.0, 0.0, z]}]} for z in extra_z]
    folder.mkdir()
    (folder / 'prediction.json').write_text(json.dumps({
        'patient_id': patient_id, 'sequence': 'cet1', 'n_slices_total': n_total,
        'n_slices_looked_at': n_total, 'n_slices_with_tumour': len(slices), 'slices': slices}))
    return folder


def _check(predict_dir: Path, patient: Path):
    return subprocess.run([sys.executable, 'tools/check_detections.py', str(predict_dir),
                           str(patient)], cwd=REPO, capture_output=True, text=True)


def test_reference_contours_are_the_cet1_rtstruct_in_patient_mm(patient):
    reference = reference_contours(patient, patient.name, 'cet1')
    assert set(reference.contours) == {'GTV', 'GTVln'} and reference.drawn_on == 'cet1'
    assert not Path(reference.file).is_absolute()  # named inside the patient folder
    for contours in reference.contours.values():
        assert all(c.ndim == 2 and c.shape[1] == 3 for c in contours)
        assert all(np.ptp(c[:, 2]) < 1e-3 for c in contours)  # planar, axial


def test_an_oracle_a_shifted_and_an_everything_prediction(patient, tmp_path):
    planes = reference_planes(reference_contours(patient, patient.name, 'cet1').contours['GTV'])

    result = _check(_prediction(tmp_path / 'oracle', patient.name, planes), patient)
    assert result.returncode == 0, result.stderr
    gtv = json.loads((tmp_path / 'oracle' / 'detection_check.json').read_text())['classes']['GTV']
    assert gtv['slice_recall'] == 1.0 and gtv['slice_precision'] == 1.0
    assert gtv['centroid_distance_mm']['max'] == pytest.approx(0.0, abs=1e-6)
    assert 'GTV: slice recall 1.00' in result.stdout

    _check(_prediction(tmp_path / 'shifted', patient.name, planes, shift=(3.0, 4.0)), patient)
    gtv = json.loads((tmp_path / 'shifted' / 'detection_check.json').read_text())['classes']['GTV']
    assert gtv['centroid_distance_mm']['median'] == pytest.approx(5.0)

    # marking slices far above and below the tumour costs precision, not recall
    far = [max(planes) + 20.0 + k for k in range(len(planes))]
    _check(_prediction(tmp_path / 'all', patient.name, planes, extra_z=far), patient)
    gtv = json.loads((tmp_path / 'all' / 'detection_check.json').read_text())['classes']['GTV']
    assert gtv['slice_recall'] == 1.0 and gtv['slice_precision'] == pytest.approx(0.5)


def test_a_prediction_of_another_patient_is_refused(patient, tmp_path):
    folder = _prediction(tmp_path / 'other', 'NPC999', {0.0: np.zeros(2)})
    result = _check(folder, patient)
    assert result.returncode != 0 and 'NPC999' in result.stderr
    assert not (folder / 'detection_check.json').exists()
