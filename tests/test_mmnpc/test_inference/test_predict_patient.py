"""Prediction for a new patient: tumour slices found, scored, mapped back to millimetres.

The detector is replaced by an oracle that returns the converter's own
ground-truth masks, so the test checks what predict adds -- slice search,
scoring, averaging, geometry, outputs -- independently of detector quality.
"""
from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from mmengine.config import Config

from data_prep.coco_writer import jpeg_round_trip
from data_prep.dicom_writer import PatientHeader, ellipse_contour, write_mr_series, write_rtstruct
from data_prep.options import PrepOptions
from data_prep.mask_sources import seg_masks
from data_prep.mr_volume import load_mr_series
from data_prep.patient import prepare_patient
from data_prep.rasterize import class_masks
from data_prep.rtstruct import read_structure_set
from data_prep.testing.enhanced_mr import write_enhanced_mr
from data_prep.types import SeriesInfo
from mmnpc.inference.predict_patient import (PatientPrediction, PredictOptions, find_tumour_slices,
                                             load_series, predict_patient, slices_to_look_at,
                                             slices_to_score)
from mmnpc.inference.prediction_outputs import write_prediction
from mmnpc.inference.slice_detector import SliceDetections

REPO = Path(__file__).resolve().parents[3]
PID = 'NEW_007'
HEADER = PatientHeader(name='ROE^RICHARD', patient_id='MRN777', birth_date='19500101',
                       accession='ACC777', institution='Elsewhere Hospital', study_date='20200202')
LESION = np.array([10.0, -15.0, 6.0])  # LPS mm
SEMI = 9.0  # mm, radius of the spherical GTV
CLASSES = ('GTV', 'GTVln')


def _write_patient(root: Path) -> None:
    """A coronal CE-T1 series (slices along +y, rows along -z) with a spherical GTV contoured."""
    x, y, z = np.eye(3)
    direction, spacing, shape, origin = np.column_stack([x, -z, y]), (2.0, 2.0, 3.0), (14, 36, 44), \
        (-44.0, -40.0, 36.0)
    series = write_mr_series(root / 'mr', np.random.default_rng(3).normal(300, 30, shape).clip(0),
                             spacing=spacing, origin=origin, direction=direction,
                             description='T1 +C COR', patient=HEADER)
    contours = []
    for k in range(shape[0]):
        y_k = origin[1] + k * spacing[2]
        r2 = SEMI ** 2 - (y_k - LESION[1]) ** 2
        if r2 > 4:
            centre = np.array([LESION[0], y_k, LESION[2]])
            contours.append(ellipse_contour(centre, (np.sqrt(r2), np.sqrt(r2)), 48,
                                            plane_axes=(direction[:, 0], direction[:, 1])))
    write_rtstruct(root / 'RS.dcm', series, {'GTV': contours}, patient=HEADER)


class OracleDetector:
    """Returns a slice's ground-truth GTV mask as one detection scoring 0.9.

    Slices are recognised by their pixels: predict re-reads the same DICOM with
    the same code, so its images equal the converter's byte for byte, before or
    after the JPEG round trip the converter's slices go through.
    """

    classes = CLASSES

    def __init__(self, slices) -> None:
        self.truth = {image.tobytes(): (s.index, s.masks.get('GTV')) for s in slices
                      for image in (s.image, jpeg_round_trip(s.image))}
        self.calls: list[int] = []

    def detect(self, images):
        out = []
        for image in images:
            index, mask = self.truth[image.tobytes()]
            self.calls.append(index)
            if mask is None:
                out.append(SliceDetections(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int),
                                           np.zeros((0, *image.shape), bool)))
                continue
            v, u = np.nonzero(mask)
            box = np.array([[u.min(), v.min(), u.max() + 1, v.max() + 1]], float)
            out.append(SliceDetections(box, np.array([0.9]), np.array([0]), mask[None]))
        return out


