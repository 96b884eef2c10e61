"""Benchmark Stage-1 training cost: our detector config against MMDetection's stock one.

Seconds per training iteration (forward + backward + optimizer step, the
``model.train_step`` the MMEngine runner calls) of

* ``stock``: MMDetection's ``mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py`` with 2
  classes and no pretrained download (``backbone.init_cfg=None``), its own
  optimizer settings;
* ``ours``: ``configs/det_cet1.py`` (2 classes, grey-MR normalisation, random
  init, hence no frozen stage and BatchNorm in training mode, IoU 0.5 RPN
  positives, gradient clipping);
* ``ours_stock_freezing``: ours with the stock backbone freezing
  (``frozen_stages=1``, ``norm_eval=True``), to split the difference between
  "training stem + stage 1 + BatchNorm from scratch" and everything else.

All three see the same pre-collated batches (converted synthetic slices through
our training pipeline, 512 px), the same seeds and the same learning rate
schedule position (each config's first warm-up step: lr x its LinearLR
``start_factor``). Iterations are interleaved model by model (the order rotates
every iteration). Each step is timed in wall and in CPU seconds of the process;
the headline ratio is the median over iterations of ours / stock CPU time on
the same batch. CPU time with one torch thread (the default here) is the
figure other processes disturb least: they delay a step's wall time but do not
add to its CPU time (with several threads, threads waiting for a descheduled
sibling spin and do). Peak memory is measured per variant in a separate process.
"""
from __future__ import annotations

import copy
import statistics
import time
from pathlib import Path

from common import REPO, run_in_child, shown_path

OUR_CONFIG = 'configs/det_cet1.py'
STOCK_CONFIG = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
VARIANTS = ('stock', 'ours', 'ours_stock_freezing')


# --- run in child processes ------------------------------------------------------------

def variant_config(variant: str, data_root: str) -> object:
    """The mmengine Config of one variant, pointed at ``data_root`` (converter output)."""
    from mmengine.config import Config
    from mmengine.hub import get_config

    from mmnpc.utils import set_data_root

    ours = Config.fromfile(str(REPO / OUR_CONFIG))
    set_data_root(ours, data_root)
    if variant == 'ours':
        return ours
    if variant == 'ours_stock_freezing':
        ours.model.backbone.update(frozen_stages=1, norm_eval=True)
        return ours
    if variant != 'stock':
        raise ValueError(f'unknown variant {variant!r}; expected one of {VARIANTS}')
    stock = get_config(STOCK_CONFIG)
    stock.model.backbone.init_cfg = None
    stock.model.roi_head.bbox_head.num_classes = 2
    stock.model.roi_head.mask_head.num_classes = 2
    return stock


def register_modules() -> None:
    """Register mmdet's and this project's modules (mmdet the default scope) in a child process."""
    import mmnpc  # noqa: F401 -- registers the project's modules
    from mmdet.utils import register_all_modules

    register_all_modules(init_default_scope=True)


def make_batches(data_root: str, batch_size: int, n_batches: int, seed: int) -> tuple[list, float]:
    """``n_batches`` collated training batches (our pipeline), seeded; and the
    seconds per batch it took to load them (one process, no workers)."""
    import numpy as np
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DATASETS

    cfg = variant_config('ours', data_root)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    order = np.random.default_rng(seed).permutation(len(dataset))
    needed = batch_size * n_batches
    if needed > len(dataset):
        raise ValueError(f'{needed} images needed, the dataset has {len(dataset)}')
    start = time.perf_counter()
    batches = [pseudo_collate([dataset[int(i)] for i in order[b * batch_size:(b + 1) * batch_size]])
               for b in range(n_batches)]
    return batches, (time.perf_counter() - start) / n_batches


def build_variant(variant: str, data_root: str, seed: int) -> tuple[object, object]:
    """(model in train mode, optimizer wrapper) of one variant, seeded."""
    import torch
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import MODELS

    cfg = variant_config(variant, data_root)
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    optim_cfg.optimizer.lr *= _warmup_start_factor(cfg)
    return model, build_optim_wrapper(model, optim_cfg)


def _warmup_start_factor(cfg: object) -> float:
    """start_factor of the config's LinearLR warm-up (1.0 without one)."""
    for scheduler in cfg.get('param_scheduler') or []:
        if scheduler.get('type') == 'LinearLR':
            return float(scheduler.get('start_factor', 1.0 / 3))
    return 1.0


