"""Turn one patient's clinical values into the classifier's fixed-length vector.

The variables and, for categorical ones, their categories come from the
config (``clinical_vars``), so the vector length is known before any data is
read and the classifier's FC layer can be built with it. What is *fitted*
(on training patients only) are the standardisation statistics of the numeric
variables. Layout, variable by variable in config order:

* numeric ``name``: ``name`` = (value - training mean) / training SD, and
  ``name:missing`` = 1 when the value is missing (the standardised value is
  then 0, i.e. the training mean), else 0; with ``transform='log10p'`` the
  value is first replaced by log10(1 + value) (for a skewed count such as
  plasma EBV DNA in copies/mL, 0 = undetectable; a negative value is an error);
* categorical ``name`` with categories ``c1..ck``: one-hot ``name=c1`` ..
  ``name=ck`` and ``name:missing`` (all one-hot columns 0 when missing).

A category the config does not list is an error (never silently dropped): add
it to ``clinical_vars`` in the config. The fitted state is a JSON-able dict
(:meth:`ClinicalEncoder.state_dict`) stored in every checkpoint's
``meta['clinical_encoder']`` (see :class:`mmnpc.engine.ClinicalEncoderHook`),
so test and predict encode new patients with the training statistics.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
from sklearn.preprocessing import StandardScaler

from data_prep.types import DataPrepError

KINDS: tuple[str, ...] = ('numeric', 'categorical')
TRANSFORMS: tuple[str, ...] = ('log10p',)
STATE_VERSION = 1


def _check_variables(variables: Sequence[Mapping[str, Any]]) -> List[dict]:
    """Validate ``clinical_vars`` entries; return plain-dict copies."""
    checked, names = [], set()
    for index, variable in enumerate(variables):
        name, kind = variable.get('name'), variable.get('kind')
        if not name or kind not in KINDS:
            raise ValueError(f'clinical_vars[{index}] = {dict(variable)}: need a `name` and '
                             f"`kind` in {KINDS}")
        if name in names:
            raise ValueError(f'clinical_vars: variable {name!r} is listed twice')
        names.add(name)
        entry = {'name': str(name), 'kind': str(kind)}
        if kind == 'categorical':
            categories = [str(c) for c in variable.get('categories') or []]
            if not categories or len(set(categories)) != len(categories):
                raise ValueError(f'clinical_vars: categorical {name!r} needs a list of distinct '
                                 f'`categories`, got {variable.get("categories")}')
            entry['categories'] = categories
        elif set(variable) - {'name', 'kind', 'transform'}:
            raise ValueError(f'clinical_vars: numeric {name!r} takes only name, kind and '
                             f'transform, got {dict(variable)}')
        elif variable.get('transform') is not None:
            if variable['transform'] not in TRANSFORMS:
                raise ValueError(f'clinical_vars: numeric {name!r}: transform '
                                 f'{variable["transform"]!r} not in {TRANSFORMS}')
            entry['transform'] = str(variable['transform'])
        checked.append(entry)
    return checked


def _is_missing(value: Any) -> bool:
    """'' / None / NaN are missing (clinical.csv writes missing as an empty cell)."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ''
    return isinstance(value, float) and math.isnan(value)


def _as_number(value: Any, name: str, patient_id: str, transform: Optional[str] = None) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float('nan')
    if not math.isfinite(number):
        raise DataPrepError(f'patient {patient_id}: clinical variable {name!r} = {value!r} '
                            'is not a finite number')
    if transform == 'log10p':
        if number < 0:
            raise DataPrepError(f'patient {patient_id}: clinical variable {name!r} = {value!r} '
                                'is negative (log10(1 + value) is configured)')
        number = math.log10(1.0 + number)
    return number