@pytest.fixture(scope='module')
def patient(tmp_path_factory):
    root = tmp_path_factory.mktemp('new') / PID
    _write_patient(root)
    truth = prepare_patient(root, PID, PrepOptions(sequences=('cet1',)))['cet1']
    masks = {s.index: s.masks['GTV'] for s in truth.slices if 'GTV' in s.masks}
    assert masks, 'the test patient has no GTV'
    return root, truth.slices, masks


@pytest.fixture(scope='module')
def classifier():
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    import mmnpc  # noqa: F401
    cfg = Config.fromfile(str(REPO / 'configs' / 'msom_cet1_tiny.py'))
    init_default_scope('mmdet')
    return MODELS.build(cfg.model).eval(), cfg


def test_coarse_then_fine_slice_search():
    assert slices_to_look_at(10, 4) == [0, 4, 8]
    assert slices_to_look_at(10, 4, [4]) == [1, 2, 3, 4, 5, 6, 7]
    assert slices_to_look_at(5, 1) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError):
        slices_to_look_at(5, 0)


def test_coarse_search_finds_every_tumour_slice_with_fewer_calls(patient):
    _, slices, masks = patient
    detector = OracleDetector(slices)
    found, looked = find_tumour_slices([s.image for s in slices], detector, PredictOptions())
    assert set(found) == set(masks)
    assert len(detector.calls) < len(slices)  # did not look at every slice
    assert len(set(detector.calls)) == len(detector.calls)  # nor at any slice twice
    assert looked == sorted(detector.calls)


def _detections(area_px: int) -> SliceDetections:
    masks = np.zeros((1, 8, 8), bool)
    masks.flat[:area_px] = True
    return SliceDetections(np.zeros((1, 4)), np.array([0.9]), np.array([0]), masks)


def test_slices_scored_follow_the_classifier_test_dataset_rule():
    found = {i: _detections(area) for i, area in zip(range(20, 40), [3] * 5 + [7, 9, 9] + [2] * 12)}
    tiny = Config.fromfile(str(REPO / 'configs' / 'msom_cet1_tiny.py'))  # 8 evenly spaced
    chosen = slices_to_score(found, tiny)
    assert len(chosen) == 8 and chosen[0] == 20 and chosen[-1] == 39
    assert set(chosen) <= set(found)
    full = Config.fromfile(str(REPO / 'configs' / 'msom_cet1.py'))  # every tumour slice
    assert slices_to_score(found, full) == sorted(found)
    max_area = Config.fromfile(str(REPO / 'configs' / 'msom_maxslice_cet1.py'))
    assert slices_to_score(found, max_area) == [26]  # 9 px on 26 and 27: the lower index
    assert slices_to_score({}, tiny) == []


def test_prediction_lands_on_the_tumour_in_millimetres(patient, classifier, tmp_path):
    root, slices, masks = patient
    model, cfg = classifier
    pred = predict_patient(root, OracleDetector(slices), model, cfg, None, cutoff=0.5,
                           options=PredictOptions(sequence='cet1'))
    assert set(pred.detections) == set(masks)
    assert set(pred.slice_scores) == set(slices_to_score(pred.detections, cfg))
    assert len(pred.slice_scores) == min(8, len(masks))  # the tiny config's evaluation cap
    assert 0.0 <= pred.msom_score <= 1.0
    assert pred.msom_score == pytest.approx(np.mean(list(pred.slice_scores.values())))
    assert pred.risk_group == ('high' if pred.msom_score >= 0.5 else 'low')

    record = write_prediction(tmp_path / 'out', pred, CLASSES, 0.5, {'det_score_thr': 0.5})
    centre_slice = min(record['slices'], key=lambda s: abs(s['z_mm'] - LESION[2]))
    centroid = centre_slice['detections'][0]['centroid_lps_mm']
    assert np.allclose(centroid, LESION, atol=1.5)  # native voxels are 2-3 mm
    x1, y1, x2, y2 = centre_slice['detections'][0]['bbox_lps_mm']
    assert x2 - x1 == pytest.approx(2 * SEMI, abs=3) and y2 - y1 == pytest.approx(2 * SEMI, abs=3)
    assert (tmp_path / 'out' / centre_slice['overlay']).is_file()
    assert not (tmp_path / 'out.partial').exists()


