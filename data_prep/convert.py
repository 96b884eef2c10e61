"""Convert a whole cohort into the detector's dataset (library code; raises, never exits).

Input::

    COHORT/clinical.csv            one row per patient (see data_prep.clinical)
    COHORT/<patient_id>/...        DICOM MR series + RTSTRUCT per patient

Output (``OUT``)::

    <seq>/images/<patient_id>_<seq>_<index:04d>.jpg   (seq in options.sequences)
    <seq>/annotations/train.json, val.json            COCO instances (data_prep.coco_writer)
    <seq>/annotations/test.json                       only when the test split has patients
    clinical.csv                                      validated table + split column
    manifest.json                                     per patient/sequence info + parameters

Only the sequences in ``options.sequences`` (``--sequences``) are looked for,
converted and written; a cohort with CE-T1 series only converts with
``sequences=('cet1',)``. Each sequence's manifest entry records the series chosen
(``series_selection``: chosen and rejected candidates, the deciding rule step)
and where its contours came from (``contour_source``); see
``data_prep.sequences``.

Atomicity and resume: everything is built in the staging folder ``OUT.partial``
next to ``OUT`` and renamed into place at the very end, so a failed run never
leaves an ``OUT``. Each patient is converted into
``OUT.partial/.work/patients/<patient_id>/`` (its JPEGs plus ``fragment.json``,
written last, as the done marker). A failed run keeps the staging folder; the
next run with the same conversion options re-uses every patient whose fragment
is complete and whose input files (names, sizes, modification times) are
unchanged, and converts only the rest; the final assembly links the JPEGs
(the work folders stay whole until the end), so an interruption at any point
costs at most the patients in progress. Fragments do not depend on the split,
so a different seed, fraction (val or test) or split file re-uses all of them.

One converter per output: a run holds the lock ``OUT.lock`` (``data_prep.folder_lock``)
from its argument checks to the end; a second run into the same ``OUT`` stops
with a DataPrepError naming the first one's process and command, and a lock
left by a killed run is taken over.

Bad patients: by default the first DataPrepError stops the run. With
``skip_bad_patients`` a patient whose clinical row, folder or images are bad is
left out, logged (``skipping patient <id>: <reason naming the file>``) and
listed with its reason under ``skipped`` in ``manifest.json``; the split is then
made over the remaining patients. Skipped patients are retried by every run.

Output bytes depend only on the input and parameters (sorted processing order,
deterministic JSON, identical JPEG encoding), whatever ``workers`` is.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from data_prep import __version__
from data_prep import coco_writer
from data_prep.clinical import (
    check_patients_match,
    load_clinical,
    unmatched_patients,
    write_clinical,
)
from data_prep.coco_writer import dumps_json, to_json_value, write_json
from data_prep.folder_lock import FolderLockedError, acquire, release
from data_prep.label_map_files import masks_dir_files
from data_prep.options import PrepOptions, load_options
from data_prep.patient import prepare_patient
from data_prep.sequences import SELECTION_RULE
from data_prep.split import (
    REQUIRED_SPLITS,
    SPLITS,
    check_fractions,
    patients_by_split,
    read_split_file,
    stratified_split,
)
from data_prep.types import SEQUENCES, DataPrepError, PreparedSequence

logger = logging.getLogger(__name__)

MANIFEST_FORMAT = 'mmnpc-data-prep'  # marks a folder this module wrote (checked before replacing)
_WORK = '.work'
_FRAGMENT = 'fragment.json'
_RUN_FILE = 'run.json'
# Keys never copied from PreparedSequence.info into the manifest (defence in depth: no PHI).
_FORBIDDEN_INFO_WORDS = ('uid', 'date', 'time', 'patientname', 'birth', 'accession',
                         'institution', 'physician', 'operator')


def convert_cohort(cohort: Path, out: Path, *, val_fraction: float = 0.25, seed: int = 0,
                   workers: int = 1, split_file: Path | None = None,
                   options: PrepOptions | None = None, overwrite: bool = False,
                   skip_bad_patients: bool = False, progress: bool = True,
                   test_fraction: float = 0.0) -> dict:
    """Convert ``cohort`` into ``out`` (layout in the module docstring); return a summary.

    val_fraction, test_fraction, seed: stratified patient split
        (``data_prep.split.stratified_split``; both fractions are shares of the
        whole cohort; test_fraction 0 = no test split). val_fraction is ignored
        when ``split_file`` is given; a test_fraction above 0 with a split file
        is refused (the file marks test patients itself).
    workers: patients converted in parallel processes (1 = in this process).
    options: conversion options; None = ``load_options(None)`` (the defaults).
    overwrite: replace an existing ``out`` (only one this function wrote, or an empty folder).
    skip_bad_patients: a patient whose clinical row or images raise DataPrepError is
        left out (logged, and listed under ``skipped`` in the manifest) instead of
        stopping the run; problems of the whole table or of the arguments still raise.
        Skipped patients are not in the split (a split file may list them).

    Returns ``{'out', 'patients': {split: n}, 'sequences': {seq: {split: {'patients',
    'images', 'images_with_annotations', 'annotations'}}}, 'converted_patients',
    'reused_patients', 'warnings', 'skipped': {patient_id: reason}}``; the splits are
    'train', 'val' and, when it has patients, 'test'. Raises DataPrepError on bad input
    or arguments.
    """
    cohort, out = Path(cohort).resolve(), Path(out).resolve()
    options = load_options(None) if options is None else options
    split_file = None if split_file is None else Path(split_file)
    _check_arguments(cohort, out, workers, overwrite, options)  # before writing anything
    _check_split_arguments(split_file, val_fraction, test_fraction)
    try:  # one converter per output folder (data_prep.folder_lock)
        lock = acquire(out, command=f'convert {cohort} into {out}')
    except FolderLockedError as error:
        raise DataPrepError(str(error)) from None
    try:
        _check_arguments(cohort, out, workers, overwrite, options)  # a run just finished?
        return _convert_locked(cohort, out, val_fraction, seed, workers, split_file, options,
                               skip_bad_patients, progress, test_fraction)
    finally:
        release(lock)


def _convert_locked(cohort: Path, out: Path, val_fraction: float, seed: int, workers: int,
                    split_file: Path | None, options: PrepOptions, skip_bad_patients: bool,
                    progress: bool, test_fraction: float) -> dict:
    """:func:`convert_cohort` once its arguments are checked and ``out`` is locked."""
    clinical, patients, skipped = _select_patients(cohort, skip_bad_patients)
    splits = _split(clinical, patients, split_file, set(skipped), val_fraction, test_fraction,
                    seed)

    staging = staging_dir(out)
    run_fingerprint = _fingerprint({'mmnpc_version': __version__, 'options': options})
    _open_staging(staging, run_fingerprint)
    fingerprints = {pid: _fingerprint([run_fingerprint, _listing(cohort / pid),
                                       _masks_listing(options, pid)])
                    for pid in patients}
    pending = [pid for pid in patients if not _fragment_done(staging, pid, fingerprints[pid])]
    logger.info('%d patients to convert, %d re-used from %s', len(pending),
                len(patients) - len(pending), staging)
    failed = _convert_patients(cohort, staging, pending, fingerprints, options, workers,
                               progress, skip_bad_patients)
    if failed:
        skipped |= failed
        patients = [pid for pid in patients if pid not in failed]
        if not patients:
            raise DataPrepError(f'{cohort}: every patient was skipped; nothing to write')
        clinical = clinical.loc[clinical['patient_id'].isin(patients)]
        splits = _split(clinical, patients, split_file, set(skipped), val_fraction,
                        test_fraction, seed)

    fragments = {pid: _read_fragment(staging, pid) for pid in patients}
    for pid, fragment in fragments.items():
        for warning in fragment['warnings']:
            logger.warning('patient %s: %s', pid, warning)
    counts = _assemble(staging, fragments, splits, options.sequences)
    write_clinical(clinical, splits, staging / 'clinical.csv')
    parameters = {'seed': seed, 'val_fraction': val_fraction, 'test_fraction': test_fraction,
                  'split_source': _split_source(split_file), 'options': options,
                  'jpeg_quality': coco_writer.JPEG_QUALITY,
                  'skip_bad_patients': skip_bad_patients,
                  'sequences': list(options.sequences),
                  'series_selection_rule': list(SELECTION_RULE)}
    write_json(staging / 'manifest.json',
               _manifest(fragments, splits, parameters, counts, dict(sorted(skipped.items()))),
               indent=2)
    shutil.rmtree(staging / _WORK)
    _move_into_place(staging, out)
    return {
        'out': str(out),
        'patients': {name: len(ids) for name, ids in patients_by_split(splits).items()},
        'sequences': counts,
        'converted_patients': len(pending) - len(failed),
        'reused_patients': len(patients) - len(pending) + len(failed),
        'warnings': {pid: fragment['warnings'] for pid, fragment in fragments.items()
                     if fragment['warnings']},
        'skipped': dict(sorted(skipped.items())),
    }


def staging_dir(out: Path) -> Path:
    """The staging folder used (and kept on failure, for resume) while writing ``out``."""
    out = Path(out).resolve()
    return out.with_name(out.name + '.partial')


# --- checks -----------------------------------------------------------------------------

def _check_arguments(cohort: Path, out: Path, workers: int, overwrite: bool,
                     options: PrepOptions) -> None:
    """Refuse bad arguments before anything is written."""
    if not cohort.is_dir():
        raise DataPrepError(f'{cohort}: cohort folder not found')
    if workers < 1:
        raise DataPrepError(f'workers must be >= 1, got {workers}')
    unknown = sorted(set(options.sequences) - set(SEQUENCES))
    if unknown or not options.sequences:
        raise DataPrepError(f'options.sequences must be a non-empty subset of {list(SEQUENCES)}, '
                            f'got {list(options.sequences)}')
    if out == cohort or cohort in out.parents or out in cohort.parents:
        raise DataPrepError(f'{out}: output must lie outside the cohort folder {cohort} '
                            'and must not contain it')
    if out.exists():
        if not overwrite:
            raise DataPrepError(f'{out} already exists; pass overwrite=True (--overwrite) '
                                'to replace it')
        _check_replaceable(out)


def _check_replaceable(out: Path) -> None:
    """Only an empty folder or one this module wrote may be replaced (never e.g. $HOME)."""
    if out.is_dir() and not any(out.iterdir()):
        return
    try:
        manifest = json.loads((out / 'manifest.json').read_text(encoding='utf-8'))
        if manifest.get('format') == MANIFEST_FORMAT:
            return
    except (OSError, ValueError, AttributeError):
        pass
    raise DataPrepError(f'{out} exists and is not a data_prep output (no {MANIFEST_FORMAT} '
                        'manifest.json); refusing to replace it')


def _select_patients(cohort: Path, skip_bad: bool) -> tuple[pd.DataFrame, list[str],
                                                              dict[str, str]]:
    """(valid clinical rows, patients to convert, patient_id -> reason skipped).

    Without ``skip_bad`` any bad row or unmatched folder/row raises DataPrepError.
    """
    clinical, bad_rows = load_clinical(cohort / 'clinical.csv')
    folders = patient_folders(cohort)
    if not skip_bad:
        if bad_rows:
            raise DataPrepError('; '.join(bad_rows.values()))
        check_patients_match(clinical, folders, cohort)
        return clinical, folders, {}
    skipped = dict(bad_rows)
    for pid, reason in unmatched_patients(clinical, folders, cohort).items():
        skipped.setdefault(pid, reason)
    for pid, reason in sorted(skipped.items()):
        logger.warning('skipping patient %s: %s', pid, reason)
    patients = [pid for pid in folders if pid not in skipped]
    if not patients:
        raise DataPrepError(f'{cohort}: every patient was skipped; nothing to convert')
    return clinical.loc[clinical['patient_id'].isin(patients)], patients, skipped


def _check_split_arguments(split_file: Path | None, val_fraction: float,
                           test_fraction: float) -> None:
    """Refuse bad split fractions, and a test fraction given together with a split file."""
    if split_file is None:
        check_fractions(val_fraction, test_fraction)
    elif test_fraction != 0:
        raise DataPrepError(f'test_fraction={test_fraction} cannot be used with a split file '
                            f'({split_file}); mark the test patients with split "test" in it')


def _split(clinical: pd.DataFrame, patients: list[str], split_file: Path | None,
           skipped: set[str], val_fraction: float, test_fraction: float,
           seed: int) -> dict[str, str]:
    """patient_id -> 'train'/'val'/'test' for ``patients``, from the split file or stratified."""
    if split_file is None:
        return stratified_split(clinical, val_fraction, seed, test_fraction=test_fraction)
    return read_split_file(split_file, patients, ignored=skipped)


def _split_source(split_file: Path | None) -> str:
    if split_file is None:
        return 'stratified by msom'
    return f'split file sha256:{hashlib.sha256(split_file.read_bytes()).hexdigest()}'


def patient_folders(cohort: Path) -> list[str]:
    """Sorted names of the patient folders (non-hidden sub-folders) of the cohort."""
    return sorted(p.name for p in cohort.iterdir() if p.is_dir() and not p.name.startswith('.'))


# --- staging and resume -----------------------------------------------------------------

def _fingerprint(value: object) -> str:
    """sha256 of the deterministic JSON of ``value``."""
    return hashlib.sha256(dumps_json(value).encode('utf-8')).hexdigest()


def _listing(patient_dir: Path) -> list[list]:
    """(relative path, size in bytes, mtime in ns) of every file under a patient folder."""
    files = sorted(p for p in patient_dir.rglob('*') if p.is_file())
    return [[p.relative_to(patient_dir).as_posix(), p.stat().st_size, p.stat().st_mtime_ns]
            for p in files]


def _masks_listing(options: PrepOptions, patient_id: str) -> list[list]:
    """(name, size, mtime in ns) of the patient's label maps in ``options.masks_dir`` (--masks)."""
    if not options.masks_dir:
        return []
    files = [path for _, path in masks_dir_files(Path(options.masks_dir), patient_id)]
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def _open_staging(staging: Path, run_fingerprint: str) -> None:
    """Create the staging folder, or keep one left by an earlier run with the same options."""
    run_file = staging / _WORK / _RUN_FILE
    if staging.exists():
        if _read_json(run_file).get('fingerprint') == run_fingerprint:
            logger.info('resuming in %s', staging)
            for leftover in staging.iterdir():  # pieces of an interrupted final assembly
                if leftover.name == _WORK:
                    continue
                if leftover.is_dir():
                    shutil.rmtree(leftover)
                else:
                    leftover.unlink()
            return
        if not run_file.is_file() and any(staging.iterdir()):
            raise DataPrepError(f'{staging} exists and was not written by data_prep; '
                                'remove it or choose another output folder')
        if run_file.is_file():
            logger.warning('discarding the partial work in %s: it was made with other '
                           'conversion options or another mmnpc version', staging)
        shutil.rmtree(staging)
    (staging / _WORK / 'patients').mkdir(parents=True)
    write_json(run_file, {'fingerprint': run_fingerprint})


