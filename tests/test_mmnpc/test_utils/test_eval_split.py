"""tools/test.py reports the held-out test split, or val with a note for two-way cohorts."""
from pathlib import Path

import pytest
from mmengine.config import Config

from mmnpc.testing import write_synthetic_coco
from mmnpc.utils import resolve_test_split, set_data_root
from mmnpc.utils.eval_split import OPTIMISTIC_NOTE, held_out_split

CONFIG_DIR = Path(__file__).resolve().parents[3] / 'configs'


def _cohort(root: Path, with_test: bool) -> Path:
    write_synthetic_coco(root, ('cet1',), n_patients=4, slices_per_patient=2,
                         n_val_patients=2, size=32, seed=0)
    annotations = root / 'cet1' / 'annotations'
    if with_test:  # the held-out split, same format (the converter's --test-fraction)
        (annotations / 'test.json').write_text((annotations / 'val.json').read_text())
    return root


@pytest.mark.parametrize('config', ['msom_fusion_tiny.py', 'msom_cet1.py'])
def test_classifier_reports_test_patients_when_there_are_some(tmp_path, config):
    cfg = Config.fromfile(str(CONFIG_DIR / config))
    set_data_root(cfg, str(_cohort(tmp_path, with_test=True)))
    assert resolve_test_split(cfg) == ('test', [])
    assert cfg.test_dataloader.dataset.ann_files == dict(train='annotations/train.json',
                                                         test='annotations/test.json')
    assert cfg.test_evaluator.eval_split == 'test'
    # checkpoint selection stays on val
    assert cfg.val_dataloader.dataset.ann_files == dict(train='annotations/train.json',
                                                        val='annotations/val.json')
    assert cfg.val_evaluator.eval_split == 'val'


def test_classifier_falls_back_to_val_and_says_so(tmp_path):
    cfg = Config.fromfile(str(CONFIG_DIR / 'msom_fusion_tiny.py'))
    set_data_root(cfg, str(_cohort(tmp_path, with_test=False)))
    assert resolve_test_split(cfg) == ('val', [OPTIMISTIC_NOTE])
    assert cfg.test_dataloader.dataset.ann_files == dict(train='annotations/train.json',
                                                         val='annotations/val.json')
    assert cfg.test_evaluator.eval_split == 'val'
    assert 'optimistic' in OPTIMISTIC_NOTE


@pytest.mark.parametrize('with_test, split', [(True, 'test'), (False, 'val')])
def test_detector_reports_test_patients_or_falls_back(tmp_path, with_test, split):
    cfg = Config.fromfile(str(CONFIG_DIR / 'det_cet1_tiny.py'))
    root = set_data_root(cfg, str(_cohort(tmp_path, with_test)))
    evaluated, notes = resolve_test_split(cfg)
    assert evaluated == split and bool(notes) == (not with_test)
    assert cfg.test_dataloader.dataset.ann_file == f'annotations/{split}.json'
    assert cfg.test_evaluator.ann_file == f'{root}annotations/{split}.json'
    assert cfg.val_dataloader.dataset.ann_file == 'annotations/val.json'


def test_held_out_split_is_test_when_any_patient_has_it():
    assert held_out_split(['train', 'val', 'test', 'train']) == 'test'
    assert held_out_split(iter(['train', 'val'])) == 'val'
    assert held_out_split([]) == 'val'
