"""Conversion options: which series is which sequence, which ROI is which class.

The defaults recognise the usual head-and-neck MR naming. A cohort that names
its series or ROIs differently supplies a JSON *mapping file*; every key is
optional and a key that is given REPLACES the default for that entry::

    {
      "sequence_patterns": {
        "cet1": ["^t1_fs_tra_post$", "vibe.*gd"],
        "t2":   ["^t2_tse_tra"],
        "t1":   ["^t1_tse_tra$"]
      },
      "roi_aliases": {
        "GTV":   ["gtv", "gtvnx", "tumour"],
        "GTVln": ["gtvnd", "nodes"]
      },
      "label_values": {"GTV": [1], "GTVln": [2, 3]}
    }

``sequence_patterns``: sequence -> list of Python regular expressions, searched
(``re.search``, case-insensitive) in the series' SeriesDescription. A series is
given the first sequence, in the order cet1, t2, t1 (then any extra sequence in
file order), for which any of its patterns matches; series matching nothing are
ignored. ``roi_aliases``: class -> list of ROI names. ROI names and aliases are
compared after normalisation (lower case, spaces, '-' and '_' removed) and an
ROI name may carry a trailing laterality/number suffix ('GTVnd_L', 'GTVln2',
'GTVn right'); ROIs matching no class are ignored (the same aliases name DICOM SEG segments).
``label_values``: class -> the voxel values of that class in NIfTI/NRRD label
maps (default GTV = 1, GTVln = 2; ``data_prep.mask_sources``).

Label maps are found per patient (``data_prep.label_map_files``) in the
``masks`` folder given on the command line (``--masks DIR``:
``DIR/<patient_id>_<sequence>.nii.gz`` ...) or in ``<patient>/masks/``.
A sequence whose contours must be registered from another frame of reference
(``data_prep.sequences``) fails when the rigid registration looks poor, unless
``accept_poor_registration`` (``--accept-poor-registration``; then a warning).

A *series overrides file* (``--series-overrides``) names, per patient, the
series to use for a sequence when the selection rule (``data_prep.sequences``)
would pick another one. CSV with a header::

    patient_id,sequence,series
    NPC001,cet1,T1_FS_TRA_POST
    NPC007,t2,5
    NPC012,cet1,DICOM/ST000001/SE000007

``series`` is matched against the SeriesDescription (exactly), the
SeriesNumber, or the series' folder relative to the patient folder.
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from data_prep.types import CLASSES, OUTPUT_SIZE, SEQUENCES, DataPrepError

# Markers are matched as tokens: 't1'/'t2' not glued to other digits or letters
# before them ('T1FS', 'T2WI' count; 'DT2', 'T10' do not); contrast words not glued
# to other letters ('T1Gd', 'T1_CE' count; 'sequence', 'space' do not).
_T1 = r'(?<![a-z0-9])t1(?![0-9])'
_T2 = r'(?<![a-z0-9])t2(?![0-9])'
_CONTRAST = (r'(?<![a-z])(?:post|gd|gad|gado|ce|contrast|enh|enhanced|t1c|t1ce)(?![a-z])'
             r'|\+c(?![a-z])|(?<![a-z])c\+')
_NON_CONTRAST = r'(?<![a-z])(?:pre|precontrast|non|noncontrast|without|w/o)(?![a-z])'

DEFAULT_SEQUENCE_PATTERNS: dict[str, list[str]] = {
    # contrast marker, no "pre"/"non" marker, and a T1 marker or no T2 marker
    'cet1': [rf'^(?=.*(?:{_CONTRAST}))(?!.*{_NON_CONTRAST})(?:(?=.*{_T1})|(?!.*{_T2}))'],
    't2': [_T2],
    't1': [_T1],
}
DEFAULT_ROI_ALIASES: dict[str, list[str]] = {
    'GTV': ['gtv', 'gtvnx', 'gtvp', 'gtvt', 'gtvprimary', 'gtvnp', 'gtvpt'],
    'GTVln': ['gtvln', 'gtvnd', 'gtvn', 'gtvnode', 'gtvnodes', 'gtvlymph'],
}
_ROI_SUFFIX = r'(?:left|right|l|r|\d+)*'


@dataclass
class PrepOptions:
    """Everything that steers the DICOM -> slices conversion.

    sequence_patterns: sequence -> regexes on SeriesDescription (order = priority).
    roi_aliases: class -> ROI names (compared normalised, see module docstring).
    sequences: the sequences to convert for every patient.
    output_size: px, side of the square output slices.
    intensity_percentiles: (low, high) percent of in-volume voxels: the low one is mapped
        to 1; the high one is the least the upper limit can be.
    intensity_top_voxels: the upper limit (mapped to 255) is the n-th brightest in-volume
        voxel of the 1 mm grid (27 = a 3 mm cube; brighter ones are clipped as possible
        outliers; ``data_prep.intensity``); None = the high percentile itself (the rule
        before 2026-12-07, which saturated lesions among the brightest 0.5 %).
    series_overrides: patient_id -> sequence -> the series to use (a SeriesDescription,
        SeriesNumber or folder relative to the patient folder; module docstring).
    series_overrides_file: where ``series_overrides`` came from (named in messages).
    label_values: class -> label-map voxel values; None = GTV 1, GTVln 2.
    masks_dir: folder of label maps named ``<patient_id>_<sequence>.<suffix>`` (--masks);
        '' = only ``<patient>/masks/``.
    accept_poor_registration: a rigid registration failing its quality checks is a
        warning instead of an error.
    """

    sequence_patterns: dict[str, list[str]] = field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_SEQUENCE_PATTERNS.items()})
    roi_aliases: dict[str, list[str]] = field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_ROI_ALIASES.items()})
    sequences: tuple[str, ...] = SEQUENCES
    output_size: int = OUTPUT_SIZE
    intensity_percentiles: tuple[float, float] = (0.5, 99.5)
    intensity_top_voxels: int | None = 27
    series_overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    series_overrides_file: str = ''
    label_values: dict[str, list[int]] | None = None
    masks_dir: str = ''
    accept_poor_registration: bool = False

    def sequence_of(self, description: str) -> str | None:
        """The sequence a SeriesDescription belongs to, or None."""
        text = description.lower()
        for sequence, patterns in self.sequence_patterns.items():
            if any(re.search(p, text, flags=re.IGNORECASE) for p in patterns):
                return sequence
        return None

    def class_of(self, roi_name: str) -> str | None:
        """The class (GTV/GTVln) an RTSTRUCT ROI name belongs to, or None."""
        name = normalise_roi_name(roi_name)
        for cls, aliases in self.roi_aliases.items():
            stems = '|'.join(re.escape(normalise_roi_name(a)) for a in aliases)
            if stems and re.fullmatch(f'(?:{stems}){_ROI_SUFFIX}', name):
                return cls
        return None


def normalise_roi_name(name: str) -> str:
    """Lower case without spaces, '-' and '_' ('GTV_nd-L ' -> 'gtvndl')."""
    return re.sub(r'[\s\-_]', '', name).lower()


def load_options(mapping_file: Path | None, *, series_overrides: Path | None = None,
                 sequences: tuple[str, ...] | None = None, masks: Path | None = None,
                 accept_poor_registration: bool = False) -> PrepOptions:
    """Default options, overridden by a JSON mapping file (format: module docstring).

    series_overrides: a series overrides CSV (``load_series_overrides``).
    sequences: the sequences to convert (``parse_sequences``); None = all of SEQUENCES.
    masks: folder of label maps ``<patient_id>_<sequence>.<suffix>`` (must exist).
    accept_poor_registration: see ``PrepOptions``.
    """
    options = _mapped_options(mapping_file)
    options.accept_poor_registration = bool(accept_poor_registration)
    if masks is not None:
        if not Path(masks).is_dir():
            raise DataPrepError(f'masks folder {masks} does not exist')
        options.masks_dir = str(Path(masks).resolve())
    if series_overrides is not None:
        options.series_overrides = load_series_overrides(series_overrides)
        options.series_overrides_file = str(series_overrides)
    if sequences is not None:
        options.sequences = parse_sequences(sequences)
    return options


def parse_sequences(values: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Sequence names given comma- or space-separated ('cet1', 't2,cet1', ['t1', 't2'])
    -> a tuple in SEQUENCES order without repeats; DataPrepError for unknown names."""
    items = [values] if isinstance(values, str) else list(values)
    names = [name.strip().lower() for item in items for name in re.split(r'[,\s]+', item)
             if name.strip()]
    unknown = sorted(set(names) - set(SEQUENCES))
    if unknown or not names:
        raise DataPrepError(f'sequences must be a non-empty subset of {list(SEQUENCES)} '
                            f'(comma- or space-separated), got {items}')
    return tuple(s for s in SEQUENCES if s in names)