def _patient_work_dir(staging: Path, patient_id: str) -> Path:
    return staging / _WORK / 'patients' / patient_id


def _fragment_done(staging: Path, patient_id: str, fingerprint: str) -> bool:
    """True when the patient's fragment exists, matches ``fingerprint`` and has all its JPEGs."""
    work = _patient_work_dir(staging, patient_id)
    fragment = _read_json(work / _FRAGMENT)
    return fragment.get('fingerprint') == fingerprint and all(
        (work / sequence / record['image']['file_name']).is_file()
        for sequence, entry in fragment['sequences'].items() for record in entry['slices'])


def _read_fragment(staging: Path, patient_id: str) -> dict:
    return json.loads((_patient_work_dir(staging, patient_id) / _FRAGMENT).read_text('utf-8'))


def _read_json(path: Path) -> dict:
    """The JSON object in ``path``, or {} when it is missing or unreadable."""
    try:
        value = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


# --- per-patient conversion -------------------------------------------------------------

def _convert_patients(cohort: Path, staging: Path, pending: list[str],
                      fingerprints: dict[str, str], options: PrepOptions, workers: int,
                      progress: bool, skip_bad: bool) -> dict[str, str]:
    """Convert the pending patients, serially or in ``workers`` processes.

    Returns patient_id -> reason for the patients skipped (``skip_bad``) after a
    DataPrepError; without ``skip_bad`` the first error is raised.
    """
    tasks = [(cohort / pid, pid, options, _patient_work_dir(staging, pid), fingerprints[pid])
             for pid in pending]
    failed: dict[str, str] = {}

    def failure(pid: str, error: BaseException) -> None:
        if not (skip_bad and isinstance(error, DataPrepError)):
            logger.error('patient %s failed', pid)
            raise error
        logger.warning('skipping patient %s: %s', pid, error)
        failed[pid] = str(error)

    bar = tqdm(total=len(tasks), desc='patients', unit='patient', disable=not progress)
    with bar:
        if workers == 1 or len(tasks) <= 1:
            for task in tasks:
                bar.set_postfix_str(task[1])
                try:
                    convert_patient(*task)
                except DataPrepError as error:
                    failure(task[1], error)
                bar.update()
            return dict(sorted(failed.items()))
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
            futures = {pool.submit(convert_patient, *task): task[1] for task in tasks}
            try:
                for future in as_completed(futures):
                    error = future.exception()
                    if error is not None:
                        failure(futures[future], error)
                    bar.set_postfix_str(futures[future])
                    bar.update()
            except BaseException:
                for other in futures:
                    other.cancel()  # running ones finish (their fragments serve a resume)
                raise
    return dict(sorted(failed.items()))


