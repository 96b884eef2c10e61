"""Convert one patient folder: DICOM series (+ RTSTRUCTs) -> prepared axial slices.

discover -> choose each sequence's series and its contour source
(``data_prep.sequences.plan_patient``) -> per sequence: load the MR volume,
rasterise the GTV/GTVln contours on its native grid (an RTSTRUCT drawn on
another sequence of the same frame of reference is propagated,
``data_prep.propagate``), resample both to 1 mm and 512 x 512 slices. The
manifest entry (``info``) holds geometry and provenance only: no UIDs, names or
dates.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from data_prep.discover import display_name, scan_patient
from data_prep.mr_volume import MrSeries, load_mr_series
from data_prep.options import PrepOptions
from data_prep.propagate import contours_on_slice_planes, resample_masks
from data_prep.rasterize import class_masks
from data_prep.resample import canonical_grid, resample_to_slices
from data_prep.rtstruct import read_structure_set
from data_prep.sequences import ContourSource, PatientPlan, SeriesChoice, plan_patient
from data_prep.types import DataPrepError, PreparedSequence, SeriesInfo


def prepare_patient(patient_dir: Path, patient_id: str, options: PrepOptions, *,
                    require_contours: bool = True,
                    series: list[SeriesInfo] | None = None) -> dict[str, PreparedSequence]:
    """sequence -> PreparedSequence for every sequence in ``options.sequences``.

    require_contours=False (new patients at prediction time): RTSTRUCTs are not
    looked for and every slice has empty ``masks``. series: the folder's
    ``scan_patient`` result when the caller has it (not scanned again).
    Raises DataPrepError (naming patient and file) on any inconsistent input.
    """
    if series is None:
        series = scan_patient(Path(patient_dir), patient_id)
    if not any(s.modality == 'MR' for s in series):
        found = sorted({s.modality for s in series})
        raise DataPrepError(f'patient {patient_id}: no MR image series in {patient_dir} '
                            f'(DICOM series found: {found or "none"})')
    plan = plan_patient(series, options, patient_id, require_contours=require_contours)
    loaded: dict[str, MrSeries] = {}

    def mr_of(sequence: str) -> MrSeries:
        if sequence not in loaded:
            loaded[sequence] = load_mr_series(plan.choices[sequence].series)
        return loaded[sequence]

    donors = {s.drawn_on for s in plan.sources.values() if s.kind == 'propagated'}
    prepared = {}
    for sequence in options.sequences:
        prepared[sequence] = _prepare_sequence(patient_id, sequence, plan, mr_of, options)
        if sequence not in donors:
            loaded.pop(sequence, None)  # keep only volumes that may serve as contour donors
    return prepared


def _prepare_sequence(patient_id: str, sequence: str, plan: PatientPlan, mr_of,
                      options: PrepOptions) -> PreparedSequence:
    """Masks (from the plan's contour source) + resampled slices + manifest entry."""
    mr = mr_of(sequence)
    choice: SeriesChoice = plan.choices[sequence]
    source: ContourSource | None = plan.sources.get(sequence)
    warnings = [f'{sequence}: {w}' for w in mr.warnings]
    masks, roi_names, method = {}, {}, None
    if source is not None:
        masks, roi_names, method = _contour_masks(patient_id, sequence, mr, source, plan,
                                                  mr_of, options, warnings)
    slices = resample_to_slices(mr.volume, masks, options)
    volume = mr.volume
    contour_source = (source.manifest_entry(patient_id) if source is not None
                      else {'kind': 'none'})
    if method is not None:
        contour_source['method'] = method
    info = {
        'series_description': choice.series.description,
        'series_selection': choice.manifest_entry(),
        'n_source_slices': int(volume.array.shape[0]),
        'source_spacing_mm': [round(float(s), 4) for s in volume.spacing],
        'source_shape': [int(n) for n in volume.array.shape],
        'source_orientation': [round(v, 4) + 0.0 for v in mr.orientation],
        'output_shape': [len(slices), options.output_size, options.output_size],
        'square_fov_mm': canonical_grid(volume).side_mm,
        'contour_source': contour_source,
        'rtstruct_rois': roi_names,
        'warnings': warnings,
    }
    return PreparedSequence(patient_id=patient_id, sequence=sequence, slices=slices, info=info)


def _contour_masks(patient_id: str, sequence: str, mr: MrSeries, source: ContourSource,
                   plan: PatientPlan, mr_of, options: PrepOptions, warnings: list[str]
                   ) -> tuple[dict[str, np.ndarray], dict[str, list[str]], str | None]:
    """(class -> mask on ``mr``'s grid, class -> ROI names, propagation method or None).

    Own RTSTRUCT: rasterised on the series. Propagated: rasterised on it when the
    contours lie on its slice planes, else rasterised on the series they were
    drawn on and resampled (``data_prep.propagate``).
    """
    structure = read_structure_set(source.rtstruct, patient_id, options,
                                   plan.rtstruct_dataset(source.rtstruct))
    name = display_name(source.rtstruct, patient_id)
    label = (f'RTSTRUCT {name}' if source.kind == 'own'
             else f'RTSTRUCT {name} (drawn on {source.drawn_on})')
    warnings += [f'{sequence} {label}: {w}' for w in structure.warnings]
    context = f'patient {patient_id}, {label}'
    method = None
    if source.kind == 'own' or contours_on_slice_planes(structure, mr.volume):
        masks = class_masks(structure, mr.volume, context=context, warnings_out=warnings)
        masks = interpolate_missing_masks(masks, mr.filled_slices)
        if source.kind != 'own':
            method = 'rasterised on this series (contours on its slice planes)'
    else:
        donor = mr_of(source.drawn_on)
        drawn = class_masks(structure, donor.volume, context=context, warnings_out=warnings)
        drawn = interpolate_missing_masks(drawn, donor.filled_slices)
        masks = resample_masks(drawn, donor.volume, mr.volume,
                               context=f'{sequence}: {context}', warnings_out=warnings)
        method = f'rasterised on the {source.drawn_on} series, resampled to this one'
    return masks, structure.roi_names(), method


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
