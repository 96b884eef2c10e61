"""Tests of the synthetic cohort (data_prep.synth): layout, DICOM, clinical table, signal."""
from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk
from matplotlib.path import Path as PolygonPath
from pydicom.errors import InvalidDicomError
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict

from data_prep.synth import (
    CLINICAL_COLUMNS,
    GTV_ALIASES,
    NODE_ALIASES,
    SERIES_DESCRIPTIONS,
    plan_cohort,
    plan_patient,
    render_patient,
    patient_rois,
    synthesize_cohort,
    write_clinical_csv,
    write_patient,
)
from data_prep.types import Volume

SMALL = dict(matrix=40, pixel_mm=5.5, n_slices=12, slice_mm=6.0)  # fast, still head-sized
MEDIUM = dict(matrix=64, pixel_mm=2.5, n_slices=16, slice_mm=5.0)  # enough voxels per lesion


@pytest.fixture(scope='module')
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize_cohort(tmp_path_factory.mktemp('synth') / 'cohort', 2, seed=3,
                             progress=False, **SMALL)


def _dicom_by_patient(patient_dir: Path) -> tuple[list[pydicom.Dataset], list[Path]]:
    """(every DICOM dataset, every other file) under a patient folder."""
    datasets, others = [], []
    for path in sorted(p for p in patient_dir.rglob('*') if p.is_file()):
        try:
            ds = pydicom.dcmread(path)
            ds.filename = str(path)
            datasets.append(ds)
        except InvalidDicomError:
            others.append(path)
    return datasets, others


def test_same_seed_gives_byte_identical_cohort(cohort: Path, tmp_path: Path) -> None:
    again = synthesize_cohort(tmp_path / 'again', 2, seed=3, progress=False, **SMALL)
    files = sorted(p.relative_to(cohort) for p in cohort.rglob('*') if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob('*') if p.is_file())
    assert all((cohort / f).read_bytes() == (again / f).read_bytes() for f in files)
    other = synthesize_cohort(tmp_path / 'other', 1, seed=4, progress=False, **SMALL)
    assert (other / 'clinical.csv').read_text() != (cohort / 'clinical.csv').read_text()


def test_refuses_non_empty_output(cohort: Path) -> None:
    with pytest.raises(FileExistsError):
        synthesize_cohort(cohort, 1, progress=False, **SMALL)


def test_patient_i_does_not_depend_on_cohort_size() -> None:
    assert plan_cohort(3, 9, **SMALL)[1].clinical == plan_patient(2, 9, **SMALL).clinical


def test_layout_three_series_three_rtstructs(cohort: Path) -> None:
    assert sorted(p.name for p in cohort.iterdir()) == ['NPC001', 'NPC002', 'clinical.csv']
    for patient_dir in sorted(p for p in cohort.iterdir() if p.is_dir()):
        datasets, others = _dicom_by_patient(patient_dir)
        assert all(p.name == 'notes.txt' for p in others)
        mr = defaultdict(list)
        for ds in datasets:
            if ds.Modality == 'MR':
                mr[ds.SeriesInstanceUID].append(ds)
        rtstructs = [ds for ds in datasets if ds.Modality == 'RTSTRUCT']
        assert len(mr) == 3 and len(rtstructs) == 3
        assert {s[0].StudyInstanceUID for s in mr.values()} == {rtstructs[0].StudyInstanceUID}
        assert len({ds.FrameOfReferenceUID for s in mr.values() for ds in s}) == 1
        descriptions = sorted(s[0].SeriesDescription for s in mr.values())
        for sequence, options in SERIES_DESCRIPTIONS.items():
            assert sum(d in options for d in descriptions) == 1, (sequence, descriptions)
        referenced = []
        for rt in rtstructs:
            ref = (rt.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
                   .RTReferencedSeriesSequence[0])
            sops = {ds.SOPInstanceUID for ds in mr[ref.SeriesInstanceUID]}
            contour_sops = {c.ContourImageSequence[0].ReferencedSOPInstanceUID
                            for item in rt.ROIContourSequence for c in item.ContourSequence}
            assert contour_sops <= sops
            referenced.append(ref.SeriesInstanceUID)
        assert sorted(referenced) == sorted(mr)


def test_rois_use_aliases_and_include_irrelevant_ones(cohort: Path) -> None:
    for patient_dir in sorted(p for p in cohort.iterdir() if p.is_dir()):
        rt = next(ds for ds in _dicom_by_patient(patient_dir)[0] if ds.Modality == 'RTSTRUCT')
        names = [roi.ROIName for roi in rt.StructureSetROISequence]
        assert sum(n in GTV_ALIASES for n in names) == 1
        nodes = [n for n in names if n.rstrip('_LR') in NODE_ALIASES or n in NODE_ALIASES]
        assert 1 <= len(nodes) <= 2
        assert len(names) - 1 - len(nodes) in (1, 2)