def convert_patient(patient_dir: Path, patient_id: str, options: PrepOptions, work: Path,
                    fingerprint: str) -> None:
    """Convert one patient into ``work`` (JPEGs per sequence + ``fragment.json``, written last)."""
    if work.exists():
        shutil.rmtree(work)
    prepared = prepare_patient(patient_dir, patient_id, options, require_contours=True)
    missing = [s for s in options.sequences if s not in prepared]
    if missing:
        raise DataPrepError(f'patient {patient_id} ({patient_dir}): no {missing} series converted')
    fragment = {'fingerprint': fingerprint, 'patient_id': patient_id, 'sequences': {},
                'warnings': []}
    for sequence in options.sequences:
        entry = _write_sequence(prepared[sequence], patient_id, sequence, work / sequence)
        fragment['sequences'][sequence] = entry
        fragment['warnings'] += list(entry['info'].get('warnings', []))
    write_json(work / _FRAGMENT, fragment)


def _write_sequence(prepared: PreparedSequence, patient_id: str, sequence: str,
                    folder: Path) -> dict:
    """Write one sequence's JPEGs; return its fragment entry (info + per-slice COCO records)."""
    if prepared.patient_id != patient_id or prepared.sequence != sequence:
        raise DataPrepError(f'patient {patient_id}: prepared data is labelled '
                            f'{prepared.patient_id}/{prepared.sequence}, expected {sequence}')
    folder.mkdir(parents=True)
    records = []
    for slice_ in sorted(prepared.slices, key=lambda s: s.index):
        name = coco_writer.image_file_name(patient_id, sequence, slice_.index)
        if (folder / name).exists():
            raise DataPrepError(f'patient {patient_id} {sequence}: slice index {slice_.index} '
                                'appears twice')
        try:
            coco_writer.write_jpeg(folder / name, slice_.image)
            annotations = coco_writer.slice_annotations(slice_.masks, slice_.image.shape)
        except DataPrepError as err:
            raise DataPrepError(f'patient {patient_id}, {sequence} slice {slice_.index}: '
                                f'{err}') from err
        records.append({'image': coco_writer.image_entry(slice_, patient_id, sequence, name),
                        'annotations': annotations})
    return {'info': _safe_info(prepared.info, patient_id), 'slices': records}


