"""Class masks from label maps (NIfTI, NRRD) and DICOM SEG, on an MR series' own grid.

RTSTRUCT contours become masks in ``rasterize.class_masks``. Many groups keep
their delineations as voxel images instead; this module turns those into the
same thing: class -> bool [k, j, i] mask on the grid of the MR ``Volume`` the
delineation was drawn on, ready for ``contour_masks.interpolate_missing_masks`` and
``resample.resample_to_slices``. Plugging in is one call per sequence::

    masks = label_map_masks(path, mr.volume, labels, patient_id=pid, warnings_out=warnings)
    masks = seg_masks(path_or_dataset, mr.volume, options, patient_id=pid,
                      warnings_out=warnings)

Placement is always through patient coordinates (LPS mm, see ``types``): each
MR voxel centre takes the value of the mask voxel it falls in (nearest
neighbour; FRACTIONAL SEG: linear interpolation of the fraction, then >= 0.5).
Array shapes, axis order and file order are never trusted. Hence a mask may be
stored flipped, permuted, on a coarser or finer grid, or cover only part of the
MR; mask voxels outside the MR are dropped with a warning, MR voxels outside
the mask are background. On the MR's own grid the result is exact.

Label maps (``label_map_masks``)
--------------------------------
One 3-D integer image per MR series, 0 = background, one value per class
(ITK-SNAP, 3D Slicer "labelmap" export, nnU-Net, the public 277-patient NPC MRI
set). Read with SimpleITK: ``.nii``, ``.nii.gz`` (NIfTI's RAS affine is
converted to LPS by ITK), ``.nrrd``, ``.nhdr`` (+ its data file). The file must
keep the geometry (sform/qform, NRRD space directions/origin) of the image it
was drawn on, in that image's patient coordinates; a file written from a bare
array (e.g. ``nib.Nifti1Image(a, np.eye(4))``) cannot be placed and is
reported as not overlapping the MR. ``labels`` maps class -> value(s), default
``DEFAULT_LABELS`` (GTV = 1, GTVln = 2); several values may share a class
(e.g. ``{'GTV': 1, 'GTVln': [2, 3]}`` for left and right nodes).

What to do with ``patient/masks/*.nii.gz``: one file per delineated MR series,
on (or at least in the patient coordinates of) that series, named after the
sequence it was drawn on, e.g. ``masks/cet1.nii.gz`` (or
``<patient>_cet1.nii.gz``); check the label values with ITK-SNAP / Slicer and
give a ``labels`` mapping when they are not GTV = 1, GTVln = 2. Label values
present but not mapped (e.g. a brainstem = 3) are ignored with a warning;
a file with none of the mapped values is an error.

DICOM SEG (``seg_masks``)
-------------------------
Segmentation Storage (SOP class ``SEG_SOP_CLASS_UID``), read with highdicom.
Segments are named like RTSTRUCT ROIs (SegmentLabel) and mapped to classes
with ``PrepOptions.class_of``; segments of one class are OR-ed, unmapped ones
ignored. BINARY, FRACTIONAL (fraction = value / MaximumFractionalValue) and
LABELMAP types. Every frame is placed by its own PlanePositionSequence
(ImagePositionPatient) along the common PlaneOrientation, not by the order of
the referenced source images; frames left out (highdicom omits empty ones)
are background. The frames may lie on the MR's grid or on any regular stack in
the same frame of reference.
"""
from __future__ import annotations

import gzip
from collections.abc import Mapping, Sequence
from itertools import product
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset

from data_prep.discover import display_name
from data_prep.mr_volume import slice_axes
from data_prep.options import PrepOptions
from data_prep.resample import to_sitk
from data_prep.rtstruct import RtstructReferences
from data_prep.types import DataPrepError, Volume

