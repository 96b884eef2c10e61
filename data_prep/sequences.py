"""Decide which MR series is T1/T2/CE-T1 and where each one's contours come from.

Series selection. Every MR series whose SeriesDescription matches a sequence's
patterns (``PrepOptions.sequence_of``) is a *candidate* for that sequence. A
series named in the series overrides file (``PrepOptions.series_overrides``)
wins outright. Otherwise, among several candidates, the rule ``SELECTION_RULE``
is applied step by step, each step keeping the best candidates, until one is
left:

1. the series the contours refer to (an RTSTRUCT references the series or
   its images);
2. the one closest to axial: smallest angle between its slice normal
   (from ImageOrientationPatient) and the patient's head-foot axis, candidates
   within ``AXIAL_TIE_DEG`` of the best counting as equal;
3. the one with the most slices (files, or frames of a multi-frame file);
4. the later (higher) SeriesNumber, e.g. a repeat after motion.

Candidates still tied after step 4 are an error naming them: the user names
the series in an overrides file. The choice, the rejected candidates and the
deciding step go to the manifest (``SeriesChoice.manifest_entry``, no UIDs).

Contour sources (own RTSTRUCT, SEG, label map, propagation within a frame of
reference, registration between frames, planning CT) are decided in
``data_prep.contour_sources``, with the RTSTRUCT matching of this module.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from data_prep.discover import display_name
from data_prep.options import PrepOptions
from data_prep.rtstruct import RtstructReferences, read_references
from data_prep.types import DataPrepError, SeriesInfo

SELECTION_RULE: tuple[str, ...] = ('referenced by the contours', 'closest to axial',
                                   'most slices', 'later series number')
PROPAGATION_ORDER: tuple[str, ...] = ('cet1', 't2', 't1')  # preferred contour donors
AXIAL_TIE_DEG = 1.0  # slice normals closer than this to the best one's angle count as equal
OBLIQUE_LABEL_DEG = 10.0  # a normal further than this from every LPS axis is 'oblique'


# --- series headers ---------------------------------------------------------------------

def series_header(series: SeriesInfo) -> Dataset | None:
    """The first dataset of ``series`` (discovery's; else read without pixels), or None."""
    for dataset in series.datasets:
        if dataset is not None:
            return dataset
    try:
        return pydicom.dcmread(series.files[0], stop_before_pixels=True, force=True)
    except Exception:  # noqa: BLE001 - a header we cannot read gives no orientation
        return None


def series_orientation(series: SeriesInfo) -> np.ndarray | None:
    """ImageOrientationPatient (6 floats) of the series, also of enhanced multi-frame
    files (shared or first per-frame PlaneOrientationSequence); None when absent."""
    ds = series_header(series)
    if ds is None:
        return None
    values = ds.get('ImageOrientationPatient')
    for groups in ('SharedFunctionalGroupsSequence', 'PerFrameFunctionalGroupsSequence'):
        if values is None and ds.get(groups):
            planes = ds.get(groups)[0].get('PlaneOrientationSequence')
            values = planes[0].get('ImageOrientationPatient') if planes else None
    try:
        orientation = np.asarray([float(v) for v in values], dtype=float)
    except (TypeError, ValueError):
        return None
    return orientation if orientation.shape == (6,) else None


def slice_normal(orientation: np.ndarray) -> np.ndarray:
    """Unit slice normal (LPS) = row direction x column direction."""
    normal = np.cross(orientation[:3], orientation[3:])
    return normal / np.linalg.norm(normal)


def axial_angle_deg(series: SeriesInfo) -> float:
    """Angle (degrees, 0..90) between the slice normal and the head-foot axis; 90 when
    the orientation is unknown."""
    orientation = series_orientation(series)
    if orientation is None or not np.linalg.norm(np.cross(orientation[:3], orientation[3:])):
        return 90.0
    return float(np.degrees(np.arccos(min(1.0, abs(slice_normal(orientation)[2])))))


def orientation_label(series: SeriesInfo) -> str:
    """'axial', 'coronal', 'sagittal', 'oblique' (normal over ``OBLIQUE_LABEL_DEG`` from
    every patient axis) or 'unknown'."""
    orientation = series_orientation(series)
    if orientation is None or not np.linalg.norm(np.cross(orientation[:3], orientation[3:])):
        return 'unknown'
    normal = np.abs(slice_normal(orientation))
    axis = int(np.argmax(normal))
    if np.degrees(np.arccos(min(1.0, normal[axis]))) > OBLIQUE_LABEL_DEG:
        return 'oblique'
    return ('sagittal', 'coronal', 'axial')[axis]


def n_slices(series: SeriesInfo) -> int:
    """Number of image slices: files, or the frames of multi-frame files."""
    datasets = series.parsed_datasets()
    total = 0
    for dataset in datasets:
        try:
            total += max(1, int(dataset.get('NumberOfFrames', 1) or 1)) if dataset else 1
        except (TypeError, ValueError):
            total += 1
    return total


def series_number(series: SeriesInfo) -> int | None:
    """SeriesNumber, or None when absent or not a number."""
    ds = series_header(series)
    try:
        return int(ds.get('SeriesNumber')) if ds is not None else None
    except (TypeError, ValueError):
        return None


def series_folder(series: SeriesInfo) -> str:
    """Folder of the series' first file relative to the patient folder ('.' = the folder)."""
    return Path(display_name(series.files[0], series.patient_id)).parent.as_posix()


def describe_series(series: SeriesInfo) -> str:
    """'<description>' (<folder>, N files) -- for messages; no UIDs."""
    folder = Path(display_name(series.files[0], series.patient_id)).parent
    return f"'{series.description}' ({folder}/, {len(series.files)} files)"


# --- series selection -------------------------------------------------------------------

@dataclass(frozen=True)
class SeriesChoice:
    """The series chosen for one sequence, the candidates passed over, and why."""

    sequence: str
    series: SeriesInfo
    rejected: tuple[SeriesInfo, ...] = ()
    reason: str = 'only candidate'  # 'only candidate', 'series override' or a SELECTION_RULE step

    def manifest_entry(self) -> dict:
        """Description + folder of the chosen and rejected series, and the reason (no UIDs)."""
        return {'chosen': _series_entry(self.series),
                'rejected': [_series_entry(s) for s in self.rejected],
                'reason': self.reason}


def _series_entry(series: SeriesInfo) -> dict:
    return {'description': series.description, 'folder': series_folder(series)}


def series_candidates(series: list[SeriesInfo],
                      options: PrepOptions) -> dict[str, list[SeriesInfo]]:
    """sequence -> its candidate MR series (patterns on SeriesDescription), sorted by
    folder relative to the patient folder, then description (a stable order for messages
    and the manifest)."""
    candidates: dict[str, list[SeriesInfo]] = {}
    for info in sorted((s for s in series if s.modality == 'MR'),
                       key=lambda s: (series_folder(s), s.description, str(s.files[0]))):
        sequence = options.sequence_of(info.description)
        if sequence is not None:
            candidates.setdefault(sequence, []).append(info)
    return candidates


def choose_series(sequence: str, series: list[SeriesInfo], options: PrepOptions, *,
                  patient_id: str, referenced: frozenset[str] | set[str] = frozenset()
                  ) -> SeriesChoice:
    """The series for ``sequence``: the override, else the rule of the module docstring.

    referenced: SeriesInstanceUIDs the patient's RTSTRUCTs refer to (rule step 1).
    Raises DataPrepError (naming patient and series) when there is no candidate,
    when the rule ends in a tie, or when an override names no single series.
    """
    mr = [s for s in series if s.modality == 'MR']
    found = series_candidates(mr, options).get(sequence, [])
    override = options.series_overrides.get(patient_id, {}).get(sequence)
    if override is not None:
        chosen = _overridden_series(override, sequence, mr, options, patient_id)
        return SeriesChoice(sequence, chosen, tuple(s for s in found if s is not chosen),
                            'series override')
    if not found:
        listed = ', '.join(describe_series(s) for s in mr) or 'none'
        raise DataPrepError(f'patient {patient_id}: no series matches {sequence}; MR series '
                            f'found: {listed}. Adjust "sequence_patterns" in the mapping file.')
    if len(found) == 1:
        return SeriesChoice(sequence, found[0])
    remaining = list(found)
    for step in SELECTION_RULE:
        remaining = _best_by(step, remaining, referenced)
        if len(remaining) == 1:
            return SeriesChoice(sequence, remaining[0],
                                tuple(s for s in found if s is not remaining[0]), step)
    listed = ', '.join(describe_series(s) for s in found)
    raise DataPrepError(f'patient {patient_id}: {len(found)} series match {sequence}: {listed}; '
                        'the selection rule (contours, axial, slices, series number) cannot '
                        'choose between them. Name one in a series overrides file '
                        '(--series-overrides) or adjust "sequence_patterns" in the mapping file.')


def _best_by(step: str, series: list[SeriesInfo], referenced: frozenset[str] | set[str]
             ) -> list[SeriesInfo]:
    """The series of ``series`` that are best by one SELECTION_RULE step (all when none
    is better than the others)."""
    if step == 'referenced by the contours':
        return [s for s in series if s.series_uid in referenced] or series
    if step == 'closest to axial':
        angles = [axial_angle_deg(s) for s in series]
        return [s for s, a in zip(series, angles) if a <= min(angles) + AXIAL_TIE_DEG]
    if step == 'most slices':
        counts = [n_slices(s) for s in series]
        return [s for s, n in zip(series, counts) if n == max(counts)]
    numbers = [series_number(s) for s in series]
    if any(n is None for n in numbers):
        return series  # an unknown SeriesNumber cannot be compared
    return [s for s, n in zip(series, numbers) if n == max(numbers)]


def _overridden_series(value: str, sequence: str, mr: list[SeriesInfo], options: PrepOptions,
                       patient_id: str) -> SeriesInfo:
    """The one MR series whose description, SeriesNumber or folder is ``value``."""
    wanted = value.strip()
    folder = wanted.strip('/').replace('\\', '/') or '.'
    hits = [s for s in mr if s.description == wanted or series_folder(s) == folder
            or (wanted.isdigit() and series_number(s) == int(wanted))]
    source = f'series overrides file {options.series_overrides_file or "(given)"}'
    listed = ', '.join(describe_series(s) for s in mr) or 'none'
    if not hits:
        raise DataPrepError(f'patient {patient_id}: {source} names {wanted!r} for {sequence}, but '
                            'no MR series has that SeriesDescription, SeriesNumber or folder; '
                            f'MR series found: {listed}')
    if len(hits) > 1:
        raise DataPrepError(f'patient {patient_id}: {source} names {wanted!r} for {sequence}, '
                            f'which matches {len(hits)} series: '
                            f'{", ".join(describe_series(s) for s in hits)}; name the folder '
                            'or the SeriesNumber instead')
    return hits[0]


def assign_sequences(series: list[SeriesInfo], options: PrepOptions, *,
                     patient_id: str = '', referenced: frozenset[str] | set[str] = frozenset()
                     ) -> dict[str, SeriesInfo]:
    """sequence -> its MR series, for every sequence in ``options.sequences``
    (``choose_series``; non-MR series and series matching no pattern are ignored)."""
    pid = patient_id or (series[0].patient_id if series else '?')
    return {sequence: choose_series(sequence, series, options, patient_id=pid,
                                    referenced=referenced).series
            for sequence in options.sequences}


# --- RTSTRUCT matching ------------------------------------------------------------------

@dataclass(frozen=True)
class RtstructFile:
    """One RTSTRUCT file, what it refers to, and its dataset as discovery parsed it."""

    path: Path
    references: RtstructReferences
    dataset: Dataset | None = field(default=None, compare=False, repr=False)


def read_rtstruct_files(rtstructs: list[SeriesInfo], patient_id: str) -> list[RtstructFile]:
    """Every RTSTRUCT file of the patient with its references."""
    return [RtstructFile(path, read_references(path, patient_id, dataset), dataset)
            for rt_series in rtstructs
            for path, dataset in zip(rt_series.files, rt_series.parsed_datasets())]


def referenced_series_uids(rt_files: list[RtstructFile], series: list[SeriesInfo]) -> set[str]:
    """SeriesInstanceUIDs of the MR series an RTSTRUCT refers to (series or images)."""
    uids: set[str] = set()
    for rt in rt_files:
        uids |= rt.references.series_uids
        uids |= {s.series_uid for s in series
                 if rt.references.sop_instance_uids & set(s.sop_instance_uids)}
    return uids


def own_rtstructs(mr: Mapping[str, SeriesInfo], rt_files: list[RtstructFile], patient_id: str,
                  *, others: Mapping[str, SeriesInfo] | None = None, what: str = 'RTSTRUCT'
                  ) -> tuple[dict[str, Path], list[str]]:
    """(sequence -> the RTSTRUCT drawn on its series, names of RTSTRUCTs matching none).

    An RTSTRUCT matches a series of ``mr`` it references in
    RTReferencedSeriesSequence, else one whose images it references, else -- only
    when it references no series or image at all -- the one series of ``mr``
    sharing its FrameOfReferenceUID, if exactly one does. The RTSTRUCTs left
    over are then matched the same way against ``others`` (sequences not
    converted but usable as contour donors). Raises DataPrepError when an
    RTSTRUCT refers to several sequences or to another frame of reference than
    its series, or when several RTSTRUCTs refer to one sequence. what: 'RTSTRUCT',
    or 'SEG' when ``rt_files`` are DICOM SEGs (``seg_files``), for messages.
    """
    found: dict[str, list[Path]] = {}
    unmatched: list[RtstructFile] = []
    for rt in rt_files:
        sequence = _matching_sequence(mr, rt.references, rt.path, patient_id, what)
        if sequence is None:
            unmatched.append(rt)
        else:
            found.setdefault(sequence, []).append(rt.path)
    leftover: list[str] = []
    for rt in unmatched:
        sequence = (_matching_sequence(others, rt.references, rt.path, patient_id, what)
                    if others else None)
        if sequence is None:
            leftover.append(display_name(rt.path, patient_id))
        else:
            found.setdefault(sequence, []).append(rt.path)
    series_of = {**(others or {}), **mr}
    for sequence, paths in found.items():
        if len(paths) > 1:
            names = ', '.join(sorted(display_name(p, patient_id) for p in paths))
            raise DataPrepError(f'patient {patient_id}: several {what}s refer to the {sequence} '
                                f'series {describe_series(series_of[sequence])}: {names}')
    return {sequence: paths[0] for sequence, paths in found.items()}, sorted(leftover)


def match_rtstructs(mr: dict[str, SeriesInfo], rtstructs: list[SeriesInfo]) -> dict[str, Path]:
    """sequence -> the RTSTRUCT file drawn on that sequence's series, every sequence of
    ``mr`` having one (``own_rtstructs``; the strict form, without propagation)."""
    pid = next(iter(mr.values())).patient_id if mr else '?'
    own, unmatched = own_rtstructs(mr, read_rtstruct_files(rtstructs, pid), pid)
    for sequence in mr:
        if sequence not in own:
            raise DataPrepError(f'patient {pid}: no RTSTRUCT refers to the {sequence} series '
                                f'{describe_series(mr[sequence])}{_others(unmatched)}')
    return {sequence: own[sequence] for sequence in mr}


def rtstruct_datasets(rtstructs: list[SeriesInfo]) -> dict[Path, object]:
    """RTSTRUCT file -> the dataset discovery parsed (None where there is none)."""
    return {path: dataset for series in rtstructs
            for path, dataset in zip(series.files, series.parsed_datasets())}


def _others(unmatched: list[str]) -> str:
    return (f'; RTSTRUCTs referring to other series or frames of reference: '
            f'{", ".join(unmatched)}' if unmatched else '')


def _matching_sequence(mr: Mapping[str, SeriesInfo], refs: RtstructReferences, path: Path,
                       pid: str, what: str = 'RTSTRUCT') -> str | None:
    """The sequence an RTSTRUCT refers to (None if none); raise on contradictions."""
    hits = [seq for seq, s in mr.items() if s.series_uid in refs.series_uids]
    if not hits:
        hits = [seq for seq, s in mr.items() if refs.sop_instance_uids & set(s.sop_instance_uids)]
    if not hits and not refs.series_uids and not refs.sop_instance_uids:
        hits = [seq for seq, s in mr.items() if s.frame_of_reference_uid in
                refs.frame_of_reference_uids]
        hits = hits if len(hits) == 1 else []
    name = display_name(path, pid)
    if len(hits) > 1:
        raise DataPrepError(f'patient {pid}: {what} {name} refers to several sequences '
                            f'({", ".join(hits)})')
    if hits and refs.frame_of_reference_uids and (
            mr[hits[0]].frame_of_reference_uid not in refs.frame_of_reference_uids):
        raise DataPrepError(f'patient {pid}: {what} {name} refers to the {hits[0]} series but '
                            'to another frame of reference')
    return hits[0] if hits else None


