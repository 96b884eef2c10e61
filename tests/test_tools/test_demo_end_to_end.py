"""`make demo` end to end, with identifiers planted in the cohort.

Runs tools/demo.py as `make demo` does -- every default step, the same configs,
the same 1300-iteration detector (most of this test's time), the same code
paths -- on a smaller cohort (DEMO_ARGS: 80 patients instead of 160, 62 of them
training the detector instead of 56, 8 validation and 10 held out instead of 24
and 80, 20 classifier iterations instead of 500), so that it fits CI's time
budget beside the other slow tests. The detection part is asserted as the issue
asks of this test: the held-out patient's tumour is found (most GTV contour
planes marked), on the tumour (GTV detections within 5 mm of the contours'
centroid), and not everywhere (fewer slices marked than the patient has, most of
them on a contour plane). The full demo's detector marks only tumour slices
(README "Quick start"); this cohort's does not: with 62 training patients it
also marked 20 slices below the tumour where a bright vessel passes for a node
(64 of 85 slices marked at the validation-fitted 0.570, slice precision 0.61,
GTV recall 1.00, centroid 1.1 mm; 2026-12-03), and with 8 or 24 training
patients 76 / 62 slices. The classifier's figures on 10 test patients are not
asserted. The cohort's DICOM headers carry planted names, IDs, dates and
institution; the test checks the report and scans every output and the whole
console log for the planted values. The detection RTSTRUCT must reference the input images, so it
alone may (and must) carry the input series' UIDs.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from data_prep.testing.phi import find_identifiers, plant_identifiers

REPO = Path(__file__).resolve().parents[2]
UID_CARRIER = 'detections_rtstruct.dcm'
PATIENTS = 80
N_TEST = 10  # --test-fraction 0.125
DEMO_ARGS = ['--patients', str(PATIENTS), '--val-fraction', '0.1', '--test-fraction', '0.125',
             '--cls-iters', '20']


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    work = tmp_path_factory.mktemp('demo')
    cohort = work / 'cohort'
    subprocess.run([sys.executable, '-m', 'data_prep', 'synth', str(cohort), '--patients',
                    str(PATIENTS), '--seed', '0', '--no-progress'], cwd=REPO, check=True,
                   capture_output=True)
    identifiers = plant_identifiers(cohort)
    result = subprocess.run([sys.executable, 'tools/demo.py', '--work-dir', str(work), *DEMO_ARGS],
                            cwd=REPO, capture_output=True, text=True)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]
    return work, identifiers, log


@pytest.mark.slow
def test_demo_writes_the_report_with_every_result(demo):
    work, _, _ = demo
    report = (work / 'report.md').read_text()
    for heading in ('Stage 1', 'Stage 2', 'Survival', 'Prediction for held-out patient',
                    'Baselines (test patients', 'Checked against the patient\'s own contours'):
        assert heading in report
    assert 'End-to-end: the score' not in report and 'Not run, for time' in report
    assert (work / 'report.html').read_text().count(';base64,') >= 4  # detections, ROC, 2 KM
    val = json.loads((work / 'detector' / 'val' / 'metrics.json').read_text())
    test = json.loads((work / 'detector' / 'test' / 'metrics.json').read_text())
    assert (val['split'], test['split']) == ('val_step4', 'test_step16')
    cls = json.loads((work / 'msom_fusion_tiny' / 'metrics.json').read_text())
    assert cls['eval_split'] == 'test' and cls['n_val_patients'] == N_TEST
    assert cls['cutoff'] is not None
    comparison = json.loads((work / 'comparison' / 'comparison.json').read_text())
    assert [m['model'] for m in comparison['models']] == ['fusion', 'clinical_only']
    assert (work / 'msom_fusion_tiny' / 'survival' / 'survival.json').is_file()
    assert not (work / 'end_to_end').exists()  # --end-to-end only


@pytest.mark.slow
def test_demo_patient_tumour_is_found_where_it_is(demo):
    """The detector marks the held-out patient's tumour slices, not every slice, at
    the slice threshold fitted on the validation slices, and its GTV detections
    sit on the contoured GTV."""
    work, _, _ = demo
    val = json.loads((work / 'detector' / 'val' / 'metrics.json').read_text())
    youden = val['slice_scores']['any']['youden_thr']
    assert youden is not None
    prediction = json.loads(next(work.glob('predict_*/prediction.json')).read_text())
    assert prediction['det_score_thr'] == youden
    assert prediction['status'] == 'ok' and prediction['msom_score'] is not None
    check = json.loads(next(work.glob('predict_*/detection_check.json')).read_text())
    gtv = check['classes']['GTV']
    # found: most of the GTV's contour planes have a marked slice ...
    assert gtv['slice_recall'] >= 0.6, gtv
    # ... not everywhere: fewer slices marked than the patient has, most of them on
    # a contour plane (an everything-marked prediction has precision 41 / 85 here)
    assert prediction['n_slices_with_tumour'] < prediction['n_slices_total']
    assert gtv['slice_precision'] >= 0.5, gtv
    # on the tumour: the best GTV detection within a few mm of the contours' centroid
    assert gtv['centroid_distance_mm']['n'] >= 3 and gtv['centroid_distance_mm']['median'] <= 5.0


@pytest.mark.slow
def test_no_planted_identifier_in_any_output_or_log(demo):
    work, identifiers, log = demo
    outputs = [p for p in work.iterdir() if p.name != 'cohort']
    hits = find_identifiers(outputs, identifiers, texts={'demo console': log})
    allowed = [h for h in hits if Path(h.source).name == UID_CARRIER and h.identifier[0].isdigit()
               and '.' in h.identifier]  # referencing UIDs in the RTSTRUCT only
    assert [h for h in hits if h not in allowed] == []
