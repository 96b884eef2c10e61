"""Map contours (LPS mm) from one frame of reference to another.

When a sequence was acquired in another frame of reference than the series its
RTSTRUCT was drawn on (typically contours drawn on the planning CT, or on one MR
of another session), the contours must be moved into the target's frame first.

Convention: a *registration matrix* ``M`` is a 4 x 4 homogeneous matrix acting on
column vectors of LPS mm that maps a point of the **moving** frame (where the
contours were drawn) to the same anatomical point of the **fixed** frame (the
sequence the masks are needed on): ``p_fixed = M[:3, :3] @ p_moving + M[:3, 3]``.

Where ``M`` comes from (read -> geometry, kept apart):

* ``read_spatial_registration``: a DICOM Spatial Registration object (REG), when
  the planning system exported one linking the two frames;
* ``rigid_register``: rigid (6 degrees of freedom) image registration of the two
  volumes with SimpleITK, Mattes mutual information (works MR-MR and CT-MR), with
  a quality report and a ``quality_ok`` flag.

How to use it (masks for ``resample.resample_to_slices``):

* ``structure_to_grid(structure, source, target, M)``: rasterise the contours on
  the grid they were drawn on (``source``, e.g. the CT), resample the masks into
  the target's grid. Always valid.
* ``transform_structure_set(structure, M)`` then ``rasterize.class_masks`` on the
  target: exact for the points, but ``rasterize`` assigns each contour to the
  nearest target slice and XORs contours of one ROI on one slice. That is right
  only when the mapped contours lie on the target's slice planes (same planes:
  no tilt, slice positions matching); otherwise two source contours can fall on
  one target slice (their overlap becomes a hole) or a tilted contour is refused.
  Check with ``contours_on_slices`` first.

``load_ct_series`` loads a CT Image Storage series in Hounsfield units.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset

from data_prep.discover import CT_IMAGE_SOP_CLASS, display_name
from data_prep.mr_volume import MrSeries, load_mr_series
from data_prep.rasterize import PLANE_WARN, class_masks
from data_prep.resample import to_sitk
from data_prep.rtstruct import StructureSet
from data_prep.types import DataPrepError, SeriesInfo, Volume

SPATIAL_REGISTRATION_SOP_CLASS = '1.2.840.10008.5.1.4.1.1.66.1'
DEFORMABLE_REGISTRATION_SOP_CLASS = '1.2.840.10008.5.1.4.1.1.66.3'
MATRIX_TYPES = ('RIGID', 'RIGID_SCALE', 'AFFINE')
RIGID_TOL = 1e-3  # max |R^T R - I| element of a matrix declared RIGID (DS values are rounded)
HOMOGENEOUS_TOL = 1e-6  # max deviation of the last matrix row from (0, 0, 0, 1)
MIN_DETERMINANT = 1e-6  # |det| of the 3 x 3 part below this: singular

CT_AIR_HU = -1024.0  # CT values below (padding outside the reconstruction circle) are set to it

# rigid_register settings
METRIC_BINS = 48  # Mattes MI histogram bins (32 left a ~1 mm bias on the CT-like test)
QUALITY_BINS = 32  # histogram bins of the quality report (thresholds below depend on it)
SHRINK_FACTORS = (4, 2, 1)
SMOOTHING_SIGMAS_VOXELS = (2.0, 1.0, 0.0)
MAX_SAMPLES = 50_000  # random metric samples per resolution level (all voxels if fewer)
MAX_ITERATIONS = 100  # per level
LEARNING_RATE = 2.0  # initial step, in units of OptimizerScalesFromPhysicalShift (~mm)
MIN_STEP = 1e-3
QUALITY_MAX_VOXELS = 1_000_000  # the quality report works on the fixed image bin-shrunk to this

# quality_ok thresholds (see RigidRegistration), calibrated on the synthetic tests (3 mm
# voxels): T2->T1 and CT-like->T1 reach peak ~0.18, NMI 1.25-1.32, overlap ~0.9; a pure
# noise moving image gives peak -0.08..0.03 and NMI ~1.001. To be revisited on real pairs.
MIN_OVERLAP = 0.3  # fraction of the fixed image covered by the mapped moving image
MIN_NMI = 1.03  # normalised mutual information (Studholme) in the overlap, 1 = independent
MIN_PEAK = 0.1  # relative MI loss when the result is shifted by PEAK_SHIFT_MM
PEAK_SHIFT_MM = 4.0
LOST_WARN = 0.01  # share of a class's volume outside the target series worth a warning


# ---------------------------------------------------------------------------- points


def transform_points(points_lps: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """N x 3 LPS mm points mapped by the 4 x 4 ``matrix`` (moving -> fixed)."""
    points = np.asarray(points_lps, dtype=float)
    matrix = np.asarray(matrix, dtype=float)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f'points must be N x 3 (LPS mm), got shape {points.shape}')
    if matrix.shape != (4, 4):
        raise ValueError(f'matrix must be 4 x 4, got shape {matrix.shape}')
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def transform_structure_set(structure: StructureSet, matrix: np.ndarray) -> StructureSet:
    """A copy of ``structure`` with every contour mapped by ``matrix`` (moving -> fixed).

    See the module docstring: rasterise the result on the target only when
    ``contours_on_slices`` says the mapped contours lie on its slices; else use
    ``structure_to_grid``.
    """
    rois = {cls: {name: [transform_points(c, matrix) for c in contours]
                  for name, contours in by_name.items()}
            for cls, by_name in structure.rois.items()}
    return StructureSet(rois=rois, warnings=list(structure.warnings))


def contours_on_slices(structure: StructureSet, grid: Volume, *, tol: float = PLANE_WARN,
                       inside: bool = False) -> bool:
    """Whether ``rasterize`` can take ``structure`` on ``grid`` as it is.

    True when every contour lies within ``tol`` slice spacings of one slice of
    ``grid`` and no two contours of one ROI drawn on different planes share a slice;
    with ``inside``, also every point inside the image (outer pixel edges) and
    every slice within the stack.
    """
    nk, nj, ni = grid.array.shape
    for by_name in structure.rois.values():
        for contours in by_name.values():
            planes: dict[int, float] = {}
            for contour in contours:
                index = grid.lps_to_index(contour)
                k_index = index[:, 2]
                k = int(np.floor(k_index.mean() + 0.5))
                if np.abs(k_index - k).max() > tol:
                    return False
                if inside and (not 0 <= k < nk or (index[:, :2] < -0.5).any()
                               or (index[:, 0] > ni - 0.5).any()
                               or (index[:, 1] > nj - 0.5).any()):
                    return False
                height = float(k_index.mean())
                if k in planes and abs(planes[k] - height) > 1e-6:
                    return False
                planes[k] = height
    return True


def masks_to_grid(masks: dict[str, np.ndarray], source: Volume, target: Volume,
                  matrix: np.ndarray, *, context: str = '',
                  warnings_out: list[str] | None = None) -> dict[str, np.ndarray]:
    """class -> float32 [k, j, i] fraction (0..1) on ``target``'s grid.

    masks: class -> bool or float [k, j, i] on ``source``'s grid (the grid the
    contours were drawn on); matrix: source frame -> target frame (identity
    within one frame of reference). Linear interpolation, 0 outside ``source``;
    ``resample.resample_to_slices`` takes these fractions and thresholds them at
    0.5 once, at the end. A class more than ``LOST_WARN`` of whose volume falls
    outside the target's field of view is reported in ``warnings_out``,
    starting with ``context``.
    """
    if warnings_out is not None:
        for cls, mask in masks.items():
            lost = outside_fraction(mask, source, target, matrix)
            if lost > LOST_WARN:
                warnings_out.append(f'{context}: {100 * lost:.0f}% of the {cls} volume lies '
                                    'outside this series and is lost')
    to_source = _sitk_affine(np.linalg.inv(np.asarray(matrix, dtype=float)))
    reference = to_sitk(np.zeros(target.array.shape, dtype=np.float32), target)
    out = {}
    for cls, mask in masks.items():
        image = to_sitk(np.asarray(mask, dtype=np.float32), source)
        resampled = sitk.Resample(image, reference, to_source, sitk.sitkLinear, 0.0,
                                  sitk.sitkFloat32)
        out[cls] = np.clip(sitk.GetArrayFromImage(resampled), 0.0, 1.0)
    return out


def outside_fraction(mask: np.ndarray, source: Volume, target: Volume,
                     matrix: np.ndarray | None = None) -> float:
    """Share (0..1, weighted by the mask values) of ``mask``'s non-zero voxels on
    ``source`` whose centres, mapped by ``matrix`` (default identity), lie outside
    ``target``'s voxels; 0 for an empty mask."""
    kji = np.argwhere(mask)
    if not len(kji):
        return 0.0
    weights = np.asarray(mask, dtype=np.float64)[tuple(kji.T)]
    points = source.index_to_lps(kji[:, ::-1].astype(float))
    if matrix is not None:
        points = transform_points(points, matrix)
    index = target.lps_to_index(points)
    size = np.asarray(target.array.shape[::-1], dtype=float)
    outside = ((index < -0.5) | (index > size - 0.5)).any(axis=1)
    return float(weights[outside].sum() / weights.sum())


