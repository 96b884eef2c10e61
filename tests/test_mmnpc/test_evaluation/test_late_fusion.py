"""Late fusion: a two-input regression fitted on validation patients, never on test ones."""
import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from mmnpc.evaluation import delong_auc_ci
from mmnpc.evaluation.late_fusion import (fit_late_fusion, fused_patient_table,
                                          late_fusion_table)


def _tables(seed=0, n=600):
    """Clinical and image scores each carrying an independent half of the risk."""
    rng = np.random.default_rng(seed)
    clinical_latent, image_latent = rng.normal(size=n), rng.normal(size=n)
    label = (rng.uniform(size=n) < expit(1.2 * clinical_latent + 1.2 * image_latent)).astype(int)
    split = np.array(['train'] * (n // 3) + ['val'] * (n // 3) + ['test'] * (n - 2 * (n // 3)))
    ids = [f'P{i:03d}' for i in range(n)]
    clinical = pd.DataFrame({'patient_id': ids, 'split': split, 'label': label,
                             'score': expit(clinical_latent + rng.normal(0, 0.3, n)),
                             'n_slices': 0})
    image = pd.DataFrame({'patient_id': ids, 'split': split, 'label': label,
                          'score': expit(image_latent + rng.normal(0, 0.3, n)), 'n_slices': 5})
    return image, clinical


def test_fit_uses_the_fit_split_only_and_matches_sklearn():
    """Centred on 0 the penalty is scikit-learn's LogisticRegression(C=1)."""
    image, clinical = _tables()
    table = late_fusion_table(image, clinical)
    model = fit_late_fusion(table, fit_split='val', prior_weight=0)
    val = table[table['split'] == 'val']
    x = np.column_stack([np.log(val[c] / (1 - val[c])) for c in ('clinical_score', 'image_score')])
    reference = LogisticRegression(C=1.0, tol=1e-10, max_iter=10000).fit(x, val['label'])
    assert model.coef_clinical == pytest.approx(reference.coef_[0, 0], rel=1e-4)
    assert model.coef_image == pytest.approx(reference.coef_[0, 1], rel=1e-4)
    assert model.n_fit_patients == len(val)
    changed = table.copy()  # every test patient's scores and label changed: same model
    test = changed['split'] == 'test'
    changed.loc[test, ['clinical_score', 'image_score']] = 0.5
    changed.loc[test, 'label'] = 1 - changed.loc[test, 'label']
    assert fit_late_fusion(changed, fit_split='val', prior_weight=0) == model
    assert fit_late_fusion(changed) == fit_late_fusion(table)  # default centre as well


def test_fusion_beats_either_input_when_each_holds_part_of_the_risk():
    image, clinical = _tables()
    table = late_fusion_table(image, clinical)
    fused = fused_patient_table(table, fit_late_fusion(table))
    test = fused['split'] == 'test'
    auc = lambda s: delong_auc_ci(s[test], table.loc[test, 'label']).auc  # noqa: E731
    assert auc(fused["score"]) > auc(table["clinical_score"]) + 0.02
    assert auc(fused["score"]) > auc(table["image_score"]) + 0.02


def test_tables_of_different_cohorts_are_refused():
    image, clinical = _tables()
    clinical.loc[5, 'label'] = 1 - clinical.loc[5, 'label']
    with pytest.raises(ValueError, match='label'):
        late_fusion_table(image, clinical)
    image, clinical = _tables()
    one_label = late_fusion_table(image, clinical)
    one_label.loc[one_label['split'] == 'val', 'label'] = 0
    with pytest.raises(ValueError, match='both'):
        fit_late_fusion(one_label)


def test_a_model_per_structure_adds_one_input_each_on_common_patients():
    """A nodes-only model's score is a third input; patients it did not score (no nodes)
    leave the table; the fit matches sklearn on the validation rows of all three."""
    image, clinical = _tables(seed=3)
    rng = np.random.default_rng(5)
    nodes = image.assign(score=expit(rng.normal(size=len(image))
                                     + 1.5 * image['label'].to_numpy()))
    nodes = nodes.iloc[10:]  # ten patients without nodes
    table = late_fusion_table(image, clinical, {'nodes': nodes})
    assert len(table) == len(image) - 10 and 'nodes_score' in table
    model = fit_late_fusion(table, fit_split='val', prior_weight=0)
    val = table[table['split'] == 'val']
    x = np.column_stack([np.log(val[c] / (1 - val[c]))
                         for c in ('clinical_score', 'image_score', 'nodes_score')])
    reference = LogisticRegression(C=1.0, tol=1e-10, max_iter=10000).fit(x, val['label'])
    assert [model.coef_clinical, model.coef_image, model.coef_extra['nodes']] == \
        pytest.approx(reference.coef_[0].tolist(), rel=1e-4)
    fused = fused_patient_table(table, model)
    assert fused['score'].to_numpy() == pytest.approx(
        reference.predict_proba(np.column_stack([np.log(table[c] / (1 - table[c])) for c in (
            'clinical_score', 'image_score', 'nodes_score')]))[:, 1], rel=1e-6)
    with pytest.raises(ValueError, match='extra image models'):
        model.score(table['clinical_score'], table['image_score'])
    with pytest.raises(ValueError, match='named image or clinical'):
        late_fusion_table(image, clinical, {'clinical': nodes})


def test_a_fit_that_inverts_an_input_says_so_with_its_auc_on_the_fit_split():
    from mmnpc.evaluation.late_fusion import inverted_inputs
    image, clinical = _tables()
    table = late_fusion_table(image, clinical)
    assert inverted_inputs(table, fit_late_fusion(table)) == []  # both inputs carry risk
    flipped = table.copy()
    val = flipped['split'] == 'val'
    flipped.loc[val, 'image_score'] = 1 - flipped.loc[val, 'image_score']  # wrong way round
    model = fit_late_fusion(flipped, prior_weight=0)
    assert model.coef_image < 0 < model.coef_clinical
    notes = inverted_inputs(flipped, model)
    alone = delong_auc_ci(flipped.loc[val, 'image_score'], flipped.loc[val, 'label']).auc
    assert len(notes) == 1 and 'image score a negative weight' in notes[0]
    assert f'AUC {alone:.3f}' in notes[0] and alone < 0.5
    assert f'{model.n_fit_patients} val patients' in notes[0]


def _no_signal_split(n, seed):
    """``n`` fit patients whose two scores carry no information about the label."""
    rng = np.random.default_rng(seed)
    label = np.r_[np.ones(n * 2 // 5, int), np.zeros(n - n * 2 // 5, int)]
    return pd.DataFrame({'patient_id': [f'P{i}' for i in range(n)], 'split': 'val',
                         'label': label, 'clinical_score': expit(rng.normal(size=n)),
                         'image_score': expit(rng.normal(size=n))})


def test_a_small_fit_split_keeps_unit_weights_and_fits_the_intercept_only():
    """24 fit patients without signal (10 events, 5 per input): estimated weights take the
    noise's signs (centred on 0, some of these seeds invert an input); below 10 events per
    input the weights stay at 1 and only the intercept is fitted, and the tool says so."""
    from mmnpc.evaluation.late_fusion import weights_note
    inverted = 0
    for seed in range(20):
        table = _no_signal_split(24, seed)
        estimated = fit_late_fusion(table, prior_weight=0, min_events_per_input=0)
        assert estimated.weights_fitted and weights_note(estimated) == []
        inverted += min(estimated.coef_clinical, estimated.coef_image) < 0
        fixed = fit_late_fusion(table)
        assert not fixed.weights_fitted and fixed.prior_weight == 1.0
        assert (fixed.coef_clinical, fixed.coef_image) == (1.0, 1.0)
        z = _logit(table['clinical_score']) + _logit(table['image_score'])
        intercept_score = np.sum(table['label'] - expit(fixed.intercept + z))
        assert intercept_score == pytest.approx(0, abs=1e-6)  # maximum likelihood intercept
        assert 'hold 9 events' in weights_note(fixed)[0]
        centred_on_zero = fit_late_fusion(table, prior_weight=0)  # unit weights all the same
        assert (centred_on_zero.coef_clinical, centred_on_zero.coef_image) == (1.0, 1.0)
    assert inverted >= 6


def _logit(p):
    return np.log(p / (1 - p))


def test_a_large_fit_split_overrides_the_centre():
    """3,000 fit patients: an input without signal gets about no weight, an informative
    one about its true weight, whatever the centre."""
    rng = np.random.default_rng(1)
    n = 3000
    clinical = rng.normal(size=n)
    label = (rng.uniform(size=n) < expit(0.5 * clinical)).astype(int)
    table = pd.DataFrame({'patient_id': [f'P{i}' for i in range(n)], 'split': 'val',
                          'label': label, 'clinical_score': expit(clinical),
                          'image_score': expit(rng.normal(size=n))})
    for centre in (0.0, 1.0):
        model = fit_late_fusion(table, prior_weight=centre)
        assert abs(model.coef_image) < 0.1
        assert model.coef_clinical == pytest.approx(0.5, abs=0.1)


def test_a_record_written_before_the_centre_existed_loads_as_centre_zero(tmp_path):
    import json
    from mmnpc.evaluation.late_fusion import load_late_fusion
    record = {'intercept': -0.5, 'coef_clinical': 0.8, 'coef_image': 0.4, 'fit_split': 'val',
              'n_fit_patients': 24, 'n_fit_positive': 10, 'coef_extra': {}}
    (tmp_path / 'late_fusion.json').write_text(json.dumps(record))
    (tmp_path / 'metrics.json').write_text(json.dumps({'cutoff': 0.4}))
    model, cutoff = load_late_fusion(tmp_path)
    assert model.prior_weight == 0.0 and cutoff == 0.4
