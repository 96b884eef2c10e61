"""Decide which MR series is T1/T2/CE-T1 and which RTSTRUCT belongs to each.

Both steps refuse to guess: a wanted sequence with no or several candidate
series, or without exactly one RTSTRUCT, is an error naming the patient and the
series descriptions/folders, so the user can fix it with a mapping file.
"""
from __future__ import annotations

from pathlib import Path

from data_prep.discover import display_name
from data_prep.options import PrepOptions
from data_prep.rtstruct import RtstructReferences, read_references
from data_prep.types import DataPrepError, SeriesInfo


def assign_sequences(series: list[SeriesInfo], options: PrepOptions, *,
                     patient_id: str = '') -> dict[str, SeriesInfo]:
    """sequence -> its MR series, for every sequence in ``options.sequences``.

    Each MR series gets the sequence ``options.sequence_of(description)``;
    non-MR series and series matching no pattern are ignored.
    """
    mr = [s for s in series if s.modality == 'MR']
    pid = patient_id or (series[0].patient_id if series else '?')
    candidates: dict[str, list[SeriesInfo]] = {}
    for info in mr:
        candidates.setdefault(options.sequence_of(info.description), []).append(info)
    assigned = {}
    for sequence in options.sequences:
        found = candidates.get(sequence, [])
        if len(found) != 1:
            listed = ', '.join(describe_series(s) for s in (found or mr)) or 'none'
            problem = (f'{len(found)} series match {sequence}' if found
                       else f'no series matches {sequence}; MR series found')
            raise DataPrepError(f'patient {pid}: {problem}: {listed}. Adjust '
                                '"sequence_patterns" in the mapping file.')
        assigned[sequence] = found[0]
    return assigned


def match_rtstructs(mr: dict[str, SeriesInfo], rtstructs: list[SeriesInfo]) -> dict[str, Path]:
    """sequence -> the RTSTRUCT file drawn on that sequence's series.

    An RTSTRUCT file matches a series it references in RTReferencedSeriesSequence,
    else one whose images it references (ContourImageSequence), else -- only
    when it references no series or image at all -- the one series sharing its
    FrameOfReferenceUID, if exactly one does. RTSTRUCTs matching no sequence are
    ignored (e.g. drawn on a planning CT) unless a sequence is left without one.
    """
    pid = next(iter(mr.values())).patient_id if mr else '?'
    found: dict[str, list[Path]] = {sequence: [] for sequence in mr}
    unmatched: list[str] = []
    for rt_series in rtstructs:
        for path, dataset in zip(rt_series.files, rt_series.parsed_datasets()):
            sequence = _matching_sequence(mr, read_references(path, pid, dataset), path, pid)
            if sequence is None:
                unmatched.append(display_name(path, pid))
            else:
                found[sequence].append(path)
    for sequence, paths in found.items():
        if len(paths) > 1:
            names = ', '.join(sorted(display_name(p, pid) for p in paths))
            raise DataPrepError(f'patient {pid}: several RTSTRUCTs refer to the {sequence} series '
                                f'{describe_series(mr[sequence])}: {names}')
        if not paths:
            others = (f'; RTSTRUCTs referring to other series or frames of reference: '
                      f'{", ".join(sorted(unmatched))}' if unmatched else '')
            raise DataPrepError(f'patient {pid}: no RTSTRUCT refers to the {sequence} series '
                                f'{describe_series(mr[sequence])}{others}')
    return {sequence: paths[0] for sequence, paths in found.items()}


def rtstruct_datasets(rtstructs: list[SeriesInfo]) -> dict[Path, object]:
    """RTSTRUCT file -> the dataset discovery parsed (None where there is none)."""
    return {path: dataset for series in rtstructs
            for path, dataset in zip(series.files, series.parsed_datasets())}


def describe_series(series: SeriesInfo) -> str:
    """'<description>' (<folder>, N files) -- for messages; no UIDs."""
    folder = Path(display_name(series.files[0], series.patient_id)).parent
    return f"'{series.description}' ({folder}/, {len(series.files)} files)"


def _matching_sequence(mr: dict[str, SeriesInfo], refs: RtstructReferences, path: Path,
                       pid: str) -> str | None:
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
        raise DataPrepError(f'patient {pid}: RTSTRUCT {name} refers to several sequences '
                            f'({", ".join(hits)})')
    if hits and refs.frame_of_reference_uids and (
            mr[hits[0]].frame_of_reference_uid not in refs.frame_of_reference_uids):
        raise DataPrepError(f'patient {pid}: RTSTRUCT {name} refers to the {hits[0]} series but '
                            'to another frame of reference')
    return hits[0] if hits else None