DEFAULT_LABELS: dict[str, tuple[int, ...]] = {'GTV': (1,), 'GTVln': (2,)}
LABEL_MAP_SUFFIXES: tuple[str, ...] = ('.nii', '.nii.gz', '.nrrd', '.nhdr')
SEG_SOP_CLASS_UID = '1.2.840.10008.5.1.4.1.1.66.4'
SEG_TYPES: tuple[str, ...] = ('BINARY', 'FRACTIONAL', 'LABELMAP')
SAME_GRID_TOL = 1e-4  # mm (origin, spacing) and direction cosines: grids this close are equal
STACK_TOL = 0.1  # slice spacings: max deviation of a SEG frame from its regular stack
PLANE_TOL_MM = 1e-3  # SEG frames closer than this along the normal are one plane
_NIFTI1_HEADER_BYTES = 348  # the smallest NIfTI header (NIfTI-2: 540)

# --------------------------------------------------------------------------
# label maps


def is_label_map_file(path: Path | str) -> bool:
    """True if the name ends in a label-map suffix (``LABEL_MAP_SUFFIXES``, any case)."""
    return str(path).lower().endswith(LABEL_MAP_SUFFIXES)


def label_map_masks(path: Path, volume: Volume,
                    labels: Mapping[str, int | Sequence[int]] | None = None, *,
                    patient_id: str,
                    warnings_out: list[str] | None = None) -> dict[str, np.ndarray]:
    """class -> bool [k, j, i] mask on ``volume``'s grid from a NIfTI/NRRD label map.

    labels: class -> label value(s) (default ``DEFAULT_LABELS``); every class of
    the mapping gets a mask (all False when its values are absent). Raises
    DataPrepError naming patient and file when the file cannot be read, is not a
    3-D single-component image, holds non-integer values or none of the mapped
    values, or none of its labelled voxels lies inside the MR (with the distance
    in mm). Unmapped values and labelled voxels outside the MR go to
    ``warnings_out``.
    """
    context = f'patient {patient_id}, label map {display_name(path, patient_id)}'
    mapping = label_mapping(labels, context)
    source = read_label_map(path, patient_id)
    _check_label_values(source.array, mapping, context, warnings_out)
    wanted = sorted({v for values in mapping.values() for v in values})
    _check_inside({cls: np.isin(source.array, values) for cls, values in mapping.items()},
                  source, volume, context, warnings_out)
    on_grid = _to_grid(np.where(np.isin(source.array, wanted), source.array, 0), source, volume)
    return {cls: np.isin(on_grid, values) for cls, values in mapping.items()}


def label_mapping(labels: Mapping[str, int | Sequence[int]] | None,
                  context: str = 'label mapping') -> dict[str, tuple[int, ...]]:
    """``labels`` as class -> tuple of positive int values; DataPrepError if ambiguous."""
    if labels is None:
        return dict(DEFAULT_LABELS)
    mapping, owner = {}, {}
    for cls, values in labels.items():
        values = (values,) if isinstance(values, (int, np.integer)) else tuple(values)
        for value in values:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise DataPrepError(f'{context}: label value {value!r} of class {cls!r} is not '
                                    'a positive integer')
            if value in owner and owner[value] != cls:
                raise DataPrepError(f'{context}: label value {value} is given to both '
                                    f'{owner[value]!r} and {cls!r}')
            owner[int(value)] = cls
        mapping[str(cls)] = tuple(int(v) for v in values)
    if not owner:
        raise DataPrepError(f'{context}: the label mapping {dict(labels)} names no label value')
    return mapping


def label_map_names(labels: Mapping[str, int | Sequence[int]] | None) -> dict[str, list[str]]:
    """Class -> how its label-map values are named in reports and ROI lists ('label 1')."""
    return {cls: [f'label {v}' for v in values] for cls, values in label_mapping(labels).items()}