def structure_to_grid(structure: StructureSet, source: Volume, target: Volume,
                      matrix: np.ndarray, *, context: str = '',
                      warnings_out: list[str] | None = None) -> dict[str, np.ndarray]:
    """class -> float32 [k, j, i] mask fraction on ``target`` of contours drawn on ``source``.

    ``rasterize.class_masks`` on ``source`` (the series the RTSTRUCT refers to),
    then ``masks_to_grid``. ``context``/``warnings_out`` as in ``class_masks``.
    """
    masks = class_masks(structure, source, context=context, warnings_out=warnings_out)
    return masks_to_grid(masks, source, target, matrix, context=context,
                         warnings_out=warnings_out)


# ---------------------------------------------------------------------------- DICOM REG


def registration_frames(ds: Dataset) -> set[str]:
    """Frames of reference a Spatial Registration object links (its own and its items').

    For discovery: a REG is relevant to a pair of series when both frames are in it.
    """
    frames = {str(ds.FrameOfReferenceUID)} if ds.get('FrameOfReferenceUID') else set()
    frames.update(str(item.FrameOfReferenceUID) for item in ds.get('RegistrationSequence', [])
                  if item.get('FrameOfReferenceUID'))
    return frames


def read_spatial_registration(ds: Dataset, moving_for_uid: str, fixed_for_uid: str, *,
                              patient_id: str, name: str) -> np.ndarray:
    """4 x 4 matrix mapping LPS mm of frame ``moving_for_uid`` into frame ``fixed_for_uid``.

    ds: a Spatial Registration object (Modality REG, SOP class ...66.1); name:
    its file name for messages (``discover.display_name``).

    DICOM PS3.3 C.20.2 (Spatial Registration Module): each RegistrationSequence
    item registers the data of its FrameOfReferenceUID "to the Registered RCS
    established by this SOP Instance", i.e. the REG's own FrameOfReferenceUID R.
    Its matrix ``R_M_X`` "describes how to transform a point (Bx, By, Bz) with
    respect to RCS_B into (Ax, Ay, Az) with respect to RCS_A" (C.20.2.1.1), with
    B = the item's frame X and A = R. Several MatrixSequence items multiply in
    item order, the first applied first: ``A_M_B = M3 @ M2 @ M1`` (Equation
    C.20.2-2; SlicerRT multiplies the other way round, discussed on
    discourse.slicer.org topic 41636). Two frames X, Y registered to R give
    ``Y_M_X = inv(R_M_Y) @ R_M_X`` (Equation C.20.2-3). The frame R itself needs
    no item (identity when absent).

    Raises DataPrepError (naming patient and file) when the object is not a
    Spatial Registration (deformable registration is not supported), a frame
    is not registered by it, a matrix is malformed, singular, mirroring, or
    declared RIGID but scaling/shearing.
    """
    where = f'patient {patient_id}: registration {name}'
    _check_spatial_registration(ds, where)
    to_registered: dict[str, np.ndarray] = {}
    images_only = 0
    for number, item in enumerate(ds.get('RegistrationSequence', []), start=1):
        frame = str(item.get('FrameOfReferenceUID') or '')
        if not frame:
            images_only += 1  # identifies images only (Referenced Image Sequence)
            continue
        matrix = _item_matrix(item, f'{where}, registration item {number}')
        if frame in to_registered and not np.allclose(to_registered[frame], matrix, atol=1e-6):
            raise DataPrepError(f'{where}: registers one frame of reference twice with '
                                'different matrices (ambiguous)')
        to_registered[frame] = matrix
    registered = str(ds.get('FrameOfReferenceUID') or '')
    if registered:
        to_registered.setdefault(registered, np.eye(4))
    for role, frame in (('moving', moving_for_uid), ('fixed', fixed_for_uid)):
        if frame not in to_registered:
            extra = (f'; {images_only} item(s) name images only, not their frame of reference'
                     if images_only else '')
            raise DataPrepError(f'{where}: the frame of reference of the {role} series is not '
                                f'among the {len(to_registered)} frame(s) it registers{extra}')
    if moving_for_uid == fixed_for_uid:
        return np.eye(4)
    return np.linalg.inv(to_registered[fixed_for_uid]) @ to_registered[moving_for_uid]