def _safe_info(info: dict, patient_id: str) -> dict:
    """``info`` as plain JSON, without keys that could carry identifiers (UIDs, dates, names)."""
    kept = {}
    for key, value in info.items():
        squashed = key.lower().replace('_', '')
        if any(word in squashed for word in _FORBIDDEN_INFO_WORDS):
            logger.warning('patient %s: manifest key %r left out (may identify the patient)',
                           patient_id, key)
            continue
        kept[key] = to_json_value(value)
    return kept


# --- assembly ---------------------------------------------------------------------------

def _assemble(staging: Path, fragments: dict[str, dict], splits: dict[str, str],
              sequences: tuple[str, ...]) -> dict:
    """Link JPEGs into ``<seq>/images`` and write ``<seq>/annotations/<split>.json``.

    train.json and val.json are always written, test.json only when the test
    split has patients (``data_prep.split.splits_in_use``).

    The patient work folders stay intact until the very end, so an assembly that
    is interrupted is simply redone by the next run, without converting again.

    Images and annotations are numbered from 1 per json, in (patient, slice
    index) order. Returns the counts per sequence and split.
    """
    by_split = patients_by_split(splits)
    counts = {}
    for sequence in sequences:
        images_dir = staging / sequence / 'images'
        annotations_dir = staging / sequence / 'annotations'
        images_dir.mkdir(parents=True)
        annotations_dir.mkdir()
        counts[sequence] = {}
        for split in by_split:
            records = []
            for pid in by_split[split]:
                for record in fragments[pid]['sequences'][sequence]['slices']:
                    name = record['image']['file_name']
                    _link(_patient_work_dir(staging, pid) / sequence / name, images_dir / name)
                    records.append((record['image'], record['annotations']))
            coco = coco_writer.build_coco(
                records, f'mmnpc {__version__} data_prep: {sequence} {split}')
            write_json(annotations_dir / f'{split}.json', coco)
            counts[sequence][split] = {
                'patients': len(by_split[split]),
                'images': len(coco['images']),
                'images_with_annotations': len({a['image_id'] for a in coco['annotations']}),
                'annotations': len(coco['annotations']),
            }
        _check_split_integrity(staging, sequence)
    return counts