def test_rtstruct_references_the_input_series_and_holds_no_identifiers(patient, tmp_path):
    root, _, masks = patient
    prepared, files = load_series(root, PID, PrepOptions(), 'cet1')
    dets = {}
    for i, mask in masks.items():
        v, u = np.nonzero(mask)
        dets[i] = SliceDetections(np.array([[u.min(), v.min(), u.max() + 1, v.max() + 1]], float),
                                  np.array([0.8]), np.array([0]), mask[None])
    pred = PatientPrediction(PID, prepared, files, dets, tuple(dets), {i: 0.3 for i in dets}, 0.3,
                             'low')
    write_prediction(tmp_path / 'out', pred, CLASSES, 0.5, {})
    assert not (tmp_path / 'out' / 'detections_seg.dcm').exists()  # only with seg=True (--seg)
    rs = pydicom.dcmread(tmp_path / 'out' / 'detections_rtstruct.dcm')
    series = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    assert rs.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID == \
        series[0].FrameOfReferenceUID
    sops = {ds.SOPInstanceUID for ds in series}
    refs = {img.ReferencedSOPInstanceUID for roi in rs.ROIContourSequence
            for c in roi.ContourSequence for img in c.ContourImageSequence}
    assert refs and refs <= sops
    everything = b''.join(p.read_bytes() for p in (tmp_path / 'out').rglob('*') if p.is_file())
    for planted in ('ROE^RICHARD', 'MRN777', '19500101', 'ACC777', 'Elsewhere Hospital'):
        assert planted.encode() not in everything


def test_no_detection_gives_a_message_not_a_number(patient, classifier, tmp_path):
    root, slices, _ = patient
    model, cfg = classifier
    no_tumour = [dataclasses.replace(s, masks={}) for s in slices]
    pred = predict_patient(root, OracleDetector(no_tumour), model, cfg, None, cutoff=0.5)
    record = write_prediction(tmp_path / 'out', pred, CLASSES, 0.5, {'det_score_thr': 0.5})
    assert pred.msom_score is None and record['msom_score'] is None
    assert record['status'] == 'no_tumour_detected'
    assert PID in record['message'] and 'no MSOM risk' in record['message']
    assert not (tmp_path / 'out' / 'detections_rtstruct.dcm').exists()
    assert json.loads((tmp_path / 'out' / 'prediction.json').read_text())['msom_score'] is None


def test_slices_are_scored_in_batches_with_the_same_scores(patient, classifier):
    from mmnpc.inference.predict_patient import score_slices
    _, slices, masks = patient
    model, cfg = classifier
    images = [slices[i].image for i in sorted(masks)][:7]
    together = score_slices(images, model, cfg, None, batch_size=len(images))
    in_threes = score_slices(images, model, cfg, None, batch_size=3)
    assert together.shape == (len(images),)
    np.testing.assert_allclose(in_threes, together, rtol=0, atol=1e-6)


AI_ALIASES = {'GTV': ['AI_GTV'], 'GTVln': ['AI_GTVln']}


def _read_back(out: Path, mr) -> tuple[dict, dict]:
    """(class masks of OUT's RTSTRUCT, of OUT's SEG) on the loaded MR series ``mr``."""
    warnings: list[str] = []
    structure = read_structure_set(out / 'detections_rtstruct.dcm', PID,
                                   PrepOptions(roi_aliases=AI_ALIASES))
    rt = class_masks(structure, mr.volume, context=PID, warnings_out=warnings)
    seg = seg_masks(out / 'detections_seg.dcm', mr.volume, AI_ALIASES, patient_id=PID,
                    warnings_out=warnings)
    assert warnings == [], warnings
    return rt, seg