def _check_spatial_registration(ds: Dataset, where: str) -> None:
    sop_class = str(ds.get('SOPClassUID') or getattr(getattr(ds, 'file_meta', None),
                                                     'MediaStorageSOPClassUID', '') or '')
    if sop_class == DEFORMABLE_REGISTRATION_SOP_CLASS or 'DeformableRegistrationSequence' in ds:
        raise DataPrepError(f'{where} is a deformable (non-rigid) registration; only matrix '
                            '(rigid or affine) Spatial Registration objects are supported')
    if sop_class != SPATIAL_REGISTRATION_SOP_CLASS or ds.get('Modality') != 'REG':
        raise DataPrepError(f'{where} is not a Spatial Registration object (Modality '
                            f'{ds.get("Modality")!r}, SOP class {sop_class or "none"})')
    if not ds.get('RegistrationSequence'):
        raise DataPrepError(f'{where} has no RegistrationSequence')


def _item_matrix(item: Dataset, where: str) -> np.ndarray:
    """R_M_X of one RegistrationSequence item: its MatrixSequence items composed."""
    registrations = item.get('MatrixRegistrationSequence') or []
    if len(registrations) != 1:
        raise DataPrepError(f'{where}: needs exactly one MatrixRegistrationSequence item, '
                            f'found {len(registrations)}')
    steps = registrations[0].get('MatrixSequence') or []
    if not steps:
        raise DataPrepError(f'{where}: empty MatrixSequence')
    total = np.eye(4)
    for step in steps:  # first item applied first (PS3.3 Equation C.20.2-2)
        total = _matrix(step, where) @ total
    return total