def load_series_overrides(path: Path) -> dict[str, dict[str, str]]:
    """patient_id -> sequence -> series, from a CSV ``patient_id,sequence,series``.

    Raises DataPrepError naming the file (and line) for a missing file or column,
    an unknown sequence, an empty cell, or a patient/sequence given twice.
    """
    path = Path(path)
    try:
        with path.open(newline='', encoding='utf-8-sig') as handle:
            table = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataPrepError(f'series overrides file {path}: cannot read ({err})') from err
    columns = ('patient_id', 'sequence', 'series')
    header = [name.strip() for name in table[0]] if table else []
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataPrepError(f'series overrides file {path}: missing columns {missing} '
                            f'(expected the header {",".join(columns)})')
    overrides: dict[str, dict[str, str]] = {}
    for line, cells in enumerate(table[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue  # blank line
        row = dict(zip(header, cells))
        pid, sequence, series = (str(row.get(c) or '').strip() for c in columns)
        if not (pid and sequence and series):
            raise DataPrepError(f'series overrides file {path}, line {line}: empty cell')
        if sequence.lower() not in SEQUENCES:
            raise DataPrepError(f'series overrides file {path}, line {line}: unknown sequence '
                                f'{sequence!r} (one of {list(SEQUENCES)})')
        by_sequence = overrides.setdefault(pid, {})
        if sequence.lower() in by_sequence:
            raise DataPrepError(f'series overrides file {path}, line {line}: patient {pid} '
                                f'{sequence} is given twice')
        by_sequence[sequence.lower()] = series
    return overrides


def _mapped_options(mapping_file: Path | None) -> PrepOptions:
    """Default options, overridden by a JSON mapping file (format: module docstring)."""
    options = PrepOptions()
    if mapping_file is None:
        return options
    try:
        mapping = json.loads(Path(mapping_file).read_text(encoding='utf-8'))
    except (OSError, json.JSONDecodeError) as err:
        raise DataPrepError(f'mapping file {mapping_file}: cannot read JSON ({err})') from err
    if not isinstance(mapping, dict):
        raise DataPrepError(f'mapping file {mapping_file}: expected a JSON object')
    unknown = set(mapping) - {'sequence_patterns', 'roi_aliases', 'label_values'}
    if unknown:
        raise DataPrepError(f'mapping file {mapping_file}: unknown keys {sorted(unknown)}')
    patterns = _string_lists(mapping.get('sequence_patterns', {}), mapping_file,
                             'sequence_patterns')
    for patterns_of_seq in patterns.values():
        for pattern in patterns_of_seq:
            _check_regex(pattern, mapping_file)
    options.sequence_patterns.update(patterns)
    aliases = _string_lists(mapping.get('roi_aliases', {}), mapping_file, 'roi_aliases')
    bad = set(aliases) - set(CLASSES)
    if bad:
        raise DataPrepError(f'mapping file {mapping_file}: roi_aliases for unknown classes '
                            f'{sorted(bad)} (classes: {list(CLASSES)})')
    options.roi_aliases.update(aliases)
    if 'label_values' in mapping:
        options.label_values = _label_values(mapping['label_values'], mapping_file)
    return options


def _label_values(value: object, mapping_file: Path) -> dict[str, list[int]]:
    """Validate ``{class: [positive int, ...]}`` (each value given to one class only)."""
    where = f'mapping file {mapping_file}: "label_values"'
    if not isinstance(value, dict) or not value:
        raise DataPrepError(f'{where} must map classes to lists of label values')
    owner: dict[int, str] = {}
    out = {}
    for cls, values in value.items():
        if cls not in CLASSES:
            raise DataPrepError(f'{where}: unknown class {cls!r} (classes: {list(CLASSES)})')
        values = [values] if isinstance(values, int) and not isinstance(values, bool) else values
        if not isinstance(values, list) or not values or not all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
            raise DataPrepError(f'{where}: {cls} must be a list of positive integers, got '
                                f'{values!r}')
        for v in values:
            if owner.setdefault(v, cls) != cls:
                raise DataPrepError(f'{where}: value {v} is given to both {owner[v]} and {cls}')
        out[cls] = list(values)
    return out


def _string_lists(value: object, mapping_file: Path, key: str) -> dict[str, list[str]]:
    """Validate ``{str: [str, ...]}`` from the mapping file."""
    if not isinstance(value, dict) or not all(
            isinstance(v, list) and all(isinstance(s, str) for s in v) for v in value.values()):
        raise DataPrepError(f'mapping file {mapping_file}: "{key}" must map names to '
                            'lists of strings')
    return {str(k): list(v) for k, v in value.items()}


def _check_regex(pattern: str, mapping_file: Path) -> None:
    try:
        re.compile(pattern)
    except re.error as err:
        raise DataPrepError(f'mapping file {mapping_file}: bad regex {pattern!r} ({err})') from err
