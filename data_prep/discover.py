"""Find the MR image series, RTSTRUCTs, SEGs, REGs and CT series under one patient folder.

Any folder layout is accepted: every file below the patient folder is looked at.
A file is taken as DICOM when it has the 'DICM' marker at byte 128 or (files
without preamble/meta header, e.g. old implicit-VR exports) starts with a group
0x0002 or 0x0008 element; anything else (notes, spreadsheets, .DS_Store) is
skipped quietly. A DICOM file that cannot be parsed or lacks the identifying
attributes, and a file that cannot be read at all (no permission, I/O error,
a dangling symbolic link), raise ``DataPrepError``: skipping it would silently
lose a slice.

Kept: MR image series, RTSTRUCTs, DICOM SEG (Modality 'SEG'), Spatial
Registration objects (Modality 'REG') and CT image series (CT Image Storage
only: planning CTs the contours may be drawn on). Label maps (NIfTI/NRRD) are
not DICOM: ``data_prep.label_map_files`` finds them.

Each file is parsed once: the datasets of the kept series are kept in their
``SeriesInfo`` for the loaders. Values larger than
``DEFER_SIZE`` (the pixel data of large images, of other modalities' files)
are not read here; pydicom reads them from the file when they are first used.
"""
from __future__ import annotations

import struct
from collections import defaultdict
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from data_prep.types import DataPrepError, SeriesInfo

MR_IMAGE_SOP_CLASSES = frozenset({
    '1.2.840.10008.5.1.4.1.1.4',  # MR Image Storage
    '1.2.840.10008.5.1.4.1.1.4.1',  # Enhanced MR Image Storage (rejected when loaded)
    '1.2.840.10008.5.1.4.1.1.4.4',  # Legacy Converted Enhanced MR
})
RTSTRUCT_SOP_CLASS = '1.2.840.10008.5.1.4.1.1.481.3'
CT_IMAGE_SOP_CLASS = '1.2.840.10008.5.1.4.1.1.2'  # CT Image Storage (Enhanced CT is left out)
_DICOMDIR_SOP_CLASS = '1.2.840.10008.1.3.10'
_KEPT_MODALITIES = ('MR', 'RTSTRUCT', 'SEG', 'REG', 'CT')
DEFER_SIZE = 256 * 1024  # bytes: larger values are read on first use (pydicom defer_size)


def scan_patient(patient_dir: Path, patient_id: str) -> list[SeriesInfo]:
    """Every MR image, RTSTRUCT, SEG, REG and CT image series below ``patient_dir``.

    Returns SeriesInfo sorted by (modality, series UID), files sorted by path.
    Other modalities (RTPLAN, RTDOSE, SR, secondary captures...) are left out.
    """
    patient_dir = Path(patient_dir)
    if not patient_dir.is_dir():
        raise DataPrepError(f'patient {patient_id}: folder {patient_dir} does not exist')
    groups: dict[tuple[str, str], list[tuple[Path, Dataset]]] = defaultdict(list)
    for path in sorted(p for p in patient_dir.rglob('*') if _is_file_or_dangling_link(p)):
        ds = read_dataset(path, patient_id, patient_dir)
        if ds is not None and _is_kept(ds, path, patient_id, patient_dir):
            groups[(str(ds.Modality), str(ds.SeriesInstanceUID))].append((path, ds))
    return [_series_info(patient_id, items, patient_dir) for _, items in sorted(groups.items())]


def read_dataset(path: Path, patient_id: str,
                 patient_dir: Path | None = None) -> Dataset | None:
    """The parsed file (values over ``DEFER_SIZE`` read on first use), or None when
    it is not a DICOM file."""
    try:
        if not looks_like_dicom(path):
            return None
    except OSError as err:
        raise DataPrepError(f'patient {patient_id}: cannot read file '
                            f'{relative_name(path, patient_dir)} ({err.strerror or err})') from err
    try:
        ds = pydicom.dcmread(path, force=True, defer_size=DEFER_SIZE)
        ds.get('Modality')  # values are parsed lazily: touch one to surface errors
    except Exception as err:  # pydicom raises many types on corrupt input
        raise DataPrepError(f'patient {patient_id}: corrupt DICOM file '
                            f'{relative_name(path, patient_dir)} ({err})') from err
    if not ds.keys():
        raise DataPrepError(f'patient {patient_id}: DICOM file {relative_name(path, patient_dir)}'
                            ' has an empty dataset (truncated?)')
    return ds


