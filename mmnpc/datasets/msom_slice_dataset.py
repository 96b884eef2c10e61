"""Tumour slices of one MR sequence, each with its patient's MSOM label and clinical vector."""
from __future__ import annotations

import os.path as osp
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.fileio import join_path, load
from mmengine.logging import MMLogger

from data_prep.types import DataPrepError
from mmdet.registry import DATASETS

from .clinical_encoder import ClinicalEncoder
from .clinical_table import SPLIT_COLUMN, patient_labels, read_clinical_rows
from .slice_selection import evenly_spaced, select_slices


@DATASETS.register_module()
class MsomSliceDataset(BaseDataset):
    """Slices chosen from the converter's COCO files, labelled per patient.

    Every item is one slice (see :mod:`mmnpc.datasets.slice_selection` for
    which ones) with ``img_path``, ``img_id`` (the COCO id in its split's
    file), ``patient_id``, ``split`` (the key of ``ann_files`` it came
    from), ``z_mm``, ``slice_index``, ``tumour_area_px``, ``gt_label``
    (the patient's ``msom``, 0.0 / 1.0) and ``clinical`` (float32
    (num_features,), the patient's encoded clinical vector; length 0 for an
    image-only model).

    The training dataloader lists only the ``train`` split; the val / test
    dataloaders list ``train`` *and* ``val``, because the patient-level
    cut-off is chosen on the training patients' scores and applied to the
    validation patients (mmnpc.evaluation.PatientAUCMetric).

    The clinical encoder is fitted here on the patients of ``fit_split``
    that have selected slices -- training patients only -- whenever the
    dataset lists that split; otherwise (e.g. an external test set) it stays
    unfitted until :meth:`set_clinical_encoder` gives it the one saved in a
    checkpoint (mmnpc.engine.ClinicalEncoderHook does so on every checkpoint
    load, so test and resume use the training statistics).

    Args:
        clinical_file: the converter's ``clinical.csv`` (``--data-root`` sets
            it to ``<root>/clinical.csv``). Relative paths are relative to
            the working directory, not to ``data_root``.
        ann_files: split name -> COCO file relative to ``data_root``.
        clinical_vars: the config's variable list (see ClinicalEncoder).
        slice_selection: ``'tumour'`` or ``'max_area'``.
        tumour_classes: COCO category names that count as tumour.
        fit_split: the split whose patients fit the clinical encoder.
        max_slices_per_patient: keep at most this many of each patient's
            selected slices, evenly spaced along z (None = all; the *_tiny
            configs evaluate 8 per patient to stay fast on a CPU).
        data_prefix: ``dict(img=...)``, the image folder relative to ``data_root``.
        **kwargs: the other arguments of :class:`mmengine.dataset.BaseDataset`
            (``data_root``, ``pipeline``, ``test_mode``, ...).

    Raises:
        DataPrepError: a patient without a clinical row, with ``msom``
            missing or not 0/1, in two splits, or whose ``split`` column
            disagrees with the annotation file it is in (the message names
            the patients and the file).
    """

    METAINFO: dict = dict(classes=('no MSOM', 'MSOM'))

    def __init__(self,
                 clinical_file: str,
                 ann_files: Optional[Mapping[str, str]] = None,
                 clinical_vars: Sequence[Mapping[str, Any]] = (),
                 slice_selection: str = 'tumour',
                 tumour_classes: Sequence[str] = ('GTV', 'GTVln'),
                 fit_split: str = 'train',
                 max_slices_per_patient: Optional[int] = None,
                 data_prefix: Optional[dict] = None,
                 **kwargs) -> None:
        self.clinical_file = clinical_file
        self.ann_files = dict(ann_files or {'train': 'annotations/train.json'})
        self.slice_selection = slice_selection
        self.tumour_classes = tuple(tumour_classes)
        self.fit_split = fit_split
        self.max_slices_per_patient = max_slices_per_patient
        self._encoder = ClinicalEncoder(clinical_vars)
        self._rows: Dict[str, Dict[str, str]] = {}
        self._encoded: Dict[str, np.ndarray] = {}
        self._split_patients: Dict[str, List[str]] = {}
        super().__init__(data_prefix=data_prefix or dict(img='images/'), **kwargs)

    # ---------------------------------------------------------------- loading
    def _ann_path(self, ann_file: str) -> str:
        if osp.isabs(ann_file) or not self.data_root:
            return ann_file
        return join_path(self.data_root, ann_file)

    def load_data_list(self) -> List[dict]:
        """Read the annotation files and clinical.csv; fit the encoder (see class doc)."""
        rows = read_clinical_rows(self.clinical_file, [v['name'] for v in self._encoder.variables])
        data_list: List[dict] = []
        split_of: Dict[str, str] = {}
        for split, ann_file in self.ann_files.items():
            path = self._ann_path(ann_file)
            coco = load(path)
            patients = sorted({image['patient_id'] for image in coco.get('images', [])
                               if 'patient_id' in image})
            self._split_patients[split] = patients
            for patient_id in patients:
                if patient_id in split_of:
                    raise DataPrepError(f'patient {patient_id} is in two splits: '
                                        f'{split_of[patient_id]!r} and {split!r} ({path})')
                split_of[patient_id] = split
            data_list.extend(dict(item, split=split) for item in self._items(coco, path))
        self._check_split_column(rows, split_of)
        used = sorted({item['patient_id'] for item in data_list})
        labels = patient_labels(rows, used, self.clinical_file)
        for item in data_list:
            item['gt_label'] = labels[item['patient_id']]
        self._rows = {p: rows[p] for p in used}
        self._warn_unused(split_of, used)
        if self.fit_split in self.ann_files:
            fit_patients = [p for p in used if split_of[p] == self.fit_split]
            self._encoder.fit({p: rows[p] for p in fit_patients})
        self._encode_all()
        MMLogger.get_current_instance().info(
            f'{type(self).__name__}: {len(data_list)} {self._sample_kind()} of {len(used)} '
            f'patients from {dict(self.ann_files)}; {self._encoder}')
        return data_list

    def _items(self, coco: dict, source: str) -> List[dict]:
        """The samples of one annotation file: its chosen slices (class docstring)."""
        chosen = select_slices(coco, self.slice_selection, self.tumour_classes, source)
        return [self._slice_item(image)
                for image in evenly_spaced(chosen, self.max_slices_per_patient)]

    def _slice_item(self, image: Mapping[str, Any]) -> dict:
        return dict(img_path=join_path(self.data_prefix['img'], image['file_name']),
                    img_id=image['id'], patient_id=image['patient_id'],
                    z_mm=image.get('z_mm'), slice_index=image.get('slice_index'),
                    height=image.get('height'), width=image.get('width'),
                    spacing_mm=image.get('spacing_mm'),
                    tumour_area_px=image['tumour_area_px'])

    def _sample_kind(self) -> str:
        return f'slices ({self.slice_selection})'

    def _check_split_column(self, rows: Mapping[str, Mapping[str, str]],
                            split_of: Mapping[str, str]) -> None:
        """Refuse a clinical.csv whose ``split`` contradicts the annotation files."""
        disagree = [f'{p} (annotations: {s}, clinical.csv: {rows[p][SPLIT_COLUMN]})'
                    for p, s in sorted(split_of.items())
                    if p in rows and rows[p].get(SPLIT_COLUMN) and rows[p][SPLIT_COLUMN] != s]
        if disagree:
            raise DataPrepError(f'{self.clinical_file}: split column disagrees with the annotation '
                                f'files for {", ".join(disagree)}')

    def _warn_unused(self, split_of: Mapping[str, str], used: Sequence[str]) -> None:
        unused = sorted(set(split_of) - set(used))
        if unused:
            MMLogger.get_current_instance().warning(
                f'MsomSliceDataset: patients without any {"/".join(self.tumour_classes)} slice get '
                f'no sample and no score: {unused}')

    def _encode_all(self) -> None:
        """Encode every patient now, so a bad clinical value fails before training starts."""
        self._encoded = {}
        if self._encoder.is_fitted:
            self._encoded = {p: self._encoder.encode(row, p) for p, row in self._rows.items()}

    # ------------------------------------------------------------- interface
    @property
    def clinical_encoder(self) -> ClinicalEncoder:
        """The encoder in use (fitted on ``fit_split``, or restored from a checkpoint)."""
        self.full_init()
        return self._encoder

    def set_clinical_encoder(self, encoder: ClinicalEncoder) -> None:
        """Use ``encoder`` (e.g. a checkpoint's) from now on; its variables must match."""
        self.full_init()
        if encoder.variables != self._encoder.variables:
            raise ValueError(f'clinical encoder variables {encoder.variables} differ from the '
                             f"dataset's clinical_vars {self._encoder.variables}")
        self._encoder = encoder
        self._encode_all()

    def patient_ids(self, split: Optional[str] = None) -> List[str]:
        """Every patient of the annotation files (of one ``split``), with or without slices."""
        self.full_init()
        splits = self._split_patients if split is None else {
            split: self._split_patients.get(split, [])}
        return sorted({p for patients in splits.values() for p in patients})

    def get_data_info(self, idx: int) -> dict:
        """The idx-th slice with its patient's encoded clinical vector added."""
        info = super().get_data_info(idx)
        patient_id = info['patient_id']
        if patient_id not in self._encoded:
            raise RuntimeError(
                f'no clinical encoder for patient {patient_id}: this dataset lists no '
                f'{self.fit_split!r} split to fit one and none was restored from a checkpoint')
        info['clinical'] = self._encoded[patient_id].copy()
        return info
