"""Where each sequence's contours come from, decided before any pixel is read.

A sequence uses its *own* delineation, in this order of preference: an
RTSTRUCT referring to its series or images, a DICOM SEG doing so
(``mask_sources.seg_references``), a label map named for it
(``label_map_files``); when several exist the first is used and the others
are reported as warnings. A sequence without one takes the delineation of
another sequence (``PROPAGATION_ORDER``: cet1, t2, t1), or, when no MR
sequence has any, the RTSTRUCT drawn on a planning CT:

* same FrameOfReferenceUID (a label map is in the frame of the sequence it is
  named for): *propagated*, identity matrix;
* another frame: *registered*; by the matrix of a DICOM REG linking both frames
  when one is present ('DICOM REG'), else by rigid mutual-information
  registration at conversion ('rigid MI', ``registration.rigid_register``).

No delineation anywhere is an error (``source_problem``).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset

from data_prep.discover import display_name
from data_prep.mask_sources import seg_references
from data_prep.options import PrepOptions
from data_prep.registration import registration_frames
from data_prep.sequences import (
    PROPAGATION_ORDER,
    RtstructFile,
    SeriesChoice,
    choose_series,
    describe_series,
    own_rtstructs,
    read_rtstruct_files,
    referenced_series_uids,
)
from data_prep.types import SEQUENCES, DataPrepError, SeriesInfo

CT = 'CT'  # the key of a planning CT among the sequences
FILE_KINDS: dict[str, str] = {'rtstruct': 'RTSTRUCT', 'seg': 'SEG', 'label_map': 'label map'}


@dataclass(frozen=True)
class OwnContours:
    """A delineation drawn on one series: the file and its kind (a key of FILE_KINDS)."""

    file: Path
    kind: str = 'rtstruct'


@dataclass(frozen=True)
class ContourSource:
    """Where one sequence's contours come from.

    kind: 'own', 'propagated' (another series, same frame of reference),
    'registered' (another frame of reference; ``registration`` 'DICOM REG' with
    ``registration_file``, or 'rigid MI') or 'missing'.
    """

    kind: str
    file: Path | None = None
    drawn_on: str | None = None  # a sequence, or 'CT'
    drawn_on_series: SeriesInfo | None = field(default=None, compare=False, repr=False)
    file_kind: str = 'rtstruct'
    registration: str = 'none'
    registration_file: Path | None = None

    @property
    def usable(self) -> bool:
        return self.kind != 'missing'

    @property
    def rtstruct(self) -> Path | None:
        """The RTSTRUCT file, when the source is one."""
        return self.file if self.file_kind == 'rtstruct' else None

    def manifest_entry(self, patient_id: str) -> dict:
        """{kind, drawn_on, file, propagated, registration} (no UIDs), or {'kind': 'missing'}."""
        if not self.usable:
            return {'kind': self.kind}
        return {'kind': self.file_kind, 'drawn_on': self.drawn_on,
                'propagated': self.kind != 'own', 'file': source_file_name(self.file, patient_id),
                'registration': self.registration}


def source_file_name(path: Path, patient_id: str) -> str:
    """The file relative to the patient folder, or its bare name when outside it (--masks)."""
    name = display_name(path, patient_id)
    return Path(path).name if name == str(path) else name


def _as_own(value: OwnContours | Path | str) -> OwnContours:
    return value if isinstance(value, OwnContours) else OwnContours(value, 'rtstruct')


def registration_between(registrations: Mapping[Path, frozenset[str]], frame_a: str,
                         frame_b: str) -> Path | None:
    """The first REG file (by path) linking both frames, or None."""
    if not (frame_a and frame_b):
        return None
    return next((path for path, frames in sorted(registrations.items())
                 if {frame_a, frame_b} <= frames), None)


def contour_source_for(sequence: str, series_of: Mapping[str, SeriesInfo],
                       own: Mapping[str, OwnContours | Path | str], *,
                       registrations: Mapping[Path, frozenset[str]] | None = None
                       ) -> ContourSource:
    """The contour source of ``sequence`` (rules in the module docstring).

    series_of: sequence (or 'CT') -> series, for every series resolved for the
    patient; own: sequence (or 'CT') -> its own delineation (a bare path = an
    RTSTRUCT); registrations: REG file -> frames of reference it links.
    """
    own = {s: _as_own(v) for s, v in own.items()}
    if sequence in own:
        mine = own[sequence]
        return ContourSource('own', mine.file, sequence, series_of[sequence], mine.kind)
    frame = series_of[sequence].frame_of_reference_uid
    donors = [d for d in PROPAGATION_ORDER if d != sequence and d in own and d in series_of]
    if not donors and CT in own and CT in series_of:
        donors = [CT]
    for donor in donors:
        if frame and series_of[donor].frame_of_reference_uid == frame:
            return ContourSource('propagated', own[donor].file, donor, series_of[donor],
                                 own[donor].kind)
    if donors:
        donor = donors[0]
        reg = registration_between(registrations or {}, series_of[donor].frame_of_reference_uid,
                                   frame)
        return ContourSource('registered', own[donor].file, donor, series_of[donor],
                             own[donor].kind, 'DICOM REG' if reg else 'rigid MI', reg)
    return ContourSource('missing')


def source_problem(sequence: str, series: SeriesInfo, source: ContourSource, patient_id: str,
                   unmatched: list[str] = ()) -> str | None:
    """The error message for a missing contour source (None when usable)."""
    if source.usable:
        return None
    others = (f'; RTSTRUCTs referring to other series or frames of reference: '
              f'{", ".join(unmatched)}' if unmatched else '')
    return (f'patient {patient_id}: no RTSTRUCT refers to the {sequence} series '
            f"{describe_series(series)} nor to another sequence's series, and no SEG, label map "
            f'or planning-CT RTSTRUCT gives contours for it{others}')


@dataclass
class PatientPlan:
    """What will be converted for one patient, before any pixel is read.

    choices: sequence -> SeriesChoice for the wanted sequences and, with
    contours, the other sequences that resolved (possible contour donors).
    series_of: sequence (or 'CT') -> series, every series that may lend contours.
    sources: wanted sequence -> ContourSource (empty when contours are not required).
    problems: key (a sequence, 'rtstruct', 'seg', 'CT') -> message; filled only
    when ``plan_patient`` collects problems instead of raising.
    warnings: sequence -> warnings about its delineations (e.g. RTSTRUCT and SEG both).
    """

    choices: dict[str, SeriesChoice]
    sources: dict[str, ContourSource]
    rtstruct_files: list[RtstructFile]
    unmatched_rtstructs: list[str]
    problems: dict[str, str]
    seg_files: list[RtstructFile] = field(default_factory=list)
    registrations: dict[Path, frozenset[str]] = field(default_factory=dict)
    series_of: dict[str, SeriesInfo] = field(default_factory=dict)
    warnings: dict[str, list[str]] = field(default_factory=dict)
    datasets: dict[Path, Dataset] = field(default_factory=dict, repr=False)

    def parsed_dataset(self, path: Path | None) -> Dataset | None:
        """The dataset discovery parsed from ``path`` (RTSTRUCT, SEG or REG), or None."""
        return self.datasets.get(path)


def seg_files(segs: list[SeriesInfo], patient_id: str) -> list[RtstructFile]:
    """Every DICOM SEG file with what it refers to (as RtstructFile, for the matching)."""
    return [RtstructFile(path, seg_references(dataset if dataset is not None else path,
                                              patient_id=patient_id), dataset)
            for series in segs for path, dataset in zip(series.files, series.parsed_datasets())]


def plan_patient(series: list[SeriesInfo], options: PrepOptions, patient_id: str, *,
                 require_contours: bool = True, collect_problems: bool = False,
                 label_maps: Mapping[str, Path] | None = None) -> PatientPlan:
    """Choose the series of every wanted sequence and, with contours, their sources.

    label_maps: sequence -> label-map file (``label_map_files.find_label_maps``).
    Raises the first DataPrepError, or with ``collect_problems`` records every
    problem in ``PatientPlan.problems`` (for a dry run) and goes on.
    """
    problems: dict[str, str] = {}

    def fail(key: str, error: DataPrepError) -> None:
        if not collect_problems:
            raise error
        problems.setdefault(key, str(error))

    def of(modality: str) -> list[SeriesInfo]:
        return [s for s in series if s.modality == modality]

    rt, segs = [], []
    if require_contours:
        for key, read, modality in (('rtstruct', read_rtstruct_files, 'RTSTRUCT'),
                                    ('seg', seg_files, 'SEG')):
            try:
                (rt if key == 'rtstruct' else segs).extend(read(of(modality), patient_id))
            except DataPrepError as error:
                fail(key, error)
    referenced = frozenset(referenced_series_uids([*rt, *segs], series))
    choices: dict[str, SeriesChoice] = {}
    for sequence in SEQUENCES:
        wanted = sequence in options.sequences
        if not (wanted or require_contours):
            continue
        try:
            choices[sequence] = choose_series(sequence, series, options, patient_id=patient_id,
                                              referenced=referenced)
        except DataPrepError as error:
            if wanted:
                fail(sequence, error)
    choices = {s: choices[s] for s in (*options.sequences, *SEQUENCES) if s in choices}
    plan = PatientPlan(choices, {}, rt, [], problems, segs)
    plan.datasets = {f.path: f.dataset for f in [*rt, *segs] if f.dataset is not None}
    if not require_contours:
        return plan
    for reg in of('REG'):
        for path, dataset in zip(reg.files, reg.parsed_datasets()):
            plan.registrations[path] = frozenset(registration_frames(dataset)) if dataset else \
                frozenset()
            plan.datasets[path] = dataset
    wanted_series = {s: c.series for s, c in choices.items() if s in options.sequences}
    other_series = {s: c.series for s, c in choices.items() if s not in options.sequences}
    series_of = {**other_series, **wanted_series}
    try:
        own_rt, plan.unmatched_rtstructs = own_rtstructs(wanted_series, rt, patient_id,
                                                         others=other_series)
        own_seg, unmatched_seg = own_rtstructs(wanted_series, segs, patient_id,
                                               others=other_series, what='SEG')
    except DataPrepError as error:
        fail('rtstruct', error)
        return plan
    own = _own_contours(plan, series_of, own_rt, own_seg, label_maps or {}, patient_id)
    if not own:
        _plan_ct(plan, of('CT'), rt, patient_id, own, series_of, fail)
    plan.series_of = series_of
    unmatched = [*plan.unmatched_rtstructs, *(f'{n} (SEG)' for n in unmatched_seg)]
    for sequence in wanted_series:
        source = contour_source_for(sequence, series_of, own, registrations=plan.registrations)
        plan.sources[sequence] = source
        problem = source_problem(sequence, series_of[sequence], source, patient_id, unmatched)
        if problem:
            fail(sequence, DataPrepError(problem))
    return plan


def _own_contours(plan: PatientPlan, series_of: Mapping[str, SeriesInfo],
                  own_rt: Mapping[str, Any], own_seg: Mapping[str, Any],
                  label_maps: Mapping[str, Path], patient_id: str) -> dict[str, OwnContours]:
    """Per sequence, the contours drawn on its own series: RTSTRUCT, else SEG, else a label
    map; a warning in ``plan`` names the others when several are."""
    own: dict[str, OwnContours] = {}
    for sequence in series_of:
        found = [OwnContours(p, k) for p, k in ((own_rt.get(sequence), 'rtstruct'),
                                                (own_seg.get(sequence), 'seg'),
                                                (label_maps.get(sequence), 'label_map'))
                 if p is not None]
        if found:
            own[sequence] = found[0]
        if len(found) > 1:
            plan.warnings.setdefault(sequence, []).append(
                f'{sequence}: ' + ' and '.join(f'{FILE_KINDS[f.kind]} '
                                              f'{source_file_name(f.file, patient_id)}'
                                              for f in found)
                + f' are drawn on this series; the {FILE_KINDS[found[0].kind]} is used')
    return own


def _plan_ct(plan: PatientPlan, cts: list[SeriesInfo], rt: list[RtstructFile], patient_id: str,
             own: dict[str, OwnContours], series_of: dict[str, SeriesInfo], fail) -> None:
    """Add the planning CT with the RTSTRUCT drawn on it to ``own``/``series_of``, if any."""
    hits = []
    for ct in cts:
        try:
            mine, _ = own_rtstructs({CT: ct}, rt, patient_id)
        except DataPrepError as error:
            fail(CT, error)
            continue
        if CT in mine:
            hits.append((ct, mine[CT]))
    if len(hits) > 1:
        fail(CT, DataPrepError(f'patient {patient_id}: RTSTRUCTs are drawn on several CT series '
                               f'({", ".join(describe_series(ct) for ct, _ in hits)}); keep one'))
    elif hits:
        series_of[CT], own[CT] = hits[0][0], OwnContours(hits[0][1], 'rtstruct')
        plan.unmatched_rtstructs = [n for n in plan.unmatched_rtstructs
                                    if n != display_name(hits[0][1], patient_id)]
