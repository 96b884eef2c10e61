"""Frozen per-patient features for the transfer probe: aggregation, RoI geometry, windows."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmnpc.inference.patient_features import grown_boxes, patient_means

REPO = Path(__file__).resolve().parents[3]


def _row(patient, path, split='train', label=0):
    return {'patient_id': patient, 'img_path': path, 'split': split, 'gt_label': label}


def test_patient_mean_weighs_each_slice_once_like_the_scores():
    meta = [_row('B', 's1', 'test', 1), _row('A', 'a1'), _row('A', 'a1'), _row('A', 'a2')]
    features = np.array([[9.0, 9.0], [1.0, 0.0], [3.0, 2.0], [10.0, 4.0]])
    table, matrix = patient_means(meta, features)
    assert list(table['patient_id']) == ['A', 'B']
    # A: slice a1 = mean(1,3) = 2 / mean(0,2) = 1; slice a2 = (10, 4); patient = (6, 2.5)
    assert matrix[0] == pytest.approx([6.0, 2.5])
    assert matrix[1] == pytest.approx([9.0, 9.0])
    assert table.loc[0, 'n_slices'] == 2 and table.loc[0, 'n_regions'] == 3
    assert table.loc[1, 'split'] == 'test' and table.loc[1, 'label'] == 1


def test_a_patient_in_two_splits_is_refused():
    with pytest.raises(ValueError, match='patient A'):
        patient_means([_row('A', 'a1'), _row('A', 'a2', 'test')], np.zeros((2, 1)))


def test_boxes_grow_by_millimetres_per_axis():
    grown = grown_boxes([[10, 20, 30, 40]], spacing_mm=(0.5, 2.0), margin_mm=4.0)
    assert grown.tolist() == [[2.0, 18.0, 38.0, 42.0]]
    with pytest.raises(ValueError):
        grown_boxes([[0, 0, 1, 1]], spacing_mm=(0.0, 1.0), margin_mm=1.0)


@pytest.fixture(scope='module')
def detector(tmp_path_factory):
    from mmnpc.inference import SliceDetector
    from mmnpc.testing import save_untrained
    path = save_untrained(REPO / 'configs' / 'det_cet1_tiny.py',
                          tmp_path_factory.mktemp('det') / 'det.pth')
    return SliceDetector(path, batch_size=2)


def _slice_with_patch(x0: int, y0: int) -> np.ndarray:
    image = np.full((512, 512), 40, np.uint8)
    patch = np.random.default_rng(0).integers(60, 250, (64, 64), dtype=np.uint8)
    image[y0:y0 + 64, x0:x0 + 64] = patch
    return image


def test_roi_features_follow_the_box_in_slice_pixels(detector):
    """The box is scaled with the image (512 -> 256 px): moving lesion and box together by
    64 px to the right (32 px at the detector's scale, a multiple of every FPN stride) leaves
    the RoI features almost unchanged; moving the lesion alone changes them far more."""
    box = np.array([[190.0, 190.0, 262.0, 262.0]])
    shift = np.array([64.0, 0.0, 64.0, 0.0])  # along x only: transposed boxes would not follow
    here = detector.roi_features([_slice_with_patch(194, 194)], [box])[0]
    moved_both = detector.roi_features([_slice_with_patch(258, 194)], [box + shift])[0]
    moved_lesion = detector.roi_features([_slice_with_patch(258, 194)], [box])[0]
    assert here.shape == (1, 256)
    assert np.linalg.norm(moved_both - here) < 0.25 * np.linalg.norm(moved_lesion - here)


def test_roi_features_keep_each_slices_boxes_apart(detector):
    slices = [_slice_with_patch(100, 100), _slice_with_patch(300, 300), _slice_with_patch(0, 0)]
    boxes = [np.array([[90.0, 90, 170, 170], [10, 10, 60, 60]]), np.zeros((0, 4)),
             np.array([[0.0, 0, 64, 64]])]
    together = detector.roi_features(slices, boxes)
    assert [len(b) for b in together] == [2, 0, 1]
    alone = detector.roi_features([slices[2]], [boxes[2]])[0]
    assert together[2] == pytest.approx(alone, rel=1e-4, abs=1e-5)


def test_window_features_are_the_classifiers_pooled_features(converted_cohort):
    """Each row = MsomClassifier.extract_feat of the window the region dataset cuts, in
    dataset order, whatever the batch size."""
    import torch
    from mmdet.registry import DATASETS, MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import mmnpc  # noqa: F401
    from mmnpc.inference.patient_features import region_meta, window_features
    from mmnpc.utils.data_root import set_data_root
    init_default_scope('mmdet')
    cfg = Config.fromfile(str(REPO / 'configs' / 'msom_cet1_cpu.py'))
    set_data_root(cfg, str(converted_cohort.data))
    dataset = DATASETS.build(dict(cfg.test_dataloader.dataset, regions_per_structure=1,
                                  ann_files={'test': 'annotations/test.json'}))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    features = window_features(model, dataset, batch_size=3, progress=False)
    meta = region_meta(dataset)
    assert features.shape == (len(dataset), 256) and len(meta) == len(dataset)
    for k in (0, len(dataset) - 1):
        batch = model.data_preprocessor(
            {'inputs': dataset[k]['inputs'][None].float(), 'data_samples': None}, False)
        with torch.no_grad():
            expected = model.extract_feat(batch['inputs'])[0].numpy()
        assert features[k] == pytest.approx(expected, rel=1e-4, abs=1e-5)
        assert meta[k]['region_box'] == dataset.get_data_info(k)['region_box']