def _is_file_or_dangling_link(path: Path) -> bool:
    """A regular file, or a symbolic link whose target is missing (reported as unreadable)."""
    return path.is_file() or (path.is_symlink() and not path.exists())


def looks_like_dicom(path: Path) -> bool:
    """'DICM' at byte 128, or a file starting with a group 0x0002/0x0008 tag."""
    with open(path, 'rb') as f:
        head = f.read(132)
    if head[128:132] == b'DICM':
        return True
    return len(head) >= 8 and struct.unpack('<H', head[:2])[0] in (0x0002, 0x0008)


def relative_name(path: Path, patient_dir: Path | None) -> str:
    """``path`` relative to the patient folder (for messages), else as given."""
    if patient_dir is not None:
        try:
            return str(Path(path).relative_to(patient_dir))
        except ValueError:
            pass
    return str(path)


def display_name(path: Path, patient_id: str) -> str:
    """``path`` from below the folder named ``patient_id`` (for messages), else as given."""
    parts = Path(path).parts
    folders = parts[:-1]
    if patient_id in folders:
        last = len(folders) - 1 - folders[::-1].index(patient_id)
        return str(Path(*parts[last + 1:]))
    return str(path)


def _is_kept(ds: Dataset, path: Path, patient_id: str, patient_dir: Path) -> bool:
    """A kept modality (MR/CT images, RTSTRUCT, SEG, REG) with the attributes needed to
    group it; raise if broken."""
    meta_class = str(getattr(getattr(ds, 'file_meta', None), 'MediaStorageSOPClassUID', ''))
    if meta_class == _DICOMDIR_SOP_CLASS:
        return False
    name = relative_name(path, patient_dir)
    if 'Modality' not in ds:
        raise DataPrepError(f'patient {patient_id}: DICOM file {name} has no Modality '
                            '(corrupt or truncated header)')
    if ds.Modality not in _KEPT_MODALITIES:
        return False
    sop_class = str(ds.get('SOPClassUID', meta_class))
    if ds.Modality == 'MR' and sop_class not in MR_IMAGE_SOP_CLASSES:
        return False  # spectroscopy, raw data, screenshots
    if ds.Modality == 'CT' and sop_class != CT_IMAGE_SOP_CLASS:
        return False  # enhanced CT, scout views stored otherwise
    missing = [k for k in ('SOPInstanceUID', 'SeriesInstanceUID') if not ds.get(k)]
    if missing:
        raise DataPrepError(f'patient {patient_id}: DICOM file {name} lacks {missing} '
                            '(corrupt or truncated header)')
    return True


def _series_info(patient_id: str, items: list[tuple[Path, Dataset]],
                 patient_dir: Path) -> SeriesInfo:
    first = items[0][1]
    frames = {frame_of_reference_uid(ds) for _, ds in items}
    if len(frames) > 1:
        folder = relative_name(items[0][0].parent, patient_dir)
        raise DataPrepError(f'patient {patient_id}: the series in {folder} mixes several '
                            'frames of reference')
    return SeriesInfo(
        patient_id=patient_id,
        modality=str(first.Modality),
        series_uid=str(first.SeriesInstanceUID),
        frame_of_reference_uid=frames.pop(),
        description=str(first.get('SeriesDescription', '') or '').strip(),
        files=tuple(path for path, _ in items),
        sop_instance_uids=tuple(str(ds.SOPInstanceUID) for _, ds in items),
        datasets=tuple(ds for _, ds in items),
    )


def frame_of_reference_uid(ds: Dataset) -> str:
    """FrameOfReferenceUID; for an RTSTRUCT the one its structure set refers to."""
    if ds.get('FrameOfReferenceUID'):
        return str(ds.FrameOfReferenceUID)
    for item in ds.get('ReferencedFrameOfReferenceSequence', []):
        if item.get('FrameOfReferenceUID'):
            return str(item.FrameOfReferenceUID)
    return ''
