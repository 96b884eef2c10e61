"""Planted identifiers: put fake PHI into a DICOM cohort, then look for it in outputs.

The privacy tests of every stage use the same two steps::

    identifiers = plant_identifiers(cohort)          # before running the tool
    ... run the tool, capture its stdout/stderr ...
    assert not find_identifiers([out_dir], identifiers, texts={'stderr': err})

``plant_identifiers`` rewrites every DICOM file of the cohort with distinctive
values for the identifying attributes (names, IDs, dates, institution), one
set per patient folder, and adds two identifier columns to ``clinical.csv``
(tools must drop unknown columns). ``find_identifiers`` searches file contents
*and* file names for those values and for the other ways a tool could print
them (a DICOM date as 1931-02-15 or 15.02.1931, a person name with spaces
instead of '^', upper or lower case). Only pydicom is needed; nothing here
depends on mmnpc or on the test framework.
"""
from __future__ import annotations

import base64
import binascii
import csv
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pydicom

from data_prep.discover import looks_like_dicom

# Identifying attributes planted as text (person names, IDs, places).
TEXT_KEYWORDS: tuple[str, ...] = (
    'PatientName', 'PatientID', 'OtherPatientIDs', 'AccessionNumber', 'InstitutionName',
    'InstitutionAddress', 'ReferringPhysicianName', 'OperatorsName', 'PerformingPhysicianName')
# Dates planted (each keyword gets its own month, so a hit tells which one leaked).
DATE_KEYWORDS: tuple[str, ...] = (
    'PatientBirthDate', 'StudyDate', 'SeriesDate', 'AcquisitionDate', 'ContentDate',
    'InstanceCreationDate', 'StructureSetDate')
# UIDs are not replaced (the files must stay consistent) but are looked for.
UID_KEYWORDS: tuple[str, ...] = ('StudyInstanceUID', 'SeriesInstanceUID', 'SOPInstanceUID',
                                 'FrameOfReferenceUID')
CLINICAL_IDENTIFIER_COLUMNS: tuple[str, ...] = ('patient_name', 'hospital_number')
_MIN_UID_CHARS = 10  # shorter UIDs (none in practice) could match unrelated text
_UID_RUN = re.compile(rb'[0-9][0-9.]{%d,}' % (_MIN_UID_CHARS - 1))
# an embedded file (a PNG in a self-contained report.html) as an RFC 2397 data URI
_DATA_URI = re.compile(rb'data:[\w.+/-]+;base64,([A-Za-z0-9+/=]+)')


def _decode_data_uris(data: bytes) -> bytes:
    """``data`` with each base64 data URI replaced by the bytes it encodes.

    Searched as text, base64 is a random string over 64 letters in which a
    5-letter name turns up by chance (a demo report once had 'paula' in a
    plot); decoded, the embedded file is searched like any other file, so a
    name in its metadata is still found.
    """
    def decode(match: re.Match) -> bytes:
        try:
            return base64.b64decode(match.group(1), validate=True)
        except binascii.Error:
            return match.group(0)  # not valid base64: keep the text as it is
    return _DATA_URI.sub(decode, data)


@dataclass(frozen=True)
class IdentifierHit:
    """One identifier found where it must not be."""

    source: str  # file path, or the label of a captured text
    identifier: str  # the planted (or collected) value
    form: str  # the form found, e.g. '1931-02-15' for the DICOM date '19310215'
    where: str  # 'content at byte N' or 'file name'