def measure_speed(data_root: str, batch_size: int, warmup: int, iters: int, seed: int,
                  variants: list[str], threads: int) -> dict:
    """Wall and CPU seconds per training iteration of each variant, interleaved
    (module docstring); ``threads``: torch intra-op threads (0 = torch's default)."""
    import torch

    register_modules()
    if threads:
        torch.set_num_threads(threads)
    batches, load_s = make_batches(data_root, batch_size, warmup + iters, seed)
    models = {v: build_variant(v, data_root, seed) for v in variants}
    wall, cpu = {v: [] for v in variants}, {v: [] for v in variants}
    mask_rois = {v: _count_mask_rois(model) for v, (model, _) in models.items()}
    for it, batch in enumerate(batches):
        shift = it % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            model, optim = models[variant]
            data = copy.deepcopy(batch)
            torch.manual_seed(seed + it)  # same proposal / RoI sampling draws
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            model.train_step(data, optim)
            cpu[variant].append(time.process_time() - start_cpu)
            wall[variant].append(time.perf_counter() - start_wall)
    result = {
        'batch_size': batch_size, 'image_px': _image_px(batches[0]), 'warmup_iters': warmup,
        'timed_iters': iters, 'torch_threads': torch.get_num_threads(),
        'data_loading_s_per_batch': load_s,
        'mask_head_rois_per_iter': {v: counts[warmup:] for v, counts in mask_rois.items()},
        'trainable_params_m': {v: sum(p.numel() for p in m.parameters() if p.requires_grad) / 1e6
                               for v, (m, _) in models.items()},
    }
    for name, times in (('cpu', cpu), ('wall', wall)):
        timed = {v: t[warmup:] for v, t in times.items()}
        result[f'{name}_s_per_iter'] = {
            v: {'median': statistics.median(t), 'all': t} for v, t in timed.items()}
        if 'stock' in variants:
            result[f'{name}_ratio_to_stock'] = {
                v: statistics.median(a / b for a, b in zip(timed[v], timed['stock']))
                for v in variants if v != 'stock'}
    return result


def measure_memory(data_root: str, batch_size: int, iters: int, seed: int, variant: str,
                   threads: int) -> dict:
    """Train ``variant`` alone for ``iters`` iterations (its peak memory is the point)."""
    import torch

    register_modules()
    if threads:
        torch.set_num_threads(threads)
    batches, _ = make_batches(data_root, batch_size, iters, seed)
    model, optim = build_variant(variant, data_root, seed)
    start = time.perf_counter()
    for batch in batches:
        model.train_step(batch, optim)
    return {'variant': variant, 'iters': iters,
            'seconds_per_iter': (time.perf_counter() - start) / iters}


def _count_mask_rois(model: object) -> list[int]:
    """A list that receives, per training step, the number of positive RoIs the mask
    head processed (a data-dependent share of the cost: up to 128 per image)."""
    counts: list[int] = []
    model.roi_head.mask_head.register_forward_hook(
        lambda module, inputs, output: counts.append(int(inputs[0].shape[0])))
    return counts


def _image_px(batch: dict) -> list[int]:
    return [int(n) for n in batch['inputs'][0].shape[-2:]]


# --- orchestration (parent process) ----------------------------------------------------

def run(data_root: Path, batch_size: int, warmup: int, iters: int, seed: int = 0,
        threads: int = 1, memory: bool = True, log_file: Path | None = None) -> dict:
    """Speed ratios of the variants and (memory=True) the peak memory of ours and stock."""
    speed = run_in_child('bench_detector_speed:measure_speed', log_file,
                         data_root=str(data_root), batch_size=batch_size, warmup=warmup,
                         iters=iters, seed=seed, variants=list(VARIANTS), threads=threads)
    result = {'data_root': shown_path(data_root), 'our_config': OUR_CONFIG, 'stock_config': STOCK_CONFIG,
              **speed.value, 'target_ratio': 1.05}
    if memory:
        result['peak_rss_mib'] = {}
        for variant in ('ours', 'stock'):
            child = run_in_child('bench_detector_speed:measure_memory', log_file,
                                 data_root=str(data_root), batch_size=batch_size, iters=2,
                                 seed=seed, variant=variant, threads=threads)
            result['peak_rss_mib'][variant] = child.peak_rss_mib
    return result
