"""experiments/synthetic_reference.py: the generator's latents scored on a split, cohort checked."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from data_prep.synth import plan_cohort

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def reference(load_experiment):
    module = load_experiment('synthetic_reference')
    return module


def write_clinical(path: Path, plans, flip: str | None = None) -> None:
    with open(path / 'clinical.csv', 'w', newline='') as handle:
        writer = csv.DictWriter(handle, fieldnames=['patient_id', 'msom', 'split'])
        writer.writeheader()
        for i, plan in enumerate(plans):
            msom = int(plan.clinical['msom'])
            writer.writerow({'patient_id': plan.patient_id,
                             'msom': 1 - msom if plan.patient_id == flip else msom,
                             'split': 'test' if i % 2 else 'train'})


def test_latent_aucs_on_the_test_patients(tmp_path, reference):
    plans = plan_cohort(40, 3)
    write_clinical(tmp_path, plans)
    assert reference.main(['--data-root', str(tmp_path), '--patients', '40', '--seed', '3']) == 0
    result = json.loads((tmp_path / 'synthetic_reference.json').read_text())
    test = [p for i, p in enumerate(plans) if i % 2]
    labels = [int(p.clinical['msom']) for p in test]
    assert result['n_patients'] == 20 and result['n_positive'] == sum(labels)
    for latent in ('z_img', 'z_node', 'image_risk', 'clinical_score', 'oracle_risk'):
        expected = roc_auc_score(labels, [getattr(p, latent) for p in test])
        record = result['latents'][latent]
        assert record['auc'] == pytest.approx(expected)
        assert record['auc_ci_low'] <= record['auc'] <= record['auc_ci_high']
    assert not np.isclose(result['latents']['z_img']['auc'],
                          result['latents']['oracle_risk']['auc'])
    assert result['generator_version'] == 2


def test_a_version_1_cohort_is_replanned_with_its_version(tmp_path, reference):
    plans = plan_cohort(40, 3, generator_version=1)
    write_clinical(tmp_path, plans)
    args = ['--data-root', str(tmp_path), '--patients', '40', '--seed', '3']
    assert reference.main([*args, '--generator-version', '1']) == 0
    result = json.loads((tmp_path / 'synthetic_reference.json').read_text())
    assert result['latents']['z_node']['auc'] == pytest.approx(0.5)  # no nodal signal in v1
    assert result['latents']['image_risk']['auc'] == pytest.approx(result['latents']['z_img']['auc'])
    v2 = {p.patient_id: int(p.clinical['msom']) for p in plan_cohort(40, 3)}
    assert v2 != {p.patient_id: int(p.clinical['msom']) for p in plans}  # outcomes differ
    with pytest.raises(SystemExit, match='--seed or --patients'):
        reference.main(args)  # re-planned as version 2: the labels disagree


def test_labels_that_differ_from_the_replanned_cohort_are_refused(tmp_path, reference):
    plans = plan_cohort(12, 0)
    write_clinical(tmp_path, plans, flip='NPC005')
    with pytest.raises(SystemExit, match='NPC005.*--seed'):
        reference.main(['--data-root', str(tmp_path), '--patients', '12', '--seed', '0'])
    write_clinical(tmp_path, plans)
    with pytest.raises(SystemExit, match='not in a cohort of 10'):
        reference.main(['--data-root', str(tmp_path), '--patients', '10', '--seed', '0'])
    with pytest.raises(SystemExit, match="no 'val' patient"):
        reference.main(['--data-root', str(tmp_path), '--patients', '12', '--seed', '0',
                        '--eval-split', 'val'])


def test_a_split_with_one_class_gives_null_not_nan(tmp_path, reference):
    plans = [p for p in plan_cohort(30, 1) if int(p.clinical['msom']) == 0][:6]
    write_clinical(tmp_path, plans)
    rows = [{'patient_id': p.patient_id, 'msom': p.clinical['msom'], 'split': 'test'}
            for p in plans]
    result = reference.latent_aucs(rows, {p.patient_id: p for p in plans}, 'test')
    assert result['latents']['z_img'] == {'auc': None, 'auc_ci_low': None, 'auc_ci_high': None}
    json.dumps(result, allow_nan=False)