def planted_values(index: int) -> dict[str, str]:
    """keyword -> distinctive fake value for patient folder number ``index`` (0-based).

    Values contain no digit run or word a converter writes for other reasons
    (coordinates, counts, column names), so a hit is a leak, not a coincidence.
    """
    day = f'{10 + index % 18:02d}'
    values = {
        'PatientName': f'PHIDOE^JANEQ{index:02d}^X',
        'PatientID': f'MRNPHI{734100 + index}',
        'OtherPatientIDs': f'OTHERPHI{52800 + index}',
        'AccessionNumber': f'ACCPHI{90210 + index}',
        'InstitutionName': 'Planted Phi Memorial Hospital',
        'InstitutionAddress': '17 Phi Planted Street, Leakville',
        'ReferringPhysicianName': 'PHIREFERRER^GREGORY',
        'OperatorsName': 'PHIOPERATOR^OLGA',
        'PerformingPhysicianName': 'PHIPERFORMER^PAULA',
    }
    for month, keyword in enumerate(DATE_KEYWORDS, start=1):
        year = '1931' if keyword == 'PatientBirthDate' else '2003'
        values[keyword] = f'{year}{month:02d}{day}'
    return values


def plant_identifiers(cohort_dir: Path) -> list[str]:
    """Write planted identifiers into every DICOM file (and clinical.csv) of a cohort.

    cohort_dir: ``clinical.csv`` + one folder per patient. Files in folder
    number i (sorted names) get ``planted_values(i)``; RTSTRUCTs also get a
    StructureSetDate. ``clinical.csv``, when present, gets the columns
    ``CLINICAL_IDENTIFIER_COLUMNS`` filled with each patient's name and ID.
    File sizes and times change, pixel data and geometry do not.

    Returns every identifier to look for afterwards, sorted: the planted
    values and the UIDs found in the files.
    """
    cohort_dir = Path(cohort_dir)
    identifiers: set[str] = set()
    folders = sorted(p for p in cohort_dir.iterdir() if p.is_dir() and not p.name.startswith('.'))
    by_patient = {}
    for index, folder in enumerate(folders):
        values = planted_values(index)
        by_patient[folder.name] = values
        identifiers |= set(values.values())
        for path in sorted(p for p in folder.rglob('*') if p.is_file()):
            if looks_like_dicom(path):
                identifiers |= _plant_in_file(path, values)
    clinical = cohort_dir / 'clinical.csv'
    if clinical.is_file():
        _plant_in_clinical(clinical, by_patient)
    return sorted(identifiers)


def _plant_in_file(path: Path, values: Mapping[str, str]) -> set[str]:
    """Set the planted values in one DICOM file; return its UIDs."""
    ds = pydicom.dcmread(path, force=True)
    if 'SOPInstanceUID' not in ds:
        return set()
    for keyword, value in values.items():
        if keyword == 'StructureSetDate' and ds.get('Modality') != 'RTSTRUCT':
            continue
        setattr(ds, keyword, value)
    ds.save_as(path)
    uids = {str(ds.get(keyword, '')) for keyword in UID_KEYWORDS}
    for frame in ds.get('ReferencedFrameOfReferenceSequence', []):
        uids.add(str(frame.get('FrameOfReferenceUID', '')))
    return {uid for uid in uids if len(uid) >= _MIN_UID_CHARS}


def _plant_in_clinical(path: Path, by_patient: Mapping[str, Mapping[str, str]]) -> None:
    with path.open(newline='', encoding='utf-8-sig') as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return
    columns = [*rows[0].keys(), *CLINICAL_IDENTIFIER_COLUMNS]
    for row in rows:
        values = by_patient.get(row.get('patient_id', ''), planted_values(999))
        row['patient_name'] = values['PatientName']
        row['hospital_number'] = values['PatientID']
    with path.open('w', newline='', encoding='utf-8') as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator='\n')
        writer.writeheader()
        writer.writerows(rows)


