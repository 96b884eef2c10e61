"""`make demo` end to end, with identifiers planted in the cohort.

Runs tools/demo.py as `make demo` does -- every step, the same configs and code
paths -- but on a smaller cohort with shorter schedules (DEMO_ARGS: 12 patients,
40 detector and 20 classifier iterations instead of 24 / 200 / 40), so that it
fits CI's time budget beside the other slow tests; the figures of a full
`make demo` are not asserted here. The cohort's DICOM headers carry planted
names, IDs, dates and institution; the test checks the report and scans every
output and the whole console log for the planted values. The detection
RTSTRUCT must reference the input images, so it alone may (and must) carry the
input series' UIDs.
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
PATIENTS = 12
DEMO_ARGS = ['--patients', str(PATIENTS), '--det-iters', '40', '--cls-iters', '20']


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
                    'Baselines (test patients', 'End-to-end: the score a new patient gets'):
        assert heading in report
    assert (work / 'report.html').read_text().count(';base64,') >= 4  # detections, ROC, 2 KM
    det = json.loads((work / 'det_cet1_tiny' / 'metrics.json').read_text())
    assert 0.0 <= det['mAP50'] <= 1.0
    cls = json.loads((work / 'msom_fusion_tiny' / 'metrics.json').read_text())
    assert cls['n_val_patients'] == PATIENTS // 4 and cls['cutoff'] is not None
    assert cls['eval_split'] == 'test' and det['split'] == 'test'  # a quarter held out
    e2e = json.loads((work / 'end_to_end' / 'metrics.json').read_text())
    assert e2e['eval_split'] == 'test' and e2e['test_n_patients'] == PATIENTS // 4
    assert (work / 'end_to_end' / 'deployment.json').is_file()
    comparison = json.loads((work / 'comparison' / 'comparison.json').read_text())
    assert [m['model'] for m in comparison['models']] == [
        'fusion', 'clinical_only', 'image_only', 'max_slice', 'end_to_end']
    assert (work / 'msom_fusion_tiny' / 'survival' / 'survival.json').is_file()
    # the slice threshold: fitted on the validation patients' slices, deployed end to end and
    # in prediction (the 0.5 default only when those slices fit none)
    fitted = json.loads((work / 'det_cet1_tiny' / 'val' / 'metrics.json').read_text())
    assert fitted['split'] == 'val'
    youden = fitted['slice_scores']['any']['youden_thr']
    assert e2e['det_score_thr'] == (0.5 if youden is None else youden)
    if youden is not None:
        assert e2e['det_score_thr_source'].startswith(str(work / 'det_cet1_tiny' / 'val'))
    prediction = json.loads(next(work.glob('predict_*/prediction.json')).read_text())
    assert prediction['det_score_thr'] == e2e['det_score_thr']
    assert prediction['status'] in ('ok', 'no_tumour_detected')
    assert (prediction['msom_score'] is None) == (prediction['status'] != 'ok')


@pytest.mark.slow
def test_no_planted_identifier_in_any_output_or_log(demo):
    work, identifiers, log = demo
    outputs = [p for p in work.iterdir() if p.name != 'cohort']
    hits = find_identifiers(outputs, identifiers, texts={'demo console': log})
    allowed = [h for h in hits if Path(h.source).name == UID_CARRIER and h.identifier[0].isdigit()
               and '.' in h.identifier]  # referencing UIDs in the RTSTRUCT only
    assert [h for h in hits if h not in allowed] == []