def test_planted_identifiers_are_in_dicom_not_in_csv(cohort: Path) -> None:
    datasets, _ = _dicom_by_patient(cohort / 'NPC002')
    assert {str(ds.PatientName) for ds in datasets} == {'SYNTH^NPC002'}
    assert {ds.PatientID for ds in datasets} == {'SYN-ID-002'}
    assert {ds.AccessionNumber for ds in datasets} == {'ACC-SYN-002'}
    table = (cohort / 'clinical.csv').read_text()
    assert 'SYNTH' not in table and 'SYN-ID' not in table and 'NPC002' in table


def test_series_share_one_exact_grid(tmp_path: Path) -> None:
    """Reversed, row-flipped and rescaled series hold the rendered volume exactly."""
    plans = plan_cohort(40, 0, **SMALL)
    wanted = {'reversed': lambda s: s.reversed_slices, 'flipped': lambda s: s.flipped_rows,
              'rescaled': lambda s: s.rescale is not None}
    chosen = {next(p for p in plans if any(f(s) for s in p.series)).index for f in wanted.values()}
    for plan in (plans[i - 1] for i in sorted(chosen)):
        volumes = write_patient(plan, tmp_path / plan.patient_id, 0)
        reader = sitk.ImageSeriesReader()
        for series_plan in plan.series:
            folder = Path(next(str(p) for p in (tmp_path / plan.patient_id).rglob('*') if p.is_file()
                               and _is_series(p, series_plan.description)))
            uid = pydicom.dcmread(folder).SeriesInstanceUID
            reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder.parent), uid))
            image = reader.Execute()
            array = sitk.GetArrayFromImage(image)
            kk, jj, ii = np.indices(array.shape)
            ijk = np.stack([ii.ravel(), jj.ravel(), kk.ravel()], axis=1)
            theirs = Volume(array, image.GetSpacing(), image.GetOrigin(),
                            np.array(image.GetDirection()).reshape(3, 3))
            canonical = Volume(volumes[series_plan.sequence], plan.grid.spacing, plan.grid.origin)
            index = canonical.lps_to_index(theirs.index_to_lps(ijk))
            assert np.allclose(index, np.rint(index), atol=1e-4)
            i, j, k = np.rint(index).astype(int).T
            expected = canonical.array[k, j, i]
            tolerance = 0.5 * (series_plan.rescale[0] if series_plan.rescale else 1.0) + 1e-3
            assert np.abs(array.ravel() - expected).max() <= tolerance


def _is_series(path: Path, description: str) -> bool:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        return False
    return ds.Modality == 'MR' and ds.SeriesDescription == description


def test_clinical_csv_values(cohort: Path, tmp_path: Path) -> None:
    with open(cohort / 'clinical.csv', newline='') as handle:
        assert tuple(next(csv.reader(handle))) == (*CLINICAL_COLUMNS, 'ebv_dna_copies_ml')
    path = tmp_path / 'clinical.csv'
    write_clinical_csv(plan_cohort(300, 1, **SMALL), path)
    table = pd.read_csv(path, dtype={'msom_site': str})
    assert table['patient_id'].is_unique and table['patient_id'].iloc[0] == 'NPC001'
    assert table['age'].between(25, 75).all()
    assert 0.55 < (table['sex'] == 'M').mean() < 0.9
    assert set(table['t_stage']) == {'T1', 'T2', 'T3', 'T4'}
    assert set(table['n_stage']) == {'N0', 'N1', 'N2', 'N3'}
    assert set(table['clinical_stage']) == {'II', 'III', 'IVA'}
    assert table['pni'].dropna().between(35, 65).all() and table['hgb'].dropna().between(90, 180).all()
    assert table['gtv_dose_gy'].between(66, 72).all()
    assert table['cisplatin_dose_mg_m2'].dropna().between(0, 300).all()
    assert table['chemo_cycles'].between(0, 6).all()
    for column in ('pni', 'hgb', 'cisplatin_dose_mg_m2', 'ebv_dna_copies_ml'):
        assert 0.0 < table[column].isna().mean() < 0.12
    ebv = table['ebv_dna_copies_ml'].dropna()
    assert (ebv >= 0).all() and 0.0 < (ebv == 0).mean() < 0.3  # some undetectable
    # EBV DNA carries metastasis risk (it measures a latent of its own): AUC about 0.61
    rows = [(p.clinical['msom'], p.clinical['ebv_dna_copies_ml']) for p in plan_cohort(1000, 1)
            if p.clinical['ebv_dna_copies_ml'] is not None]
    assert roc_auc_score([r[0] for r in rows], np.log10(1 + np.array([r[1] for r in rows]))) > 0.57
    assert table.drop(columns=['pni', 'hgb', 'cisplatin_dose_mg_m2', 'msom_site',
                               'ebv_dna_copies_ml']).notna().all().all()
    metastatic = table['msom'] == 1
    assert table.loc[metastatic, 'msom_site'].isin(['liver', 'lung', 'bone']).all()
    assert table.loc[~metastatic, 'msom_site'].isna().all()
    assert (table['dmfs_event'] == table['msom']).all()
    assert (table.loc[metastatic, 'dmfs_months'] > 6).all()
    assert (table['dmfs_months'] <= table['os_months']).all()
    assert table.loc[metastatic, 'os_event'].mean() > table.loc[~metastatic, 'os_event'].mean()


