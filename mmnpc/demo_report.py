"""The demo's report: detector AP@0.5, classifier AUC with CI, baselines, end-to-end
evaluation, ROC, KM and a prediction -- each figure labelled with its split."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Optional

from mmnpc.reporting import Block, Heading, Image, Paragraph, Table, fmt, write_report

SYNTHETIC_NOTE = ('All data here are SYNTHETIC (python -m data_prep synth): the numbers show that '
                  'the pipeline runs end to end, not how well the method works on patients.')


def _json(path: Path) -> Optional[dict]:
    return json.loads(path.read_text()) if path.is_file() else None


def detector_blocks(det_dir: Path) -> list[Block]:
    """AP@0.5 per class and one ground truth | prediction picture with tumour."""
    metrics = _json(det_dir / 'metrics.json') or {}
    blocks: list[Block] = [
        Heading(f'Stage 1: GTV / GTVln detection (CE-T1WI, {metrics.get("split", "val")} '
                'patients)'),
        Table(['', 'box AP@0.5', 'mask AP@0.5', 'ground-truth instances'], [
            ['GTV', fmt(metrics.get('GTV_AP50')), fmt(metrics.get('segm_GTV_AP50')),
             fmt(metrics.get('GTV_num_gt'))],
            ['GTVln', fmt(metrics.get('GTVln_AP50')), fmt(metrics.get('segm_GTVln_AP50')),
             fmt(metrics.get('GTVln_num_gt'))],
            ['mean', fmt(metrics.get('mAP50')), fmt(metrics.get('segm_mAP50')), '']])]
    blocks += [Paragraph(f'Note: {note}') for note in metrics.get('notes', [])
               if 'test split' in note]
    pictures = sorted(det_dir.glob('*/show/*.jpg')) + sorted(det_dir.glob('*/show/*.png'))
    if pictures:
        blocks.append(Image(pictures[len(pictures) // 2],
                            'Ground truth (left) and detections (right), GTV crimson, GTVln gold'))
    return blocks


def classifier_blocks(cls_dir: Path) -> list[Block]:
    """AUC with its CI, the training cut-off and the stats at it, ROC and KM figures."""
    m = _json(cls_dir / 'metrics.json') or {}
    blocks: list[Block] = [
        Heading(f'Stage 2: MSOM prediction (CE-T1WI + clinical, {m.get("eval_split", "val")} '
                'patients, slices chosen from the contours)'),
        Table(['AUC', '95% CI', 'cut-off (train)', 'precision', 'recall', 'specificity',
               'accuracy', 'patients'],
              [[fmt(m.get('auc')), f'{fmt(m.get("auc_ci_low"))} - {fmt(m.get("auc_ci_high"))}',
                fmt(m.get('cutoff')), fmt(m.get('precision')), fmt(m.get('recall')),
                fmt(m.get('specificity')), fmt(m.get('accuracy')), fmt(m.get('n_val_patients'))]])]
    blocks += [Paragraph(f'Note: {note}') for note in m.get('notes', []) if 'test split' in note]
    if (cls_dir / 'roc.png').is_file():
        blocks.append(Image(cls_dir / 'roc.png', 'ROC of the patient scores'))
    survival = _json(cls_dir / 'survival' / 'survival.json')
    if survival:
        blocks += survival_blocks(cls_dir / 'survival', survival)
    return blocks


def survival_blocks(folder: Path, survival: dict) -> list[Block]:
    """Log-rank and hazard ratio per endpoint, and the KM figures."""
    rows = []
    for name, endpoint in survival.get('endpoints', {}).items():
        logrank, hr = endpoint.get('logrank') or {}, endpoint.get('hazard_ratio') or {}
        ci = hr.get('ci95') or [None, None]
        rows.append([name.upper(), fmt(logrank.get('chi2'), '.2f'), fmt(logrank.get('p_value')),
                     f'{fmt(hr.get("value"), ".2f")} ({fmt(ci[0], ".2f")}-{fmt(ci[1], ".2f")})'])
    blocks: list[Block] = [Heading('Survival: high vs low MSOM risk', 3),
                           Table(['endpoint', 'log-rank chi2', 'p', 'HR (95% CI)'], rows)]
    blocks += [Image(png, f'Kaplan-Meier, {png.stem[3:].upper()}')
               for png in sorted(folder.glob('km_*.png'))]
    return blocks


def end_to_end_blocks(e2e_dir: Path) -> list[Block]:
    """The deployable score beside the contour-based one, detection coverage, the
    deployment cut-off and the statistics and survival split at it."""
    m = _json(e2e_dir / 'metrics.json')
    if m is None:
        return [Heading('End-to-end evaluation'),
                Paragraph('tools/test_end_to_end.py wrote no metrics.json.')]
    split = m['eval_split']

    def auc(prefix: str) -> list[str]:
        return [fmt(m.get(f'{prefix}_auc')),
                f'{fmt(m.get(f"{prefix}_auc_ci_low"))} - {fmt(m.get(f"{prefix}_auc_ci_high"))}',
                fmt(m.get(f'{prefix}_n_val_patients'))]

    blocks: list[Block] = [
        Heading(f'End-to-end: the score a new patient gets ({split} patients)'),
        Paragraph("The detector chooses each patient's slices, as tools/predict.py does for a "
                  'new patient; the contour-based score of the same classifier is beside it. '
                  f'A slice is used when a detection scores at least {fmt(m.get("det_score_thr"))} '
                  f'({m.get("det_score_thr_source", "the default")}). '
                  f'Paired DeLong test of the difference: p = {fmt(m.get("paired_p_value"))} '
                  f'({m.get("paired_n_patients")} patients with both scores).'),
        Table(['slices chosen by', 'AUC', '95% CI', 'patients'],
              [['contours', *auc('contour')], ['detector (deployed)', *auc('end_to_end')]]),
        Table(['split', 'tumour found', 'mean slice recall', 'mean slice precision',
               'no detection'],
              [[name, fmt(m.get(f'{name}_tumour_found_share')),
                fmt(m.get(f'{name}_slice_recall_mean')),
                fmt(m.get(f'{name}_slice_precision_mean')),
                f'{m.get(f"{name}_n_no_detection")} of {m.get(f"{name}_n_patients")}']
               for name in ('train', split)]),
        Table(['deployment cut-off (train, end-to-end)', 'precision', 'recall', 'specificity',
               'accuracy'],
              [[fmt(m.get('end_to_end_cutoff')), fmt(m.get('end_to_end_precision')),
                fmt(m.get('end_to_end_recall')), fmt(m.get('end_to_end_specificity')),
                fmt(m.get('end_to_end_accuracy'))]])]
    blocks += [Paragraph(f'Note: {note}') for note in m.get('notes', [])]
    if (e2e_dir / 'roc.png').is_file():
        blocks.append(Image(e2e_dir / 'roc.png', 'ROC of the end-to-end patient scores'))
    survival = _json(e2e_dir / 'survival' / 'survival.json')
    if survival:
        blocks += survival_blocks(e2e_dir / 'survival', survival)
    return blocks


def comparison_blocks(comparison_dir: Path) -> list[Block]:
    """Every model on the same patients, with the paired DeLong p against the reference."""
    record = _json(comparison_dir / 'comparison.json')
    if record is None:
        return []
    rows = [[m['model'], fmt(m['auc']), f'{fmt(m["auc_ci_low"])} - {fmt(m["auc_ci_high"])}',
             fmt(m['difference_vs_reference']), fmt(m['p_value']), str(m['n_patients'])]
            for m in record['models']]
    return [Heading(f'Baselines ({record["eval_split"]} patients scored by every model)'),
            Paragraph(f'Paired DeLong test against {record["reference"]}; difference = '
                      f'AUC({record["reference"]}) - AUC(model). clinical_only: logistic '
                      'regression on the same encoded clinical vector, fitted on the training '
                      'patients; image_only: the classifier without the clinical vector; '
                      'max_slice: the CNN on the largest tumour slice; end_to_end: the fusion '
                      'model on the slices the detector chose.'),
            Table(['model', 'AUC', '95% CI', 'difference', 'p', 'patients'], rows)]


def prediction_blocks(predict_dir: Path) -> list[Block]:
    """The held-out patient's risk (or why there is none) and one overlay."""
    record = _json(predict_dir / 'prediction.json')
    if record is None:
        return [Heading('Prediction'), Paragraph('tools/predict.py wrote no prediction.json.')]
    blocks: list[Block] = [Heading(f'Prediction for held-out patient {record["patient_id"]} '
                                   '(DICOM only, no contours)')]
    if record['msom_score'] is None:
        return blocks + [Paragraph(record.get('message', 'no tumour detected'))]
    blocks.append(Table(['MSOM score', 'risk group', 'cut-off', 'slices with tumour',
                         'slices scored'], [[
        fmt(record['msom_score']), record['risk_group'], fmt(record['cutoff']),
        f'{record["n_slices_with_tumour"]} of {record["n_slices_total"]}',
        str(record['n_slices_scored'])]]))
    best = max(record['slices'], key=lambda s: max(d['score'] for d in s['detections']))
    blocks.append(Image(predict_dir / best['overlay'],
                        f'Detections at z = {best["z_mm"]:.1f} mm (also in detections_rtstruct.dcm)'))
    return blocks


def write_demo_report(work_dir: Path, dirs: Mapping[str, Path], predict_dir: Path,
                      minutes: float) -> tuple[Path, Path]:
    """Write WORK_DIR/report.md and report.html from the demo's output folders
    (``dirs``: det_cet1_tiny, msom_fusion_tiny, end_to_end, comparison)."""
    blocks: list[Block] = [Paragraph(SYNTHETIC_NOTE),
                           Paragraph(f'Run time: {minutes:.1f} min on CPU.')]
    blocks += detector_blocks(dirs['det_cet1_tiny']) + classifier_blocks(dirs['msom_fusion_tiny'])
    blocks += comparison_blocks(dirs['comparison']) + end_to_end_blocks(dirs['end_to_end'])
    blocks += prediction_blocks(predict_dir)
    return write_report(work_dir, blocks, 'mmnpc demo report')
