"""RTSTRUCT reading: ROI name -> class aliases, contours, skipped contours, references."""
import json

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from data_prep.dicom_writer import PatientHeader, ellipse_contour, write_mr_series, write_rtstruct
from data_prep.options import PrepOptions, load_options
from data_prep.rtstruct import read_references, read_structure_set
from data_prep.types import DataPrepError

PID = 'P042'


@pytest.mark.parametrize('name, cls', [
    ('GTV', 'GTV'), ('GTVnx', 'GTV'), ('gtv_p', 'GTV'), ('GTV-T', 'GTV'), ('GTV primary', 'GTV'),
    ('GTVnp', 'GTV'), ('GTVpt', 'GTV'), ('GTV2', 'GTV'),
    ('GTVln', 'GTVln'), ('GTVnd', 'GTVln'), ('GTVnd_L', 'GTVln'), ('GTVn right', 'GTVln'),
    ('GTVln2', 'GTVln'), ('GTV_node', 'GTVln'), ('GTVnodes', 'GTVln'), ('gtvlymph_r1', 'GTVln'),
    ('GTVnd_R2', 'GTVln'),
    ('PTV70', None), ('CTVnx', None), ('GTVnx_ring', None), ('Brainstem', None), ('xGTV', None),
])
def test_default_roi_aliases(name, cls):
    assert PrepOptions().class_of(name) == cls


def test_user_roi_aliases_replace_the_defaults(tmp_path):
    mapping = tmp_path / 'map.json'
    mapping.write_text(json.dumps({'roi_aliases': {'GTV': ['Tumour', 'primary-tumor']}}))
    options = load_options(mapping)
    assert options.class_of('tumour') == 'GTV' and options.class_of('PRIMARY_TUMOR_L') == 'GTV'
    assert options.class_of('GTVnx') is None  # replaced
    assert options.class_of('GTVnd') == 'GTVln'  # untouched class keeps its defaults


def _series(tmp_path, seed=0):
    return write_mr_series(tmp_path / PID / 'mr', np.zeros((5, 16, 16)), spacing=(2.0, 2.0, 3.0),
                           origin=(-15.0, -15.0, 0.0), description='T2', patient=PatientHeader(),
                           rng=np.random.default_rng(seed))


def _rois():
    on = [ellipse_contour((1.0, 2.0, 3.0 * k), (6.0, 4.0), 16) for k in (1, 2)]
    return {'GTVnx': on, 'GTVnd_L': [ellipse_contour((8, 8, 6), (2, 2), 8)],
            'GTVnd_R': [ellipse_contour((-8, 8, 6), (2, 2), 8)],
            'PTV70': [ellipse_contour((0, 0, 6), (12, 12), 8)], 'Empty GTV': []}


def test_contours_are_read_per_class_and_roi(tmp_path):
    series = _series(tmp_path)
    rois = _rois()
    path = tmp_path / PID / 'RS.dcm'
    write_rtstruct(path, series, rois, patient=PatientHeader(), rng=np.random.default_rng(1))
    options = PrepOptions()
    options.roi_aliases['GTV'].append('empty gtv')
    structure = read_structure_set(path, PID, options)
    assert structure.roi_names() == {'GTV': ['Empty GTV', 'GTVnx'],
                                     'GTVln': ['GTVnd_L', 'GTVnd_R']}
    assert len(structure.rois['GTV']['GTVnx']) == 2
    for got, want in zip(structure.rois['GTV']['GTVnx'], rois['GTVnx']):
        np.testing.assert_allclose(got, want, atol=1e-6)
    assert structure.warnings == ["ROI 'Empty GTV' has no usable contour"]


def test_point_and_short_contours_are_skipped_with_warnings(tmp_path):
    path = tmp_path / PID / 'RS.dcm'
    write_rtstruct(path, _series(tmp_path), _rois(), patient=PatientHeader(),
                   rng=np.random.default_rng(1))
    ds = pydicom.dcmread(path)
    for kind, points in (('POINT', [[0.0, 0.0, 3.0]]), ('CLOSED_PLANAR', [[0, 0, 3], [1, 0, 3]]),
                         ('OPEN_PLANAR', [[0, 0, 3], [1, 0, 3], [1, 1, 3]])):
        item = Dataset()
        item.ContourGeometricType = kind
        item.NumberOfContourPoints = len(points)
        item.ContourData = [float(v) for v in np.ravel(points)]
        ds.ROIContourSequence[0].ContourSequence.append(item)
    ds.save_as(path)
    structure = read_structure_set(path, PID, PrepOptions())
    assert len(structure.rois['GTV']['GTVnx']) == 2
    assert sorted(structure.warnings) == [
        "ROI 'GTVnx': skipped 1 contour(s) with OPEN_PLANAR geometric type",
        "ROI 'GTVnx': skipped 1 contour(s) with POINT geometric type",
        "ROI 'GTVnx': skipped 1 contour(s) with fewer than 3 points"]


