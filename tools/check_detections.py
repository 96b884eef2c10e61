"""Did tools/predict.py find this patient's tumour? Its detections against the patient's contours.

    python tools/check_detections.py PREDICT_DIR PATIENT_DICOM_DIR [--out FILE] [--mapping F]

For a patient whose delineation exists (a held-out test patient, a demo patient),
compares PREDICT_DIR/prediction.json with the RTSTRUCT of the same series in
PATIENT_DICOM_DIR, in patient coordinates (mmnpc.evaluation.detection_check), per
class: slice recall (share of the class's contour planes with a marked slice),
slice precision (share of marked slices on a contour plane of any class) and the
in-plane distance from the best detection of the class to the contours' centroid
(median, max). Writes FILE (default PREDICT_DIR/detection_check.json); no UIDs
or names, the RTSTRUCT named by its path in the patient folder.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="a prediction's detections against the "
                                     "patient's reference contours")
    parser.add_argument('predict_dir', type=Path, help='tools/predict.py output folder')
    parser.add_argument('patient_dir', type=Path, help="the patient's DICOM folder (with its "
                        'RTSTRUCT)')
    parser.add_argument('--out', type=Path,
                        help='JSON to write (default: PREDICT_DIR/detection_check.json)')
    parser.add_argument('--mapping', type=Path, help='data_prep mapping file (series / ROI names)')
    return parser.parse_args()


def _mm(value) -> str:
    return 'n/a' if value is None else f'{value:.1f} mm'


def main() -> int:
    args = parse_args()
    from data_prep.options import load_options
    from data_prep.types import DataPrepError
    from mmnpc.evaluation.detection_check import check_prediction
    from mmnpc.evaluation.reference_contours import reference_contours

    prediction_file = args.predict_dir / 'prediction.json'
    if not prediction_file.is_file():
        sys.exit(f'no prediction.json in {args.predict_dir} (run tools/predict.py first)')
    prediction = json.loads(prediction_file.read_text())
    patient_id = prediction['patient_id']
    if args.patient_dir.resolve().name != patient_id:
        sys.exit(f'{prediction_file} is patient {patient_id}, the DICOM folder is '
                 f'{args.patient_dir.resolve().name}')
    try:
        reference = reference_contours(args.patient_dir, patient_id, prediction['sequence'],
                                       load_options(args.mapping))
    except (DataPrepError, ValueError) as error:
        sys.exit(str(error))
    record = {'patient_id': patient_id, 'sequence': prediction['sequence'],
              'reference_file': reference.file, 'reference_drawn_on': reference.drawn_on,
              'n_slices_total': prediction['n_slices_total'],
              'n_slices_looked_at': prediction['n_slices_looked_at'],
              'det_score_thr': prediction.get('det_score_thr'),
              'classes': {cls: check_prediction(prediction, reference.contours, cls)
                          for cls in sorted(reference.contours) if reference.contours[cls]}}
    out = args.out or args.predict_dir / 'detection_check.json'
    from mmnpc.utils.json_io import write_json
    write_json(out, record)
    print(f'[check] {patient_id} ({prediction["sequence"]}): {prediction["n_slices_with_tumour"]} '
          f'of {prediction["n_slices_total"]} slices marked; reference {reference.file}')
    for cls, check in record['classes'].items():
        dist = check['centroid_distance_mm']
        precision = check['slice_precision']
        print(f'[check]   {cls}: slice recall {check["slice_recall"]:.2f} '
              f'({check["n_reference_planes"]} contour planes), slice precision '
              f'{"n/a" if precision is None else f"{precision:.2f}"}, centroid distance median '
              f'{_mm(dist["median"])}, max {_mm(dist["max"])} ({dist["n"]} slices)')
    print(f'[check] written to {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
