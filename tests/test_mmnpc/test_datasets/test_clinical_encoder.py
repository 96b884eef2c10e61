"""Clinical encoding: standardised numeric + one-hot categorical, missing indicators, saved state."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config

from data_prep.types import DataPrepError
from mmnpc.datasets import ClinicalEncoder, clinical_encoder_from_checkpoint

CONFIG_DIR = Path(__file__).resolve().parents[3] / 'configs'
VARS = [dict(name='age', kind='numeric'),
        dict(name='sex', kind='categorical', categories=['F', 'M'])]
TRAIN = {'P1': {'age': '40', 'sex': 'F'}, 'P2': {'age': '60', 'sex': 'M'},
         'P3': {'age': '', 'sex': ''}}


def test_layout_and_width_come_from_the_config_alone():
    encoder = ClinicalEncoder(VARS)
    assert encoder.feature_names == ['age', 'age:missing', 'sex=F', 'sex=M', 'sex:missing']
    assert encoder.num_features == 5
    fusion = Config.fromfile(str(CONFIG_DIR / 'msom_fusion.py'))
    assert ClinicalEncoder(fusion.clinical_vars).num_features == 25  # as the config comment says
    assert ClinicalEncoder([]).num_features == 0


def test_numeric_standardised_with_training_statistics_missing_ignored():
    encoder = ClinicalEncoder(VARS).fit(TRAIN)
    assert encoder.mean['age'] == pytest.approx(50.0)
    assert encoder.scale['age'] == pytest.approx(10.0)  # population SD of 40, 60
    np.testing.assert_allclose(encoder.encode({'age': '70', 'sex': 'M'}), [2, 0, 0, 1, 0])
    assert encoder.fitted_on == ['P1', 'P2', 'P3']


def test_missing_values_get_the_training_mean_and_an_indicator():
    encoder = ClinicalEncoder(VARS).fit(TRAIN)
    np.testing.assert_allclose(encoder.encode({'age': '', 'sex': None}), [0, 1, 0, 0, 1])
    np.testing.assert_allclose(encoder.encode({'age': float('nan'), 'sex': 'F'}), [0, 1, 1, 0, 0])


def test_constant_training_variable_gets_unit_scale():
    encoder = ClinicalEncoder(VARS).fit({'A': {'age': '50', 'sex': 'F'}, 'B': {'age': '50', 'sex': 'F'}})
    assert encoder.scale['age'] == 1.0
    assert encoder.encode({'age': '52', 'sex': 'F'})[0] == pytest.approx(2.0)


@pytest.mark.parametrize('values, message', [
    ({'age': 'old', 'sex': 'F'}, "patient P9: clinical variable 'age' = 'old' is not a finite number"),
    ({'age': '50', 'sex': 'X'}, "patient P9: clinical variable 'sex' = 'X' is not one of"),
    ({'age': '50'}, "patient P9: no clinical column 'sex'"),
])
def test_bad_values_are_refused_naming_the_patient(values, message):
    encoder = ClinicalEncoder(VARS).fit(TRAIN)
    with pytest.raises(DataPrepError, match=message):
        encoder.encode(values, 'P9')


def test_a_variable_without_any_training_value_is_refused():
    with pytest.raises(DataPrepError, match=r"\['age'\]"):
        ClinicalEncoder(VARS).fit({'A': {'age': '', 'sex': 'F'}})


@pytest.mark.parametrize('variables', [
    [dict(name='age')], [dict(name='sex', kind='categorical')],
    [dict(name='age', kind='numeric'), dict(name='age', kind='numeric')]])
def test_malformed_variable_lists_are_refused(variables):
    with pytest.raises(ValueError):
        ClinicalEncoder(variables)


def test_unfitted_numeric_encoder_refuses_to_encode():
    with pytest.raises(RuntimeError, match='not fitted'):
        ClinicalEncoder(VARS).encode({'age': '1', 'sex': 'F'})


def test_state_is_json_and_round_trips_through_a_checkpoint_dict():
    encoder = ClinicalEncoder(VARS).fit(TRAIN)
    state = json.loads(json.dumps(encoder.state_dict()))
    restored = ClinicalEncoder.from_state_dict(state)
    assert restored == encoder
    row = {'age': '47', 'sex': 'M'}
    np.testing.assert_array_equal(restored.encode(row), encoder.encode(row))
    assert clinical_encoder_from_checkpoint({'meta': {'clinical_encoder': state}}) == encoder
    assert clinical_encoder_from_checkpoint({'meta': {}}) is None


def test_log10p_transform_before_standardising_and_kept_in_the_state():
    variables = [dict(name='ebv', kind='numeric', transform='log10p')]
    encoder = ClinicalEncoder(variables).fit({'P1': {'ebv': '9'}, 'P2': {'ebv': '999'},
                                              'P3': {'ebv': ''}})
    assert encoder.mean['ebv'] == pytest.approx(2.0)  # log10(10), log10(1000)
    assert encoder.scale['ebv'] == pytest.approx(1.0)
    np.testing.assert_allclose(encoder.encode({'ebv': '99999'}), [3.0, 0.0])  # log10 = 5
    np.testing.assert_allclose(encoder.encode({'ebv': '0'}), [-2.0, 0.0])  # undetectable
    again = ClinicalEncoder.from_state_dict(json.loads(json.dumps(encoder.state_dict())))
    np.testing.assert_allclose(again.encode({'ebv': '99999'}), [3.0, 0.0])
    with pytest.raises(DataPrepError, match="patient P9.*'ebv'.*negative"):
        encoder.encode({'ebv': '-1'}, patient_id='P9')
    with pytest.raises(ValueError, match='transform'):
        ClinicalEncoder([dict(name='ebv', kind='numeric', transform='log')])
    region_fusion = Config.fromfile(str(CONFIG_DIR / 'msom_fusion_cpu.py'))
    assert ClinicalEncoder(region_fusion.clinical_vars).num_features == 27  # + EBV DNA, missing
