"""MR series -> Volume: slice order from positions, spacing order, rescale, errors."""
import dataclasses

import numpy as np
import pydicom
import pytest

from data_prep.dicom_writer import PatientHeader, write_mr_series
from data_prep.discover import scan_patient
from data_prep.mr_volume import load_mr_series, load_mr_volume
from data_prep.types import DataPrepError

PID = 'P001'


def _write(tmp_path, volume, folder='mr', seed=0, **kwargs):
    kwargs.setdefault('spacing', (0.8, 0.8, 3.0))
    kwargs.setdefault('origin', (-20.0, -30.0, 10.0))
    written = write_mr_series(tmp_path / PID / folder, volume, description='T1_TSE_TRA',
                              patient=PatientHeader(), rng=np.random.default_rng(seed), **kwargs)
    return written, _scan(tmp_path, written)


def _scan(tmp_path, written):
    """The written series as discovery finds it (files edited after a scan need a new one:
    discovery's parsed datasets are what loading uses)."""
    series = [s for s in scan_patient(tmp_path / PID, PID) if s.series_uid == written.series_uid]
    return series[0]


def _ramp(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 1000, shape).astype(float)


def test_shuffled_files_in_reversed_slice_order_are_sorted_along_the_normal(tmp_path):
    volume = _ramp((6, 5, 7))
    # slices written going inferior: position decreases along n = +z
    written, series = _write(tmp_path, volume, direction=np.diag([1.0, 1.0, -1.0]))
    loaded = load_mr_series(series)
    np.testing.assert_array_equal(loaded.volume.array, volume[::-1])
    np.testing.assert_allclose(loaded.volume.direction, np.eye(3), atol=1e-9)
    np.testing.assert_allclose(loaded.volume.origin, written.slice_positions[-1])
    assert loaded.volume.spacing == pytest.approx((0.8, 0.8, 3.0))
    assert loaded.sop_instance_uids == tuple(written.sop_instance_uids[::-1])
    assert loaded.files == tuple(written.files[::-1])


def test_flipped_rows_keep_their_direction(tmp_path):
    volume = _ramp((4, 5, 6))
    direction = np.column_stack([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]])  # IOP 1,0,0,0,-1,0
    written, series = _write(tmp_path, volume, direction=direction)
    loaded = load_mr_volume(series)
    np.testing.assert_allclose(loaded.direction, direction, atol=1e-9)
    np.testing.assert_array_equal(loaded.array, volume)
    voxel = loaded.index_to_lps([2, 3, 1])[0]
    np.testing.assert_allclose(voxel, written.slice_positions[1] + [2 * 0.8, -3 * 0.8, 0])


def test_pixel_spacing_is_row_then_column(tmp_path):
    """spacing (i, j, k) = (PixelSpacing[1], PixelSpacing[0], gap) on a non-square matrix."""
    volume = _ramp((3, 6, 9))
    written, series = _write(tmp_path, volume, spacing=(0.7, 1.1, 2.5))
    ds = pydicom.dcmread(written.files[0])
    assert [float(v) for v in ds.PixelSpacing] == [1.1, 0.7]
    loaded = load_mr_volume(series)
    assert loaded.array.shape == (3, 6, 9) and loaded.array.dtype == np.float32
    assert loaded.spacing == pytest.approx((0.7, 1.1, 2.5))


@pytest.mark.parametrize('signed, rescale', [(True, None), (False, (2.5, -100.0)),
                                             (True, (0.5, 20.0))])
def test_rescale_and_signed_pixels(tmp_path, signed, rescale):
    rng = np.random.default_rng(3)
    stored = rng.integers(-300 if signed else 0, 300, (3, 4, 5)).astype(float)
    slope, intercept = rescale or (1.0, 0.0)
    real = stored * slope + intercept
    _, series = _write(tmp_path, real, signed=signed, rescale=rescale)
    np.testing.assert_allclose(load_mr_volume(series).array, real, rtol=0, atol=1e-4)