def test_msom_is_predictable_but_not_perfectly_from_clinical_columns(tmp_path: Path) -> None:
    path = tmp_path / 'clinical.csv'
    plans = plan_cohort(300, 2, **SMALL)
    write_clinical_csv(plans, path)
    table = pd.read_csv(path)
    y = table['msom'].to_numpy()
    assert 0.3 < y.mean() < 0.5
    features = pd.DataFrame({
        'age': table['age'], 'n': table['n_stage'].str[1].astype(int),
        't': table['t_stage'].str[1].astype(int), 'hgb': table['hgb'], 'pni': table['pni']})
    features = features.fillna(features.median())
    features = (features - features.mean()) / features.std()
    predicted = cross_val_predict(LogisticRegression(), features, y, cv=5, method='predict_proba')[:, 1]
    assert 0.62 < roc_auc_score(y, predicted) < 0.9
    oracle = roc_auc_score(y, [p.oracle_risk for p in plans])
    assert 0.7 < oracle < 0.9


def _inside_contours(plan, contours: list[np.ndarray], margin_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Voxel masks (slices, rows, columns): > margin inside any contour, and a
    ring margin..3*margin outside, on the plan's canonical grid."""
    grid = plan.grid
    x, y, z = (grid.axis_mm(a) for a in range(3))
    xx, yy = np.meshgrid(x, y)
    points = np.stack([xx.ravel(), yy.ravel()], axis=1)
    inside = np.zeros(grid.shape, bool)
    ring = np.zeros(grid.shape, bool)
    for contour in contours:
        k = int(np.argmin(np.abs(z - contour[0, 2])))
        near = (np.all(points >= contour[:, :2].min(0) - 3 * margin_mm, axis=1)
                & np.all(points <= contour[:, :2].max(0) + 3 * margin_mm, axis=1))
        edges = np.stack([contour[:, :2], np.roll(contour[:, :2], -1, axis=0)], axis=1)
        distance = _distance_to_segments(points[near], edges)
        contained = PolygonPath(contour[:, :2]).contains_points(points[near])
        inside[k].ravel()[np.flatnonzero(near)[contained & (distance > margin_mm)]] = True
        in_ring = ~contained & (distance > margin_mm) & (distance < 3 * margin_mm)
        ring[k].ravel()[np.flatnonzero(near)[in_ring]] = True
    return inside, ring & ~inside


def _distance_to_segments(points: np.ndarray, edges: np.ndarray) -> np.ndarray:
    a, b = edges[:, 0][None], edges[:, 1][None]
    ab = b - a
    t = np.clip(((points[:, None] - a) * ab).sum(-1) / (ab**2).sum(-1), 0, 1)
    return np.linalg.norm(points[:, None] - (a + t[..., None] * ab), axis=-1).min(axis=1)


def test_lesions_in_the_images_match_their_contours() -> None:
    for index in (1, 2, 3):
        plan = plan_patient(index, 0, **MEDIUM)
        t2 = render_patient(plan, np.random.default_rng(0))['t2']
        gain = next(s.gain for s in plan.series if s.sequence == 't2')
        bright = t2 > 350 * gain  # tumour and nodes ~600, muscle ~230, fat ~160 (T2 FS)
        rois = patient_rois(plan)
        lesion_contours = [c for name in rois if name.upper().startswith('GTV') for c in rois[name]]
        inside, ring = _inside_contours(plan, lesion_contours, margin_mm=1.5)
        assert inside.sum() > 20
        assert bright[inside].mean() > 0.95
        assert bright[ring].mean() < 0.2  # the contour is where the lesion ends


def test_image_latent_shows_as_tumour_heterogeneity() -> None:
    """CE-T1 heterogeneity inside the GTV rises with the image latent z_img."""
    latent, heterogeneity = [], []
    for plan in plan_cohort(24, 5, **MEDIUM):
        cet1 = render_patient(plan, np.random.default_rng(0))['cet1']
        gtv_name = next(n for n in plan.roi_order if n in GTV_ALIASES)
        inside, _ = _inside_contours(plan, patient_rois(plan)[gtv_name], margin_mm=1.0)
        values = cet1[inside]
        latent.append(plan.z_img)
        heterogeneity.append(values.std() / values.mean())
    assert spearmanr(latent, heterogeneity).statistic > 0.6


def test_version_2_draws_the_same_patients_with_another_outcome_model() -> None:
    """Version 2 adds its draws from a stream of its own: anatomy, tumour, nodes and the
    clinical values drawn before the outcome are those of version 1 (which stays
    byte-identical to the cohorts made before it); the outcome model adds the nodal latent."""
    for index in (1, 2, 3):
        one, two = (plan_patient(index, 4, generator_version=v, **SMALL) for v in (1, 2))
        assert one.gtv == two.gtv and one.grid == two.grid and one.z_img == two.z_img
        assert [n.center for n in one.nodes] == [n.center for n in two.nodes]
        same = ['age', 'sex', 't_stage', 'n_stage', 'clinical_stage', 'treatment']
        assert {c: one.clinical[c] for c in same} == {c: two.clinical[c] for c in same}
        assert one.z_node == 0.0 and two.z_node != 0.0
        assert len(two.node_necrosis) == len(two.nodes) and one.node_necrosis == ()
    with pytest.raises(ValueError, match='generator_version'):
        plan_patient(1, 0, generator_version=3, **SMALL)


def _gtv_slice_heterogeneity(plan, volume) -> list[float]:
    gtv_name = next(n for n in plan.roi_order if n in GTV_ALIASES)
    inside, _ = _inside_contours(plan, patient_rois(plan)[gtv_name], margin_mm=1.0)
    return [float(volume[k][inside[k]].std() / volume[k][inside[k]].mean())
            for k in range(inside.shape[0]) if inside[k].sum() >= 15]


def test_version_2_no_single_slice_is_an_oracle_and_the_nodes_carry_a_signal() -> None:
    """CE-T1 heterogeneity (SD / mean inside the GTV): in version 1 one tumour slice drawn at
    random ranks the patients by z_img almost as well as all slices together; in version 2
    a slice departs from its tumour (per-slice necrosis, texture and rim), while the mean
    over the slices still follows z_img. The nodes' heterogeneity follows z_node."""
    rho = {}
    for version in (1, 2):
        latent, one_slice, all_slices, z_node, nodes = [], [], [], [], []
        for plan in plan_cohort(30, 5, generator_version=version, **MEDIUM):
            cet1 = render_patient(plan, np.random.default_rng(0))['cet1']
            per_slice = _gtv_slice_heterogeneity(plan, cet1)
            latent.append(plan.z_img)
            one_slice.append(per_slice[np.random.default_rng(plan.index).integers(len(per_slice))])
            all_slices.append(np.mean(per_slice))
            node_contours = [c for name, contours in patient_rois(plan).items()
                             if name.upper().startswith('GTV') and name not in GTV_ALIASES
                             for c in contours]  # node ROIs: GTVln1, GTVnd_L, ...
            inside, _ = _inside_contours(plan, node_contours, margin_mm=0.5)
            z_node.append(plan.z_node)
            nodes.append(cet1[inside].std() / cet1[inside].mean())
        rho[version] = (spearmanr(latent, one_slice).statistic,
                        spearmanr(latent, all_slices).statistic,
                        spearmanr(z_node, nodes).statistic if version == 2 else None)
    assert rho[1][0] > 0.85 and rho[1][1] > 0.9  # version 1: one slice is nearly an oracle
    assert rho[2][0] < rho[1][0] - 0.1  # version 2: one slice is not ...
    assert rho[2][1] > 0.9  # ... but the tumour as a whole is
    assert rho[2][2] > 0.7  # nodal necrosis and margins follow z_node


def test_version_1_is_the_generator_of_the_figures_measured_before_version_2(
        tmp_path: Path) -> None:
    """Hashes of a version-1 clinical table and rendered volumes, computed with commit
    9d62a98's data_prep/synth.py (before version 2 existed): the figures measured on
    version-1 cohorts stay reproducible bit for bit."""
    import hashlib
    plans = plan_cohort(6, 4, generator_version=1, **SMALL)
    path = tmp_path / 'clinical.csv'
    write_clinical_csv(plans, path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == \
        '10bb7448fa0a9e2bb3fcab898041d41bf500e5950a8cfccff1a37fca856ab78b'
    volumes = render_patient(plans[2], np.random.default_rng(0))
    assert hashlib.sha256(b''.join(volumes[s].tobytes() for s in sorted(volumes))).hexdigest() == \
        'be7a86b919eec0c8809f169304a82c36da7079dcb348bc2711493b522a1400b0'