def _matrix(step: Dataset, where: str) -> np.ndarray:
    """One FrameOfReferenceTransformationMatrix, checked against its declared type."""
    kind = str(step.get('FrameOfReferenceTransformationMatrixType') or 'AFFINE').upper()
    if kind not in MATRIX_TYPES:
        raise DataPrepError(f'{where}: matrix type {kind!r} is not one of {list(MATRIX_TYPES)}')
    try:
        values = np.array([float(v) for v in step.FrameOfReferenceTransformationMatrix])
    except (AttributeError, TypeError, ValueError) as err:
        raise DataPrepError(f'{where}: FrameOfReferenceTransformationMatrix missing or not '
                            'numeric') from err
    if values.shape != (16,) or not np.all(np.isfinite(values)):
        raise DataPrepError(f'{where}: FrameOfReferenceTransformationMatrix needs 16 finite '
                            f'values, got {values.size}')
    matrix = values.reshape(4, 4)  # row major (PS3.3 C.20.2)
    if np.abs(matrix[3] - [0, 0, 0, 1]).max() > HOMOGENEOUS_TOL:
        raise DataPrepError(f'{where}: last matrix row is {matrix[3].tolist()}, not (0, 0, 0, 1) '
                            '(transposed matrix?)')
    det = float(np.linalg.det(matrix[:3, :3]))
    if abs(det) < MIN_DETERMINANT:
        raise DataPrepError(f'{where}: singular transformation matrix (determinant {det:.3g})')
    if det < 0:
        raise DataPrepError(f'{where}: the transformation mirrors the patient (determinant '
                            f'{det:.3g} < 0); refused')
    if kind == 'RIGID':
        error = float(np.abs(matrix[:3, :3].T @ matrix[:3, :3] - np.eye(3)).max())
        if error > RIGID_TOL:
            raise DataPrepError(f'{where}: matrix declared RIGID scales or shears (|R^T R - I| '
                                f'= {error:.2g} > {RIGID_TOL:g})')
    return matrix