def identifier_forms(identifier: str) -> list[str]:
    """The lower-case forms in which ``identifier`` could be printed.

    A DICOM date YYYYMMDD also as YYYY-MM-DD, YYYY/MM/DD, DD.MM.YYYY,
    DD/MM/YYYY, MM/DD/YYYY; a person name A^B^C also as 'a b c', 'a, b' and
    each component of 5+ characters alone.
    """
    text = identifier.strip().lower()
    forms = {text}
    if len(text) == 8 and text.isdigit():
        y, m, d = text[:4], text[4:6], text[6:]
        forms |= {f'{y}-{m}-{d}', f'{y}/{m}/{d}', f'{d}.{m}.{y}', f'{d}/{m}/{y}', f'{m}/{d}/{y}'}
    if '^' in text:
        parts = [p for p in text.split('^') if p]
        forms |= {' '.join(parts), ', '.join(parts[:2])}
        forms |= {p for p in parts if len(p) >= 5}
    return sorted(forms)


def _runs_of(forms: Iterable[bytes]) -> re.Pattern | None:
    """A pattern matching the maximal runs of the bytes ``forms`` are written with,
    as long as the shortest form (None: no forms). A form occurs in data only inside
    such a run."""
    forms = [f for f in forms if f]
    if not forms:
        return None
    alphabet = sorted(set(b''.join(forms)) - {0})
    shortest = min(len(f) for f in forms)
    char_class = b''.join(re.escape(bytes([c])) for c in alphabet)
    return re.compile(b'[' + char_class + b']{%d,}' % shortest)


def _found_in_runs(run: re.Pattern | None, data: bytes,
                   forms: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The ``forms`` that occur in ``data``, searched in its runs of ``run`` joined by
    a byte no form holds (0): one C-level substring search per form, the same
    matches as testing each run, without a Python loop over forms x runs for every
    file (binary files, most of the bytes, hold few runs)."""
    text = b'\x00'.join(set(run.findall(data))) if run is not None and forms else b''
    return [(i, f) for i, f in forms if f in text] if text else []


def find_identifiers(paths: Iterable[Path], identifiers: Iterable[str], *,
                     texts: Mapping[str, str | bytes] | None = None) -> list[IdentifierHit]:
    """Every occurrence of an identifier (any ``identifier_forms``) in outputs.

    paths: files, or folders searched recursively (contents and the file and
    folder names below them). texts: label -> captured output (stdout, stderr,
    log lines). The search ignores case and works on bytes, so JSON, CSV,
    logs and binary files (JPEG comments/EXIF) are all covered; files
    embedded as base64 data URIs are decoded first.
    """
    forms = [(identifier, form.encode('utf-8'))
             for identifier in identifiers for form in identifier_forms(identifier)]
    hits: list[IdentifierHit] = []
    sources: list[tuple[str, bytes, str]] = []
    for path in paths:
        path = Path(path)
        files = sorted(p for p in path.rglob('*') if p.is_file()) if path.is_dir() else [path]
        for file in files:
            name = str(file.relative_to(path)) if path.is_dir() else file.name
            sources.append((str(file), name.lower().encode('utf-8'), 'file name'))
            sources.append((str(file), _decode_data_uris(file.read_bytes()).lower(), 'content'))
    for label, text in (texts or {}).items():
        data = text.encode('utf-8') if isinstance(text, str) else text
        sources.append((label, data.lower(), 'content'))
    # Every form lies inside a run of the bytes it is written with: a UID (thousands
    # per cohort) in a digit-dot run, the other forms (names, IDs, dates: hundreds)
    # in a run of their letters; each source is searched through those runs.
    uid_forms = [(i, f) for i, f in forms if _UID_RUN.fullmatch(f)]
    other_forms = [(i, f) for i, f in forms if not _UID_RUN.fullmatch(f)]
    other_run = _runs_of(f for _, f in other_forms)
    for source, data, kind in sources:
        candidates = (_found_in_runs(other_run, data, other_forms)
                      + _found_in_runs(_UID_RUN, data, uid_forms))
        for identifier, form in candidates:
            offset = data.find(form)
            if offset >= 0:
                where = 'file name' if kind == 'file name' else f'content at byte {offset}'
                hits.append(IdentifierHit(source, identifier, form.decode('utf-8'), where))
    return hits