def test_prediction_on_an_enhanced_multiframe_series(patient, classifier, tmp_path):
    """The patient's series as one Enhanced MR file (frames shuffled, no contours): the same
    detections, an RTSTRUCT referencing its frames and a SEG (--seg), both reading back to
    the masks the classic series' outputs give."""
    root, slices, masks = patient
    model, cfg = classifier
    one_slice = copy.deepcopy(cfg)  # score one slice: this test is about the outputs
    one_slice.test_dataloader.dataset.slice_selection = 'max_area'
    classic_files = sorted((root / 'mr').glob('*.dcm'))
    order = np.random.default_rng(5).permutation(len(classic_files))
    enhanced_root = tmp_path / 'enhanced' / PID
    enhanced = write_enhanced_mr(enhanced_root / 'mr' / 'enhanced.dcm',
                                 [classic_files[k] for k in order], rng=np.random.default_rng(6))
    pred = predict_patient(enhanced_root, OracleDetector(slices), model, one_slice, None,
                           cutoff=0.5, options=PredictOptions(sequence='cet1'))
    assert pred.series_files == (enhanced.path,)
    assert set(pred.detections) == set(masks) and len(pred.slice_scores) == 1
    classic = dataclasses.replace(pred, prepared=load_series(root, PID, PrepOptions(), 'cet1')[0],
                                  series_files=tuple(classic_files))
    outputs, loaded = {}, {}
    for kind, prediction in (('classic', classic), ('enhanced', pred)):
        outputs[kind] = tmp_path / f'out_{kind}'
        record = write_prediction(outputs[kind], prediction, CLASSES, 0.5, {}, seg=True)
        assert record['seg'] == 'detections_seg.dcm'
        headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in prediction.series_files]
        loaded[kind] = load_mr_series(SeriesInfo(
            patient_id=PID, modality='MR', series_uid=headers[0].SeriesInstanceUID,
            frame_of_reference_uid=headers[0].FrameOfReferenceUID, description='T1',
            files=tuple(prediction.series_files),
            sop_instance_uids=tuple(h.SOPInstanceUID for h in headers)))
    rs = pydicom.dcmread(outputs['enhanced'] / 'detections_rtstruct.dcm')
    frames = [c.ContourImageSequence[0] for roi in rs.ROIContourSequence
              for c in roi.ContourSequence]
    assert frames and {f.ReferencedSOPInstanceUID for f in frames} == {enhanced.sop_instance_uid}
    classic_rs = pydicom.dcmread(outputs['classic'] / 'detections_rtstruct.dcm')
    classic_refs = [c.ContourImageSequence[0].ReferencedSOPInstanceUID
                    for roi in classic_rs.ROIContourSequence for c in roi.ContourSequence]
    by_uid = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID: f
              for f in classic_files}
    # frame n of the enhanced file was made of enhanced.sources[n - 1]
    assert [enhanced.sources[int(f.ReferencedFrameNumber) - 1] for f in frames] == \
        [by_uid[uid] for uid in classic_refs]
    rt_classic, seg_classic = _read_back(outputs['classic'], loaded['classic'])
    rt_enhanced, seg_enhanced = _read_back(outputs['enhanced'], loaded['enhanced'])
    assert rt_classic['GTV'].sum() > 20
    for got in (seg_classic['GTV'], rt_enhanced['GTV'], seg_enhanced['GTV']):
        np.testing.assert_array_equal(got, rt_classic['GTV'])
    everything = b''.join(p.read_bytes() for p in outputs['enhanced'].rglob('*') if p.is_file())
    for planted in ('ROE^RICHARD', 'MRN777', '19500101', 'ACC777', 'Elsewhere Hospital',
                    '20200202'):
        assert planted.encode() not in everything


