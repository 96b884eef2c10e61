"""make validate's bars read from a demo folder: passes, misses and missing files."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmnpc.evaluation.quality_bars import demo_checks, failed


def _write(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def demo_folder(root: Path, **changes) -> Path:
    """A finished demo's files with the figures of the README's run, ``changes`` applied
    as ``file_key=value`` (files: det_test, det_val, prediction, gtv, cls)."""
    det_test = {'split': 'test_step16', 'GTV_AP50': 0.868, 'GTVln_AP50': 0.632}
    det_val = {'split': 'val_step4', 'slice_scores': {'any': {'youden_thr': 0.655}}}
    prediction = {'patient_id': 'NPC001', 'status': 'ok', 'n_slices_with_tumour': 38,
                  'n_slices_total': 85}
    gtv = {'slice_recall': 1.0, 'slice_precision': 1.0,
           'centroid_distance_mm': {'median': 1.1, 'max': 2.9, 'n': 38}}
    cls = {'eval_split': 'test', 'auc': 0.650, 'auc_ci_low': 0.530, 'auc_ci_high': 0.770}
    records = {'det_test': det_test, 'det_val': det_val, 'prediction': prediction, 'gtv': gtv,
               'cls': cls}
    for key, value in changes.items():
        file, field = key.split('__')
        records[file][field] = value
    _write(root / 'detector' / 'test' / 'metrics.json', det_test)
    _write(root / 'detector' / 'val' / 'metrics.json', det_val)
    _write(root / 'predict_NPC001' / 'prediction.json', prediction)
    _write(root / 'predict_NPC001' / 'detection_check.json', {'classes': {'GTV': gtv}})
    _write(root / 'msom_fusion_tiny' / 'metrics.json', cls)
    _write(root / 'comparison' / 'comparison.json', {'models': [
        {'model': 'fusion', 'auc': 0.65}, {'model': 'clinical_only', 'n_patients': 80,
                                           'auc': 0.66, 'auc_ci_low': 0.539,
                                           'auc_ci_high': 0.782, 'p_value': 0.70}]})
    return root


def test_the_readme_run_passes_every_bar(tmp_path):
    checks = demo_checks(demo_folder(tmp_path))
    assert failed(checks) == []
    assert sum(c.passed is None for c in checks) == 1  # clinical-only: information only
    assert any('clinical_only' in c.name and '0.660' in c.value for c in checks)


@pytest.mark.parametrize('change, name', [
    ({'det_test__GTV_AP50': 0.70}, 'detector GTV'),
    ({'det_test__GTVln_AP50': None}, 'detector GTVln'),
    ({'det_val__slice_scores': {'any': {'youden_thr': None}}}, 'slice threshold'),
    ({'prediction__status': 'no_tumour_detected'}, 'prediction status'),
    ({'gtv__slice_recall': 0.5}, 'slice recall'),
    ({'gtv__centroid_distance_mm': {'median': 6.0, 'n': 38}}, 'median mm'),
    ({'gtv__centroid_distance_mm': {'median': 1.0, 'n': 2}}, 'centroid distance'),
    ({'prediction__n_slices_with_tumour': 85}, 'not every slice'),
    ({'gtv__slice_precision': 0.48}, 'slice precision'),
    ({'cls__auc_ci_low': 0.5}, 'AUC 95% CI'),
    ({'cls__eval_split': 'val'}, 'evaluated on'),
])
def test_each_bar_fails_on_its_own(tmp_path, change, name):
    missed = failed(demo_checks(demo_folder(tmp_path, **change)))
    assert [name in c.name for c in missed] == [True], missed


def test_missing_files_fail_instead_of_passing(tmp_path):
    checks = demo_checks(tmp_path)  # an empty folder: the demo never ran
    assert all(c.passed is False for c in checks if c.passed is not None)
    assert len(failed(checks)) == len([c for c in checks if c.passed is not None]) >= 10