def read_label_map(path: Path, patient_id: str) -> Volume:
    """The label image at ``path`` as a Volume with an int64 array (LPS geometry).

    A 4-D image with one volume (size 1 along the 4th axis) is taken as 3-D.
    Float images are accepted when every value is a whole number.
    """
    name = display_name(path, patient_id)
    context = f'patient {patient_id}, label map {name}'
    if not is_label_map_file(path):
        raise DataPrepError(f'{context}: not a label map file (expected one of '
                            f'{", ".join(LABEL_MAP_SUFFIXES)})')
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        raise DataPrepError(f'{context}: cannot read it ({_itk_reason(err, path, name)})') from err
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise DataPrepError(f'{context}: {image.GetNumberOfComponentsPerPixel()} components per '
                            'voxel; a label map holds one integer per voxel')
    size = image.GetSize()
    if image.GetDimension() == 4 and size[3] == 1:
        image = sitk.Extract(image, [*size[:3], 0], [0, 0, 0, 0])
    elif image.GetDimension() != 3:
        raise DataPrepError(f'{context}: a {image.GetDimension()}-D image of size {list(size)}; '
                            'expected a 3-D label map')
    array = sitk.GetArrayFromImage(image)
    _check_nifti_complete(Path(path), array.nbytes, context)
    if array.dtype.kind == 'f':
        bad = ~np.isfinite(array) | (array != np.round(array))
        if bad.any():
            raise DataPrepError(f'{context}: non-integer label values (e.g. {array[bad][0]!r} at '
                                f'{int(bad.sum())} voxels); a label map holds whole numbers')
    elif array.dtype.kind not in 'iub':
        raise DataPrepError(f'{context}: voxel type {array.dtype} is not an integer type')
    return Volume(array=array.astype(np.int64), spacing=tuple(image.GetSpacing()),
                  origin=tuple(image.GetOrigin()),
                  direction=np.asarray(image.GetDirection(), float).reshape(3, 3))


def _check_nifti_complete(path: Path, n_bytes: int, context: str) -> None:
    """Raise if a NIfTI file holds fewer than header + ``n_bytes`` bytes of voxel data.

    ITK's NIfTI reader fills a truncated file's missing voxels with 0 without
    an error (for .nii and .nii.gz alike), which would silently cut lesions.
    """
    name = str(path).lower()
    if not name.endswith(('.nii', '.nii.gz')):
        return  # ITK's NRRD reader reports truncated data itself
    try:
        if name.endswith('.gz'):
            with gzip.open(path, 'rb') as stream:
                size = sum(len(chunk) for chunk in iter(lambda: stream.read(1 << 22), b''))
        else:
            size = path.stat().st_size
    except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError
        raise DataPrepError(f'{context}: cannot read it (truncated or corrupt: {err})') from err
    if size < _NIFTI1_HEADER_BYTES + n_bytes:
        raise DataPrepError(f'{context}: cannot read it (truncated: {size} bytes for a header and '
                            f'{n_bytes} bytes of voxels)')


def _check_label_values(array: np.ndarray, mapping: dict[str, tuple[int, ...]], context: str,
                        warnings_out: list[str] | None) -> None:
    """Raise if no mapped value is present; warn about present values not mapped."""
    present = {int(v) for v in np.unique(array)} - {0}
    wanted = {v for values in mapping.values() for v in values}
    shown = {cls: list(values) for cls, values in mapping.items()}
    if not present & wanted:
        found = sorted(present) if present else 'none (every voxel is 0)'
        raise DataPrepError(f'{context}: none of the mapped label values {shown} is present '
                            f'(label values found: {found}); give the label mapping of this file')
    unexpected = sorted(present - wanted)
    if unexpected and warnings_out is not None:
        warnings_out.append(f'{context}: label values {unexpected} are not in the mapping '
                            f'{shown} and are ignored')