# ---------------------------------------------------------------------------- rigid registration


@dataclass
class RigidRegistration:
    """Result of ``rigid_register``.

    quality (computed on the overlap of the fixed image and the mapped moving
    image, the fixed image bin-shrunk to at most ``QUALITY_MAX_VOXELS``):

    * ``overlap``: fraction of fixed voxels the mapped moving image covers;
    * ``nmi_initial`` / ``nmi_final``: normalised mutual information
      (H(F) + H(M)) / H(F, M), ``QUALITY_BINS`` bins per image between the
      0.5th and 99.5th percentiles; 1 = independent, 2 = one determines the other;
    * ``ncc_initial`` / ``ncc_final``: Pearson correlation (signed; CT-MR may be
      negative);
    * ``peak``: 1 - mean MI of the result shifted by +-``PEAK_SHIFT_MM`` along x,
      y, z / MI of the result. A real optimum is sharp (MI drops); a flat
      landscape (noise, no common anatomy) gives ~0;
    * ``rotation_deg`` (degrees) / ``translation_mm`` (mm, of the LPS origin): size
      of the transform found, for review (CT-MR table offsets can be large).

    quality_ok = overlap >= MIN_OVERLAP and nmi_final >= MIN_NMI and peak >= MIN_PEAK.
    """

    matrix: np.ndarray  # 4 x 4, moving LPS mm -> fixed LPS mm
    metric_initial: float  # Mattes MI as ITK reports it (negative; lower = better), initial
    metric_final: float  # ... at the result
    iterations: int  # optimizer iterations, all resolution levels together
    stop_condition: str
    quality: dict[str, float] = field(default_factory=dict)
    quality_ok: bool = True
    warning: str = ''  # why quality_ok is False ('' when True), for the manifest

    def manifest_record(self) -> dict:
        """JSON-ready summary without identifiers: method, quality, flags."""
        return {'registration': 'rigid MI', 'quality_ok': self.quality_ok,
                'quality': {k: round(float(v), 4) for k, v in self.quality.items()},
                'metric_initial': round(self.metric_initial, 5),
                'metric_final': round(self.metric_final, 5), 'iterations': self.iterations,
                **({'warning': self.warning} if self.warning else {})}


