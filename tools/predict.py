"""MSOM risk for a new patient from DICOM alone (no contours needed).

    python tools/predict.py PATIENT_DICOM_DIR --det-checkpoint DET.pth \\
        --cls-checkpoint CLS.pth --config configs/msom_fusion.py \\
        [--clinical clinical.json] [--cutoff X | --cutoff-file F] [--seg] --out DIR \\
        [--det-score-thr THR | DET_VAL_METRICS.json] [--cam] \
        [--late-fusion FUSION_DIR --clinical-model CLINICAL/clinical_model.json]

The folder name of PATIENT_DICOM_DIR is the patient id. Writes DIR/prediction.json
(msom_score, risk_group, cutoff, the slices used with their detections in px and
patient mm), DIR/overlays/*.png and DIR/detections_rtstruct.dcm (contours on the
input series' own images, classic or enhanced multi-frame, each referencing its
image), with --seg also DIR/detections_seg.dcm (DICOM SEG of the same masks on the
input series' grid). A patient where the detector finds nothing gets a message and
exit status 2, not a number. The cut-off is --cutoff, --cutoff-file, else the
deployment cut-off (training patients' end-to-end scores) in the deployment.json
that tools/test_end_to_end.py wrote beside the classifier checkpoint, else the
contour-based one of metrics.json there (with a warning); see mmnpc.inference.cutoff.
A slice is used when a detection on it scores at least --det-score-thr, by default
the threshold the cut-off's file records (the end-to-end scores behind it used it),
else 0.5; see mmnpc.inference.det_threshold.
The detector and classifier must be of the same MR sequence.

Late fusion (an image-only classifier combined with the clinical-only model,
docs/stage2_regions.md): ``--late-fusion DIR`` (a tools/late_fusion.py output)
and ``--clinical-model`` (tools/clinical_baseline.py's clinical_model.json)
make the MSOM score the fused one: the regression of DIR/late_fusion.json on
logit(clinical-only probability of --clinical) and logit(the image model's
score), with DIR/metrics.json's cut-off (Youden on the patients it was fitted
on) unless --cutoff is given; prediction.json keeps both inputs.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from _common import headless_matplotlib

NO_TUMOUR_EXIT = 2


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='MSOM risk of one new patient')
    parser.add_argument('patient_dir', type=Path, help='folder of the patient\'s DICOM files')
    parser.add_argument('--det-checkpoint', required=True, type=Path, help='stage-1 checkpoint')
    parser.add_argument('--det-config', type=Path,
                        help='detector config (default: the one saved in the checkpoint)')
    parser.add_argument('--cls-checkpoint', required=True, type=Path, help='stage-2 checkpoint')
    parser.add_argument('--config', required=True, type=Path, help='stage-2 (msom_*) config')
    parser.add_argument('--clinical', type=Path,
                        help='JSON object of the patient\'s clinical values (clinical.csv '
                        'column names; null = unknown); required by fusion classifiers')
    parser.add_argument('--cutoff', type=float, help='risk cut-off (a number you chose)')
    parser.add_argument('--cutoff-file', type=Path,
                        help='deployment.json (tools/test_end_to_end.py) or metrics.json '
                        '(tools/test.py) holding the cut-off; default: deployment.json, else '
                        'metrics.json, beside --cls-checkpoint')
    parser.add_argument('--out', required=True, type=Path, help='output folder')
    parser.add_argument('--overwrite', action='store_true', help='replace --out if it exists')
    parser.add_argument('--seg', action='store_true',
                        help='also write detections_seg.dcm: a DICOM SEG (BINARY, one segment '
                        'per detected class) of the detections on the input series\' images')
    parser.add_argument('--det-score-thr', metavar='THR|METRICS_JSON',
                        help='a slice is used when a GTV/GTVln detection scores >= this: a '
                        'number, or a detector metrics.json of the validation patients (its '
                        'fitted slice threshold); default: the one the deployment cut-off was '
                        'fitted with, else 0.5 (see mmnpc.inference.det_threshold)')
    parser.add_argument('--coarse-step', type=int, default=4,
                        help='first look at every N-th slice (1 mm apart), then near hits (4; '
                        '1 = every slice)')
    parser.add_argument('--mapping', type=Path, help='data_prep mapping file (series names)')
    parser.add_argument('--cam', action='store_true',
                        help='also write DIR/cam/*.png: Grad-CAM of every scored slice or '
                        'window, with its mass shares in the detected GTV / GTVln / ring / '
                        'elsewhere in prediction.json (mmnpc.inference.explain)')
    parser.add_argument('--late-fusion', type=Path, metavar='FUSION_DIR',
                        help='tools/late_fusion.py output: fuse the image score with the '
                        'clinical-only model (needs --clinical-model and --clinical)')
    parser.add_argument('--clinical-model', type=Path,
                        help="tools/clinical_baseline.py's clinical_model.json (late fusion)")
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
    args = parser.parse_args()
    if (args.late_fusion is None) != (args.clinical_model is None):
        parser.error('--late-fusion and --clinical-model go together')
    if args.late_fusion is not None and args.clinical is None:
        parser.error('--late-fusion needs the patient\'s --clinical values')
    return args


def late_fusion_inputs(args: argparse.Namespace):
    """(fusion model, its cut-off, clinical model) or None; exits naming a bad file."""
    if args.late_fusion is None:
        return None
    from mmnpc.evaluation.clinical_baseline import ClinicalModel
    from mmnpc.evaluation.late_fusion import load_late_fusion
    try:
        fusion, cutoff = load_late_fusion(args.late_fusion)
        clinical_model = ClinicalModel.load(args.clinical_model)
    except (OSError, ValueError) as error:
        sys.exit(f'error: {error}')
    if fusion.coef_extra:
        sys.exit(f'error: {args.late_fusion} fuses several image models '
                 f'({sorted(fusion.coef_extra)}); tools/predict.py scores one')
    return fusion, cutoff, clinical_model


def main() -> int:
    args = parse_args()
    headless_matplotlib()
    import mmnpc  # noqa: F401  registers modules, trusted checkpoint loading
    from data_prep.options import load_options
    from mmnpc.inference.cutoff import resolve_cutoff
    from mmnpc.inference.deployment import Deployment
    from mmnpc.inference.det_threshold import threshold_for_prediction
    from mmnpc.inference.predict_patient import encode_clinical
    from mmnpc.inference.prediction_outputs import no_detection_message, write_prediction

    start = time.time()
    fusion = late_fusion_inputs(args)
    try:
        choice = resolve_cutoff(args.cutoff, args.cutoff_file, args.cls_checkpoint,
                                args.det_checkpoint)
    except ValueError as error:
        sys.exit(str(error))
    try:
        det_thr, thr_warnings = threshold_for_prediction(args.det_score_thr, choice.source,
                                                         args.det_checkpoint)
    except ValueError as error:
        sys.exit(str(error))
    for warning in (*choice.warnings, *thr_warnings):
        print(f'[predict] warning: {warning}')
    try:
        deployment = Deployment.load(args.config, args.cls_checkpoint, args.det_checkpoint,
                                     det_thr, args.det_config, args.device, args.coarse_step)
    except ValueError as error:
        sys.exit(str(error))
    detector = deployment.detector
    patient_id = args.patient_dir.resolve().name
    values = json.loads(args.clinical.read_text()) if args.clinical else None
    clinical = encode_clinical(deployment.encoder, values, patient_id,
                               deployment.needs_clinical)
    cutoff = choice.value
    if fusion is not None and args.cutoff is None:
        cutoff = fusion[1]  # the fused score's own cut-off
    print(f'[predict] slice threshold {det_thr.value:.3f} ({det_thr.source})')
    print(f'[predict] detector config: {detector.config_source} '
          f'({detector.test_cfg.rpn.max_per_img} RPN proposals per slice; --det-config to change)')
    print(f'[predict] {patient_id}: reading {deployment.options.sequence} series, detecting '
          'tumour slices')
    pred = deployment.predict(args.patient_dir, clinical, cutoff, load_options(args.mapping))
    settings = {'cutoff_source': choice.source, 'cutoff_rule': choice.rule,
                'det_score_thr': det_thr.value, 'det_score_thr_source': det_thr.source,
                'coarse_step': args.coarse_step, 'seconds': round(time.time() - start, 1)}
    if fusion is not None:  # the cut-off is the fused score's, detection or not
        settings['late_fusion'] = str(args.late_fusion)
        if args.cutoff is None:
            settings.update(cutoff_source=str(args.late_fusion / 'metrics.json'),
                            cutoff_rule=f'Youden on the {fusion[0].fit_split} patients '
                            '(late fusion)')
    if fusion is not None and pred.msom_score is not None:
        from mmnpc.inference.predict_patient import apply_late_fusion
        try:
            settings.update(apply_late_fusion(pred, fusion[0], fusion[2], values, cutoff))
        except ValueError as error:
            sys.exit(f'error: {error}')
    cams = []
    if args.cam:
        from mmnpc.inference.explain import explain_prediction
        cams = explain_prediction(pred, deployment.classifier, deployment.cfg, detector.classes,
                                  clinical)
    record = write_prediction(args.out, pred, detector.classes, cutoff, settings, args.overwrite,
                              seg=args.seg, cams=cams)
    if pred.msom_score is None:
        print(no_detection_message(pred, det_thr.value))
        return NO_TUMOUR_EXIT
    how = (f'late fusion of the image score {settings["image_score"]:.3f} and the clinical-only '
           f'score {settings["clinical_score"]:.3f}' if fusion is not None
           else f'pooled from {record["n_slices_scored"]} slice scores')
    print(f'[predict] {patient_id}: MSOM score {record["msom_score"]:.3f} '
          f'({record["risk_group"]} risk, cut-off {cutoff:.3f}), {how} '
          f'({record["n_slices_with_tumour"]} of {record["n_slices_total"]} slices hold '
          f'tumour); written to {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
