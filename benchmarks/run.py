"""Measure what the pipeline costs: ``make bench`` (= ``python benchmarks/run.py``).

Stages (one module each, every measurement in its own process, see common.py):

* ``convert``    bench_convert.py: DICOM -> JPEG conversion speed against the I/O floor,
                 scaling with cohort size and with patient-parallel workers, memory.
* ``detector``   bench_detector_speed.py: seconds per training iteration of
                 configs/det_cet1.py against MMDetection's stock Mask R-CNN, memory.
* ``classifier`` bench_classifier.py: seconds per iteration of the tiny fusion
                 classifier and the share spent loading data, memory.
* ``predict``    bench_predict.py: seconds per patient of tools/predict.py and where
                 they go (needs the trained checkpoints of ``make demo``), memory.
* ``throughput`` bench_throughput.py: images/s of full-size detector training and
                 inference on ``--device`` (cpu, or cuda on a GPU machine), device named.

Prints a summary and writes ``benchmarks/results.json`` (``--out``); with
``--only`` the other stages' earlier results in that file are kept. The default
run takes a few minutes on 2 CPU cores; see ``--help`` for bigger runs. Data is
a SYNTHETIC cohort written under ``--work-dir``. Benchmarks are not tests:
nothing here is timed in CI.
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import bench_classifier
import bench_convert
import bench_detector_speed
import bench_predict
import bench_throughput
from common import REPO, machine, rounded

STAGES = ('convert', 'detector', 'classifier', 'predict', 'throughput')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='benchmark the mmnpc pipeline (ratios measured '
                                     'in one run, so they hold on a noisy machine)')
    parser.add_argument('--only', nargs='+', choices=STAGES, default=list(STAGES),
                        help='stages to run (default: all)')
    parser.add_argument('--work-dir', type=Path, default=REPO / 'work_dirs' / 'benchmarks',
                        help='cohorts, converted data and logs (default work_dirs/benchmarks)')
    parser.add_argument('--out', type=Path, default=REPO / 'benchmarks' / 'results.json',
                        help='results file (default benchmarks/results.json)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the cohort and training')
    conversion = parser.add_argument_group('conversion')
    conversion.add_argument('--patients', type=int, default=6,
                            help='synthetic patients; scaling also uses half as many (default 6)')
    conversion.add_argument('--workers', type=int, default=2,
                            help='patient processes of the parallel run (default 2)')
    conversion.add_argument('--repeats', type=int, default=2,
                            help='single-process conversions (and floors) to take the fastest '
                                 'of (default 2)')
    conversion.add_argument('--profile', action='store_true',
                            help='also cProfile one conversion into WORK_DIR/convert_profile.txt')
    predict = parser.add_argument_group('prediction (default: the checkpoints of make demo)')
    predict.add_argument('--predict-det-checkpoint', type=Path,
                         help='a configs/det_cet1_tiny.py checkpoint')
    predict.add_argument('--predict-cls-checkpoint', type=Path,
                         help='a configs/msom_fusion_tiny.py checkpoint')
    detector = parser.add_argument_group('detector training')
    detector.add_argument('--det-data-root', type=Path,
                          help='converter output to train on (default: the cohort converted '
                               'by the convert stage, converted first if needed)')
    detector.add_argument('--det-batch', type=int, default=2,
                          help="images per iteration (default 2, the stock config's batch)")
    detector.add_argument('--det-warmup', type=int, default=1,
                          help='untimed iterations (default 1)')
    detector.add_argument('--det-iters', type=int, default=3,
                          help='timed iterations per model (default 3)')
    detector.add_argument('--det-threads', type=int, default=1,
                          help='torch threads (default 1: CPU time is then robust to other '
                               'processes; 0 = torch default)')
    detector.add_argument('--no-det-memory', action='store_true',
                          help='skip the separate peak-memory runs of the detector')
    throughput = parser.add_argument_group(
        'full-size throughput (configs/det_cet1.py; also uses --det-batch, --det-warmup and '
        '--det-iters, for inference batches too)')
    throughput.add_argument('--device', default='cpu',
                            help="torch device: cpu (default), cuda, cuda:1, ...; on cuda the "
                                 "result is also the results file's 'gpu' entry")
    throughput.add_argument('--infer-batch', type=int, default=8,
                            help='slices per inference batch (default 8, as tools/predict.py)')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.patients < 2 or min(args.workers, args.repeats, args.det_iters, args.infer_batch) < 1:
        sys.exit('need --patients >= 2 and --workers, --repeats, --det-iters, --infer-batch >= 1')
    work_dir = args.work_dir.resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    log_file = work_dir / 'bench.log'
    previous = _previous(args.out)
    results = dict(previous) if set(args.only) != set(STAGES) else {}
    results['machine'] = machine()
    results['command'] = ' '.join(['python benchmarks/run.py', *sys.argv[1:]])
    # every section says when and where it was measured: with --only, sections of
    # earlier runs (maybe on another machine) stay beside it
    stamp = {'measured_at': datetime.datetime.now().isoformat(timespec='seconds'),
             'machine': results['machine']['cpu_model']}
    print(f'benchmark logs: {log_file}', flush=True)
    if 'convert' in args.only:
        print('[convert] synthetic cohort, floor, single process, scaling, workers ...', flush=True)
        results['conversion'] = {**stamp, **bench_convert.run(
            work_dir, args.patients, args.workers, args.seed, args.repeats, args.profile,
            log_file)}
        print(format_conversion(results['conversion']), flush=True)
    if 'detector' in args.only:
        data_root = args.det_data_root or _converted_cohort(work_dir, args, log_file)
        print(f'[detector] {bench_detector_speed.VARIANTS} on {data_root} ...', flush=True)
        results['detector_training'] = {**stamp, **bench_detector_speed.run(
            data_root, args.det_batch, args.det_warmup, args.det_iters, args.seed,
            threads=args.det_threads, memory=not args.no_det_memory, log_file=log_file)}
        print(format_detector(results['detector_training']), flush=True)
    if 'classifier' in args.only:
        data_root = args.det_data_root or _converted_cohort(work_dir, args, log_file)
        results['classifier_training'] = {**stamp, **bench_classifier.run(
            data_root, work_dir, seed=args.seed, log_file=log_file)}
        print(f'[classifier] {results["classifier_training"]}')
    if 'predict' in args.only:
        results['prediction'] = {**stamp, **bench_predict.run(
            work_dir, log_file, args.predict_det_checkpoint, args.predict_cls_checkpoint)}
        print(f'[predict] {results["prediction"]}')
    if 'throughput' in args.only:
        data_root = args.det_data_root or _converted_cohort(work_dir, args, log_file)
        print(f'[throughput] {bench_throughput.CONFIG} on {args.device} ...', flush=True)
        results['throughput'] = {**stamp, **bench_throughput.run(
            data_root, work_dir, args.device, args.det_batch, args.infer_batch,
            args.det_warmup, args.det_iters, args.seed, log_file)}
        print(format_throughput(results['throughput']), flush=True)
        if args.device.startswith('cuda'):
            results['gpu'] = results['throughput']
    results['machine']['load_average_at_end'] = machine()['load_average_1_5_15_min']
    if 'gpu' not in results:  # a GPU figure measured earlier is kept
        results['gpu'] = previous.get('gpu', 'not measured: no GPU on this machine '
                                             '(run --only throughput --device cuda on one)')
    args.out.write_text(json.dumps(rounded(results), indent=2) + '\n', encoding='utf-8')
    print(f'written {args.out}')


def _previous(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding='utf-8'))
    except (OSError, ValueError):
        return {}


def _converted_cohort(work_dir: Path, args: argparse.Namespace, log_file: Path) -> Path:
    """The convert stage's output; converted here when that stage was not run."""
    out = bench_convert.converted_dir(work_dir, args.patients)
    if not (out / 'manifest.json').is_file():
        cohort = work_dir / f'cohort_{args.patients}p_seed{args.seed}'
        bench_convert.run_in_child('bench_convert:make_cohort', log_file, cohort=str(cohort),
                                   patients=args.patients, seed=args.seed)
        bench_convert.run_in_child('bench_convert:measure_conversion', log_file,
                                   cohort=str(cohort), out=str(out), workers=args.workers)
    return out