def _link(source: Path, target: Path) -> None:
    """Hard-link ``source`` as ``target`` (same file system), or copy it where links fail."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _check_split_integrity(staging: Path, sequence: str) -> None:
    """On the written files: train.json and val.json (and test.json, optional) and no other
    annotation file, no patient in two of them, exactly the referenced JPEGs on disk."""
    annotations_dir = staging / sequence / 'annotations'
    written = sorted(p.name for p in annotations_dir.iterdir())
    splits = [split for split in SPLITS if f'{split}.json' in written]
    if len(splits) != len(written) or not set(REQUIRED_SPLITS) <= set(splits):
        raise RuntimeError(f'{sequence}: annotation files {written}; expected train.json, '
                           'val.json and optionally test.json')
    seen: Counter[str] = Counter()
    names: set[str] = set()
    for split in splits:
        coco = json.loads((annotations_dir / f'{split}.json').read_text('utf-8'))
        seen.update({image['patient_id'] for image in coco['images']})
        names |= {image['file_name'] for image in coco['images']}
    shared = sorted(patient for patient, count in seen.items() if count > 1)
    if shared:
        raise RuntimeError(f'{sequence}: patients in more than one split: {shared}')
    on_disk = {p.name for p in (staging / sequence / 'images').iterdir()}
    if on_disk != names:
        raise RuntimeError(f'{sequence}: images on disk differ from the COCO files '
                           f'({len(on_disk ^ names)} files)')


def _manifest(fragments: dict[str, dict], splits: dict[str, str], parameters: dict,
              counts: dict, skipped: dict[str, str]) -> dict:
    """The manifest: format marker, version, parameters, per-patient info, counts and the
    patients skipped (patient_id -> reason, naming the file)."""
    patients = {}
    for pid, fragment in fragments.items():
        sequences = {}
        for sequence, entry in fragment['sequences'].items():
            sequences[sequence] = {
                **entry['info'],
                'n_images': len(entry['slices']),
                'n_annotations': sum(len(r['annotations']) for r in entry['slices']),
            }
        patients[pid] = {'split': splits[pid], 'sequences': sequences}
    return {'format': MANIFEST_FORMAT, 'mmnpc_version': __version__,
            'parameters': parameters, 'counts': counts, 'patients': patients,
            'skipped': skipped}


def _move_into_place(staging: Path, out: Path) -> None:
    """Rename ``staging`` to ``out``; an existing ``out`` is set aside first, then deleted."""
    if not out.exists():
        os.rename(staging, out)
        return
    aside = Path(tempfile.mkdtemp(prefix=f'.{out.name}.old-', dir=out.parent))
    os.rename(out, aside / out.name)
    try:
        os.rename(staging, out)
    except OSError:
        os.rename(aside / out.name, out)
        aside.rmdir()
        raise
    shutil.rmtree(aside)
