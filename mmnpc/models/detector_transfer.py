"""Stage 1 -> stage 2: copy the detector's backbone + FPN into the classifier, safely.

Two checks keep the transfer honest:

* every backbone / neck parameter of the classifier must come from the
  checkpoint with the same shape (a partial or mismatched load is an error,
  not a warning), and
* the detector must not have been trained on a patient that the classifier
  is validated on: the detector's checkpoint records its training patients
  (``meta['train_patient_ids']``, written by :class:`mmnpc.engine.TrainPatientsHook`)
  and :func:`check_detector_patients` refuses an overlap.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Union

import torch
from mmengine.runner.checkpoint import CheckpointLoader
from torch import nn

from ..utils import register_trusted_local_loader

TRANSFERRED_PREFIXES: tuple[str, ...] = ('backbone.', 'neck.')
PATIENTS_META_KEY = 'train_patient_ids'


class PatientOverlapError(ValueError):
    """A checkpoint was trained on patients that the current run validates on."""


def load_checkpoint_dict(path: str) -> dict:
    """The whole checkpoint dict of a local (trusted) file, on CPU."""
    register_trusted_local_loader()  # MMEngine checkpoints hold more than tensors
    checkpoint = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    if not isinstance(checkpoint, dict):
        raise ValueError(f'{path}: not a checkpoint dict')
    return checkpoint


def _state_dict(checkpoint: Mapping[str, Any]) -> Dict[str, torch.Tensor]:
    state = checkpoint.get('state_dict', checkpoint)
    # weights saved from a DataParallel / DDP wrapper carry a `module.` prefix
    return {(k[len('module.'):] if k.startswith('module.') else k): v for k, v in state.items()}


def load_detector_weights(model: nn.Module, checkpoint: Union[str, Mapping[str, Any]],
                          prefixes: Iterable[str] = TRANSFERRED_PREFIXES) -> List[str]:
    """Copy the ``backbone.`` and ``neck.`` tensors of a detector checkpoint into ``model``.

    Args:
        model: a module with ``backbone`` and ``neck`` built like the detector's.
        checkpoint: path of a Mask R-CNN checkpoint (or the loaded dict).
        prefixes: parameter-name prefixes to copy.

    Returns:
        The copied keys (parameters and buffers such as BN running stats).

    Raises:
        ValueError: a model key under ``prefixes`` is absent from the
            checkpoint, the checkpoint has extra keys under them, or shapes
            differ -- i.e. the architectures are not the same.
    """
    source = checkpoint if isinstance(checkpoint, str) else '<checkpoint dict>'
    if isinstance(checkpoint, str):
        checkpoint = load_checkpoint_dict(checkpoint)
    prefixes = tuple(prefixes)
    state = {k: v for k, v in _state_dict(checkpoint).items() if k.startswith(prefixes)}
    own = {k: v for k, v in model.state_dict().items() if k.startswith(prefixes)}
    problems = []
    missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing:
        problems.append(f'{len(missing)} keys missing from the checkpoint (e.g. {missing[:3]})')
    if extra:
        problems.append(f'{len(extra)} checkpoint keys the model lacks (e.g. {extra[:3]})')
    mismatched = [f'{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}'
                  for k, v in own.items() if k in state and state[k].shape != v.shape]
    if mismatched:
        problems.append(f'shape mismatch (checkpoint vs model): {mismatched[:3]}')
    if problems:
        raise ValueError(f'{source}: cannot transfer {"/".join(prefixes)} weights: '
                         + '; '.join(problems))
    model.load_state_dict(state, strict=False)
    return sorted(state)


def check_detector_patients(checkpoint: Union[str, Mapping[str, Any]],
                            val_patient_ids: Iterable[str],
                            allow_unrecorded: bool = False) -> List[str]:
    """Refuse a detector checkpoint trained on any of ``val_patient_ids``.

    Args:
        checkpoint: path of the detector checkpoint (or the loaded dict).
        val_patient_ids: the patients the classifier is validated on.
        allow_unrecorded: accept a checkpoint without
            ``meta['train_patient_ids']`` (e.g. a COCO checkpoint trained on
            no patient at all); by default it is refused, as it cannot be checked.

    Returns:
        The checkpoint's recorded training patients (empty if unrecorded and allowed).

    Raises:
        PatientOverlapError: overlap, or no record and not ``allow_unrecorded``.
    """
    source = checkpoint if isinstance(checkpoint, str) else '<checkpoint dict>'
    if isinstance(checkpoint, str):
        checkpoint = load_checkpoint_dict(checkpoint)
    recorded = (checkpoint.get('meta') or {}).get(PATIENTS_META_KEY)
    if recorded is None:
        if allow_unrecorded:
            return []
        raise PatientOverlapError(
            f'{source} does not record its training patients (meta[{PATIENTS_META_KEY!r}], '
            'written by TrainPatientsHook), so it cannot be checked against the validation '
            'split. Retrain the detector with this version of mmnpc, or, for a checkpoint '
            'trained on none of these patients, set allow_unrecorded=True in the config\'s '
            'DetCheckpointGuardHook.')
    overlap = sorted(set(recorded) & set(val_patient_ids))
    if overlap:
        raise PatientOverlapError(
            f'{source} was trained on {len(overlap)} patient(s) of this run\'s validation or '
            f'test split {overlap[:10]}{" ..." if len(overlap) > 10 else ""}: their results '
            'would be optimistic. Train the detector on the same split as the classifier '
            '(the converter\'s train.json).')
    return sorted(recorded)
