"""Dry run of a conversion: what each patient folder holds and whether it would convert.

``check_cohort`` reads the DICOM headers and the clinical table only: no pixel
data is decoded and nothing is written. For every patient folder (and every
clinical row without one) it returns a ``PatientCheck`` listing

* the MR series found (description, folder relative to the patient folder,
  number of files, orientation, frame of reference as an index 1, 2, ... in
  the order the series are listed -- never the UID) and the sequence each was
  chosen for, with the selection rule step when there were several candidates
  (``data_prep.sequences``);
* the RTSTRUCT files, their frame of reference and the sequence whose series
  they refer to;
* per wanted sequence: the chosen series, the contour source (own RTSTRUCT,
  SEG or label map; propagated from another sequence; registered from another
  frame of reference or the planning CT; missing), the registration route
  ('REG found (<file>)' or 'rigid registration at conversion': it is not run
  here) and the GTV/GTVln classes found in it with their ROI/segment names;
* the patient's clinical-table problems (``data_prep.clinical.load_clinical``).

A patient with no problem would convert, up to what only the pixels can tell
(a broken slice lattice, contours off the slices). Library code: it returns
records and never prints; ``python -m data_prep check`` prints them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from data_prep.clinical import load_clinical, unmatched_patients
from data_prep.convert import patient_folders
from data_prep.discover import display_name, scan_patient
from data_prep.options import PrepOptions
from data_prep.rtstruct import read_structure_set
from data_prep.contour_sources import CT, FILE_KINDS, plan_patient, source_file_name
from data_prep.label_map_files import find_label_maps
from data_prep.mask_sources import label_map_names, segment_classes
from data_prep.sequences import (
    SeriesChoice,
    orientation_label,
    series_candidates,
    series_folder,
)
from data_prep.types import DataPrepError, SeriesInfo


@dataclass
class SeriesRecord:
    """One MR series of a patient folder."""

    description: str
    folder: str  # relative to the patient folder ('.' = the folder itself)
    n_files: int
    orientation: str  # axial / coronal / sagittal / oblique / unknown
    frame_of_reference: int  # 1, 2, ... within the patient (0 = none given)
    candidate_for: str | None  # the sequence whose patterns match its description
    assigned: str | None  # the sequence it was chosen for
    note: str = ''  # why chosen or passed over, when there were several candidates


@dataclass
class RtstructRecord:
    """One RTSTRUCT file of a patient folder."""

    file: str  # relative to the patient folder
    frame_of_reference: int  # index as in SeriesRecord (0 = none given)
    drawn_on: str | None  # the sequence whose series it refers to, None = none of them


@dataclass
class SequenceRecord:
    """One wanted sequence: its series and contour source."""

    sequence: str
    series: str | None  # "'description' (folder/)", None when not resolved
    selection: dict | None  # SeriesChoice.manifest_entry() (chosen, rejected, reason)
    contours: str  # 'own RTSTRUCT' / 'own SEG' / 'own label map', 'propagated from <seq>',
    #                'registered from <seq or CT>', 'missing', 'not checked'
    rtstruct: str | None  # the contour file (RTSTRUCT, SEG or label map), relative path
    kind: str | None = None  # rtstruct / seg / label_map
    registration: str = 'none'  # 'none', 'REG found (<file>)', 'rigid registration at conversion'
    classes: dict[str, list[str]] = field(default_factory=dict)  # class -> ROI names
    problem: str | None = None


@dataclass
class PatientCheck:
    """Everything ``check_cohort`` found for one patient."""

    patient_id: str
    series: list[SeriesRecord] = field(default_factory=list)
    rtstructs: list[RtstructRecord] = field(default_factory=list)
    sequences: list[SequenceRecord] = field(default_factory=list)
    clinical_problems: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # every problem, clinical ones included

    @property
    def would_convert(self) -> bool:
        return not self.problems

    def to_json(self) -> dict:
        return {**asdict(self), 'would_convert': self.would_convert}


def check_cohort(cohort: Path, options: PrepOptions) -> list[PatientCheck]:
    """One PatientCheck per patient folder and per clinical row without a folder,
    sorted by patient; never stops at a bad patient. Raises DataPrepError only when
    ``cohort`` is not a folder."""
    cohort = Path(cohort)
    if not cohort.is_dir():
        raise DataPrepError(f'{cohort}: cohort folder not found')
    folders = patient_folders(cohort)
    clinical = clinical_problems(cohort, folders)
    checks = {pid: check_patient(cohort / pid, pid, options) for pid in folders}
    for pid in clinical:
        checks.setdefault(pid, PatientCheck(pid))
    for pid, check in checks.items():
        check.clinical_problems = clinical.get(pid, [])
        check.problems += check.clinical_problems
    return [checks[pid] for pid in sorted(checks)]


def clinical_problems(cohort: Path, folders: list[str]) -> dict[str, list[str]]:
    """patient_id -> problems of its clinical row (bad values, no row, no folder);
    a problem of the whole table is given to every patient folder."""
    try:
        table, bad_rows = load_clinical(cohort / 'clinical.csv')
    except DataPrepError as error:
        return {pid: [f'clinical table: {error}'] for pid in folders}
    problems = {pid: [reason] for pid, reason in bad_rows.items()}
    for pid, reason in unmatched_patients(table, folders, cohort).items():
        problems.setdefault(pid, [reason])
    return problems


def check_patient(patient_dir: Path, patient_id: str, options: PrepOptions) -> PatientCheck:
    """The PatientCheck of one patient folder (clinical problems not included)."""
    check = PatientCheck(patient_id)
    try:
        series = scan_patient(Path(patient_dir), patient_id)
    except DataPrepError as error:
        check.problems.append(str(error))
        return check
    mr = sorted((s for s in series if s.modality == 'MR'),
                key=lambda s: (series_folder(s), s.description, s.files[0].name))
    rtstructs = [s for s in series if s.modality == 'RTSTRUCT']
    frames: dict[str, int] = {}
    for s in [*mr, *rtstructs]:
        if s.frame_of_reference_uid:
            frames.setdefault(s.frame_of_reference_uid, len(frames) + 1)
    if not mr:
        found = sorted({s.modality for s in series})
        check.problems.append(f'patient {patient_id}: no MR image series in {patient_dir} '
                              f'(DICOM series found: {found or "none"})')
    label_maps = {}
    try:
        label_maps = find_label_maps(Path(patient_dir), patient_id, options)
    except DataPrepError as error:
        check.problems.append(str(error))
    plan = plan_patient(series, options, patient_id, require_contours=True,
                        collect_problems=True, label_maps=label_maps)
    for ct in (s for s in series if s.modality == 'CT' and s.frame_of_reference_uid):
        frames.setdefault(ct.frame_of_reference_uid, len(frames) + 1)
    if CT in plan.series_of:
        ct = plan.series_of[CT]
        check.rtstructs.append(RtstructRecord(
            f'planning CT {series_folder(ct)}/ ({len(ct.files)} files)',
            frames.get(ct.frame_of_reference_uid, 0), CT))
    candidates = series_candidates(mr, options)
    check.series = [_series_record(s, plan.choices, candidates, frames, options) for s in mr]
    drawn_on = {source.rtstruct: source.drawn_on for source in plan.sources.values()
                if source.rtstruct is not None}
    for rt in plan.rtstruct_files:
        own = next((seq for seq, c in plan.choices.items()
                    if c.series.series_uid in rt.references.series_uids
                    or rt.references.sop_instance_uids & set(c.series.sop_instance_uids)),
                   drawn_on.get(rt.path))
        frame = next(iter(sorted(frames.get(uid, 0) for uid in
                                 rt.references.frame_of_reference_uids)), 0)
        check.rtstructs.append(RtstructRecord(display_name(rt.path, patient_id), frame, own))
    for sequence in options.sequences:
        check.sequences.append(_sequence_record(sequence, plan, patient_id, options))
    check.problems += [p for p in plan.problems.values() if p not in check.problems]
    check.problems += [r.problem for r in check.sequences
                       if r.problem and r.problem not in check.problems]
    return check


def _series_record(series: SeriesInfo, choices: dict[str, SeriesChoice],
                   candidates: dict[str, list[SeriesInfo]], frames: dict[str, int],
                   options: PrepOptions) -> SeriesRecord:
    candidate_for = options.sequence_of(series.description)
    assigned = next((seq for seq, c in choices.items() if c.series is series), None)
    note = ''
    if assigned is not None:
        choice = choices[assigned]
        wanted = '' if assigned in options.sequences else ', not converted'
        if choice.reason != 'only candidate' or wanted:
            note = f'{choice.reason}{wanted}'
    elif candidate_for is not None and candidate_for in choices:
        note = f'passed over for {candidate_for}'
    elif candidate_for is not None and len(candidates.get(candidate_for, [])) > 1:
        note = f'one of {len(candidates[candidate_for])} candidates for {candidate_for}'
    elif candidate_for is None:
        note = 'matches no sequence pattern'
    return SeriesRecord(series.description, series_folder(series), len(series.files),
                        orientation_label(series), frames.get(series.frame_of_reference_uid, 0),
                        candidate_for, assigned, note)


def _sequence_record(sequence: str, plan, patient_id: str,
                     options: PrepOptions) -> SequenceRecord:
    choice = plan.choices.get(sequence)
    problem = plan.problems.get(sequence)
    if choice is None:
        return SequenceRecord(sequence, None, None, 'not checked', None, problem=problem)
    source = plan.sources.get(sequence)
    series = f"'{choice.series.description}' ({series_folder(choice.series)}/)"
    if source is None:  # the RTSTRUCTs could not be matched (plan.problems['rtstruct'])
        return SequenceRecord(sequence, series, choice.manifest_entry(), 'not checked', None,
                              problem=problem or plan.problems.get('rtstruct'))
    contours = {'own': f'own {FILE_KINDS[source.file_kind]}',
                'propagated': f'propagated from {source.drawn_on}',
                'registered': f'registered from {source.drawn_on}'}.get(source.kind, source.kind)
    reg_file = (source_file_name(source.registration_file, patient_id)
                if source.registration_file else '')
    registration = {'DICOM REG': f'REG found ({reg_file})',
                    'rigid MI': 'rigid registration at conversion'}.get(source.registration,
                                                                        'none')
    record = SequenceRecord(sequence, series, choice.manifest_entry(), contours,
                            None if source.file is None
                            else source_file_name(source.file, patient_id),
                            kind=source.file_kind if source.usable else None,
                            registration=registration, problem=problem)
    try:
        if source.file_kind == 'rtstruct' and source.file is not None:
            record.classes = read_structure_set(source.file, patient_id, options,
                                                plan.parsed_dataset(source.file)).roi_names()
        elif source.file_kind == 'seg' and source.file is not None:
            dataset = plan.parsed_dataset(source.file)
            record.classes = segment_classes(dataset if dataset is not None else source.file,
                                             options, patient_id=patient_id)
        elif source.file_kind == 'label_map' and source.file is not None:
            record.classes = label_map_names(options.label_values)
    except DataPrepError as error:
        record.problem = record.problem or str(error)
    return record