def test_oblique_series_direction_is_orthonormal_and_matches_positions(tmp_path):
    a, b = np.deg2rad(12), np.deg2rad(-7)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    direction = rz @ rx
    written, series = _write(tmp_path, _ramp((5, 4, 4)), direction=direction)
    loaded = load_mr_volume(series)
    np.testing.assert_allclose(loaded.direction.T @ loaded.direction, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(loaded.direction, direction, atol=1e-8)
    np.testing.assert_allclose(loaded.index_to_lps([[0, 0, 4]])[0], written.slice_positions[4],
                               atol=1e-5)
    assert 'oblique series (13.9 degrees off' in load_mr_series(series).warnings[0]


def test_single_slice_uses_the_header_thickness_with_a_warning(tmp_path):
    _, series = _write(tmp_path, _ramp((1, 4, 4)), spacing=(1.0, 1.0, 4.0))
    loaded = load_mr_series(series)
    assert loaded.volume.spacing[2] == pytest.approx(4.0)
    assert 'single-slice' in loaded.warnings[0]


def _edit(path, **values):
    ds = pydicom.dcmread(path)
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    ds.save_as(path)


def test_duplicated_position_raises_naming_both_files(tmp_path):
    written, series = _write(tmp_path, _ramp((5, 4, 4)))
    _edit(written.files[3], ImagePositionPatient=list(written.slice_positions[2]))
    series = _scan(tmp_path, written)
    with pytest.raises(DataPrepError, match='same slice position') as err:
        load_mr_volume(series)
    assert PID in str(err.value)
    for k in (2, 3):
        assert f'mr/{written.files[k].name}' in str(err.value)


def _without(series, *files):
    return dataclasses.replace(series, files=tuple(f for f in series.files if f not in files))


def test_one_missing_slice_is_interpolated_with_a_warning(tmp_path):
    volume = _ramp((6, 4, 4))
    written, series = _write(tmp_path, volume)
    loaded = load_mr_series(_without(series, written.files[3]))
    np.testing.assert_array_equal(loaded.volume.array[[0, 1, 2, 4, 5]], volume[[0, 1, 2, 4, 5]])
    np.testing.assert_allclose(loaded.volume.array[3], (volume[2] + volume[4]) / 2, rtol=1e-6)
    assert loaded.volume.spacing[2] == pytest.approx(3.0)
    assert loaded.slice_indices == (0, 1, 2, 4, 5) and len(loaded.files) == 5
    assert loaded.filled_slices == {3: (2, 4, 0.5)}
    (warning,) = loaded.warnings
    assert '1 missing slice(s) filled by linear interpolation (gap of 6.000 mm' in warning
    assert written.files[2].name in warning and written.files[4].name in warning


def test_irregular_gap_raises_naming_the_files_around_it(tmp_path):
    written, series = _write(tmp_path, _ramp((6, 4, 4)))
    _edit(written.files[3], ImagePositionPatient=list(written.slice_positions[3] + [0, 0, 1.5]))
    series = _scan(tmp_path, written)
    with pytest.raises(DataPrepError, match='irregular slice gap of 4.500 mm') as err:
        load_mr_volume(series)
    assert written.files[2].name in str(err.value) and written.files[3].name in str(err.value)


def test_two_consecutive_missing_slices_raise(tmp_path):
    written, series = _write(tmp_path, _ramp((6, 4, 4)))
    with pytest.raises(DataPrepError, match=f'{PID}: 2 consecutive slices missing') as err:
        load_mr_volume(_without(series, *written.files[2:4]))
    assert written.files[1].name in str(err.value) and written.files[4].name in str(err.value)


def test_identical_copy_of_a_file_is_ignored_but_a_different_one_raises(tmp_path):
    volume = _ramp((3, 4, 4))
    written, series = _write(tmp_path, volume)
    copy = written.files[1].with_name('copy.dcm')
    copy.write_bytes(written.files[1].read_bytes())
    with_copy = dataclasses.replace(series, files=(*series.files, copy))
    loaded = load_mr_series(with_copy)
    np.testing.assert_array_equal(loaded.volume.array, volume)
    assert 'copy.dcm are copies of one image' in loaded.warnings[0]
    ds = pydicom.dcmread(copy)
    ds.PixelData = bytes(len(ds.PixelData))
    ds.save_as(copy)
    with pytest.raises(DataPrepError, match=f'{PID}: files .*copy.dcm are different images'):
        load_mr_series(with_copy)


def test_slices_of_other_orientation_or_size_raise_naming_the_file(tmp_path):
    written, series = _write(tmp_path, _ramp((4, 4, 4)))
    _edit(written.files[1], ImageOrientationPatient=[1, 0, 0, 0, 0, -1])
    series = _scan(tmp_path, written)
    with pytest.raises(DataPrepError, match=f'{PID}.*{written.files[1].name}.*Orientation'):
        load_mr_volume(series)
    other, _ = _write(tmp_path, _ramp((2, 5, 4)), folder='other', seed=1)
    mixed = dataclasses.replace(series, files=(written.files[0], other.files[0]))
    with pytest.raises(DataPrepError, match='5x4 pixels differ from 4x4'):
        load_mr_volume(mixed)


def test_sheared_stack_raises(tmp_path):
    written, series = _write(tmp_path, _ramp((4, 4, 4)))
    _edit(written.files[2], ImagePositionPatient=list(written.slice_positions[2] + [1.5, 0, 0]))
    series = _scan(tmp_path, written)
    with pytest.raises(DataPrepError, match='sheared'):
        load_mr_volume(series)


def test_truncated_pixel_data_raises_naming_the_file(tmp_path):
    written, _ = _write(tmp_path, _ramp((3, 8, 8)))
    data = written.files[1].read_bytes()
    written.files[1].write_bytes(data[:-40])
    with pytest.raises(DataPrepError, match=f'patient {PID}.*{written.files[1].name}'):
        load_mr_volume(_scan(tmp_path, written))


def test_large_pixel_data_is_read_when_loaded(tmp_path):
    # 400 x 400 x 2 bytes = 320 KB per slice: over discovery's DEFER_SIZE, so discovery
    # leaves the pixels in the file and loading reads them from there
    volume = _ramp((2, 400, 400))
    _, series = _write(tmp_path, volume)
    np.testing.assert_array_equal(load_mr_volume(series).array, volume)