def rigid_register(fixed: Volume, moving: Volume, *, seed: int = 0, patient_id: str,
                   init: str = 'geometry', threads: int = 1) -> RigidRegistration:
    """Rigid transform (moving LPS -> fixed LPS) aligning ``moving`` to ``fixed``.

    Mattes mutual information (``METRIC_BINS`` bins, at most ``MAX_SAMPLES``
    random samples per level, seeded), Euler3D transform started by
    CenteredTransformInitializer (``init`` 'geometry': image centres, or
    'moments': intensity centres of mass), three resolution levels (shrink
    ``SHRINK_FACTORS``, Gaussian smoothing ``SMOOTHING_SIGMAS_VOXELS``), regular
    step gradient descent with scales from physical shift, linear interpolation.

    Deterministic: the sampling is seeded (ITK seed = ``seed + 1``, as ITK reads
    0 as "seed from the clock") and everything runs on ``threads`` threads. ITK
    splits sums and filters per thread, so another thread count changes the last
    bits of the result (~1e-7 mm); setting the registration object's own thread
    count was not enough (its pyramid filters follow the global default), so the
    global SimpleITK default is set to ``threads`` for the duration of the call
    and restored after (not safe if other Python threads run SimpleITK at the
    same time). The default 1 gives the same matrix on every machine.

    Raises DataPrepError (naming the patient) on empty images or a failed
    optimisation. A poor result is not an error: see ``quality_ok``/``warning``.
    """
    if init not in ('geometry', 'moments'):
        raise ValueError(f"init must be 'geometry' or 'moments', got {init!r}")
    previous = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(int(threads))
    try:
        return _rigid_register(fixed, moving, seed, patient_id, init, int(threads))
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous)


def _rigid_register(fixed: Volume, moving: Volume, seed: int, patient_id: str, init: str,
                    threads: int) -> RigidRegistration:
    fixed_image, moving_image = _float_image(fixed, 'fixed', patient_id), _float_image(
        moving, 'moving', patient_id)
    mode = (sitk.CenteredTransformInitializerFilter.GEOMETRY if init == 'geometry'
            else sitk.CenteredTransformInitializerFilter.MOMENTS)
    initial = sitk.CenteredTransformInitializer(fixed_image, moving_image,
                                                sitk.Euler3DTransform(), mode)
    method = sitk.ImageRegistrationMethod()
    method.SetNumberOfThreads(threads)
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=METRIC_BINS)
    method.SetMetricSamplingStrategy(method.RANDOM)
    n_voxels = fixed_image.GetNumberOfPixels()
    method.SetMetricSamplingPercentagePerLevel(
        [min(1.0, MAX_SAMPLES * s ** 3 / n_voxels) for s in SHRINK_FACTORS], seed + 1)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=LEARNING_RATE, minStep=MIN_STEP, numberOfIterations=MAX_ITERATIONS,
        relaxationFactor=0.5, gradientMagnitudeTolerance=1e-8)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(SHRINK_FACTORS))
    method.SetSmoothingSigmasPerLevel(list(SMOOTHING_SIGMAS_VOXELS))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    method.SetInitialTransform(initial, inPlace=False)
    iterations = [0]
    method.AddCommand(sitk.sitkIterationEvent, lambda: iterations.__setitem__(0, iterations[0] + 1))
    try:
        metric_initial = float(method.MetricEvaluate(fixed_image, moving_image))
        result = method.Execute(fixed_image, moving_image)
    except RuntimeError as err:
        raise DataPrepError(f'patient {patient_id}: rigid registration failed '
                            f'({" ".join(str(err).split())[-300:]})') from err
    fixed_to_moving = _affine_matrix(result)
    initial_to_moving = _affine_matrix(initial)
    quality = _quality(fixed_image, moving_image, fixed_to_moving, initial_to_moving)
    matrix = np.linalg.inv(fixed_to_moving)
    quality['rotation_deg'] = _rotation_deg(matrix[:3, :3])
    quality['translation_mm'] = float(np.linalg.norm(matrix[:3, 3]))
    problems = [f'{name} {quality[key]:.3f} < {limit:g}' for key, name, limit in (
        ('overlap', 'overlap', MIN_OVERLAP), ('nmi_final', 'NMI', MIN_NMI),
        ('peak', 'MI peak sharpness', MIN_PEAK)) if not quality[key] >= limit]
    warning = ('rigid registration looks poor (' + ', '.join(problems) + '); check the '
               'contours on this sequence' if problems else '')
    return RigidRegistration(
        matrix=matrix, metric_initial=metric_initial, metric_final=float(method.GetMetricValue()),
        iterations=iterations[0], stop_condition=method.GetOptimizerStopConditionDescription(),
        quality=quality, quality_ok=not problems, warning=warning)


