"""Build the built-in SYNTHETIC cohort: DICOM MR + RTSTRUCT + clinical.csv.

The cohort is SYNTHETIC. It contains no patient data: every image is a
mathematical head-and-neck phantom, every name, identifier, date and clinical
value is drawn from a seeded random generator. It exists so that the whole
pipeline can be tested and demonstrated without access to real scans.

Layout written by :func:`synthesize_cohort` (the real input format)::

    COHORT/
      clinical.csv          one row per patient, keyed by patient_id
      NPC001/...            DICOM files, folder depth and file names vary
      NPC002/...

Each patient has three axial MR series (T1WI, T2WI fat-saturated, CE-T1WI
fat-saturated) sharing one study and frame of reference, and one RTSTRUCT per
series with the primary tumour (a GTV alias), 1-3 lymph nodes (a GTVln alias)
and 1-2 organ ROIs the converter must ignore. Per patient, and per series,
the writer varies the table position, slice storage order, row direction
(flipped rows), rescale slope, file names and folder layout; the geometry
stays exact. Some patients also have a ``notes.txt`` (not DICOM).

Outcome model (documented so results can be judged), ``generator_version`` 2
(the default since 2026-12-07):

* a standard-normal image latent ``z_img`` sets the primary tumour's size,
  internal texture, necrotic core and rim enhancement (strongest on CE-T1,
  visible on all sequences), each through a little patient-level noise, and
  the texture amplitude, the necrotic core's edge and the rim depart from
  slice to slice (one value per slice, smooth along z over ~3 mm): no single
  slice shows the latent exactly, the tumour's slices together do;
* a second image latent ``z_node`` sets the nodes' necrotic cores (central
  low CE-T1 signal with a rim) and the irregularity of their margins
  (extranodal extension), as NPC studies report nodal necrosis and ENE to
  carry distant-metastasis risk; node count and size follow N stage (clinical);
* a clinical score rises with N stage, age and pre-treatment plasma EBV DNA
  (``ebv_dna_copies_ml``, a noisy measure of its own latent) and falls with
  haemoglobin, the prognostic nutritional index and (slightly) a cumulative
  cisplatin dose of >= 200 mg/m2; T stage follows tumour size;
* ``msom ~ Bernoulli(sigmoid(-0.6 + 0.95 z_img + 0.75 z_node + 1.0 clinical +
  N(0, 0.5)))``: prevalence ~40%; ``image_risk = 0.95 z_img + 0.75 z_node`` is
  all the images hold, ``oracle_risk`` adds the clinical term
  (``experiments/synthetic_reference.py`` gives each latent's AUC on a split).

Version 1 (``generator_version=1``, the cohorts of the figures measured before
2026-12-07, byte-identical to them): ``z_img`` alone carries the image signal,
without noise (one central slice is close to an oracle), the nodes carry none,
there is no EBV DNA column,
and ``msom ~ Bernoulli(sigmoid(-0.55 + 1.1 z_img + 1.1 clinical + N(0, 0.5)))``:
prevalence ~39%, an oracle AUC about 0.8 (about 0.7 from either latent).

DMFS is the metastasis time (> 6 months)
for ``msom = 1`` and censored at last follow-up (24-96 months) or death
otherwise; deaths are more frequent and earlier after metastasis.
"""
from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.special import expit
from tqdm import tqdm

from data_prep.dicom_writer import (
    PatientHeader,
    ellipse_contour,
    uid_from_rng,
    write_mr_series,
    write_rtstruct,
)

CLINICAL_COLUMNS: tuple[str, ...] = (
    'patient_id', 'age', 'sex', 't_stage', 'n_stage', 'clinical_stage', 'pni', 'hgb',
    'treatment', 'gtv_dose_gy', 'cisplatin_dose_mg_m2', 'chemo_cycles', 'msom', 'msom_site',
    'dmfs_months', 'dmfs_event', 'os_months', 'os_event')

SERIES_DESCRIPTIONS: dict[str, tuple[str, ...]] = {
    't1': ('T1_TSE_TRA', 'Ax T1 FSE', 't1_tse_tra', 'T1WI AX'),
    't2': ('T2_TSE_TRA_FS', 'Ax T2 FS', 't2_tse_tra_fs', 'T2WI FS AX'),
    'cet1': ('T1_TSE_TRA_FS_POST_GD', 'Ax T1 +C', 'T1 CE TRA', 't1_tse_tra_fs_post'),
}
GTV_ALIASES: tuple[str, ...] = ('GTV', 'GTVnx', 'GTVp', 'GTV-P', 'GTV_T')
NODE_ALIASES: tuple[str, ...] = ('GTVln', 'GTVnd', 'GTV-N', 'GTVn', 'GTV_LN')
IRRELEVANT_ROIS: tuple[str, ...] = ('External', 'Brainstem', 'Parotid_L', 'SpinalCord')
METASTASIS_SITES: tuple[str, ...] = ('bone', 'lung', 'liver')

# Outcome model weights (see module docstring): version 1, and version 2 (the default).
W_IMAGE, W_CLINICAL, RISK_NOISE_SD, RISK_INTERCEPT = 1.1, 1.1, 0.5, -0.55
GENERATOR_VERSIONS: tuple[int, ...] = (1, 2)
DEFAULT_GENERATOR_VERSION = 2
W2_IMAGE, W2_NODE, W2_CLINICAL, RISK2_INTERCEPT = 0.95, 0.75, 1.0, -0.6
# Version 2: SD of the patient-level noise between z_img and what the tumour shows; gains of
# the per-slice departures (profiles along z, correlation HETEROGENEITY_Z_MM)
TEXTURE_NOISE_SD, NECROSIS_NOISE_SD, RIM_NOISE_SD = 0.25, 0.03, 0.25
CORE_JITTER, AMPLITUDE_JITTER, RIM_JITTER = 0.35, 0.6, 0.6  # per-slice departures
HETEROGENEITY_Z_MM = 3.0
MIN_SECTION_MM = 1.0  # a lesion appears on a slice only if its section is this wide
CONTOUR_POINTS = 72
EDGE_MM = 0.5  # width of the soft (partial volume) edge of every structure
NOISE_SD = 12.0  # SD of each quadrature channel of the (Rician) noise