def _itk_reason(err: RuntimeError, path: Path, name: str) -> str:
    """The last informative line of an ITK error, with the full path shortened to ``name``."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    reason = lines[-1] if lines else type(err).__name__
    return reason.replace(str(path), name)[:300]


# --------------------------------------------------------------------------
# DICOM SEG


def is_seg(ds: Dataset) -> bool:
    """True if ``ds`` is a DICOM Segmentation (Modality SEG or the SEG SOP class)."""
    meta_class = str(getattr(getattr(ds, 'file_meta', None), 'MediaStorageSOPClassUID', ''))
    return (str(ds.get('Modality', '')).upper() == 'SEG'
            or str(ds.get('SOPClassUID', '')) == SEG_SOP_CLASS_UID
            or meta_class == SEG_SOP_CLASS_UID)


def seg_masks(dataset_or_path: Dataset | Path | str, volume: Volume,
              options_or_aliases: PrepOptions | Mapping[str, Sequence[str]] | None = None, *,
              patient_id: str, frame_of_reference_uid: str | None = None,
              warnings_out: list[str] | None = None) -> dict[str, np.ndarray]:
    """class -> bool [k, j, i] mask on ``volume``'s grid from a DICOM SEG.

    options_or_aliases: PrepOptions, or class -> segment-name aliases (as
    ``roi_aliases``), or None for the defaults. Only classes with at least one
    segment get a mask. frame_of_reference_uid: the MR series' (checked when
    given). Raises DataPrepError naming patient and file on an unreadable file,
    no segment of a class, an unknown SegmentationType, frames without plane
    position or not on one regular stack, or no segmented voxel inside the MR.
    """
    ds, name = _read_seg(dataset_or_path, patient_id)
    context = f'patient {patient_id}, SEG {name}'
    options = _options(options_or_aliases)
    if frame_of_reference_uid is not None and str(ds.get('FrameOfReferenceUID', '')) != str(
            frame_of_reference_uid):
        raise DataPrepError(f'{context}: its FrameOfReferenceUID differs from the MR series\'; '
                            'it was drawn on another scan')
    segments = _class_segments(ds, options, context)
    stacks, grid = _segment_stacks(ds, sorted({n for ns in segments.values() for n in ns}),
                                   context, name, patient_id)
    fractional = str(ds.SegmentationType).upper() == 'FRACTIONAL'
    names = _segment_names(ds)
    for numbers in segments.values():
        for number in numbers:
            if not stacks[number].any() and warnings_out is not None:
                warnings_out.append(f'{context}: segment {names[number]!r} is empty')
    _check_inside({cls: np.any([stacks[n] >= 0.5 for n in numbers], axis=0)
                   for cls, numbers in segments.items()}, grid, volume, context, warnings_out)
    masks = {}
    for cls, numbers in segments.items():
        masks[cls] = np.zeros(volume.array.shape, dtype=bool)
        for number in numbers:
            if fractional:
                masks[cls] |= _to_grid(stacks[number], grid, volume, linear=True) >= 0.5
            else:
                masks[cls] |= _to_grid(stacks[number], grid, volume) > 0
    return masks


def segment_classes(dataset_or_path: Dataset | Path | str,
                    options_or_aliases: PrepOptions | Mapping[str, Sequence[str]] | None = None,
                    *, patient_id: str) -> dict[str, list[str]]:
    """class -> labels of the SEG segments used for it (the manifest's ``rtstruct_rois``)."""
    ds, name = _read_seg(dataset_or_path, patient_id)
    context = f'patient {patient_id}, SEG {name}'
    segments = _class_segments(ds, _options(options_or_aliases), context)
    names = _segment_names(ds)
    return {cls: sorted(names[n] for n in numbers) for cls, numbers in segments.items()}


def seg_references(dataset_or_path: Dataset | Path | str, *,
                   patient_id: str) -> RtstructReferences:
    """Series, source images and frame of reference a SEG refers to (to match its MR series,
    like ``rtstruct.read_references``)."""
    ds, _ = _read_seg(dataset_or_path, patient_id, parse=False)
    series, sops = set(), set()
    for item in ds.get('ReferencedSeriesSequence', []):
        if item.get('SeriesInstanceUID'):
            series.add(str(item.SeriesInstanceUID))
        sops.update(str(image.ReferencedSOPInstanceUID)
                    for image in item.get('ReferencedInstanceSequence', [])
                    if image.get('ReferencedSOPInstanceUID'))
    for frame in ds.get('PerFrameFunctionalGroupsSequence', []):
        for derivation in frame.get('DerivationImageSequence', []):
            for source in derivation.get('SourceImageSequence', []):
                if source.get('ReferencedSOPInstanceUID'):
                    sops.add(str(source.ReferencedSOPInstanceUID))
    frames = {str(ds.FrameOfReferenceUID)} if ds.get('FrameOfReferenceUID') else set()
    return RtstructReferences(series, sops, frames)


def _read_seg(dataset_or_path: Dataset | Path | str, patient_id: str, *,
              parse: bool = True) -> tuple[Dataset, str]:
    """(the SEG as a highdicom Segmentation, or the plain dataset when not ``parse``; its
    display name); DataPrepError when unreadable or not a SEG."""
    import highdicom  # imported here: label maps do not need it

    if isinstance(dataset_or_path, Dataset):
        ds = dataset_or_path
        name = display_name(Path(str(getattr(ds, 'filename', None) or 'SEG dataset')),
                            patient_id)
    else:
        name = display_name(Path(dataset_or_path), patient_id)
        try:
            ds = pydicom.dcmread(dataset_or_path, force=True)
        except Exception as err:
            raise DataPrepError(f'patient {patient_id}: cannot read SEG {name} ({err})') from err
    if not is_seg(ds):
        raise DataPrepError(f'patient {patient_id}: {name} is not a DICOM SEG (Modality '
                            f'{ds.get("Modality", "missing")!r})')
    seg_type = str(ds.get('SegmentationType', '')).upper()
    if seg_type not in SEG_TYPES:
        raise DataPrepError(f'patient {patient_id}, SEG {name}: SegmentationType '
                            f'{seg_type or "missing"!r} (supported: {", ".join(SEG_TYPES)})')
    if not parse:
        return ds, name
    try:
        # a caller's dataset is copied: from_dataset(copy=False) would change its class
        copy = isinstance(dataset_or_path, Dataset)
        return highdicom.seg.Segmentation.from_dataset(ds, copy=copy), name
    except Exception as err:
        raise DataPrepError(f'patient {patient_id}: cannot read SEG {name} '
                            f'({type(err).__name__}: {err})') from err


def _options(options_or_aliases: PrepOptions | Mapping[str, Sequence[str]] | None) -> PrepOptions:
    if isinstance(options_or_aliases, PrepOptions):
        return options_or_aliases
    options = PrepOptions()
    if options_or_aliases is not None:
        options.roi_aliases = {cls: list(aliases) for cls, aliases in options_or_aliases.items()}
    return options


def _segment_names(ds: Dataset) -> dict[int, str]:
    return {int(item.SegmentNumber): str(item.get('SegmentLabel', ''))
            for item in ds.get('SegmentSequence', [])}


def _class_segments(ds: Dataset, options: PrepOptions, context: str) -> dict[str, list[int]]:
    """class -> numbers of the segments whose label maps to it; raise if there is none."""
    names = _segment_names(ds)
    segments: dict[str, list[int]] = {}
    for number, label in sorted(names.items()):
        cls = options.class_of(label)
        if cls:
            segments.setdefault(cls, []).append(number)
    if not segments:
        raise DataPrepError(f'{context}: no segment is a GTV/GTVln (segments: '
                            f'{sorted(names.values())}); add aliases in the mapping file')
    return segments


def _frame_item(ds: Dataset, frame: Dataset, keyword: str) -> Dataset | None:
    """First item of functional group ``keyword`` of a frame, else of the shared groups."""
    for groups in (frame, *ds.get('SharedFunctionalGroupsSequence', [])):
        if groups.get(keyword):
            return groups.get(keyword)[0]
    return None


def _segment_stacks(ds: Dataset, numbers: list[int], context: str, name: str,
                    patient_id: str) -> tuple[dict[int, np.ndarray], Volume]:
    """segment number -> float32 [k, j, i] values (0..1) on the SEG's own regular stack.

    The stack's planes come from the frames' ImagePositionPatient along the
    normal of their common ImageOrientationPatient; its slice spacing is
    SpacingBetweenSlices, else the smallest gap between frame planes.
    """
    try:
        frames = list(ds.get('PerFrameFunctionalGroupsSequence', []))
        pixels = np.asarray(ds.pixel_array)
    except Exception as err:
        raise DataPrepError(f'{context}: cannot read its frames ({type(err).__name__}: {err})'
                            ) from err
    pixels = pixels.reshape(-1, *pixels.shape[-2:])
    if not frames or len(frames) != len(pixels):
        raise DataPrepError(f'{context}: {len(pixels)} frames but {len(frames)} per-frame '
                            'functional groups')
    orientations, positions, segment_of = set(), [], []
    labelmap = str(ds.SegmentationType).upper() == 'LABELMAP'
    for n, frame in enumerate(frames):
        plane = _frame_item(ds, frame, 'PlanePositionSequence')
        orientation = _frame_item(ds, frame, 'PlaneOrientationSequence')
        if plane is None or orientation is None or not plane.get('ImagePositionPatient'):
            raise DataPrepError(f'{context}: frame {n + 1} has no plane position/orientation in '
                                'patient coordinates')
        orientations.add(tuple(round(float(v), 4) for v in orientation.ImageOrientationPatient))
        positions.append([float(v) for v in plane.ImagePositionPatient])
        ident = _frame_item(ds, frame, 'SegmentIdentificationSequence')
        segment_of.append(None if labelmap or ident is None else int(ident.ReferencedSegmentNumber))
    if len(orientations) > 1:
        raise DataPrepError(f'{context}: frames of {len(orientations)} orientations; expected '
                            'one stack of parallel planes')
    axes = slice_axes(np.array(next(iter(orientations))), Path(name), patient_id)
    measures = _frame_item(ds, frames[0], 'PixelMeasuresSequence')
    if measures is None or not measures.get('PixelSpacing'):
        raise DataPrepError(f'{context}: no PixelSpacing in its functional groups')
    row_mm, col_mm = (float(v) for v in measures.PixelSpacing)
    positions = np.array(positions)
    k_of, origin, dz = _stack_planes(positions, axes, measures, context)
    grid = Volume(array=np.zeros((int(k_of.max()) + 1, *pixels.shape[1:]), np.float32),
                  spacing=(col_mm, row_mm, dz), origin=tuple(origin), direction=axes)
    scale = float(ds.get('MaximumFractionalValue', 1)) if str(
        ds.SegmentationType).upper() == 'FRACTIONAL' else 1.0
    stacks = {number: np.zeros(grid.array.shape, np.float32) for number in numbers}
    for n, k in enumerate(k_of):
        for number in numbers:
            if labelmap:
                values = (pixels[n] == number).astype(np.float32)
            elif segment_of[n] == number:
                values = pixels[n].astype(np.float32) / scale
            else:
                continue
            np.maximum(stacks[number][k], values, out=stacks[number][k])
    return stacks, grid


def _stack_planes(positions: np.ndarray, axes: np.ndarray, measures: Dataset,
                  context: str) -> tuple[np.ndarray, np.ndarray, float]:
    """(stack index k per frame, LPS origin of k = 0, slice spacing mm) of frame positions."""
    in_plane = (positions - positions[0]) @ axes[:, :2]
    if np.abs(in_plane).max(initial=0.0) > 1e-2:
        raise DataPrepError(f'{context}: frames are shifted in-plane against each other by up '
                            f'to {np.abs(in_plane).max():.2f} mm; expected one stack')
    along = positions @ axes[:, 2]
    planes = np.sort(along)
    gaps = np.diff(planes)
    gaps = gaps[gaps > PLANE_TOL_MM]
    given = float(measures.get('SpacingBetweenSlices') or 0)
    dz = given if given > 0 else float(gaps.min()) if gaps.size else float(
        measures.get('SliceThickness') or 1.0)
    steps = (along - planes[0]) / dz
    off = np.abs(steps - np.round(steps)).max()
    if off > STACK_TOL:
        raise DataPrepError(f'{context}: frame planes are not on a regular stack of '
                            f'{dz:.3f} mm spacing (a plane lies {off * dz:.2f} mm off it)')
    first = int(np.argmin(along))
    return np.round(steps).astype(int), positions[first], dz


# --------------------------------------------------------------------------
# geometry shared by both sources


def _to_grid(array: np.ndarray, source: Volume, target: Volume, *,
             linear: bool = False) -> np.ndarray:
    """[k, j, i] values of ``array`` (on ``source``'s grid) at ``target``'s voxel centres.

    Nearest neighbour (linear: trilinear, float32); 0 where a target centre
    lies outside the source voxels. The same grid is copied without resampling.
    """
    if _same_grid(source, target):
        return array.copy()
    if not linear and array.dtype != np.float32:
        array = array.astype(np.int32)
    image = to_sitk(array.astype(np.float32) if linear else array, source)
    reference = to_sitk(np.zeros(target.array.shape, np.uint8), target)
    out = sitk.Resample(image, reference, sitk.Transform(3, sitk.sitkIdentity),
                        sitk.sitkLinear if linear else sitk.sitkNearestNeighbor, 0.0,
                        image.GetPixelID())
    return sitk.GetArrayFromImage(out)


def _same_grid(a: Volume, b: Volume) -> bool:
    return (a.array.shape == b.array.shape
            and np.allclose(a.spacing, b.spacing, atol=SAME_GRID_TOL, rtol=0)
            and np.allclose(a.origin, b.origin, atol=SAME_GRID_TOL, rtol=0)
            and np.allclose(a.direction, b.direction, atol=SAME_GRID_TOL, rtol=0))


def _check_inside(labelled: dict[str, np.ndarray], source: Volume, target: Volume, context: str,
                  warnings_out: list[str] | None) -> None:
    """Raise if no labelled source voxel centre lies in ``target``'s voxels; warn per class
    about labelled voxels outside them (dropped)."""
    shape = np.array(target.array.shape[::-1])  # (ni, nj, nk)
    n_inside, nearest = 0, np.inf
    for cls, mask in labelled.items():
        ijk = np.argwhere(mask)[:, ::-1]
        if not len(ijk):
            continue
        index = target.lps_to_index(source.index_to_lps(ijk))
        excess = np.maximum(np.maximum(-0.5 - index, index - (shape - 0.5)), 0.0)
        distance = np.linalg.norm(excess * np.asarray(target.spacing), axis=1)
        outside = int((distance > 1e-6).sum())
        n_inside += len(ijk) - outside
        nearest = min(nearest, float(distance.min()))
        if outside and warnings_out is not None:
            warnings_out.append(f'{context}: {outside} of {len(ijk)} voxels of {cls} lie outside '
                                'the MR image and are dropped')
    if n_inside == 0 and np.isfinite(nearest):
        centres = [_centre(v) for v in (source, target)]
        hint = ('; it has the MR\'s size: was it saved without the MR\'s geometry?'
                if sorted(source.array.shape) == sorted(target.array.shape) else '')
        raise DataPrepError(f'{context}: does not overlap the MR image: its nearest labelled voxel '
                            f'lies {nearest:.1f} mm outside the MR volume, the centres of the two '
                            f'images are {np.linalg.norm(centres[0] - centres[1]):.1f} mm apart'
                            f'{hint}')


def _centre(volume: Volume) -> np.ndarray:
    """LPS mm of the centre of the voxel grid."""
    corners = np.array(list(product(*[(0, n - 1) for n in volume.array.shape[::-1]])))
    return volume.index_to_lps(corners).mean(axis=0)
