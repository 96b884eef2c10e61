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


def _slice_score_row(name: str, metrics: dict) -> list[str]:
    scores = (metrics.get('slice_scores') or {}).get('any') or {}

    def spread(kind: str) -> str:
        return (f'{fmt(scores.get(f"{kind}_q50"), ".2f")} ({fmt(scores.get(f"{kind}_q10"), ".2f")}'
                f'-{fmt(scores.get(f"{kind}_q90"), ".2f")})')

    return [name, spread('pos'), spread('neg'), fmt(scores.get('auc')),
            f'{fmt(scores.get("n_pos"))} / {fmt(scores.get("n_neg"))}']


def detector_blocks(det_dir: Path) -> list[Block]:
    """AP@0.5 per class on the validation and test patients' slices it was tested on,
    the slice-score distributions (tumour vs tumour-free slices), and one ground
    truth | prediction picture."""
    runs = {split: _json(det_dir / split / 'metrics.json') or {} for split in ('val', 'test')}
    youden = ((runs['val'].get('slice_scores') or {}).get('any') or {}).get('youden_thr')
    blocks: list[Block] = [
        Heading('Stage 1: GTV / GTVln detection (CE-T1WI, held-out patients)'),
        Table(['patients (slices tested)', 'GTV box AP@0.5', 'GTVln box AP@0.5',
               'GTV mask AP@0.5', 'GTVln mask AP@0.5', 'GTV / GTVln instances'],
              [[m.get('split', split), fmt(m.get('GTV_AP50')), fmt(m.get('GTVln_AP50')),
                fmt(m.get('segm_GTV_AP50')), fmt(m.get('segm_GTVln_AP50')),
                f'{fmt(m.get("GTV_num_gt"))} / {fmt(m.get("GTVln_num_gt"))}']
               for split, m in runs.items()]),
        Paragraph('How sure the detector is: the best GTV/GTVln detection score of each slice, '
                  'median (10th-90th percentile), on slices with and without tumour; AUC = how '
                  'well that score tells them apart. The slice threshold used below is fitted '
                  'on the validation slices (Youden): '
                  f'{fmt(youden)}.'),
        Table(['patients (slices tested)', 'tumour slices', 'tumour-free slices',
               'AUC', 'slices (tumour / free)'],
              [_slice_score_row(m.get('split', split), m) for split, m in runs.items()])]
    pictures = sorted(det_dir.glob('test/*/show/*.jpg')) + sorted(det_dir.glob('test/*/show/*.png'))
    with_tumour = [p for p in pictures if p.stem in _tumour_images(det_dir / 'test')] or pictures
    if with_tumour:
        blocks.append(Image(with_tumour[len(with_tumour) // 2],
                            'Ground truth (left) and detections (right), GTV crimson, GTVln gold'))
    return blocks


def _tumour_images(test_dir: Path) -> set[str]:
    """File stems of the tested slices that hold tumour (from the tested COCO subset)."""
    stems = set()
    for subset in test_dir.glob('*.json'):
        if subset.name == 'metrics.json':
            continue
        coco = json.loads(subset.read_text())
        with_ann = {a['image_id'] for a in coco.get('annotations', [])}
        stems |= {Path(im['file_name']).stem for im in coco.get('images', [])
                  if im['id'] in with_ann}
    return stems


IMAGE_MODEL_TITLE = 'CE-T1WI lesion regions, image only'


def classifier_blocks(cls_dir: Path, title: str = IMAGE_MODEL_TITLE) -> list[Block]:
    """AUC with its CI, the training cut-off and the stats at it, ROC and KM figures."""
    m = _json(cls_dir / 'metrics.json') or {}
    blocks: list[Block] = [
        Heading(f'Stage 2: MSOM prediction ({title}, {m.get("eval_split", "val")} '
                'patients, lesions chosen from the contours)'),
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


def late_fusion_blocks(fusion_dir: Path) -> list[Block]:
    """The late-fused score: its regression (fitted on the validation patients), AUC with
    CI and the statistics at its cut-off, ROC."""
    m = _json(fusion_dir / 'metrics.json')
    if m is None:
        return [Heading('Late fusion'), Paragraph('tools/late_fusion.py wrote no metrics.json.')]
    blocks: list[Block] = [
        Heading(f'Late fusion: clinical-only + image-only scores ({m.get("eval_split")} '
                'patients)'),
        Paragraph('A logistic regression on the logits of the clinical-only and the image-only '
                  + ('scores' if m.get('late_fusion_weights_fitted', True) else
                     'scores with both weights fixed at 1 (too few events to estimate them) '
                     'and the intercept')
                  + f', fitted on the {m.get("late_fusion_n_fit_patients")} '
                  f'{m.get("late_fusion_fit_split")} patients '
                  f'({m.get("late_fusion_n_fit_positive")} MSOM), who chose the image model\'s '
                  'checkpoint and saw no test patient; the cut-off is Youden on them too. '
                  f'Coefficients: clinical {fmt(m.get("late_fusion_coef_clinical"), ".2f")}, '
                  f'image {fmt(m.get("late_fusion_coef_image"), ".2f")}, intercept '
                  f'{fmt(m.get("late_fusion_intercept"), ".2f")}.'),
        Table(['AUC', '95% CI', 'cut-off (val)', 'precision', 'recall', 'specificity',
               'accuracy', 'patients'],
              [[fmt(m.get('auc')), f'{fmt(m.get("auc_ci_low"))} - {fmt(m.get("auc_ci_high"))}',
                fmt(m.get('cutoff')), fmt(m.get('precision')), fmt(m.get('recall')),
                fmt(m.get('specificity')), fmt(m.get('accuracy')),
                fmt(m.get('n_val_patients'))]])]
    blocks += [Paragraph(f'Warning: {note}') for note in m.get('notes', [])
               if 'negative weight' in note]
    if (fusion_dir / 'roc.png').is_file():
        blocks.append(Image(fusion_dir / 'roc.png', 'ROC of the late-fused patient scores'))
    return blocks


CAM_GROUPS = ('true_positive', 'false_negative', 'false_positive', 'true_negative')


def cam_blocks(cam_dir: Path) -> list[Block]:
    """Where the image model looks: Grad-CAM mass shares per outcome group, montages."""
    summary = _json(cam_dir / 'cam_summary.json')
    if summary is None:
        return []
    groups = summary.get('groups', {})
    parts = summary.get('parts', ['GTV', 'GTVln', 'ring', 'elsewhere'])
    rows = [[group.replace('_', ' '), str(groups[group].get('n_patients')),
             str(groups[group].get('n_samples')),
             *[fmt((groups[group].get('mean_over_patients') or {}).get(part), '.2f')
               for part in parts]]
            for group in ('all', *CAM_GROUPS) if group in groups]
    blocks: list[Block] = [
        Heading('Where the image model looks (Grad-CAM)', 3),
        Paragraph('Grad-CAM of the image-only model (captum LayerGradCam on the pooled FPN level) '
                  f'on the lesion windows of a few {summary.get("eval_split")} patients of each '
                  'outcome group at the training cut-off; the share of each map\'s positive '
                  'mass inside the GTV, the GTVln, a ring of '
                  f'{fmt(summary.get("ring_mm"), ".0f")} mm around them and elsewhere, the mean '
                  'over patients (tools/test.py --cam; per-sample rows in '
                  'cam/cam_mass_shares.csv).'),
        Table(['patients', 'n', 'windows', *[f'{part} share' for part in parts]], rows)]
    blocks += [Image(cam_dir / f'montage_{group}.png',
                     f'{group.replace("_", " ")}: MR window, Grad-CAM heat, GTV red / GTVln '
                     'yellow outlines')
               for group in CAM_GROUPS if (cam_dir / f'montage_{group}.png').is_file()]
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
              [['contours', *auc('contour')], ['detector (deployed)', *auc('end_to_end')],
               [f'detector, intention to treat (no detection: {m.get("itt_fallback")})',
                *auc('itt')]]),
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


MODEL_DESCRIPTIONS = {
    'late_fusion': 'late_fusion: logistic regression on the clinical-only and image-only '
                   'scores, fitted on the validation patients (weights fixed at 1 when they '
                   'hold fewer than 10 events per input)',
    'clinical_only': 'clinical_only: logistic regression on the encoded clinical vector, '
                     'fitted on the training patients',
    'image_only': 'image_only: the region classifier (lesion windows, no clinical vector)',
    'early_fusion': 'early_fusion: the region classifier with the clinical vector beside the '
                    'image features before one FC',
    'whole_slice': 'whole_slice: the image-only CNN on whole slices (the design before regions)',
    'end_to_end': 'end_to_end: the image-only region classifier on the lesions the detector '
                  'found',
}


def comparison_blocks(comparison_dir: Path) -> list[Block]:
    """Every model on the same patients, with the paired DeLong p against the reference."""
    record = _json(comparison_dir / 'comparison.json')
    if record is None:
        return []
    rows = [[m['model'], fmt(m['auc']), f'{fmt(m["auc_ci_low"])} - {fmt(m["auc_ci_high"])}',
             fmt(m['difference_vs_reference']), fmt(m['p_value']), str(m['n_patients'])]
            for m in record['models']]
    present = {m['model'] for m in record['models']}
    described = '; '.join(text for name, text in MODEL_DESCRIPTIONS.items() if name in present)
    return [Heading(f'Baselines ({record["eval_split"]} patients scored by every model)'),
            Paragraph(f'Paired DeLong test against {record["reference"]}; difference = '
                      f'AUC({record["reference"]}) - AUC(model). {described}.'),
            Table(['model', 'AUC', '95% CI', 'difference', 'p', 'patients'], rows)]


def prediction_blocks(predict_dir: Path) -> list[Block]:
    """The held-out patient's risk (or why there is none), one overlay, and how its
    detections compare with its own contours (tools/check_detections.py)."""
    record = _json(predict_dir / 'prediction.json')
    if record is None:
        return [Heading('Prediction'), Paragraph('tools/predict.py wrote no prediction.json.')]
    blocks: list[Block] = [Heading(f'Prediction for held-out patient {record["patient_id"]} '
                                   '(DICOM only, no contours)')]
    if record['msom_score'] is None:
        blocks.append(Paragraph(record.get('message', 'no tumour detected')))
    else:
        fused = 'image_score' in record
        blocks.append(Table(
            ['MSOM score', 'risk group', 'cut-off', 'slices with tumour', 'slices scored',
             *(['image score', 'clinical score'] if fused else [])], [[
                fmt(record['msom_score']), record['risk_group'], fmt(record['cutoff']),
                f'{record["n_slices_with_tumour"]} of {record["n_slices_total"]}',
                str(record['n_slices_scored']),
                *([fmt(record['image_score']), fmt(record['clinical_score'])] if fused
                  else [])]]))
        if fused:
            blocks.append(Paragraph('The MSOM score is the late-fused one (tools/predict.py '
                                    f'--late-fusion {record.get("late_fusion")}).'))
    blocks += detection_check_blocks(predict_dir)
    if record['msom_score'] is not None:
        best = max(record['slices'], key=lambda s: max(d['score'] for d in s['detections']))
        blocks.append(Image(predict_dir / best['overlay'], f'Detections at z = '
                            f'{best["z_mm"]:.1f} mm (also in detections_rtstruct.dcm)'))
    return blocks


def detection_check_blocks(predict_dir: Path) -> list[Block]:
    """Slice recall / precision and centroid distance per class against the patient's
    RTSTRUCT (detection_check.json), when it was written."""
    check = _json(predict_dir / 'detection_check.json')
    if check is None:
        return []
    rows = [[cls, fmt(c['slice_recall'], '.2f'), fmt(c['slice_precision'], '.2f'),
             str(c['n_reference_planes']),
             f'{fmt(c["centroid_distance_mm"]["median"], ".1f")} / '
             f'{fmt(c["centroid_distance_mm"]["max"], ".1f")}']
            for cls, c in check['classes'].items()]
    return [Paragraph(f'Checked against the patient\'s own contours ({check["reference_file"]}, '
                      'never shown to the models; tools/check_detections.py): slice recall = share '
                      'of the contour planes with a marked slice, slice precision = share of the '
                      'marked slices lying on a contour plane of either class, distance = in-plane '
                      "distance (mm) from the class's best detection to the contours' centroid. "
                      f'The detector looked at {check["n_slices_looked_at"]} of '
                      f'{check["n_slices_total"]} slices (coarse pass, then near its hits).'),
            Table(['class', 'slice recall', 'slice precision', 'contour planes',
                   'centroid distance median / max (mm)'], rows)]


DEFAULT_DET_ITERS = 'the config\'s'  # no --det-iters: its schedule
DEFAULT_CLS_ITERS = 'the recipe\'s'  # no --cls-iters: each recipe's schedule


def settings_blocks(settings: Mapping) -> list[Block]:
    """What this run kept and traded for time (the demo's arguments)."""
    if not settings:
        return []
    skipped = [what for flag, what in (
        ('end_to_end', 'the end-to-end evaluation of every patient (--end-to-end)'),
        ('cnn_baselines', 'early fusion and the whole-slice CNN (--cnn-baselines)'))
        if not settings.get(flag)]
    return [Paragraph(
        f'Settings: {settings["patients"]} patients (validation {settings["val_fraction"]}, '
        f'test {settings["test_fraction"]}), seed {settings["seed"]}; detector '
        f'{settings.get("det_iters") or DEFAULT_DET_ITERS} iterations, tested on every {settings["val_slice_step"]}th '
        f'slice of the validation and every {settings["test_slice_step"]}th of the test '
        f'patients; stage 2 {settings.get("cls_iters") or DEFAULT_CLS_ITERS} iterations.'
        + (f' Not run, for time: {"; ".join(skipped)}.' if skipped else ''))]


def write_demo_report(work_dir: Path, dirs: Mapping[str, Path], predict_dir: Path,
                      minutes: float, settings: Optional[Mapping] = None) -> tuple[Path, Path]:
    """Write WORK_DIR/report.md and report.html from the demo's output folders
    (``dirs``: detector, msom_cet1_cpu (with cam/), late_fusion, end_to_end,
    comparison) and its ``settings`` (tools/demo.py's arguments)."""
    blocks: list[Block] = [Paragraph(SYNTHETIC_NOTE),
                           Paragraph(f'Run time: {minutes:.1f} min on CPU.'),
                           *settings_blocks(settings or {})]
    blocks += detector_blocks(dirs['detector']) + classifier_blocks(dirs['msom_cet1_cpu'])
    blocks += cam_blocks(dirs['msom_cet1_cpu'] / 'cam')
    blocks += late_fusion_blocks(dirs['late_fusion'])
    blocks += comparison_blocks(dirs['comparison'])
    if (dirs['end_to_end'] / 'metrics.json').is_file():
        blocks += end_to_end_blocks(dirs['end_to_end'])
    blocks += prediction_blocks(predict_dir)
    return write_report(work_dir, blocks, 'mmnpc demo report')
