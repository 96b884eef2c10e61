"""Convert one patient folder: DICOM series (+ RTSTRUCTs) -> prepared axial slices.

discover -> assign sequences -> (match RTSTRUCTs) -> per sequence: load the MR
volume, rasterise the GTV/GTVln contours on its native grid, resample both to
1 mm and 512 x 512 slices. The manifest entry (``info``) holds geometry and
provenance only: no UIDs, names or dates.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from data_prep.discover import display_name, scan_patient
from data_prep.mr_volume import MrSeries, load_mr_series
from data_prep.options import PrepOptions
from data_prep.rasterize import class_masks
from data_prep.resample import canonical_grid, resample_to_slices
from data_prep.rtstruct import read_structure_set
from data_prep.sequences import assign_sequences, match_rtstructs, rtstruct_datasets
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
    assigned = assign_sequences(series, options, patient_id=patient_id)
    rtstructs, parsed = {}, {}
    if require_contours:
        rt_series = [s for s in series if s.modality == 'RTSTRUCT']
        rtstructs, parsed = match_rtstructs(assigned, rt_series), rtstruct_datasets(rt_series)
    return {sequence: _prepare_sequence(patient_id, sequence, load_mr_series(assigned[sequence]),
                                        assigned[sequence].description, rtstructs.get(sequence),
                                        parsed.get(rtstructs.get(sequence)), options)
            for sequence in options.sequences}


def _prepare_sequence(patient_id: str, sequence: str, mr: MrSeries, description: str,
                      rtstruct: Path | None, rtstruct_dataset: Dataset | None,
                      options: PrepOptions) -> PreparedSequence:
    warnings = [f'{sequence}: {w}' for w in mr.warnings]
    masks, roi_names = {}, {}
    if rtstruct is not None:
        structure = read_structure_set(rtstruct, patient_id, options, rtstruct_dataset)
        name = display_name(rtstruct, patient_id)
        warnings += [f'{sequence} RTSTRUCT {name}: {w}' for w in structure.warnings]
        context = f'patient {patient_id}, RTSTRUCT {name}'
        masks = class_masks(structure, mr.volume, context=context, warnings_out=warnings)
        masks = interpolate_missing_masks(masks, mr.filled_slices)
        roi_names = structure.roi_names()
    slices = resample_to_slices(mr.volume, masks, options)
    volume = mr.volume
    info = {
        'series_description': description,
        'n_source_slices': int(volume.array.shape[0]),
        'source_spacing_mm': [round(float(s), 4) for s in volume.spacing],
        'source_shape': [int(n) for n in volume.array.shape],
        'source_orientation': [round(v, 4) + 0.0 for v in mr.orientation],
        'output_shape': [len(slices), options.output_size, options.output_size],
        'square_fov_mm': canonical_grid(volume).side_mm,
        'rtstruct_rois': roi_names,
        'warnings': warnings,
    }
    return PreparedSequence(patient_id=patient_id, sequence=sequence, slices=slices, info=info)


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