def volume_to_sitk(volume: Volume) -> sitk.Image:
    """float32 SimpleITK image of ``volume`` (origin, spacing (i, j, k), direction columns)."""
    return to_sitk(np.asarray(volume.array, dtype=np.float32), volume)


def _float_image(volume: Volume, role: str, patient_id: str) -> sitk.Image:
    array = np.asarray(volume.array, dtype=np.float32)
    if array.ndim != 3 or min(array.shape) < 1 or not np.isfinite(array).all():
        raise DataPrepError(f'patient {patient_id}: {role} image for registration is empty or '
                            f'not finite (shape {array.shape})')
    if float(array.max()) == float(array.min()):
        raise DataPrepError(f'patient {patient_id}: {role} image for registration is constant')
    return to_sitk(array, volume)


def _affine_matrix(transform: sitk.Transform) -> np.ndarray:
    """4 x 4 matrix of an affine SimpleITK transform, from the images of 4 points."""
    origin = np.array(transform.TransformPoint((0.0, 0.0, 0.0)))
    columns = [np.array(transform.TransformPoint(tuple(e))) - origin for e in np.eye(3)]
    matrix = np.eye(4)
    matrix[:3, :3] = np.column_stack(columns)
    matrix[:3, 3] = origin
    return matrix


def _sitk_affine(matrix: np.ndarray) -> sitk.AffineTransform:
    transform = sitk.AffineTransform(3)
    transform.SetMatrix(tuple(float(v) for v in matrix[:3, :3].ravel()))
    transform.SetTranslation(tuple(float(v) for v in matrix[:3, 3]))
    return transform


def _rotation_deg(rotation: np.ndarray) -> float:
    cosine = (np.trace(rotation) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))


def _quality(fixed: sitk.Image, moving: sitk.Image, fixed_to_moving: np.ndarray,
             initial_to_moving: np.ndarray) -> dict[str, float]:
    """The quality report of ``RigidRegistration`` (matrices: fixed LPS -> moving LPS)."""
    factor = max(1, int(np.ceil((fixed.GetNumberOfPixels() / QUALITY_MAX_VOXELS) ** (1 / 3))))
    grid = sitk.BinShrink(fixed, [factor] * 3) if factor > 1 else fixed
    f = sitk.GetArrayFromImage(grid).ravel()

    def sample(to_moving: np.ndarray) -> np.ndarray:
        out = sitk.Resample(moving, grid, _sitk_affine(to_moving), sitk.sitkLinear, np.nan,
                            sitk.sitkFloat32)
        return sitk.GetArrayFromImage(out).ravel()

    final = sample(fixed_to_moving)
    inside = np.isfinite(final)
    quality = {'overlap': float(inside.mean())}
    if inside.sum() < 100:
        return {**quality, 'nmi_initial': 1.0, 'nmi_final': 1.0, 'ncc_initial': 0.0,
                'ncc_final': 0.0, 'peak': 0.0}
    edges = (_bin_edges(f[inside]), _bin_edges(final[inside]))
    mi_final, quality['nmi_final'] = _mutual_information(f, final, edges)
    quality['ncc_final'] = _correlation(f, final)
    initial = sample(initial_to_moving)
    quality['nmi_initial'] = _mutual_information(f, initial, edges)[1]
    quality['ncc_initial'] = _correlation(f, initial)
    shifted = []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            step = np.eye(4)
            step[axis, 3] = sign * PEAK_SHIFT_MM
            shifted.append(_mutual_information(f, sample(fixed_to_moving @ step), edges)[0])
    quality['peak'] = float(1.0 - np.mean(shifted) / mi_final) if mi_final > 0 else 0.0
    return quality


