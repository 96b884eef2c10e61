"""make validate's bars read from a demo folder: passes, misses and missing files."""
from __future__ import annotations

import pytest

from mmnpc.evaluation.quality_bars import demo_checks, failed


def test_the_readme_run_passes_every_bar(demo_folder, tmp_path):
    checks = demo_checks(demo_folder(tmp_path))
    assert failed(checks) == []
    assert sum(c.passed is None for c in checks) == 1  # image-only: information only
    assert any('image_only' in c.name and '0.700' in c.value for c in checks)
    assert any('minus clinical-only' in c.name and 'p 0.040' in c.name and c.value == 0.10
               for c in checks)


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
    ({'fusion__auc_ci_low': 0.5}, 'AUC 95% CI'),
    ({'fusion__eval_split': 'val'}, 'evaluated on'),
    ({'clinical__difference_vs_reference': 0.0}, 'minus clinical-only'),
    ({'clinical__difference_vs_reference': None}, 'minus clinical-only'),
])
def test_each_bar_fails_on_its_own(demo_folder, tmp_path, change, name):
    missed = failed(demo_checks(demo_folder(tmp_path, **change)))
    assert [name in c.name for c in missed] == [True], missed


def test_missing_files_fail_instead_of_passing(tmp_path):
    checks = demo_checks(tmp_path)  # an empty folder: the demo never ran
    assert all(c.passed is False for c in checks if c.passed is not None)
    assert len(failed(checks)) == len([c for c in checks if c.passed is not None]) >= 10


def test_a_second_prediction_folder_fails_instead_of_being_guessed(demo_folder, tmp_path):
    work = demo_folder(tmp_path)
    (work / 'predict_NPC009').mkdir()
    (work / 'predict_NPC009' / 'prediction.json').write_text('{"status": "ok"}')
    assert 'prediction status' in failed(demo_checks(work))[0].name
