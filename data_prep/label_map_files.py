"""Find a patient's label-map files (NIfTI / NRRD) and the sequence each was drawn on.

Label maps are not DICOM and carry no frame of reference UID: a file is taken to
be drawn on (and in the patient coordinates of) the sequence it is named for.
Where they are looked for, in order:

1. ``options.masks_dir`` (``--masks DIR``): ``DIR/<patient_id>_<sequence>.<suffix>``,
   or ``DIR/<patient_id>.<suffix>`` = drawn on cet1;
2. else ``<patient folder>/masks/<sequence>.<suffix>``, or, when ``masks/`` holds
   a single label-map file named for no sequence, that file = drawn on cet1.

``suffix`` is one of ``mask_sources.LABEL_MAP_SUFFIXES`` (.nii, .nii.gz, .nrrd,
.nhdr); names are compared case-insensitively. Two files for one sequence are
an error naming them.
"""
from __future__ import annotations

from pathlib import Path

from data_prep.mask_sources import LABEL_MAP_SUFFIXES, is_label_map_file
from data_prep.options import PrepOptions
from data_prep.types import SEQUENCES, DataPrepError

DEFAULT_LABEL_MAP_SEQUENCE = 'cet1'  # a label map named for no sequence was drawn on it
PATIENT_MASKS_FOLDER = 'masks'


def label_map_stem(path: Path) -> str:
    """The file name without its label-map suffix, lower case ('NPC1_T2.nii.gz' -> 'npc1_t2')."""
    name = Path(path).name.lower()
    for suffix in sorted(LABEL_MAP_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return name[:-len(suffix)]
    return name


def find_label_maps(patient_dir: Path, patient_id: str,
                    options: PrepOptions) -> dict[str, Path]:
    """sequence -> the label-map file drawn on it (rules in the module docstring)."""
    if options.masks_dir:
        found = _by_sequence(masks_dir_files(Path(options.masks_dir), patient_id), patient_id)
        if found:
            return found
    folder = Path(patient_dir) / PATIENT_MASKS_FOLDER
    if not folder.is_dir():
        return {}
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_label_map_file(p))
    named = [(label_map_stem(p), p) for p in files if label_map_stem(p) in SEQUENCES]
    if not named and len(files) == 1:
        named = [(DEFAULT_LABEL_MAP_SEQUENCE, files[0])]
    return _by_sequence(named, patient_id)


def masks_dir_files(masks_dir: Path, patient_id: str) -> list[tuple[str, Path]]:
    """(sequence, file) of the patient's label maps in a --masks folder: ``<pid>_<sequence>``
    and ``<pid>`` (= cet1), any letter case, sorted by file name."""
    pid = patient_id.lower()
    named = {f'{pid}_{s}': s for s in SEQUENCES}
    named[pid] = DEFAULT_LABEL_MAP_SEQUENCE
    return [(named[label_map_stem(p)], p) for p in sorted(Path(masks_dir).iterdir())
            if p.is_file() and is_label_map_file(p) and label_map_stem(p) in named]


def _by_sequence(pairs: list[tuple[str, Path]], patient_id: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for sequence, path in pairs:
        if sequence in found:
            raise DataPrepError(f'patient {patient_id}: two label maps for {sequence}: '
                                f'{found[sequence].name} and {path.name}; keep one')
        found[sequence] = path
    return found