# Signal per tissue and sequence before bias field, scanner gain and noise.
# T2 and CE-T1 are fat-saturated; flow voids dark except enhancing on CE-T1.
TISSUE_SIGNAL: dict[str, dict[str, float]] = {
    'fat': {'t1': 850, 't2': 160, 'cet1': 170},
    'muscle': {'t1': 330, 't2': 230, 'cet1': 360},
    'gland': {'t1': 650, 't2': 480, 'cet1': 520},
    'marrow': {'t1': 600, 't2': 200, 'cet1': 320},
    'csf': {'t1': 180, 't2': 1100, 'cet1': 180},
    'cord': {'t1': 420, 't2': 450, 'cet1': 430},
    'vessel': {'t1': 40, 't2': 40, 'cet1': 850},
    'air': {'t1': 0, 't2': 0, 'cet1': 0},
    'tumour': {'t1': 380, 't2': 620, 'cet1': 780},
    'necrosis': {'t1': 250, 't2': 900, 'cet1': 220},
    'node': {'t1': 370, 't2': 600, 'cet1': 700},
}
# How strongly the lesion texture and rim enhancement show, per sequence.
TEXTURE_GAIN = {'t1': 0.5, 't2': 0.7, 'cet1': 1.0}
RIM_GAIN = {'t1': 0.0, 't2': 0.1, 'cet1': 1.0}