def format_conversion(section: dict) -> str:
    cohort, floor = section['cohort'], section['floor']
    single, parallel = section['single_process'], section['parallel']
    per_patient = ', '.join(f'{n} patients {s:.2f} s' for n, s in
                            section['scaling']['wall_s_per_patient'].items())
    return '\n'.join([
        f'  cohort: {cohort["patients"]} patients x {cohort["sequences"]} sequences, '
        f'{cohort["dicom_files"]} DICOM files -> {cohort["slices_written"]} slices',
        f'  floor (read DICOM + encode JPEG): {floor["wall_s"]:.2f} s '
        f'(read {floor["read_dicom_s"]:.2f} s + encode {floor["encode_jpeg_s"]:.2f} s)',
        f'  single process: {single["wall_s"]:.2f} s, {single["slices_per_s"]:.0f} slices/s, '
        f'{single["ratio_to_floor"]:.2f}x the floor (CPU time {single["cpu_ratio_to_floor"]:.2f}x; '
        f'target <= {single["target_ratio"]:g}x), peak {single["peak_rss_mib"]:.0f} MiB',
        f'  per patient: {per_patient} '
        f'(ratio {section["scaling"]["per_patient_ratio_largest_to_smallest"]:.2f}, 1 = linear)',
        f'  {parallel["workers"]} workers: {parallel["wall_s"]:.2f} s, speed-up '
        f'{parallel["speedup_vs_single_process"]:.2f}x, peak '
        f'{parallel["peak_rss_mib_largest_process"]:.0f} MiB per process',
    ])


def format_throughput(section: dict) -> str:
    train, infer = section['train'], section['inference']
    return (f'  {section["device"]}: training {train["images_per_s"]:.2f} images/s '
            f'(batch {train["batch_size"]}, {train["s_per_iter"]:.2f} s/iter), inference '
            f'{infer["images_per_s"]:.2f} images/s (batch {infer["batch_size"]}), '
            f'peak {section["peak_rss_mib"]:.0f} MiB')


def format_detector(section: dict) -> str:
    lines = [f'  batch {section["batch_size"]} x {section["image_px"]} px, '
             f'{section["timed_iters"]} timed iterations after {section["warmup_iters"]}, '
             f'{section["torch_threads"]} torch thread(s)']
    for variant in section['cpu_s_per_iter']:
        cpu, wall = section['cpu_s_per_iter'][variant], section['wall_s_per_iter'][variant]
        text = f'  {variant:20s} {cpu["median"]:6.2f} CPU s/iter, {wall["median"]:6.2f} wall s/iter'
        if variant in section.get('cpu_ratio_to_stock', {}):
            text += (f'  ratio to stock: CPU {section["cpu_ratio_to_stock"][variant]:.3f}, '
                     f'wall {section["wall_ratio_to_stock"][variant]:.3f}')
        lines.append(text)
    lines.append(f'  target: ours <= {section["target_ratio"]}x stock')
    for variant, mib in section.get('peak_rss_mib', {}).items():
        lines.append(f'  peak memory {variant}: {mib:.0f} MiB')
    return '\n'.join(lines)


if __name__ == '__main__':
    main()
