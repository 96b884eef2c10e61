"""The reference GTV / GTVln contours of one patient's sequence, for checking a prediction.

``tools/predict.py`` reads a patient's DICOM without contours; to see whether its
detections land on the tumour (``detection_check.check_prediction``), the same
patient's delineation is read here the way the converter chooses it
(``data_prep.contour_sources.plan_patient``): the RTSTRUCT drawn on the
sequence's series, or one drawn on another series in the same frame of
reference. Contours are LPS mm, as the prediction's detections.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import numpy as np

from data_prep.contour_sources import plan_patient, source_file_name
from data_prep.discover import scan_patient
from data_prep.options import PrepOptions
from data_prep.rtstruct import read_structure_set
from mmnpc.evaluation.detection_check import contours_by_class


@dataclasses.dataclass
class ReferenceContours:
    """class -> contours (N x 3 LPS mm) and the file they came from (relative to the
    patient folder, no UIDs)."""

    contours: dict[str, list[np.ndarray]]
    file: str
    drawn_on: str


def reference_contours(patient_dir: Path, patient_id: str, sequence: str,
                       options: Optional[PrepOptions] = None) -> ReferenceContours:
    """The reference contours of ``sequence``'s series in ``patient_dir``.

    Raises:
        data_prep.types.DataPrepError: the folder has no such series or no
            delineation for it (the converter's message, naming patient and file).
        ValueError: the delineation is not an RTSTRUCT in the series' frame of
            reference (a SEG, a label map, or contours that need a registration):
            the check compares patient coordinates and does not register.
    """
    options = dataclasses.replace(options or PrepOptions(), sequences=(sequence,))
    plan = plan_patient(scan_patient(Path(patient_dir), patient_id), options, patient_id)
    source = plan.sources[sequence]
    name = source_file_name(source.file, patient_id)
    if source.rtstruct is None or source.kind == 'registered':
        how = (f'a {source.file_kind}' if source.rtstruct is None
               else f'an RTSTRUCT in another frame of reference ({source.registration})')
        raise ValueError(f'patient {patient_id}: the {sequence} delineation is {how} ({name}); '
                         'only an RTSTRUCT in the series\' own frame of reference can be '
                         'compared with a prediction')
    structure = read_structure_set(source.file, patient_id, options,
                                   plan.parsed_dataset(source.file))
    return ReferenceContours(contours_by_class(structure.rois), name, source.drawn_on)