class ClinicalEncoder:
    """Standardise numeric, one-hot categorical clinical variables, with missing indicators.

    Args:
        variables: the config's ``clinical_vars``, e.g.
            ``[dict(name='age', kind='numeric'),
            dict(name='sex', kind='categorical', categories=['F', 'M'])]``.
            Empty: the encoder yields a length-0 vector (image-only model).
    """

    def __init__(self, variables: Sequence[Mapping[str, Any]] = ()) -> None:
        self.variables = _check_variables(variables)
        self.mean: Dict[str, float] = {}
        self.scale: Dict[str, float] = {}
        self.fitted_on: List[str] = []

    @property
    def numeric_names(self) -> List[str]:
        return [v['name'] for v in self.variables if v['kind'] == 'numeric']

    def _transforms(self) -> Dict[str, str]:
        return {v['name']: v['transform'] for v in self.variables if v.get('transform')}

    @property
    def feature_names(self) -> List[str]:
        """Name of every output column, in order (``age``, ``age:missing``, ``sex=F``, ...)."""
        names = []
        for variable in self.variables:
            if variable['kind'] == 'numeric':
                names.append(variable['name'])
            else:
                names.extend(f"{variable['name']}={c}" for c in variable['categories'])
            names.append(f"{variable['name']}:missing")
        return names

    @property
    def num_features(self) -> int:
        """Length of the encoded vector; depends only on the variables, not on data."""
        return len(self.feature_names)

    @property
    def is_fitted(self) -> bool:
        return not self.numeric_names or bool(self.mean)

    def fit(self, rows: Mapping[str, Mapping[str, Any]]) -> 'ClinicalEncoder':
        """Fit the numeric means / SDs on ``rows`` (patient_id -> {column: value}).

        Pass the *training* patients only, one row per patient (not per
        slice). Missing values are ignored; a variable constant over the
        training patients gets SD 1. Raises DataPrepError when ``rows`` is
        empty, when a numeric value does not parse, or when no training
        patient has a value of some variable (it could not be standardised).
        """
        if not rows:
            raise DataPrepError('cannot fit the clinical encoder: no training patients')
        names = self.numeric_names
        transforms = self._transforms()
        self.fitted_on = sorted(rows)
        self.mean, self.scale = {}, {}
        if not names:
            return self
        table = np.full((len(rows), len(names)), np.nan)
        for i, patient_id in enumerate(self.fitted_on):
            row = rows[patient_id]
            for j, name in enumerate(names):
                value = row.get(name)
                if not _is_missing(value):
                    table[i, j] = _as_number(value, name, patient_id, transforms.get(name))
        empty = [name for j, name in enumerate(names) if np.isnan(table[:, j]).all()]
        if empty:
            raise DataPrepError(f'no training patient has a value of clinical variables {empty}; '
                                'remove them from clinical_vars')
        scaler = StandardScaler().fit(table)  # NaN = missing, ignored in fit; SD 0 -> scale 1
        self.mean = dict(zip(names, map(float, scaler.mean_)))
        self.scale = dict(zip(names, map(float, scaler.scale_)))
        return self

    def encode(self, values: Mapping[str, Any], patient_id: str = '<unknown>') -> np.ndarray:
        """float32 (num_features,) vector of one patient.

        ``values`` maps column names to the cell text of clinical.csv (or
        numbers; '' / None / NaN = missing). Raises DataPrepError naming the
        patient for a column absent from ``values``, a non-numeric numeric
        value or a category the config does not list; RuntimeError if a
        numeric variable is configured and the encoder was never fitted.
        """
        if not self.is_fitted:
            raise RuntimeError('the clinical encoder is not fitted: fit it on the training '
                               'patients or restore it from a checkpoint')
        vector: List[float] = []
        for variable in self.variables:
            name = variable['name']
            if name not in values:
                raise DataPrepError(f'patient {patient_id}: no clinical column {name!r}')
            value = values[name]
            missing = _is_missing(value)
            if variable['kind'] == 'numeric':
                number = self.mean[name] if missing else _as_number(
                    value, name, patient_id, variable.get('transform'))
                vector.append((number - self.mean[name]) / self.scale[name])
            else:
                one_hot = [0.0] * len(variable['categories'])
                if not missing:
                    text = str(value).strip()
                    if text not in variable['categories']:
                        raise DataPrepError(
                            f'patient {patient_id}: clinical variable {name!r} = {text!r} is not '
                            f"one of the configured categories {variable['categories']}; add it "
                            'to clinical_vars in the config')
                    one_hot[variable['categories'].index(text)] = 1.0
                vector.extend(one_hot)
            vector.append(1.0 if missing else 0.0)
        return np.asarray(vector, dtype=np.float32)

    def state_dict(self) -> dict:
        """JSON-able fitted state (variables, means, SDs, training patient ids)."""
        return {'version': STATE_VERSION, 'variables': [dict(v) for v in self.variables],
                'mean': dict(self.mean), 'scale': dict(self.scale),
                'fitted_on': list(self.fitted_on)}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> 'ClinicalEncoder':
        """Rebuild a fitted encoder from :meth:`state_dict` output."""
        if state.get('version') != STATE_VERSION:
            raise ValueError(f'clinical encoder state version {state.get("version")!r}, '
                             f'expected {STATE_VERSION}')
        encoder = cls(state['variables'])
        encoder.mean = {k: float(v) for k, v in state['mean'].items()}
        encoder.scale = {k: float(v) for k, v in state['scale'].items()}
        encoder.fitted_on = list(state['fitted_on'])
        missing = set(encoder.numeric_names) - set(encoder.mean)
        if encoder.numeric_names and missing:
            raise ValueError(f'clinical encoder state lacks statistics of {sorted(missing)}')
        return encoder

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ClinicalEncoder) and self.state_dict() == other.state_dict()

    def __repr__(self) -> str:
        fitted = f'fitted on {len(self.fitted_on)} patients' if self.fitted_on else 'not fitted'
        return f'ClinicalEncoder({self.num_features} features, {fitted})'


def clinical_encoder_from_checkpoint(checkpoint: Any) -> Optional[ClinicalEncoder]:
    """The fitted encoder saved in a classifier checkpoint (path or loaded dict).

    Returns None when the checkpoint has no ``meta['clinical_encoder']``
    (e.g. a detector checkpoint).
    """
    if isinstance(checkpoint, str):
        from mmengine.runner.checkpoint import CheckpointLoader

        from mmnpc.utils import register_trusted_local_loader
        register_trusted_local_loader()  # our own checkpoints hold more than tensors
        checkpoint = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    state = (checkpoint.get('meta') or {}).get('clinical_encoder')
    return None if state is None else ClinicalEncoder.from_state_dict(state)