def _bin_edges(values: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(values, [0.5, 99.5])
    if hi <= lo:
        hi = lo + 1.0
    return np.linspace(lo, hi, QUALITY_BINS + 1)


def _mutual_information(a: np.ndarray, b: np.ndarray,
                        edges: tuple[np.ndarray, np.ndarray]) -> tuple[float, float]:
    """(MI in nats, normalised MI) of the pairs where both are finite; values clipped to edges."""
    both = np.isfinite(a) & np.isfinite(b)
    x = np.clip(a[both], edges[0][0], edges[0][-1])
    y = np.clip(b[both], edges[1][0], edges[1][-1])
    joint, _, _ = np.histogram2d(x, y, bins=edges)
    p = joint / max(joint.sum(), 1.0)

    def entropy(q: np.ndarray) -> float:
        q = q[q > 0]
        return float(-(q * np.log(q)).sum())

    h_a, h_b, h_ab = entropy(p.sum(axis=1)), entropy(p.sum(axis=0)), entropy(p)
    return h_a + h_b - h_ab, (h_a + h_b) / h_ab if h_ab > 0 else 1.0


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    both = np.isfinite(a) & np.isfinite(b)
    x, y = a[both] - a[both].mean(), b[both] - b[both].mean()
    denominator = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / denominator) if denominator > 0 else 0.0


# ---------------------------------------------------------------------------- CT


def load_ct_series(series: SeriesInfo) -> MrSeries:
    """A CT Image Storage series as a float32 Volume in Hounsfield units.

    ``mr_volume.load_mr_series`` does the work: its geometry checks and
    RescaleSlope/Intercept are not MR-specific (it never tests the modality).
    Here: the series must be CT Image Storage (single-frame; Enhanced CT is
    refused), values below ``CT_AIR_HU`` (padding outside the reconstruction
    circle, often -2000 or -3024) are set to it so they do not act as a tissue
    in the registration metric. A gantry-tilted CT is refused by the loader
    (sheared stack).
    """
    pid = series.patient_id
    if series.modality != 'CT':
        raise DataPrepError(f'patient {pid}: series is {series.modality}, not CT')
    for path, ds in zip(series.files, series.parsed_datasets()):
        if ds is None:
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            except Exception as err:
                raise DataPrepError(f'patient {pid}: cannot read DICOM file '
                                    f'{display_name(path, pid)} ({err})') from err
        sop_class = str(ds.get('SOPClassUID', ''))
        if sop_class != CT_IMAGE_SOP_CLASS:
            raise DataPrepError(f'patient {pid}: file {display_name(path, pid)} is not a CT '
                                f'Image Storage instance (SOP class {sop_class or "none"}); '
                                'Enhanced (multi-frame) CT is not supported')
        rescale_type = str(ds.get('RescaleType', 'HU') or 'HU').upper()
        if rescale_type not in ('HU', 'US'):
            raise DataPrepError(f'patient {pid}: file {display_name(path, pid)} has RescaleType '
                                f'{rescale_type!r}, not Hounsfield units')
    loaded = load_mr_series(series)
    np.maximum(loaded.volume.array, np.float32(CT_AIR_HU), out=loaded.volume.array)
    return loaded