@dataclass(frozen=True)
class Grid:
    """The acquisition grid in canonical axial orientation (identity direction).

    Voxel (i, j, k) is at ``origin + spacing * (i, j, k)`` LPS mm; shape is
    (slices, rows, columns).
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]  # mm (i, j, k)
    origin: tuple[float, float, float]  # LPS mm of voxel (0, 0, 0)

    def axis_mm(self, axis: int) -> np.ndarray:
        """LPS coordinates (mm) of the voxel centres along i (0), j (1) or k (2).

        Rounded to 1e-6 mm like the written ImagePositionPatient.
        """
        n = self.shape[2 - axis]
        return np.round(self.origin[axis] + self.spacing[axis] * np.arange(n), 6)


@dataclass(frozen=True)
class Lesion:
    """An irregular ellipsoid: star-shaped, exact polygonal sections.

    In the axial plane at height z, the boundary is at distance
    ``R(theta, z) = rho(z) * R_eq(theta, z)`` from ``center[:2]``, with
    ``rho = sqrt(1 - zeta^2)``, ``zeta = (z - cz) / semi_axes[2]`` and
    ``R_eq`` an ellipse (semi-axes[:2], rotated by ``angle``) modulated by
    low-order harmonics (rows of m, amplitude, phase, twist per unit zeta).
    """

    center: tuple[float, float, float]  # LPS mm
    semi_axes: tuple[float, float, float]  # mm, (x, y) before rotation, z
    angle: float  # rad, in-plane rotation
    harmonics: tuple[tuple[float, float, float, float], ...] = ()

    @property
    def max_radius_mm(self) -> float:
        """Upper bound of the in-plane distance of the boundary from the centre."""
        return max(self.semi_axes[:2]) * (1.0 + sum(abs(h[1]) for h in self.harmonics))

    def equator_radius(self, theta: np.ndarray, zeta: np.ndarray) -> np.ndarray:
        """R_eq in mm for in-plane angles ``theta`` (rad) at heights ``zeta``."""
        a, b = self.semi_axes[:2]
        t = theta - self.angle
        radius = a * b / np.sqrt((b * np.cos(t)) ** 2 + (a * np.sin(t)) ** 2)
        modulation = 1.0
        for m, amplitude, phase, twist in self.harmonics:
            modulation = modulation + amplitude * np.cos(m * t + phase + twist * zeta)
        return radius * modulation

    def zeta(self, z: np.ndarray | float) -> np.ndarray:
        return (np.asarray(z, dtype=float) - self.center[2]) / self.semi_axes[2]

    def has_section(self, z: float) -> bool:
        """Whether the slice at height z (mm) cuts at least MIN_SECTION_MM of the lesion."""
        zeta = float(self.zeta(z))
        if abs(zeta) >= 1.0:
            return False
        theta = np.linspace(0.0, 2.0 * np.pi, 360, endpoint=False)
        rho = np.sqrt(1.0 - zeta**2)
        return bool(rho * self.equator_radius(theta, zeta).min() >= MIN_SECTION_MM)

    def section_contour(self, z: float, n_points: int = CONTOUR_POINTS) -> np.ndarray:
        """The section at height z as an n_points x 3 polygon (LPS mm)."""
        zeta = float(self.zeta(z))
        theta = np.linspace(0.0, 2.0 * np.pi, n_points, endpoint=False)
        radius = np.sqrt(max(1.0 - zeta**2, 0.0)) * self.equator_radius(theta, zeta)
        x = self.center[0] + radius * np.cos(theta)
        y = self.center[1] + radius * np.sin(theta)
        return np.stack([x, y, np.full(n_points, z)], axis=1)


@dataclass
class SeriesPlan:
    """How one MR series is stored (the physical grid is the patient's)."""

    sequence: str  # one of SEQUENCES
    description: str
    series_number: int
    reversed_slices: bool  # stored top to bottom (slice direction -z)
    flipped_rows: bool  # row direction -y (IOP [1,0,0,0,-1,0])
    rescale: tuple[float, float] | None  # (slope, intercept)
    gain: float  # scanner gain applied to the signal
    extra_tags: dict


@dataclass
class PatientPlan:
    """Everything random about one synthetic patient, drawn before rendering."""

    patient_id: str
    index: int  # 1-based position in the cohort (seeds its generators)
    grid: Grid
    anatomy_center: tuple[float, float]  # LPS (x, y) mm of the head/neck axis
    z_img: float  # image latent of the primary tumour (standard normal)
    clinical_score: float  # clinical latent (about standard normal)
    oracle_risk: float  # the risk without its noise: image_risk + clinical weight * clinical
    gtv: Lesion
    nodes: list[Lesion]
    necrosis_fraction: float  # normalised radius of the GTV's necrotic core (0 = none)
    texture_amplitude: float  # relative SD of the GTV's internal texture
    rim_enhancement: float  # relative CE-T1 boost of the rim around the core
    clinical: dict[str, object]  # the clinical.csv row (None = empty cell)
    header: PatientHeader
    series: list[SeriesPlan]
    roi_names: dict[str, str]  # 'GTV' / 'node<i>' / organ -> ROI name written
    roi_order: tuple[str, ...]  # ROI names in the order written (ROI numbers)
    layout: int  # folder layout template
    notes_file: str | None  # relative path of a non-DICOM notes file
    fat_mm: float = 7.0  # subcutaneous fat thickness
    generator_version: int = 1
    z_node: float = 0.0  # image latent of the nodes (version 2; 0 in version 1)
    image_risk: float = 0.0  # the image part of oracle_risk
    node_necrosis: tuple[float, ...] = ()  # per node, normalised core radius (version 2)
    node_rim: float = 0.0  # relative CE-T1 boost of a necrotic node's rim (version 2)


def synthesize_cohort(out_dir: Path, n_patients: int = 24, seed: int = 0, *, matrix: int = 128,
                      pixel_mm: float = 1.8, n_slices: int = 22, slice_mm: float = 4.0,
                      progress: bool = True,
                      generator_version: int = DEFAULT_GENERATOR_VERSION) -> Path:
    """Write a SYNTHETIC cohort of ``n_patients`` to ``out_dir`` and return it.

    Args:
        out_dir: created if missing; must be empty.
        n_patients: patients NPC001, NPC002, ...
        seed: the same (n_patients, seed, grid) gives byte-identical files;
            patient i is the same whatever n_patients is.
        matrix: rows = columns of every image (px).
        pixel_mm: in-plane pixel size (mm).
        n_slices, slice_mm: number of axial slices and their spacing (mm).
        progress: show a tqdm progress bar.
        generator_version: the outcome and image model (module docstring); 1
            re-creates the cohorts made before 2026-12-07.

    Raises:
        FileExistsError: ``out_dir`` exists and is not empty.
        ValueError: a non-positive size.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f'refusing to write the synthetic cohort into non-empty {out_dir}')
    if min(n_patients, matrix, n_slices) < 1 or min(pixel_mm, slice_mm) <= 0:
        raise ValueError('n_patients, matrix, n_slices, pixel_mm and slice_mm must be positive')
    out_dir.mkdir(parents=True, exist_ok=True)
    plans = plan_cohort(n_patients, seed, matrix=matrix, pixel_mm=pixel_mm,
                        n_slices=n_slices, slice_mm=slice_mm, generator_version=generator_version)
    for plan in tqdm(plans, desc='synthetic cohort', unit='patient', disable=not progress):
        write_patient(plan, out_dir / plan.patient_id, seed)
    write_clinical_csv(plans, out_dir / 'clinical.csv')
    return out_dir


def plan_cohort(n_patients: int, seed: int, *, matrix: int = 128, pixel_mm: float = 1.8,
                n_slices: int = 22, slice_mm: float = 4.0,
                generator_version: int = DEFAULT_GENERATOR_VERSION) -> list[PatientPlan]:
    """Draw the plans (anatomy, lesions, clinical row, storage) of a cohort.

    Cheap (no images); used by :func:`synthesize_cohort` and to study the
    outcome model on large n.
    """
    return [plan_patient(index, seed, matrix=matrix, pixel_mm=pixel_mm, n_slices=n_slices,
                         slice_mm=slice_mm, generator_version=generator_version)
            for index in range(1, n_patients + 1)]


def plan_patient(index: int, seed: int, *, matrix: int = 128, pixel_mm: float = 1.8,
                 n_slices: int = 22, slice_mm: float = 4.0,
                 generator_version: int = DEFAULT_GENERATOR_VERSION) -> PatientPlan:
    """Draw patient ``index`` (1-based) of the cohort with ``seed``.

    Version 2 draws its extra quantities from a stream of their own, so that
    everything version 1 draws (anatomy, lesions, clinical row, storage) is
    the same patient in both versions; the outcome differs.
    """
    if generator_version not in GENERATOR_VERSIONS:
        raise ValueError(f'generator_version {generator_version} not in {GENERATOR_VERSIONS}')
    rng = np.random.default_rng([seed, index, 0])
    extra = np.random.default_rng([seed, index, 3])  # version 2 only
    patient_id = f'NPC{index:03d}'
    anatomy_center = (round(float(rng.uniform(-8, 8)), 1), round(float(rng.uniform(-10, 10)), 1))
    grid = _draw_grid(rng, anatomy_center, matrix, pixel_mm, n_slices, slice_mm)
    z_img = float(rng.standard_normal())
    gtv_diameter = float(np.clip(26.0 * np.exp(0.2 * z_img + rng.normal(0.0, 0.15)), 15.0, 40.0))
    gtv = _draw_gtv(rng, grid, anatomy_center, gtv_diameter)
    if not _cut_by_grid(gtv, grid):
        raise ValueError(f'slices of {slice_mm} mm are too far apart to show the tumour')
    clinical, clinical_score = _draw_clinical(rng, z_img, gtv_diameter)
    nodes = _draw_nodes(rng, grid, anatomy_center, int(clinical['n_stage'][1]), gtv)
    v2 = generator_version >= 2
    z_node = float(extra.standard_normal()) if v2 else 0.0
    if v2:
        clinical_score = _draw_ebv_dna(extra, clinical, clinical_score)
        image_risk = W2_IMAGE * z_img + W2_NODE * z_node
        oracle, intercept = image_risk + W2_CLINICAL * clinical_score, RISK2_INTERCEPT
    else:
        image_risk = W_IMAGE * z_img
        oracle, intercept = image_risk + W_CLINICAL * clinical_score, RISK_INTERCEPT
    risk = intercept + oracle + rng.normal(0.0, RISK_NOISE_SD)
    msom = int(rng.random() < expit(risk))
    clinical.update(_draw_outcome(rng, msom))
    _blank_some_cells(rng, clinical)
    clinical['patient_id'] = patient_id
    header = _draw_header(rng, index, clinical)
    roi_names = _draw_roi_names(rng, nodes, anatomy_center)
    unique_names = sorted(set(roi_names.values()))
    roi_order = tuple(unique_names[i] for i in rng.permutation(len(unique_names)))
    necrosis_noise = rng.normal(0, 0.05)
    texture_noise = rim_noise = 0.0
    node_necrosis: tuple[float, ...] = ()
    if v2:
        necrosis_noise += extra.normal(0.0, NECROSIS_NOISE_SD)
        texture_noise = extra.normal(0.0, TEXTURE_NOISE_SD)
        rim_noise = extra.normal(0.0, RIM_NOISE_SD)
        node_necrosis = tuple(float(np.clip(0.22 + 0.22 * z_node + extra.normal(0.0, 0.08),
                                            0.0, 0.65)) for _ in nodes)
        lobed: list[Lesion] = []
        for k, node in enumerate(nodes):
            others = [gtv, *lobed, *nodes[k + 1:]]
            lobed.append(_with_extranodal_extension(node, z_node, extra, grid, others))
        nodes = lobed
    return PatientPlan(
        patient_id=patient_id, index=index, grid=grid, anatomy_center=anatomy_center, z_img=z_img,
        clinical_score=clinical_score, oracle_risk=oracle, gtv=gtv, nodes=nodes,
        necrosis_fraction=float(np.clip(0.28 + 0.2 * z_img + necrosis_noise, 0.0, 0.7)),
        texture_amplitude=float(0.04 + 0.26 * expit(1.6 * z_img + texture_noise)),
        rim_enhancement=float(0.35 * expit(2.0 * z_img + rim_noise)),
        generator_version=generator_version, z_node=z_node, image_risk=image_risk,
        node_necrosis=node_necrosis, node_rim=float(0.3 * expit(2.0 * z_node)) if v2 else 0.0,
        clinical={name: clinical.get(name) for name in clinical_columns(generator_version)},
        header=header,
        series=_draw_series(rng), roi_names=roi_names, roi_order=roi_order,
        layout=int(rng.integers(3)),
        notes_file=(str(rng.choice(['notes.txt', 'study_1/notes.txt'])) if rng.random() < 0.35
                    else None),
        fat_mm=float(rng.uniform(5.0, 10.0)))


def write_patient(plan: PatientPlan, patient_dir: Path, seed: int) -> dict[str, np.ndarray]:
    """Render the three MR series of ``plan`` and write them with their RTSTRUCTs.

    Returns the rendered volumes (sequence -> (slices, rows, columns) on
    ``plan.grid``, canonical orientation), before storage order and rescale.
    """
    render_rng = np.random.default_rng([seed, plan.index, 1])
    dicom_rng = np.random.default_rng([seed, plan.index, 2])
    volumes = render_patient(plan, render_rng)
    rois = patient_rois(plan)
    study_uid = uid_from_rng(dicom_rng)
    frame_uid = uid_from_rng(dicom_rng)
    for number, series_plan in enumerate(plan.series, start=1):
        volume, origin, direction = _stored_geometry(volumes[series_plan.sequence], plan.grid,
                                                     series_plan)
        names = _mr_file_names(plan.layout, series_plan.series_number, volume.shape[0], dicom_rng)
        written = write_mr_series(
            patient_dir, volume, spacing=plan.grid.spacing, origin=origin, direction=direction,
            description=series_plan.description, patient=plan.header, study_uid=study_uid,
            frame_of_reference_uid=frame_uid, series_number=series_plan.series_number,
            rescale=series_plan.rescale, file_names=names, extra_tags=series_plan.extra_tags,
            rng=dicom_rng)
        write_rtstruct(patient_dir / _rtstruct_name(plan.layout, number, dicom_rng), written, rois,
                       patient=plan.header, series_number=1000 + series_plan.series_number,
                       label=f'RT_{series_plan.description}'[:16], rng=dicom_rng)
    if plan.notes_file is not None:
        notes = patient_dir / plan.notes_file
        notes.parent.mkdir(parents=True, exist_ok=True)
        notes.write_text('Synthetic export. Contours reviewed. Not patient data.\n')
    return volumes


def render_patient(plan: PatientPlan, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """sequence -> float32 volume (slices, rows, columns) on ``plan.grid``.

    Signal values are scanner-like (about 0-2000), with a smooth bias field,
    per-series gain and Rician noise.
    """
    grid = plan.grid
    shape = grid.shape
    x = grid.axis_mm(0).astype(np.float32)[None, None, :]
    y = grid.axis_mm(1).astype(np.float32)[None, :, None]
    z = grid.axis_mm(2)[:, None, None]  # float64: compared with slice heights
    tissues = _anatomy_masks(plan, x, y, z)
    lesion_texture = _smooth_field(rng, shape, grid.spacing, sigma_mm=2.5)
    tissue_texture = _smooth_field(rng, shape, grid.spacing, sigma_mm=4.0)
    fields = None
    if plan.generator_version >= 2:  # within-tumour heterogeneity (module docstring)
        fields = [_slice_profile(rng, shape, grid.spacing, HETEROGENEITY_Z_MM)
                  for _ in range(3)]
    gtv = _lesion_parts(plan.gtv, x, y, z, plan.necrosis_fraction,
                        None if fields is None else CORE_JITTER * fields[1])
    node_cores = plan.node_necrosis or (0.0,) * len(plan.nodes)
    nodes = [_lesion_parts(node, x, y, z, core) for node, core in zip(plan.nodes, node_cores)]
    volumes = {}
    for series_plan in plan.series:
        seq = series_plan.sequence
        signal = np.zeros(shape, dtype=np.float32)
        for tissue, mask in tissues:
            value = TISSUE_SIGNAL[tissue][seq] * (1.0 + 0.03 * tissue_texture)
            signal = signal + mask * (value - signal)
        for parts, core in zip(nodes, node_cores):
            value = _node_signal(plan, seq, parts, core, lesion_texture)
            signal = signal + parts[0] * (value - signal)
        signal = signal + gtv[0] * (_gtv_signal(plan, seq, gtv, lesion_texture, fields) - signal)
        bias = _bias_field(rng, x, y, z, plan)
        real = signal * bias * series_plan.gain + rng.normal(0.0, NOISE_SD, shape)
        imaginary = rng.normal(0.0, NOISE_SD, shape)
        volumes[seq] = np.sqrt(real**2 + imaginary**2).astype(np.float32)
    return volumes


def patient_rois(plan: PatientPlan) -> dict[str, list[np.ndarray]]:
    """ROI name -> contours (LPS mm) on the patient's slices, in a per-patient order.

    Nodes whose ROI names coincide share one ROI.
    """
    z_values = plan.grid.axis_mm(2)
    rois: dict[str, list[np.ndarray]] = {}
    lesions = [('GTV', plan.gtv)] + [(f'node{i}', n) for i, n in enumerate(plan.nodes)]
    for key, lesion in lesions:
        contours = [lesion.section_contour(z) for z in z_values if lesion.has_section(z)]
        rois.setdefault(plan.roi_names[key], []).extend(contours)
    for key in plan.roi_names:
        if key in IRRELEVANT_ROIS:
            rois[plan.roi_names[key]] = _organ_contours(plan, key, z_values)
    return {name: rois[name] for name in plan.roi_order}


def clinical_columns(generator_version: int = DEFAULT_GENERATOR_VERSION) -> tuple[str, ...]:
    """The clinical.csv columns a generator version writes (version 2 adds EBV DNA)."""
    return CLINICAL_COLUMNS + (('ebv_dna_copies_ml',) if generator_version >= 2 else ())


def write_clinical_csv(plans: Sequence[PatientPlan], path: Path) -> None:
    """Write the clinical table (the plans' columns, one row per plan, '' = missing)."""
    columns = tuple(plans[0].clinical) if plans else CLINICAL_COLUMNS
    with open(path, 'w', newline='', encoding='utf-8') as handle:
        writer = csv.writer(handle, lineterminator='\n')
        writer.writerow(columns)
        for plan in plans:
            writer.writerow(['' if plan.clinical[c] is None else plan.clinical[c]
                             for c in columns])


# --------------------------------------------------------------------------
# planning


def _draw_grid(rng: np.random.Generator, anatomy_center: tuple[float, float], matrix: int,
               pixel_mm: float, n_slices: int, slice_mm: float) -> Grid:
    """A grid centred near the patient with a random table position (0.1 mm steps)."""
    half = (matrix - 1) * pixel_mm / 2.0
    x0 = round(anatomy_center[0] - half + float(rng.uniform(-5, 5)), 1)
    y0 = round(anatomy_center[1] - half + float(rng.uniform(-5, 5)), 1)
    z0 = round(float(rng.uniform(-90.0, -40.0)), 1)
    return Grid(shape=(n_slices, matrix, matrix), spacing=(pixel_mm, pixel_mm, slice_mm),
                origin=(x0, y0, z0))


def _scan_height(grid: Grid, u: float) -> float:
    """LPS z (mm) at fraction u of the scanned range (0 = bottom slice, 1 = top)."""
    z = grid.axis_mm(2)
    return float(z[0] + u * (z[-1] - z[0]))


def _draw_gtv(rng: np.random.Generator, grid: Grid, center: tuple[float, float],
              diameter: float) -> Lesion:
    """Primary tumour: upper slices, near the midline, posterior to the nasal airway."""
    radius = diameter / 2.0
    semi = tuple(float(np.clip(radius * rng.uniform(lo, hi), 7.5, 20.0))
                 for lo, hi in ((0.85, 1.2), (0.75, 1.05), (0.85, 1.2)))
    z_top = grid.axis_mm(2)[-1]
    cz = min(_scan_height(grid, float(rng.uniform(0.68, 0.8))), z_top - semi[2] - grid.spacing[2])
    harmonics = tuple((float(m), float(rng.uniform(0.04, 0.1)), float(rng.uniform(0, 2 * np.pi)),
                       float(rng.uniform(-1.5, 1.5))) for m in (2, 3, 4))
    return Lesion(center=(center[0] + float(np.clip(rng.normal(0, 3), -6, 6)),
                          center[1] + float(rng.uniform(4.0, 12.0)), cz),
                  semi_axes=semi, angle=float(rng.uniform(-0.4, 0.4)), harmonics=harmonics)


def _draw_nodes(rng: np.random.Generator, grid: Grid, center: tuple[float, float], n_stage: int,
                gtv: Lesion) -> list[Lesion]:
    """1-3 neck nodes, lateral, middle/lower slices, apart from each other and the GTV."""
    low, high = {0: (1, 1), 1: (1, 2), 2: (2, 3), 3: (2, 3)}[n_stage]
    count = int(rng.integers(low, high + 1))
    first_side = float(rng.choice([-1.0, 1.0]))
    nodes: list[Lesion] = []
    for number in range(count):
        side = first_side if (n_stage <= 1 or number == 0) else float(rng.choice([-1.0, 1.0]))
        low_mm, high_mm = {0: (8, 10), 1: (8, 16)}.get(n_stage, (10, 20))
        if n_stage == 3 and number == 0:
            low_mm, high_mm = 20, 25
        diameter = float(rng.uniform(low_mm, high_mm))
        for attempt in range(200):
            scale = 0.97 ** (attempt // 20)  # shrink if it does not fit
            semi = tuple(float(np.clip(diameter / 2 * scale * rng.uniform(0.85, 1.15), 4.0, 12.5))
                         for _ in range(3))
            node = Lesion(
                center=(center[0] + side * float(rng.uniform(35, 45)),
                        center[1] + float(rng.uniform(5, 22)),
                        _scan_height(grid, float(rng.uniform(0.1, 0.55)))),
                semi_axes=semi, angle=float(rng.uniform(0, np.pi)),
                harmonics=((2.0, float(rng.uniform(0.0, 0.06)),
                            float(rng.uniform(0, 2 * np.pi)), 0.0),))
            if all(_apart(node, other) for other in [gtv, *nodes]) and _cut_by_grid(node, grid):
                nodes.append(node)
                break
    if not nodes:
        raise ValueError('could not place a lymph node apart from the GTV; use more slices')
    return nodes


def _cut_by_grid(lesion: Lesion, grid: Grid) -> bool:
    """Whether at least one slice of the grid shows the lesion."""
    return any(lesion.has_section(float(z)) for z in grid.axis_mm(2))


def _apart(a: Lesion, b: Lesion, gap_mm: float = 3.0) -> bool:
    """Conservatively true when the lesions cannot touch (in-plane or in z)."""
    in_plane = np.hypot(a.center[0] - b.center[0], a.center[1] - b.center[1])
    dz = abs(a.center[2] - b.center[2])
    return bool(in_plane > a.max_radius_mm + b.max_radius_mm + gap_mm
                or dz > a.semi_axes[2] + b.semi_axes[2] + gap_mm)


def _draw_clinical(rng: np.random.Generator, z_img: float,
                   gtv_diameter: float) -> tuple[dict[str, object], float]:
    """The clinical row before outcome, and the clinical risk score (~N(0, 1))."""
    age = int(np.clip(round(rng.normal(48, 11)), 25, 75))
    sex = 'M' if rng.random() < 0.72 else 'F'
    hgb = int(np.clip(round(rng.normal(142 if sex == 'M' else 126, 13)), 95, 175))
    pni = round(float(np.clip(rng.normal(51, 5), 36, 62)), 1)
    size_score = np.log(gtv_diameter / 26.0) / 0.25 + rng.normal(0, 0.7)
    t_stage = 1 + int(np.digitize(size_score / 1.2, [-1.04, -0.25, 0.67]))
    n_stage = int(rng.choice(4, p=[0.08, 0.38, 0.34, 0.20]))
    if t_stage == 1 and n_stage == 0:  # stage I is not in this cohort
        n_stage = 1
    if t_stage == 4 or n_stage == 3:  # AJCC 8th edition
        stage = 'IVA'
    elif t_stage == 3 or n_stage == 2:
        stage = 'III'
    else:
        stage = 'II'
    treatment = _draw_treatment(rng, stage)
    ic_cycles = int(rng.integers(2, 4)) if '+IC' in treatment else 0
    cc_cycles = int(rng.integers(1, 4)) if 'CCRT' in treatment else 0
    cisplatin = int(cc_cycles * rng.choice([80, 100])) if cc_cycles else 0
    dose = float(rng.choice([66.0, 68.0, 69.96, 70.0, 70.0, 70.4, 72.0]))
    score = (0.6 * (n_stage - 1.66) / 0.9 + 0.35 * (age - 48) / 11
             - 0.45 * (hgb - 138) / 15 - 0.45 * (pni - 51) / 5 - 0.15 * (cisplatin >= 200))
    row = {'age': age, 'sex': sex, 't_stage': f'T{t_stage}', 'n_stage': f'N{n_stage}',
           'clinical_stage': stage, 'pni': pni, 'hgb': hgb, 'treatment': treatment,
           'gtv_dose_gy': f'{dose:g}', 'cisplatin_dose_mg_m2': cisplatin,
           'chemo_cycles': ic_cycles + cc_cycles}
    return row, float(score / 0.95)


def _draw_ebv_dna(rng: np.random.Generator, row: dict[str, object],
                  clinical_score: float) -> float:
    """Version 2: pre-treatment plasma EBV DNA (copies/mL) into ``row``; the clinical score
    with its latent part added (returned, still about standard normal).

    log10(copies) = 3 + 0.3 * (N stage, standardised) + 0.9 * z_ebv + N(0, 0.3); below
    50 copies/mL reads 0 (undetectable); 5% of cells empty. The latent z_ebv (not the
    measured value) enters the clinical score, as a biomarker measures a risk with error.
    """
    z_ebv = float(rng.standard_normal())
    n_term = (int(str(row['n_stage'])[1]) - 1.66) / 0.9
    copies = int(round(10 ** (3.0 + 0.3 * n_term + 0.9 * z_ebv + rng.normal(0.0, 0.3))))
    row['ebv_dna_copies_ml'] = None if rng.random() < 0.05 else (copies if copies >= 50 else 0)
    return float((0.95 * clinical_score + 0.6 * z_ebv) / np.hypot(0.95, 0.6))


def _draw_treatment(rng: np.random.Generator, stage: str) -> str:
    options = {'II': (('IMRT+CCRT', 'IMRT'), (0.75, 0.25)),
               'III': (('IMRT+CCRT', 'IMRT+IC+CCRT'), (0.5, 0.5)),
               'IVA': (('IMRT+IC+CCRT', 'IMRT+CCRT'), (0.8, 0.2))}
    names, probabilities = options[stage]
    return str(rng.choice(names, p=probabilities))


def _draw_outcome(rng: np.random.Generator, msom: int) -> dict[str, object]:
    """msom, its site and DMFS/OS (months) consistent with it (dmfs <= os)."""
    follow_up = float(rng.uniform(24, 96))
    if msom:
        metastasis = 6.0 + float(rng.gamma(2.0, 9.0))
        follow_up = max(follow_up, metastasis + float(rng.uniform(3, 24)))
        died = rng.random() < 0.6
        death = metastasis + float(rng.exponential(18.0))
        os_months, os_event = (death, 1) if died and death < follow_up else (follow_up, 0)
        site = str(rng.choice(METASTASIS_SITES, p=[0.5, 0.3, 0.2]))
        dmfs_months, dmfs_event = metastasis, 1
    else:
        died = rng.random() < 0.08
        death = float(rng.uniform(12.0, follow_up))
        os_months, os_event = (death, 1) if died else (follow_up, 0)
        dmfs_months, dmfs_event, site = os_months, 0, None
    return {'msom': msom, 'msom_site': site, 'dmfs_months': round(dmfs_months, 1),
            'dmfs_event': dmfs_event, 'os_months': round(os_months, 1), 'os_event': os_event}


def _blank_some_cells(rng: np.random.Generator, row: dict[str, object]) -> None:
    """Empty ~5% of pni, hgb and cisplatin_dose_mg_m2 cells (missing data)."""
    for column in ('pni', 'hgb', 'cisplatin_dose_mg_m2'):
        if rng.random() < 0.05:
            row[column] = None


def _draw_header(rng: np.random.Generator, index: int,
                 clinical: dict[str, object]) -> PatientHeader:
    """Planted fake identifiers (tests check they never leak into outputs)."""
    year = int(rng.integers(2014, 2022))
    study_date = f'{year}{int(rng.integers(1, 13)):02d}{int(rng.integers(1, 29)):02d}'
    birth_year = year - int(clinical['age'])
    birth = f'{birth_year}{int(rng.integers(1, 13)):02d}{int(rng.integers(1, 29)):02d}'
    return PatientHeader(name=f'SYNTH^NPC{index:03d}', patient_id=f'SYN-ID-{index:03d}',
                         birth_date=birth, accession=f'ACC-SYN-{index:03d}',
                         institution='Synthetic Hospital', study_date=study_date,
                         sex=str(clinical['sex']), study_time=f'{int(rng.integers(7, 18)):02d}1500')


def _draw_series(rng: np.random.Generator) -> list[SeriesPlan]:
    """T1 and T2 in random order, then CE-T1; storage variants drawn per series."""
    order = ['t1', 't2'] if rng.random() < 0.5 else ['t2', 't1']
    number = int(rng.integers(2, 5))
    plans = []
    for sequence in [*order, 'cet1']:
        description = str(rng.choice(SERIES_DESCRIPTIONS[sequence]))
        rescale = (round(float(rng.uniform(0.5, 2.5)), 4), 0.0) if rng.random() < 0.15 else None
        plans.append(SeriesPlan(
            sequence=sequence, description=description, series_number=number,
            reversed_slices=bool(rng.random() < 0.12), flipped_rows=bool(rng.random() < 0.08),
            rescale=rescale, gain=float(rng.uniform(0.7, 1.4)),
            extra_tags=_acquisition_tags(rng, sequence, description)))
        number += int(rng.integers(1, 4))
    return plans


def _acquisition_tags(rng: np.random.Generator, sequence: str, description: str) -> dict:
    """Realistic TSE parameters per sequence (ms), fat saturation and contrast agent."""
    if sequence == 't2':
        tags = {'RepetitionTime': float(rng.integers(30, 50) * 100),
                'EchoTime': float(rng.integers(80, 101)),
                'EchoTrainLength': 15, 'FlipAngle': 120.0, 'SequenceName': '*tse2d1_15'}
    else:
        tags = {'RepetitionTime': float(rng.integers(50, 71) * 10),
                'EchoTime': float(rng.integers(8, 13)),
                'EchoTrainLength': 3, 'FlipAngle': 150.0, 'SequenceName': '*tse2d1_3'}
    if sequence != 't1':
        tags['ScanOptions'] = ['FS', 'PFP']
    if sequence == 'cet1':
        tags['ContrastBolusAgent'] = str(rng.choice(['Gd-DTPA', 'Gadobutrol']))
        tags['ContrastBolusRoute'] = 'IV'
    tags['ProtocolName'] = description
    return tags


def _draw_roi_names(rng: np.random.Generator, nodes: list[Lesion],
                    center: tuple[float, float]) -> dict[str, str]:
    """Realistic ROI names; nodes share one name or are named by side."""
    names = {'GTV': str(rng.choice(GTV_ALIASES))}
    node_alias = str(rng.choice(NODE_ALIASES))
    by_side = rng.random() < 0.3
    for i, node in enumerate(nodes):
        side = 'L' if node.center[0] > center[0] else 'R'  # LPS: +x = patient left
        names[f'node{i}'] = f'{node_alias}_{side}' if by_side else node_alias
    for organ in rng.choice(IRRELEVANT_ROIS, size=int(rng.integers(1, 3)), replace=False):
        names[str(organ)] = str(organ)
    return names


# --------------------------------------------------------------------------
# rendering


def _soft(distance_mm: np.ndarray) -> np.ndarray:
    """Partial-volume membership from a signed distance (mm, > 0 inside)."""
    return expit(distance_mm / EDGE_MM).astype(np.float32)


def _ellipse(x, y, cx, cy, a, b) -> np.ndarray:
    """Soft mask of an axial ellipse (semi-axes a, b mm; may vary per slice)."""
    r = np.sqrt(((x - cx) / a) ** 2 + ((y - cy) / b) ** 2)
    return _soft((1.0 - r) * np.minimum(a, b))


def _neck_profile(plan: PatientPlan, z: np.ndarray) -> np.ndarray:
    """Fraction u of the scanned height (0 bottom .. 1 top) per slice, shape like z."""
    z_axis = plan.grid.axis_mm(2)
    span = max(z_axis[-1] - z_axis[0], 1e-6)
    return (z - z_axis[0]) / span


def _body_outline(plan: PatientPlan, u):
    """(centre y, semi-axis x, semi-axis y) in mm of the skin ellipse at height u.

    The head (u = 1) is wider and deeper than the neck (u = 0), whose centre
    lies a little more posterior.
    """
    return plan.anatomy_center[1] + 5.0 * (1.0 - u), 58.0 + 14.0 * u, 64.0 + 24.0 * u


def _anatomy_masks(plan: PatientPlan, x, y, z) -> list[tuple[str, np.ndarray]]:
    """(tissue, soft mask) layers painted in order over air: the head/neck phantom."""
    cx, cy = plan.anatomy_center
    u = _neck_profile(plan, z)
    upper = _soft((u - 0.62) * 40.0)  # nasopharynx level vs neck, per slice
    body_cy, body_a, body_b = _body_outline(plan, u)
    fat = plan.fat_mm
    vessels = sum(_ellipse(x, y, cx + s * dx, cy + dy, r, r)
                  for s in (-1, 1) for dx, dy, r in ((22, 12, 4.0), (29, 18, 5.0)))
    airway = (upper * _ellipse(x, y, cx, cy - 14, 13, 7)
              + upper * sum(_ellipse(x, y, cx + s * 8, cy - 48, 6, 18) for s in (-1, 1))
              + (1 - upper) * _ellipse(x, y, cx, cy - 10, 10, 6))
    return [
        ('fat', _ellipse(x, y, cx, body_cy, body_a, body_b)),
        ('muscle', _ellipse(x, y, cx, body_cy, body_a - fat, body_b - fat)),
        ('gland', upper * sum(_ellipse(x, y, cx + s * 46, cy + 14, 11, 17) for s in (-1, 1))),
        ('marrow', _ellipse(x, y, cx, cy + 38, 14, 13)),
        ('csf', _ellipse(x, y, cx, cy + 60, 9, 8)),
        ('cord', _ellipse(x, y, cx, cy + 60, 5, 4.5)),
        ('vessel', np.clip(vessels, 0, 1)),
        ('air', np.clip(airway, 0, 1)),
    ]


def _lesion_parts(lesion: Lesion, x, y, z, necrosis_fraction: float,
                  core_jitter: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(soft mask, soft necrotic-core mask, normalised radius q) of a lesion.

    q is 0 at the centre and 1 on the surface; slices the lesion does not
    cut (see Lesion.has_section) get an empty mask, matching the contours.
    ``core_jitter`` (a field, version 2) moves the core's edge voxel by voxel.
    """
    dx, dy = x - lesion.center[0], y - lesion.center[1]
    r = np.sqrt(dx**2 + dy**2)
    theta = np.arctan2(dy, dx)
    zeta = lesion.zeta(z)
    r_eq = lesion.equator_radius(theta, zeta)
    rho = np.sqrt(np.clip(1.0 - zeta**2, 0.0, None))
    present = np.array([lesion.has_section(float(v)) for v in np.ravel(z)])[:, None, None]
    mask = _soft(rho * r_eq - r) * present
    q = np.sqrt((r / r_eq) ** 2 + zeta**2)
    edge = necrosis_fraction if core_jitter is None else necrosis_fraction + core_jitter
    core = expit((edge - q) / 0.05).astype(np.float32) if necrosis_fraction > 0.1 \
        else np.zeros_like(mask)
    return mask, core * mask, q


def _gtv_signal(plan: PatientPlan, seq: str, gtv, texture: np.ndarray,
                fields: list[np.ndarray] | None = None) -> np.ndarray:
    """GTV signal: textured tumour, necrotic core, enhancing rim (driven by z_img).

    ``fields`` (version 2): smooth unit fields that modulate the texture
    amplitude and the rim within the tumour (the core's edge is jittered in
    :func:`_lesion_parts`).
    """
    _, core, q = gtv
    amplitude = plan.texture_amplitude * (1.0 if fields is None else np.exp(AMPLITUDE_JITTER * fields[0]))
    contrast = np.clip(1.0 + amplitude * TEXTURE_GAIN[seq] * texture, 0.1, None)
    tumour = TISSUE_SIGNAL['tumour'][seq] * contrast
    rim_position = plan.necrosis_fraction + 0.12
    rim = plan.rim_enhancement * RIM_GAIN[seq] * np.exp(-(((q - rim_position) / 0.1) ** 2))
    if fields is not None:
        rim = rim * np.clip(1.0 + RIM_JITTER * fields[2], 0.0, None)
    tumour = tumour * (1.0 + rim)
    return tumour + core * (TISSUE_SIGNAL['necrosis'][seq] - tumour)


def _node_signal(plan: PatientPlan, seq: str, parts, core_fraction: float,
                 texture: np.ndarray) -> np.ndarray:
    """Node signal: mildly textured; with a necrotic core and an enhancing rim when
    ``core_fraction`` > 0.1 (version 2, driven by z_node)."""
    value = TISSUE_SIGNAL['node'][seq] * (1.0 + 0.04 * texture)
    _, core, q = parts
    if core_fraction <= 0.1:
        return value
    rim = plan.node_rim * RIM_GAIN[seq] * np.exp(-(((q - core_fraction - 0.12) / 0.1) ** 2))
    value = value * (1.0 + rim)
    return value + core * (TISSUE_SIGNAL['necrosis'][seq] - value)


def _with_extranodal_extension(node: Lesion, z_node: float, rng: np.random.Generator,
                               grid: Grid, others: Sequence[Lesion] = ()) -> Lesion:
    """The node with a lobulated margin whose depth rises with z_node (version 2); the
    node as it was if the lobes would leave no slice cutting it or could touch ``others``."""
    amplitude = 0.12 * float(expit(2.0 * (z_node - 0.5)))
    lobes = (float(rng.choice([3.0, 4.0, 5.0])), amplitude, float(rng.uniform(0, 2 * np.pi)),
             float(rng.uniform(-1.0, 1.0)))
    lobed = Lesion(center=node.center, semi_axes=node.semi_axes, angle=node.angle,
                   harmonics=(*node.harmonics, lobes))
    keep = _cut_by_grid(lobed, grid) and all(_apart(lobed, other) for other in others)
    return lobed if keep else node


def _slice_profile(rng: np.random.Generator, shape: tuple[int, int, int],
                   spacing: tuple[float, float, float], sigma_z_mm: float) -> np.ndarray:
    """(slices, 1, 1) unit-SD values smooth along z (correlation ~sigma_z_mm): what
    one slice of a lesion shows departs from the lesion as a whole."""
    profile = gaussian_filter(rng.standard_normal(shape[0] + 8), sigma_z_mm / spacing[2],
                              mode='nearest')[4:-4]
    profile = (profile - profile.mean()) / max(float(profile.std()), 1e-9)
    return profile.astype(np.float32)[:, None, None]


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int, int],
                  spacing: tuple[float, float, float], sigma_mm: float) -> np.ndarray:
    """Gaussian random field with unit SD, correlation length ~sigma_mm."""
    sigma_px = [sigma_mm / spacing[2], sigma_mm / spacing[1], sigma_mm / spacing[0]]
    field_ = gaussian_filter(rng.standard_normal(shape), sigma=sigma_px, mode='wrap')
    return (field_ / max(float(field_.std()), 1e-9)).astype(np.float32)


def _bias_field(rng: np.random.Generator, x, y, z, plan: PatientPlan) -> np.ndarray:
    """Smooth multiplicative coil sensitivity, ~0.85-1.15 over the head."""
    cx, cy = plan.anatomy_center
    xs, ys = (x - cx) / 100.0, (y - cy) / 100.0
    zs = _neck_profile(plan, z) - 0.5
    c = rng.normal(0.0, 0.08, size=5)
    return np.exp(c[0] * xs + c[1] * ys + c[2] * zs + c[3] * xs * ys - abs(c[4]) * (xs**2 + ys**2))


def _organ_contours(plan: PatientPlan, organ: str, z_values: np.ndarray) -> list[np.ndarray]:
    """Contours of an ROI the converter must ignore (External, organs at risk)."""
    cx, cy = plan.anatomy_center
    contours = []
    for z in z_values:
        u = float(_neck_profile(plan, np.array(z)))
        if organ == 'External':
            body_cy, body_a, body_b = _body_outline(plan, u)
            contours.append(ellipse_contour((cx, body_cy, z), (body_a, body_b), 96))
        elif organ == 'SpinalCord':
            contours.append(ellipse_contour((cx, cy + 60, z), (5.0, 4.5), 24))
        elif organ == 'Brainstem' and u > 0.85:
            contours.append(ellipse_contour((cx, cy + 52, z), (12.0, 10.0), 32))
        elif organ == 'Parotid_L' and u > 0.62:
            contours.append(ellipse_contour((cx + 46, cy + 14, z), (11.0, 17.0), 32))
    return contours


# --------------------------------------------------------------------------
# writing


def _stored_geometry(volume: np.ndarray, grid: Grid,
                     plan: SeriesPlan) -> tuple[np.ndarray, tuple[float, float, float], np.ndarray]:
    """(volume, origin, direction) storing the canonical grid as ``plan`` says.

    Reversing slices or rows changes the order of storage and the direction,
    never the physical position of any voxel.
    """
    origin = np.array(grid.origin, dtype=float)
    direction = np.eye(3)
    if plan.reversed_slices:
        volume = volume[::-1]
        origin[2] = grid.axis_mm(2)[-1]
        direction[:, 2] = -direction[:, 2]
    if plan.flipped_rows:
        volume = volume[:, ::-1]
        origin[1] = grid.axis_mm(1)[-1]
        direction[:, 1] = -direction[:, 1]
    return np.ascontiguousarray(volume), tuple(float(v) for v in origin), direction


def _mr_file_names(layout: int, series_number: int, n: int, rng: np.random.Generator) -> list[str]:
    """Relative file names of one series (k order), never sorted like the slices."""
    numbers = rng.permutation(n) + 1
    if layout == 0:
        return [f'study_1/series_{series_number}/IM{int(i):04d}.dcm' for i in numbers]
    if layout == 1:
        return [f'DICOM/ST000001/SE{series_number:06d}/IM{int(i):06d}' for i in numbers]
    codes = rng.choice(16**8, size=n, replace=False)
    return [f'MR{series_number:02d}.{int(c):08x}.dcm' for c in codes]


def _rtstruct_name(layout: int, number: int, rng: np.random.Generator) -> str:
    code = f'{int(rng.integers(16**10)):010x}'
    if layout == 0:
        return f'RS/RS.{code}.dcm'
    if layout == 1:
        return f'DICOM/ST000001/SE{900 + number:06d}/IM000001'
    return f'RS.{code}.dcm'