def test_rtstruct_without_gtv_raises_naming_patient_and_file(tmp_path):
    path = tmp_path / PID / 'plans' / 'RS_ptv.dcm'
    write_rtstruct(path, _series(tmp_path), {'PTV70': [ellipse_contour((0, 0, 6), (9, 9), 8)]},
                   patient=PatientHeader(), rng=np.random.default_rng(1))
    with pytest.raises(DataPrepError, match=r"P042: RTSTRUCT plans/RS_ptv.dcm has no GTV/GTVln "
                                            r"ROI \(ROIs: \['PTV70'\]\)"):
        read_structure_set(path, PID, PrepOptions())


@pytest.mark.parametrize('reference_series, reference_images', [(True, True), (False, True),
                                                                (False, False)])
def test_references(tmp_path, reference_series, reference_images):
    series = _series(tmp_path)
    path = tmp_path / PID / 'RS.dcm'
    write_rtstruct(path, series, _rois(), patient=PatientHeader(), rng=np.random.default_rng(1),
                   reference_series=reference_series, reference_images=reference_images)
    refs = read_references(path, PID)
    assert refs.series_uids == ({series.series_uid} if reference_series else set())
    assert refs.frame_of_reference_uids == {series.frame_of_reference_uid}
    if reference_images:  # contours on slices 1 and 2 (+ every slice at series level)
        wanted = set(series.sop_instance_uids if reference_series
                     else series.sop_instance_uids[1:3])
        assert refs.sop_instance_uids == wanted
    else:
        assert refs.sop_instance_uids == set()


def test_reading_an_mr_file_as_rtstruct_raises(tmp_path):
    series = _series(tmp_path)
    with pytest.raises(DataPrepError, match='is not an RTSTRUCT'):
        read_structure_set(series.files[0], PID, PrepOptions())


def test_contour_numbers_equal_pydicoms_parsed_or_not(tmp_path):
    series = _series(tmp_path)
    path = tmp_path / PID / 'RS.dcm'
    write_rtstruct(path, series, _rois(), patient=PatientHeader(), rng=np.random.default_rng(1))
    from_text = read_structure_set(path, PID, PrepOptions())  # raw DS text parsed here
    ds = pydicom.dcmread(path)
    expected = {}
    for roi in ds.StructureSetROISequence:
        for item in ds.ROIContourSequence:
            if item.ReferencedROINumber == roi.ROINumber:  # values converted by pydicom now
                expected[roi.ROIName] = [np.array([float(v) for v in c.ContourData]).reshape(-1, 3)
                                         for c in item.get('ContourSequence', [])]
    converted = read_structure_set(path, PID, PrepOptions(), dataset=ds)  # already converted
    for structure in (from_text, converted):
        for cls, rois in structure.rois.items():
            for name, contours in rois.items():
                assert len(contours) == len(expected[name])
                for got, want in zip(contours, expected[name]):
                    np.testing.assert_array_equal(got, want)


def test_contour_data_that_is_not_numbers_raises_naming_the_roi(tmp_path):
    series = _series(tmp_path)
    path = tmp_path / PID / 'RS.dcm'
    write_rtstruct(path, series, _rois(), patient=PatientHeader(), rng=np.random.default_rng(1))
    ds = pydicom.dcmread(path)
    contour = ds.ROIContourSequence[0].ContourSequence[0]
    contour.ContourData = [*contour.ContourData[:-1], 777.777]
    ds.save_as(path)
    path.write_bytes(path.read_bytes().replace(b'777.777', b'777.7x7'))  # not a number
    with pytest.raises(DataPrepError, match=rf"patient {PID}: RTSTRUCT .*RS.dcm, ROI 'GTVnx': "
                                            'ContourData is not a list of numbers'):
        read_structure_set(path, PID, PrepOptions())
