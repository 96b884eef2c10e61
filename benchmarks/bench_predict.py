"""Prediction for a new patient (issue item 4): seconds per patient and where they go.

Times the steps of ``tools/predict.py`` for one synthetic patient (one sequence,
whole volume, CPU) in a child process: loading + 1 mm resampling of the DICOM
series, the detector's coarse-to-fine slice search, the classifier, and
writing outputs (JSON, overlays, RTSTRUCT); the detector's cost of looking at
*every* slice is measured too, so the saving of the coarse pass is a ratio
from the same run. The full-size configs (512 px) are timed per slice with
random weights in a second child process (no full-size checkpoint can be
trained on a CPU) and scaled by the CPU run's slice counts. Needs trained CPU
checkpoints (a detector that finds tumour): by default those of ``make demo``
(work_dirs/demo), else reports why it cannot run. Peak memory comes from ``common.run_in_child``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from bench_throughput import random_weights_detector
from common import REPO, run_in_child, shown_path

DEMO = REPO / 'work_dirs' / 'demo'
DET_CONFIG = 'configs/det_cet1_cpu.py'  # make demo's detector
CLS_CONFIG = 'configs/msom_fusion_tiny.py'
FULL_CONFIGS = ('configs/det_cet1.py', 'configs/msom_cet1.py')  # 512 px; fusion costs the same


def _checkpoint(folder: Path) -> Path | None:
    marker = folder / 'last_checkpoint'
    return Path(marker.read_text().strip()) if marker.is_file() else None


def measure(patient_dir: str, det_checkpoint: str, cls_checkpoint: str, clinical_json: str,
            out_dir: str) -> dict:
    """Child process: time each step of one prediction (seconds of wall time)."""
    import torch
    from mmengine.config import Config

    import mmnpc  # noqa: F401
    from data_prep.options import PrepOptions
    from mmnpc.inference.predict_patient import (PatientPrediction, PredictOptions,
                                                 encode_clinical, find_tumour_slices,
                                                 load_series, score_slices, slices_to_score,
                                                 with_scores)
    from mmnpc.inference.prediction_outputs import write_prediction
    from mmnpc.inference.slice_detector import SliceDetector
    from mmnpc.models import init_msom_classifier

    times: dict[str, float] = {}
    start = time.perf_counter()
    cfg = Config.fromfile(str(REPO / CLS_CONFIG))
    classifier, encoder = init_msom_classifier(cfg, cls_checkpoint)
    # the config as it is now, not the one saved in the checkpoint: its test-time
    # settings (proposals, detections kept) are what is being measured
    detector = SliceDetector(Path(det_checkpoint), REPO / DET_CONFIG, score_thr=0.5)
    times['load_models_s'] = time.perf_counter() - start
    patient = Path(patient_dir)
    t = time.perf_counter()
    prepared, files = load_series(patient, patient.name, PrepOptions(), 'cet1')
    times['read_and_resample_s'] = time.perf_counter() - t
    images = [s.image for s in prepared.slices]
    t = time.perf_counter()
    detector.detect(images[:1])  # first call: one-time set-up, paid once per process
    times['warm_up_s'] = time.perf_counter() - t
    options = PredictOptions()
    t = time.perf_counter()
    found, looked = find_tumour_slices(images, detector, options)
    times['detect_coarse_to_fine_s'] = time.perf_counter() - t
    clinical = encode_clinical(encoder, json.loads(Path(clinical_json).read_text()), patient.name,
                               classifier.num_clinical > 0)
    pred = PatientPrediction(patient.name, prepared, files, found, tuple(looked))
    t = time.perf_counter()
    chosen = slices_to_score(found, cfg)
    if chosen:
        scores = score_slices([images[i] for i in chosen], classifier, cfg, clinical)
        with_scores(pred, dict(zip(chosen, scores)), cutoff=0.5)
    times['classify_s'] = time.perf_counter() - t
    t = time.perf_counter()
    write_prediction(Path(out_dir), pred, detector.classes, 0.5, {}, overwrite=True)
    times['write_outputs_s'] = time.perf_counter() - t
    per_patient = time.perf_counter() - start - times['load_models_s'] - times['warm_up_s']
    t = time.perf_counter()
    detector.detect(images)  # every slice: what the coarse pass saves
    times['detect_every_slice_s'] = time.perf_counter() - t
    return {**{k: round(v, 2) for k, v in times.items()},
            'seconds_per_patient': round(per_patient, 2), 'n_slices': len(images),
            'n_slices_looked_at': len(looked), 'n_slices_with_tumour': len(found),
            'n_slices_scored': len(chosen),
            'torch_threads': torch.get_num_threads()}


def measure_full_size(patient_dir: str, work_dir: str, n_slices: int = 8) -> dict:
    """Child process: seconds per slice of the full-size (512 px) detector and classifier.

    No full-size checkpoints exist on a CPU machine, so both run with random
    weights: the cost of a slice does not depend on the weights, except that
    masks are computed only for detections (few per slice once trained).
    """
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import mmnpc  # noqa: F401
    from data_prep.options import PrepOptions
    from mmdet.registry import MODELS
    from mmnpc.inference.predict_patient import load_series, score_slices

    patient = Path(patient_dir)
    prepared, _ = load_series(patient, patient.name, PrepOptions(), 'cet1')
    middle = len(prepared.slices) // 2
    images = [s.image for s in prepared.slices[middle - n_slices // 2:][:n_slices]]
    det_cfg, cls_cfg = (Config.fromfile(str(REPO / c)) for c in FULL_CONFIGS)
    init_default_scope('mmdet')
    detector = random_weights_detector(MODELS.build(det_cfg.model), FULL_CONFIGS[0],
                                       Path(work_dir))
    cls_cfg.model.det_checkpoint = None
    classifier = MODELS.build(cls_cfg.model).eval()
    seconds = {}
    for name, step in (('detect', lambda: detector.detect(images)),
                       ('classify', lambda: score_slices(images, classifier, cls_cfg, None))):
        step()  # warm-up
        start = time.perf_counter()
        step()
        seconds[name] = (time.perf_counter() - start) / len(images)
    return {'detect_s_per_slice': round(seconds['detect'], 3),
            'classify_s_per_slice': round(seconds['classify'], 3), 'slices_timed': len(images),
            'torch_threads': torch.get_num_threads()}


def run(work_dir: Path, log_file: Path | None = None, det_checkpoint: Path | None = None,
        cls_checkpoint: Path | None = None) -> dict:
    """Prediction cost per patient with the demo's checkpoints (or the ones given).

    The patient and its clinical values are the demo's held-out patient either way;
    given checkpoints must be of ``DET_CONFIG`` / ``CLS_CONFIG``.
    """
    det = det_checkpoint or _checkpoint(DEMO / 'detector')
    cls = cls_checkpoint or _checkpoint(DEMO / 'msom_fusion_tiny')
    clinical = sorted(DEMO.glob('clinical_*.json'))
    if det is None or cls is None or not clinical:
        return {'status': 'not run', 'why': 'needs the trained checkpoints of `make demo` '
                '(work_dirs/demo); run it first'}
    patient_id = clinical[0].stem[len('clinical_'):]
    child = run_in_child('bench_predict:measure', log_file,
                         patient_dir=str(DEMO / 'cohort' / patient_id), det_checkpoint=str(det),
                         cls_checkpoint=str(cls), clinical_json=str(clinical[0]),
                         out_dir=str(Path(work_dir) / 'predict_out'))
    value = child.value
    value['coarse_to_fine_speedup'] = round(
        value['detect_every_slice_s'] / max(value['detect_coarse_to_fine_s'], 1e-9), 2)
    full = run_in_child('bench_predict:measure_full_size', log_file,
                        patient_dir=str(DEMO / 'cohort' / patient_id), work_dir=str(work_dir))
    return {'configs': [DET_CONFIG, CLS_CONFIG],
            'checkpoints': [shown_path(det), shown_path(cls)], 'patient': patient_id, **value,
            'target_s_per_patient_tiny': 60, 'peak_rss_mib': round(child.peak_rss_mib, 1),
            'full_size': _full_size(full.value, value, full.peak_rss_mib)}


def _full_size(per_slice: dict, tiny: dict, peak_rss_mib: float) -> dict:
    """Full-size seconds per patient: measured per-slice costs x the tiny run's slice counts
    (the full-size classifier config scores every slice with tumour: no per-patient cap)."""
    estimate = (tiny['read_and_resample_s'] + tiny['write_outputs_s']
                + per_slice['detect_s_per_slice'] * tiny['n_slices_looked_at']
                + per_slice['classify_s_per_slice'] * tiny['n_slices_with_tumour'])
    return {'configs': list(FULL_CONFIGS), 'weights': 'random init (cost only)', **per_slice,
            'estimated_seconds_per_patient': round(estimate, 1),
            'peak_rss_mib': round(peak_rss_mib, 1)}
