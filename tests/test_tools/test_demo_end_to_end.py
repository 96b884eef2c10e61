"""`make demo` end to end on tiny data: every step runs, is wired to the next, and every
reported figure can be recomputed from the rows it was computed from.

The session fixture ``tiny_demo`` (tests/conftest.py) runs tools/demo.py as
``make demo`` does -- the same configs and code paths, plus its
``--end-to-end`` and ``--cnn-baselines`` steps -- on 12 small synthetic
patients whose DICOM headers carry planted names, IDs, dates and institution,
with 10 detector and 6 classifier iterations. Nothing here asserts model
quality (a 10-iteration detector finds nothing reliably): the detector finding
the held-out patient's tumour, on target and not everywhere, and the AUC's
interval above 0.5 are ``make validate``'s bars (tools/validate.py,
mmnpc/evaluation/quality_bars.py), checked on the full demo. Here: the report
has every block; the slice threshold fitted on the validation slices reaches
the end-to-end evaluation and the prediction; AUCs, cut-offs and the paired
comparison recompute from the CSV rows; testing the same checkpoint again gives
the same scores; tools/validate.py reads the folder; no planted identifier
reaches any output or the console. The detection RTSTRUCT must reference the
input images, so it alone may (and must) carry the input series' UIDs.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from data_prep.testing.phi import find_identifiers
from mmnpc.evaluation import delong_auc_ci, delong_paired_test, youden_cutoff

REPO = Path(__file__).resolve().parents[2]
UID_CARRIER = 'detections_rtstruct.dcm'
pytestmark = pytest.mark.slow


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _nan(value) -> float:
    return float('nan') if value is None else value


def _rows(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={'patient_id': str})


def test_every_step_writes_its_block_of_the_report(tiny_demo):
    work = tiny_demo.work
    report = (work / 'report.md').read_text()
    for heading in ('Stage 1', 'Stage 2', 'Survival', 'End-to-end: the score',
                    'Prediction for held-out patient', 'Baselines (test patients',
                    'Checked against the patient\'s own contours', 'Late fusion',
                    'Where the image model looks (Grad-CAM)', 'intention to treat'):
        assert heading in report, heading
    assert 'Not run, for time' not in report  # --end-to-end and --cnn-baselines ran
    assert (work / 'report.html').read_text().count(';base64,') >= 4  # detections, ROC, 2 KM
    val, test = _json(work / 'detector' / 'val' / 'metrics.json'), \
        _json(work / 'detector' / 'test' / 'metrics.json')
    assert (val['split'], test['split']) == ('val_step4', 'test_step8')
    assert list((work / 'detector' / 'test').glob('*/show/*.jpg'))  # the pictures
    test_patients = _rows(work / 'data' / 'clinical.csv').query('split == "test"')
    for folder in ('msom_cet1_cpu', 'late_fusion', 'clinical_baseline'):
        metrics = _json(work / folder / 'metrics.json')
        assert metrics['eval_split'] == 'test', folder
        assert metrics['n_val_patients'] == len(test_patients) == 3, folder
    fit = _json(work / 'late_fusion' / 'metrics.json')
    assert fit['late_fusion_fit_split'] == 'val' and fit['late_fusion_n_fit_patients'] == 3
    comparison = _json(work / 'comparison' / 'comparison.json')
    assert [m['model'] for m in comparison['models']] == [
        'late_fusion', 'clinical_only', 'image_only', 'early_fusion', 'whole_slice',
        'end_to_end']
    assert (work / 'msom_cet1_cpu' / 'survival' / 'survival.json').is_file()
    assert (work / 'msom_cet1_cpu' / 'deployment.json').is_file()
    cam = _json(work / 'msom_cet1_cpu' / 'cam' / 'cam_summary.json')
    assert cam['eval_split'] == 'test' and cam['groups']['all']['n_patients'] == 3
    assert list((work / 'msom_cet1_cpu' / 'cam').glob('montage_*.png'))
    e2e = _json(work / 'end_to_end' / 'metrics.json')
    assert e2e['itt_n_val_patients'] == 3  # intention to treat: no test patient drops out
    assert 'clinical_baseline' in e2e['itt_fallback']


def test_the_validation_slice_threshold_reaches_end_to_end_and_prediction(tiny_demo):
    work = tiny_demo.work
    youden = _json(work / 'detector' / 'val' / 'metrics.json')['slice_scores']['any']['youden_thr']
    end_to_end = _json(work / 'end_to_end' / 'metrics.json')
    deployment = _json(work / 'msom_cet1_cpu' / 'deployment.json')
    prediction = _json(next(work.glob('predict_*/prediction.json')))
    expected = 0.5 if youden is None else youden  # no fitted threshold: the 0.5 default
    assert end_to_end['det_score_thr'] == deployment['det_score_thr'] == expected
    assert prediction['det_score_thr'] == expected
    # the prediction is the late-fused score, at the fusion's cut-off (val patients)
    assert prediction['cutoff_source'] == str(work / 'late_fusion' / 'metrics.json')
    assert prediction['cutoff'] == _json(work / 'late_fusion' / 'metrics.json')['cutoff']
    if prediction['msom_score'] is not None:
        from mmnpc.evaluation.late_fusion import load_late_fusion
        fusion, _ = load_late_fusion(work / 'late_fusion')
        assert prediction['msom_score'] == pytest.approx(float(fusion.score(
            [prediction['clinical_score']], [prediction['image_score']])[0]), abs=1e-4)  # 6 digits
    assert prediction['patient_id'] in set(_rows(work / 'data' / 'clinical.csv')
                                           .query('split == "test"')['patient_id'])
    check = _json(next(work.glob('predict_*/detection_check.json')))
    assert check['patient_id'] == prediction['patient_id'] and 'GTV' in check['classes']


def test_reported_figures_recompute_from_the_rows(tiny_demo):
    work = tiny_demo.work
    rows = _rows(work / 'msom_cet1_cpu' / 'patient_scores.csv')
    metrics = _json(work / 'msom_cet1_cpu' / 'metrics.json')
    test, train = rows[rows['split'] == 'test'], rows[rows['split'] == 'train']
    assert metrics['auc'] == pytest.approx(delong_auc_ci(test['score'], test['label']).auc)
    assert metrics['cutoff'] == pytest.approx(youden_cutoff(train['score'], train['label']))
    labels = _rows(work / 'data' / 'clinical.csv').set_index('patient_id')['msom'].astype(int)
    assert (rows['label'] == rows['patient_id'].map(labels)).all()  # the converter's labels
    # the paired comparison, recomputed from every model's rows on the test patients all of
    # them scored (the end-to-end score has none where the detector found nothing)
    sources = {'late_fusion': ('late_fusion', 'score'),
               'clinical_only': ('clinical_baseline', 'score'),
               'image_only': ('msom_cet1_cpu', 'score'),
               'early_fusion': ('msom_fusion_cpu', 'score'),
               'whole_slice': ('msom_cet1_tiny', 'score'),
               'end_to_end': ('end_to_end', 'end_to_end_score')}
    scores = {}
    for model, (folder, column) in sources.items():
        table = _rows(work / folder / 'patient_scores.csv')
        table = table[(table['split'] == 'test') & table[column].notna()]
        scores[model] = table.set_index('patient_id')[column]
    common = sorted(set.intersection(*(set(s.index) for s in scores.values())))
    labels_common = test.set_index('patient_id').loc[common, 'label']
    for row in _json(work / 'comparison' / 'comparison.json')['models']:
        model = row['model']
        assert row['n_patients'] == len(common), model
        paired = delong_paired_test(scores['late_fusion'][common], scores[model][common],
                                    labels_common)
        assert _nan(row['auc']) == pytest.approx(paired.auc_b, nan_ok=True), model
        if model != 'late_fusion':
            assert _nan(row['difference_vs_reference']) == pytest.approx(
                paired.difference, nan_ok=True), model
    # the end-to-end evaluation's deployment cut-off: Youden on its training rows
    e2e = _rows(work / 'end_to_end' / 'patient_scores.csv')
    e2e_train = e2e[(e2e['split'] == 'train') & e2e['end_to_end_score'].notna()]
    deployment = _json(work / 'msom_cet1_cpu' / 'deployment.json')
    if e2e_train['label'].nunique() == 2:
        assert deployment['cutoff'] == pytest.approx(
            youden_cutoff(e2e_train['end_to_end_score'], e2e_train['label']))
    else:
        assert deployment['cutoff'] is None


def test_testing_the_same_checkpoint_again_gives_the_same_scores(tiny_demo, tmp_path):
    work = tiny_demo.work
    checkpoint = (work / 'msom_cet1_cpu' / 'last_checkpoint').read_text().strip()
    result = subprocess.run(
        [sys.executable, 'tools/test.py', 'configs/msom_cet1_cpu.py', checkpoint,
         '--data-root', str(work / 'data'), '--work-dir', str(tmp_path)],
        cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    again = _rows(tmp_path / 'patient_scores.csv')
    pd.testing.assert_frame_equal(again, _rows(work / 'msom_cet1_cpu' / 'patient_scores.csv'))


def test_validate_reads_the_demo_folder_and_prints_every_bar(tiny_demo, tmp_path):
    """The tiny models miss the bars (not asserted); what matters is that the figures
    that exist whatever the models' quality are found in the folder's files, so a
    broken file layout cannot pass as a mere miss."""
    result = subprocess.run([sys.executable, 'tools/validate.py', '--work-dir',
                             str(tiny_demo.work), '--no-run', '--out',
                             str(tmp_path / 'validation.json')], cwd=REPO, capture_output=True,
                            text=True)
    assert result.returncode in (0, 1), result.stderr[-3000:]
    assert 'bars missed' in result.stdout
    records = _json(tmp_path / 'validation.json')['checks']
    assert sum(c['passed'] is not None for c in records) == 12  # the bars; the rest information
    assert [c['name'].split(' AUC')[0] for c in records if c['passed'] is None] == [
        'image_only', 'early_fusion', 'whole_slice', 'end_to_end']  # the other models
    checks = {c['name']: c['value'] for c in records}
    assert checks['detector GTV box AP@0.5 (test_step8)'] is not None
    prediction = _json(next(tiny_demo.work.glob('predict_*/prediction.json')))
    patient = prediction['patient_id']
    assert checks[f'{patient}: prediction status'] == prediction['status']
    assert checks[f'{patient}: slices marked of slices total (not every slice)'] == (
        f'{prediction["n_slices_with_tumour"]} / {prediction["n_slices_total"]}')
    assert checks['classifier evaluated on'] == 'test'


def test_no_planted_identifier_in_any_output_or_log(tiny_demo):
    work = tiny_demo.work
    outputs = [p for p in work.iterdir() if p.name != 'cohort']
    hits = find_identifiers(outputs, tiny_demo.identifiers, texts={'demo console': tiny_demo.log})
    allowed = [h for h in hits if Path(h.source).name == UID_CARRIER and h.identifier[0].isdigit()
               and '.' in h.identifier]  # referencing UIDs in the RTSTRUCT only
    assert [h for h in hits if h not in allowed] == []
