"""A lesion brighter than 99.5 % of its volume keeps its internal contrast through conversion.

The series below is what an enhancing tumour looks like in a dark, fat-suppressed
CE-T1 series: the GTV (~0.2 % of the voxels) is brighter than every other
voxel, with a textured rim and a darker necrotic core. Under the old rule (clip
at the 99.5th percentile, ``intensity_top_voxels=None``) nearly all of it came out
at 255; the converter must now keep it graded and say in the manifest that it did.
"""
import numpy as np
import pytest

from data_prep.dicom_writer import PatientHeader, write_mr_series, write_rtstruct
from data_prep.intensity import CLIP_WARN_SHARE, intensity_limits
from data_prep.options import PrepOptions
from data_prep.patient import prepare_patient

PID = 'NPC_BRIGHT'
HEADER = PatientHeader(name='ROE^RICHARD', patient_id='MRN55', birth_date='19700101',
                       accession='ACC55', institution='Clinic', study_date='20200101')
SPACING, SHAPE, ORIGIN = (1.8, 1.8, 3.0), (12, 64, 64), (-57.0, -57.0, -15.0)
CENTRE, SEMI = np.array([5.0, -4.0, 3.0]), np.array([9.0, 7.0, 7.0])  # GTV ellipsoid, mm


def _write_bright_lesion_patient(root):
    rng = np.random.default_rng(3)
    k, j, i = np.meshgrid(*[np.arange(n) for n in SHAPE], indexing='ij')
    lps = np.stack([ORIGIN[0] + i * SPACING[0], ORIGIN[1] + j * SPACING[1],
                    ORIGIN[2] + k * SPACING[2]], axis=-1)
    radius = np.sqrt((((lps - CENTRE) / SEMI) ** 2).sum(-1))  # 1 on the GTV surface
    volume = rng.normal(300, 30, SHAPE)
    lesion = radius < 1
    # rim ~1200 (texture sd 60), necrotic core ~800: all above the background
    volume[lesion] = np.where(radius[lesion] < 0.5, 800, 1200) + rng.normal(0, 60, lesion.sum())
    series = write_mr_series(root / 'cet1', volume.clip(0), spacing=SPACING, origin=ORIGIN,
                             description='T1 +C FS TRA', patient=HEADER, rng=rng)
    contours = []
    for plane in range(SHAPE[0]):
        z = ORIGIN[2] + plane * SPACING[2]
        shrink = 1 - ((z - CENTRE[2]) / SEMI[2]) ** 2
        if shrink > 0.05:
            angle = np.linspace(0, 2 * np.pi, 64, endpoint=False)
            contours.append(np.column_stack([CENTRE[0] + SEMI[0] * np.sqrt(shrink) * np.cos(angle),
                                             CENTRE[1] + SEMI[1] * np.sqrt(shrink) * np.sin(angle),
                                             np.full_like(angle, z)]))
    write_rtstruct(root / 'RS.dcm', series, {'GTV': contours}, patient=HEADER, rng=rng)
    return volume, lesion


@pytest.fixture(scope='module')
def bright(tmp_path_factory):
    root = tmp_path_factory.mktemp('bright') / PID
    volume, lesion = _write_bright_lesion_patient(root)
    assert lesion.mean() < 0.005 and volume[lesion].min() > np.percentile(volume[~lesion], 99.9)
    return root


def _gtv_pixels(prepared):
    return np.concatenate([s.image[s.masks['GTV']] for s in prepared.slices if 'GTV' in s.masks])


def test_bright_lesion_keeps_its_contrast_and_the_manifest_says_so(bright):
    prepared = prepare_patient(bright, PID, PrepOptions(sequences=('cet1',)))['cet1']
    pixels = _gtv_pixels(prepared)
    shares = prepared.info['intensity']['contour_clip_shares']['GTV']
    assert shares['voxels'] > 1000 and shares['low'] == 0.0
    assert shares['high'] * shares['voxels'] <= 27 + 3  # the 27 brightest voxels reach 255
    assert not any('intensity limit' in w for w in prepared.info['warnings'])
    assert np.mean(pixels >= 250) < 0.02
    # the necrotic core and the rim stay apart, and the rim's texture stays graded
    assert np.std(pixels.astype(float)) > 20 and len(np.unique(pixels)) > 60
    lower, upper = prepared.info['intensity']['limits']
    assert upper > 1100  # the rim's level (1200), not the volume's 99.5th percentile (~400)


def test_the_old_percentile_rule_saturates_it_and_is_reported(bright):
    """The measurement can fail: the rule before the fence erases the same lesion."""
    options = PrepOptions(sequences=('cet1',), intensity_top_voxels=None)
    prepared = prepare_patient(bright, PID, options)['cet1']
    shares = prepared.info['intensity']['contour_clip_shares']['GTV']
    assert shares['high'] > 0.5
    assert np.mean(_gtv_pixels(prepared) >= 250) > 0.5
    assert any(f'{shares["high"]:.0%} of the GTV voxels sit at the upper intensity limit' in w
               for w in prepared.info['warnings'])
    assert shares['high'] > CLIP_WARN_SHARE


def test_a_few_outlier_voxels_are_clipped_a_structure_is_not():
    rng = np.random.default_rng(0)
    values = rng.normal(100, 10, 100_000).astype(np.float32)
    values[:5] = 1e6  # hot voxels far beyond any tissue
    lo, hi = np.percentile(values, [0.5, 99.5])
    assert intensity_limits(values, (0.5, 99.5), None) == pytest.approx((lo, hi))
    limits = intensity_limits(values, (0.5, 99.5), 27)
    assert limits[0] == pytest.approx(lo) and limits[1] < 200  # the spikes set nothing
    assert limits[1] == np.sort(values)[-27]
    values[:300] = 400 + rng.normal(0, 20, 300)  # a 300 mm3 bright lesion: keeps its grading
    upper = intensity_limits(values, (0.5, 99.5), 27)[1]
    assert np.mean(values[:300] >= upper) < 0.1
    with pytest.raises(ValueError, match='top_voxels'):
        intensity_limits(values, (0.5, 99.5), 0)
