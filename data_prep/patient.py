"""Convert one patient folder: DICOM series (+ contours) -> prepared axial slices.

discover (+ label maps, ``data_prep.label_map_files``) -> choose each
sequence's series and its contour source (``data_prep.contour_sources.plan_patient``)
-> per sequence: load the MR volume, make the GTV/GTVln masks on its native
grid (own, propagated or registered RTSTRUCT / SEG / label map,
``data_prep.contour_masks``), resample both to 1 mm and 512 x 512 slices. The
manifest entry (``info``) holds geometry and provenance only: no UIDs, names or
dates.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from data_prep.contour_masks import contour_masks, interpolate_missing_masks
from data_prep.contour_sources import CT, ContourSource, PatientPlan, plan_patient
from data_prep.discover import scan_patient
from data_prep.label_map_files import find_label_maps
from data_prep.mr_volume import MrSeries, load_mr_series
from data_prep.options import PrepOptions
from data_prep.registration import load_ct_series
from data_prep.intensity import CLIP_WARN_SHARE
from data_prep.resample import canonical_grid, resample_sequence
from data_prep.sequences import SeriesChoice
from data_prep.types import DataPrepError, PreparedSequence, SeriesInfo

__all__ = ['prepare_patient', 'interpolate_missing_masks']


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
    label_maps = (find_label_maps(Path(patient_dir), patient_id, options)
                  if require_contours else {})
    plan = plan_patient(series, options, patient_id, require_contours=require_contours,
                        label_maps=label_maps)
    loaded: dict[str, MrSeries] = {}

    def mr_of(sequence: str) -> MrSeries:
        if sequence not in loaded:
            loaded[sequence] = (load_ct_series(plan.series_of[CT]) if sequence == CT
                                else load_mr_series(plan.choices[sequence].series))
        return loaded[sequence]

    donors = {s.drawn_on for s in plan.sources.values() if s.kind != 'own'}
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
    masks, roi_names, extras = {}, {}, {}
    if source is not None:
        masks, roi_names, extras = contour_masks(patient_id, sequence, mr, source, plan,
                                                 mr_of, options, warnings)
    slices, intensity = resample_sequence(mr.volume, masks, options)
    warnings += clip_warnings(sequence, intensity['contour_clip_shares'])
    volume = mr.volume
    contour_source = (source.manifest_entry(patient_id) if source is not None
                      else {'kind': 'none'})
    if source is not None and source.usable:
        contour_source['quality'] = extras.get('quality')
        if 'method' in extras:
            contour_source['method'] = extras['method']
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
        'intensity': intensity,
        'warnings': warnings,
    }
    return PreparedSequence(patient_id=patient_id, sequence=sequence, slices=slices, info=info)


def clip_warnings(sequence: str, shares: dict[str, dict]) -> list[str]:
    """One warning per structure with more than CLIP_WARN_SHARE of its voxels at 1 or 255."""
    out = []
    for name, share in sorted(shares.items()):
        for end, value in (('upper', share['high']), ('lower', share['low'])):
            if value > CLIP_WARN_SHARE:
                out.append(f'{sequence}: {value:.0%} of the {name} voxels sit at the {end} '
                           f'intensity limit ({255 if end == "upper" else 1}): their internal '
                           'contrast is lost (see PrepOptions.intensity_top_voxels)')
    return out