def test_region_model_scores_the_windows_the_contours_would_give(patient, tmp_path):
    """Prediction with a region classifier cuts, around the detector's box, exactly the
    tensor the region dataset's pipeline cuts around the contour's COCO box of the same
    lesion section; slice score = mean of its windows, patient score = mean of slices."""
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    import mmnpc  # noqa: F401
    from data_prep.coco_writer import slice_annotations
    from mmnpc.datasets.regions import coco_box
    from mmnpc.datasets.transforms import CropRegion

    root, slices, masks = patient
    cfg = Config.fromfile(str(REPO / 'configs' / 'msom_cet1_cpu.py'))
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model).eval()
    fed = []
    original = model.score_slices

    def capture(images, clinical=None):
        fed.append(images.clone())
        return original(images, clinical)

    model.score_slices = capture
    pred = predict_patient(root, OracleDetector(slices), model, cfg, None, cutoff=0.5,
                           options=PredictOptions(sequence='cet1'))
    windows = torch_cat(fed)
    largest = sorted(masks, key=lambda i: (-int(masks[i].sum()), i))[:8]  # regions_per_structure
    assert sorted(pred.slice_scores) == sorted(largest)
    step = [s for s in cfg.test_dataloader.dataset.pipeline if s['type'] == 'CropRegion'][0]
    crop = CropRegion(**{k: v for k, v in step.items() if k != 'type'})
    by_index = {s.index: s for s in slices}
    for k, index in enumerate(sorted(largest)):
        prepared = by_index[index]
        [annotation] = slice_annotations({'GTV': prepared.masks['GTV']}, prepared.image.shape)
        image = jpeg_round_trip(prepared.image)
        expected = crop(dict(img=np.repeat(image[..., None], 3, 2),
                             region_box=coco_box(annotation['bbox']),
                             spacing_mm=list(prepared.spacing_mm)))['img'][..., 0]
        assert np.array_equal(windows[k, 0].numpy(), expected)
    assert pred.msom_score == pytest.approx(np.mean(list(pred.slice_scores.values())))


def torch_cat(tensors):
    import torch
    return torch.cat(tensors)


@pytest.mark.parametrize('config', ['msom_cet1_tiny.py', 'msom_cet1_cpu.py'])
def test_cam_explains_each_scored_sample_and_is_written(patient, tmp_path, config):
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    import mmnpc  # noqa: F401
    from mmnpc.inference.explain import explain_prediction

    root, slices, masks = patient
    cfg = Config.fromfile(str(REPO / 'configs' / config))
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model).eval()
    pred = predict_patient(root, OracleDetector(slices), model, cfg, None, cutoff=0.5,
                           options=PredictOptions(sequence='cet1'))
    cams = explain_prediction(pred, model, cfg, CLASSES, None)
    assert sorted({c['slice_index'] for c in cams}) == sorted(pred.slice_scores)
    for item in cams:
        shares = [v for v in item['shares'].values() if v == v]
        assert not shares or sum(shares) == pytest.approx(1.0)
        assert item['overlay'].ndim == 3 and item['overlay'].dtype == np.uint8
    record = write_prediction(tmp_path / 'out', pred, CLASSES, 0.5, {'det_score_thr': 0.5},
                              cams=cams)
    assert len(record['cam']) == len(cams)
    assert all((tmp_path / 'out' / c['file']).is_file() for c in record['cam'])


def test_an_attention_model_is_pooled_by_attention_in_prediction(patient):
    """With bag_pooling='attention' the MSOM score is sigmoid(softmax(a) . logit) over the
    scored windows (the training and evaluation rule), not the mean of the slice scores."""
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    from scipy.special import expit, softmax

    import mmnpc  # noqa: F401
    root, slices, _ = patient
    cfg = Config.fromfile(str(REPO / 'configs' / 'msom_cet1_cpu_attention.py'))
    init_default_scope('mmdet')
    import torch
    torch.manual_seed(1)
    model = MODELS.build(cfg.model).eval()
    # windows that differ in logit and attention (an untrained model scores them all alike)
    model.attention[-1].weight.data.normal_(0, 2.0)
    model.fc.weight.data.normal_(0, 1.5)
    fed = []
    original = model.score_slices

    def capture(images, clinical=None, details=False):
        fed.append(images.clone())
        return original(images, clinical, details=details)

    model.score_slices = capture
    pred = predict_patient(root, OracleDetector(slices), model, cfg, None, cutoff=0.5,
                           options=PredictOptions(sequence='cet1'))
    _, logits, attention = original(torch_cat(fed), details=True)
    expected = float(expit(softmax(attention.numpy()) @ logits.numpy()))
    assert pred.msom_score == pytest.approx(expected, rel=1e-5)
    assert pred.msom_score != pytest.approx(np.mean(list(pred.slice_scores.values())), rel=0.02)
