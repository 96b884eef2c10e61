"""Which cut-off a prediction uses: given > file > deployment.json > metrics.json > refusal."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmnpc.inference.cutoff import checkpoint_fingerprint, resolve_cutoff


@pytest.fixture
def checkpoints(tmp_path: Path):
    cls_dir = tmp_path / 'cls'
    cls_dir.mkdir()
    (cls_dir / 'cls.pth').write_bytes(b'c' * 10)
    (tmp_path / 'det.pth').write_bytes(b'd' * 20)
    return cls_dir / 'cls.pth', tmp_path / 'det.pth'


def _deployment(cls: Path, det: Path, cutoff=0.61, **changes) -> dict:
    record = {'cutoff': cutoff, 'cutoff_rule': 'youden_train_end_to_end (deployment cut-off)',
              'classifier_checkpoint': checkpoint_fingerprint(cls),
              'detector_checkpoint': checkpoint_fingerprint(det)}
    record.update(changes)
    (cls.parent / 'deployment.json').write_text(json.dumps(record))
    return record


def test_deployment_cutoff_beats_the_contour_based_one(checkpoints):
    cls, det = checkpoints
    (cls.parent / 'metrics.json').write_text(json.dumps({'cutoff': 0.4, 'cutoff_rule': 'youden_train'}))
    _deployment(cls, det)
    choice = resolve_cutoff(None, None, cls, det)
    assert (choice.value, choice.warnings) == (0.61, [])
    assert choice.source.endswith('deployment.json') and 'deployment' in choice.rule


def test_a_deployment_file_of_other_checkpoints_is_not_used(checkpoints, tmp_path):
    cls, det = checkpoints
    (cls.parent / 'metrics.json').write_text(json.dumps({'cutoff': 0.4, 'cutoff_rule': 'youden_train'}))
    _deployment(cls, det, detector_checkpoint={'name': 'other.pth', 'bytes': 20})
    choice = resolve_cutoff(None, None, cls, det)
    assert choice.value == 0.4 and choice.source.endswith('metrics.json')
    assert any('deployment.json not used' in w for w in choice.warnings)
    assert any('contour-based' in w for w in choice.warnings)


def test_command_line_and_file_come_first(checkpoints, tmp_path):
    cls, det = checkpoints
    _deployment(cls, det)
    assert resolve_cutoff(0.3, None, cls, det).value == 0.3
    other = tmp_path / 'm.json'
    other.write_text(json.dumps({'cutoff': 0.55, 'cutoff_rule': 'youden_train'}))
    choice = resolve_cutoff(None, other, cls, det)
    assert (choice.value, choice.rule, choice.source) == (0.55, 'youden_train', str(other))


def test_no_cutoff_anywhere_is_refused(checkpoints):
    cls, det = checkpoints
    with pytest.raises(ValueError, match='no cut-off'):
        resolve_cutoff(None, None, cls, det)
    _deployment(cls, det, cutoff=None)  # the training patients could not give one
    with pytest.raises(ValueError, match='no cut-off.*holds no cut-off'):
        resolve_cutoff(None, None, cls, det)
    (cls.parent / 'metrics.json').write_text(json.dumps({'cutoff': 0.4, 'cutoff_rule': 'youden_train'}))
    choice = resolve_cutoff(None, None, cls, det)  # falls back, saying why
    assert choice.value == 0.4 and any('holds no cut-off' in w for w in choice.warnings)
    with pytest.raises(ValueError, match='no finite cutoff'):
        resolve_cutoff(None, cls.parent / 'deployment.json', cls, det)  # asked for explicitly
