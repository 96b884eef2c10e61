"""Class masks of one sequence from its ContourSource (RTSTRUCT, SEG or label map).

* own delineation: rasterised / placed on the sequence's own grid;
* propagated (same frame of reference) RTSTRUCT whose contours lie on this
  series' slice planes: rasterised on it directly (exactly the masks of an
  RTSTRUCT drawn on it);
* otherwise: masks made on the grid of the series they were drawn on (the
  donor MR or planning CT), then mapped into this grid by
  ``registration.masks_to_grid`` with the matrix donor frame -> this frame:
  identity (same frame), a DICOM REG's matrix, or a rigid MI registration
  (fixed = this sequence, moving = the donor), whose quality goes to the manifest.
  A registration failing its quality checks is an error naming patient and
  sequences, unless ``options.accept_poor_registration`` (then a warning).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pydicom

from data_prep.contour_sources import FILE_KINDS, ContourSource, PatientPlan, source_file_name
from data_prep.mask_sources import label_map_masks, label_map_names, seg_masks, segment_classes
from data_prep.mr_volume import MrSeries
from data_prep.options import PrepOptions
from data_prep.rasterize import class_masks
from data_prep.registration import (
    contours_on_slices,
    masks_to_grid,
    read_spatial_registration,
    rigid_register,
)
from data_prep.rtstruct import read_structure_set
from data_prep.sequences import describe_series
from data_prep.types import DataPrepError, Volume

REGISTRATION_SEED = 0


def contour_masks(patient_id: str, sequence: str, target: MrSeries, source: ContourSource,
                  plan: PatientPlan, series_of: Callable[[str], MrSeries],
                  options: PrepOptions, warnings: list[str]
                  ) -> tuple[dict[str, np.ndarray], dict[str, list[str]], dict]:
    """(class -> mask on ``target``'s grid, class -> ROI/segment names, manifest extras).

    series_of: sequence or 'CT' -> its loaded series (the donor). Manifest
    extras: 'method' for propagated/registered sources, 'quality' (rigid MI).
    """
    name = source_file_name(source.file, patient_id)
    label = f'{FILE_KINDS[source.file_kind]} {name}' + (
        '' if source.kind == 'own' else f' (drawn on {source.drawn_on})')
    context = f'patient {patient_id}, {label}'
    warnings += plan.warnings.get(sequence, [])
    structure = None
    if source.file_kind == 'rtstruct':
        structure = read_structure_set(source.file, patient_id, options,
                                       plan.parsed_dataset(source.file))
        warnings += [f'{sequence} {label}: {w}' for w in structure.warnings]
        names = structure.roi_names()
    elif source.file_kind == 'seg':
        names = segment_classes(_dataset_or_path(plan, source), options, patient_id=patient_id)
    else:
        names = label_map_names(options.label_values)
    extras: dict = {'quality': None}
    if source.kind == 'own' or (structure is not None and source.kind == 'propagated'
                                and contours_on_slices(structure, target.volume, inside=True)):
        masks = _masks_on(source, structure, target.volume, plan, options, patient_id, context,
                          warnings)
        if source.kind != 'own':
            extras['method'] = 'rasterised on this series (contours on its slice planes)'
        return interpolate_missing_masks(masks, target.filled_slices), names, extras
    donor = series_of(source.drawn_on)
    drawn = _masks_on(source, structure, donor.volume, plan, options, patient_id, context,
                      warnings)
    drawn = interpolate_missing_masks(drawn, donor.filled_slices)
    matrix = np.eye(4)
    if source.kind == 'registered':
        matrix, extras['quality'] = _registration(patient_id, sequence, target, donor, source,
                                                  plan, options, warnings)
    masks = masks_to_grid(drawn, donor.volume, target.volume, matrix,
                          context=f'{sequence}: {context}', warnings_out=warnings)
    how = 'resampled to this one' if source.kind == 'propagated' else \
        f'mapped to this one by {source.registration}'
    extras['method'] = f'rasterised on the {source.drawn_on} series, {how}'
    return masks, names, extras


def _dataset_or_path(plan: PatientPlan, source: ContourSource):
    dataset = plan.parsed_dataset(source.file)
    return dataset if dataset is not None else source.file


def _masks_on(source: ContourSource, structure, grid: Volume, plan: PatientPlan,
              options: PrepOptions, patient_id: str, context: str,
              warnings: list[str]) -> dict[str, np.ndarray]:
    """The source's masks on ``grid`` (the series it was drawn on, or this one)."""
    if source.file_kind == 'rtstruct':
        return class_masks(structure, grid, context=context, warnings_out=warnings)
    if source.file_kind == 'seg':
        return seg_masks(_dataset_or_path(plan, source), grid, options, patient_id=patient_id,
                         warnings_out=warnings)
    return label_map_masks(source.file, grid, options.label_values, patient_id=patient_id,
                           warnings_out=warnings)


def _registration(patient_id: str, sequence: str, target: MrSeries, donor: MrSeries,
                  source: ContourSource, plan: PatientPlan, options: PrepOptions,
                  warnings: list[str]) -> tuple[np.ndarray, dict | None]:
    """(4 x 4 matrix donor LPS -> target LPS, quality record or None for a REG)."""
    target_series, donor_series = plan.series_of[sequence], plan.series_of[source.drawn_on]
    if source.registration == 'DICOM REG':
        dataset = plan.parsed_dataset(source.registration_file)
        if dataset is None:
            dataset = pydicom.dcmread(source.registration_file, force=True)
        matrix = read_spatial_registration(
            dataset, donor_series.frame_of_reference_uid, target_series.frame_of_reference_uid,
            patient_id=patient_id, name=source_file_name(source.registration_file, patient_id))
        return matrix, None
    result = rigid_register(target.volume, donor.volume, seed=REGISTRATION_SEED,
                            patient_id=patient_id)
    record = result.manifest_record()
    quality = {'ok': result.quality_ok, **record['quality'],
               'iterations': record['iterations']}
    if not result.quality_ok:
        what = (f'patient {patient_id}: rigid registration of the {source.drawn_on} series '
                f'{describe_series(donor_series)} to the {sequence} series '
                f'{describe_series(target_series)}: {result.warning}')
        if not options.accept_poor_registration:
            raise DataPrepError(f'{what}; add a DICOM REG linking the two frames of reference '
                                f'or contours drawn on the {sequence} series, or pass '
                                '--accept-poor-registration to convert anyway')
        warnings.append(f'{sequence}: {what} (accepted: --accept-poor-registration)')
    return result.matrix, quality


def interpolate_missing_masks(masks: dict[str, np.ndarray],
                              filled: dict[int, tuple[int, int, float]]) -> dict[str, np.ndarray]:
    """Masks with the interpolated slices of a series (``MrSeries.filled_slices``) filled in.

    A class without contour on an interpolated slice k gets the linear blend of
    its neighbouring slices there (a float32 [k, j, i] mask in 0..1, thresholded
    after resampling like any mask); a contour drawn on that slice is kept.
    """
    if not filled:
        return masks
    out = {}
    for cls, mask in masks.items():
        blended = mask.astype(np.float32)
        for k, (below, above, weight) in filled.items():
            if not mask[k].any():
                blended[k] = (1 - weight) * blended[below] + weight * blended[above]
        out[cls] = blended
    return out
