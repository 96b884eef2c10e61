"""Full-size detector throughput on one device: training and inference images per second.

The figure the issue asks for from a GPU machine, measured the same way on any
device (``--device cuda``, ``cuda:1``, ``cpu``), with the device named in the
result: ``configs/det_cet1.py`` at 512 px, random init (nothing downloaded).

* training: ``model.train_step`` (forward, backward, optimizer step, as the
  MMEngine runner calls it) on pre-collated batches of the converted cohort's
  CE-T1 slices through our training pipeline; data loading is not timed
  (classifier and detector data loading are measured in their own stages).
* inference: ``SliceDetector.detect`` as ``tools/predict.py`` runs it (test
  pipeline from in-memory slices, batches of ``--infer-batch``, score threshold
  0.5 inside the R-CNN head). With random weights no detection reaches 0.5, so
  masks -- a few per slice once trained -- are not computed: a lower bound of
  the trained detector's cost, by the mask head's share (about 0.3 % on CPU,
  see benchmarks/README.md section 4).

CUDA work is asynchronous: every timed step ends with ``torch.cuda.synchronize``.
"""
from __future__ import annotations

import time
from pathlib import Path

from common import REPO, cpu_model, run_in_child, shown_path

CONFIG = 'configs/det_cet1.py'


def device_name(device: object) -> str:
    """What ran the benchmark: the GPU's name, or the CPU model and torch threads."""
    import torch

    if device.type == 'cuda':
        return f'{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})'
    return f'{cpu_model() or "unknown CPU"}, {torch.get_num_threads()} torch threads'


def _synchronize(device: object) -> None:
    import torch

    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def measure(data_root: str, work_dir: str, device: str, batch_size: int, infer_batch: int,
            warmup: int, iters: int, seed: int) -> dict:
    """Child process: training and inference images/s of the full-size detector."""
    import torch

    from bench_detector_speed import build_variant, make_batches, register_modules

    register_modules()
    dev = torch.device(device)
    batches, _ = make_batches(data_root, batch_size, warmup + iters, seed)
    model, optim = build_variant('ours', data_root, seed)
    model.to(dev)  # parameters move in place: the optimizer keeps them
    train_s = _time_steps(lambda batch: model.train_step(batch, optim), batches, warmup, dev)
    detector = random_weights_detector(model, CONFIG, Path(work_dir), device, infer_batch)
    infer_batches = [_grey_slices(batch) for batch in
                     make_batches(data_root, infer_batch, warmup + iters, seed + 1)[0]]
    infer_s = _time_steps(detector.detect, infer_batches, warmup, dev)
    timed_slices = infer_batch * iters
    result = {
        'device': device_name(dev), 'config': CONFIG, 'weights': 'random init (cost only)',
        'image_px': [int(n) for n in batches[0]['inputs'][0].shape[-2:]],
        'train': {'batch_size': batch_size, 'warmup_iters': warmup, 'timed_iters': iters,
                  's_per_iter': train_s / iters, 'images_per_s': batch_size * iters / train_s},
        'inference': {'batch_size': infer_batch, 'warmup_batches': warmup,
                      'timed_images': timed_slices, 's_per_image': infer_s / timed_slices,
                      'score_thr': 0.5, 'images_per_s': timed_slices / infer_s},
        'torch': torch.__version__,
    }
    if dev.type == 'cuda':
        result['peak_gpu_memory_mib'] = torch.cuda.max_memory_allocated(dev) / 2**20
    return result


def _time_steps(step: object, inputs: list, warmup: int, device: object) -> float:
    """Seconds ``step`` took over ``inputs[warmup:]`` (the first ``warmup`` untimed)."""
    for item in inputs[:warmup]:
        step(item)
    _synchronize(device)
    start = time.perf_counter()
    for item in inputs[warmup:]:
        step(item)
    _synchronize(device)
    return time.perf_counter() - start


def _grey_slices(batch: dict) -> list:
    """The batch's images as uint8 H x W grey slices (the converter's JPEGs are grey)."""
    return [image[0].numpy() for image in batch['inputs']]


def random_weights_detector(model: object, config: str, work_dir: Path, device: str = 'cpu',
                            batch_size: int = 8) -> object:
    """A ``SliceDetector`` (what tools/predict.py runs, score threshold 0.5) holding
    ``model``'s weights; ``config``: the detector config, relative to the repository.
    The checkpoint it loads from is written to ``work_dir`` and removed again."""
    import torch

    from mmnpc.inference.slice_detector import SliceDetector

    checkpoint = work_dir / f'{Path(config).stem}_random_weights.pth'
    torch.save({'state_dict': {k: v.cpu() for k, v in model.state_dict().items()},
                'meta': {'dataset_meta': {'classes': ('GTV', 'GTVln')}}}, checkpoint)
    try:
        return SliceDetector(checkpoint, REPO / config, device=device, score_thr=0.5,
                             batch_size=batch_size)
    finally:
        checkpoint.unlink()


def run(data_root: Path, work_dir: Path, device: str, batch_size: int = 2, infer_batch: int = 8,
        warmup: int = 1, iters: int = 3, seed: int = 0, log_file: Path | None = None) -> dict:
    """Images/s of full-size detector training and inference on ``device``."""
    child = run_in_child('bench_throughput:measure', log_file, data_root=str(data_root),
                         work_dir=str(work_dir), device=device, batch_size=batch_size,
                         infer_batch=infer_batch, warmup=warmup, iters=iters, seed=seed)
    return {'data_root': shown_path(data_root), **child.value,
            'peak_rss_mib': round(child.peak_rss_mib, 1)}
