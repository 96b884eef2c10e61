"""Benchmark stage 1 of the pipeline: DICOM -> JPEG + COCO conversion (data_prep).

Figures, all from one run on a SYNTHETIC cohort (``data_prep.synth``):

* ``slices_per_s``: JPEG slices written per second of wall time, single process.
* ``ratio_to_floor``: conversion wall time / the I/O floor measured in the same
  run. The floor is what no converter can avoid: reading every DICOM file of
  the cohort with pydicom (pixels decoded) plus JPEG-encoding as many 512 x 512
  slices as the conversion wrote, with OpenCV at the converter's quality
  (the converter's own slices, decoded beforehand so the encoder sees the same
  content). It is measured just before and just after the conversion and
  averaged, so load from other processes affects both sides alike.
  ``cpu_ratio_to_floor`` is the same with CPU seconds (less sensitive to other
  processes, but it counts SimpleITK's second thread).
* ``scaling``: seconds per patient at half and full cohort size (linear => equal).
* ``parallel``: wall time and speed-up with ``workers`` patient processes.
* ``peak_rss_mib``: peak resident memory of the conversion process (with
  workers: of the largest single process).

Each measurement runs in its own process (benchmarks/common.py). The functions
below named ``measure_*`` / ``make_cohort`` run in that child process.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from common import ChildRun, Timer, run_in_child, shown_path

FLOOR_LABEL = 'pydicom.dcmread (pixels decoded) of every DICOM file + cv2.imencode JPEG'


# --- run in child processes ------------------------------------------------------------

def make_cohort(cohort: str, patients: int, seed: int) -> dict:
    """Write the synthetic cohort once (kept for later runs); return its size."""
    from data_prep.synth import synthesize_cohort

    folder = Path(cohort)
    if not (folder / 'clinical.csv').is_file():
        partial = folder.with_name(folder.name + '.partial')
        shutil.rmtree(partial, ignore_errors=True)
        synthesize_cohort(partial, patients, seed, progress=False)
        partial.rename(folder)
    return {'files': sum(1 for p in folder.rglob('*') if p.is_file())}


def measure_conversion(cohort: str, out: str, workers: int, profile: str | None = None) -> dict:
    """Convert ``cohort`` into ``out`` (replaced) with ``workers`` processes; time it.

    profile: write cProfile statistics (top functions by cumulative and own time)
    to this text file (single process only; profiling slows the run down).
    """
    from data_prep.convert import convert_cohort

    shutil.rmtree(out, ignore_errors=True)
    profiler = None
    if profile:
        import cProfile
        profiler = cProfile.Profile()
        profiler.enable()
    with Timer() as timer:
        summary = convert_cohort(Path(cohort), Path(out), workers=workers, progress=False)
    if profiler is not None:
        profiler.disable()
        _write_profile(profiler, Path(profile))
    slices = sum(split['images'] for sequence in summary['sequences'].values()
                 for split in sequence.values())
    return {'wall_s': timer.wall_s, 'cpu_s': timer.cpu_s, 'slices': slices, 'workers': workers,
            'patients': sum(summary['patients'].values()),
            'sequences': len(summary['sequences'])}


def measure_floor(cohort: str, converted: str) -> dict:
    """Time the I/O floor of converting ``cohort`` (see module docstring).

    converted: a conversion output of ``cohort``; its JPEGs are decoded
    (untimed) and re-encoded (timed), one at a time.
    """
    import cv2
    import pydicom

    from data_prep.coco_writer import JPEG_QUALITY
    from data_prep.discover import looks_like_dicom

    dicom_files = [p for p in sorted(Path(cohort).rglob('*'))
                   if p.is_file() and looks_like_dicom(p)]
    with Timer() as read:
        for path in dicom_files:
            dataset = pydicom.dcmread(path)
            if 'PixelData' in dataset:
                dataset.pixel_array  # noqa: B018 -- decoding is part of reading
    jpegs = sorted(Path(converted).glob('*/images/*.jpg'))
    encode = Timer()
    for path in jpegs:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise OSError(f'cannot read {path}')
        with encode:
            ok, _ = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise OSError(f'cv2.imencode failed on {path}')
    return {'dicom_files': len(dicom_files), 'jpegs': len(jpegs),
            'read_dicom_s': read.wall_s, 'encode_jpeg_s': encode.wall_s,
            'wall_s': read.wall_s + encode.wall_s, 'cpu_s': read.cpu_s + encode.cpu_s}


def _write_profile(profiler: object, path: Path) -> None:
    import io
    import pstats

    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats('cumulative').print_stats(30)
    stats.sort_stats('tottime').print_stats(25)
    path.write_text(text.getvalue(), encoding='utf-8')


# --- orchestration (parent process) ----------------------------------------------------

def run(work_dir: Path, patients: int, workers: int, seed: int = 0, repeats: int = 2,
        profile: bool = False, log_file: Path | None = None) -> dict:
    """All conversion figures (module docstring); the full-size conversion output is
    left in ``converted_dir(work_dir, patients)`` (the detector benchmark reads it).

    Floor, single-process, parallel and smaller-cohort conversions alternate
    ``repeats`` times (a floor first and last); each figure is the fastest of its
    runs, the usual estimate of the cost itself on a machine where other
    processes add random delays.
    """
    sizes = sorted({max(2, patients // 2), patients})  # a split needs 2 patients
    cohorts = {n: work_dir / f'cohort_{n}p_seed{seed}' for n in sizes}
    for n, cohort in cohorts.items():
        run_in_child('bench_convert:make_cohort', log_file, cohort=str(cohort), patients=n,
                     seed=seed)
    full, out = cohorts[patients], converted_dir(work_dir, patients)

    def convert(n: int, n_workers: int) -> ChildRun:
        target = out if n == patients else work_dir / f'converted_{n}p'
        return run_in_child('bench_convert:measure_conversion', log_file,
                            cohort=str(cohorts[n]), out=str(target), workers=n_workers)

    def floor() -> ChildRun:
        return run_in_child('bench_convert:measure_floor', log_file, cohort=str(full),
                            converted=str(out))

    convert(patients, workers)  # untimed: writes the JPEGs the floor re-encodes, warms caches
    floors, singles, parallels = [floor()], [], []
    smaller = {n: [] for n in sizes[:-1]}
    for _ in range(repeats):
        singles.append(convert(patients, 1))
        parallels.append(convert(patients, workers))
        for n, runs in smaller.items():
            runs.append(convert(n, 1))
        floors.append(floor())
    for n in smaller:
        shutil.rmtree(work_dir / f'converted_{n}p', ignore_errors=True)
    scaling = {n: min(runs, key=lambda run: run.value['wall_s'])
               for n, runs in [*smaller.items(), (patients, singles)]}
    profile_file = None
    if profile:
        profile_file = work_dir / 'convert_profile.txt'
        run_in_child('bench_convert:measure_conversion', log_file, cohort=str(full),
                     out=str(work_dir / 'converted_profile'), workers=1,
                     profile=str(profile_file))
        shutil.rmtree(work_dir / 'converted_profile', ignore_errors=True)
    return summarise(singles, floors, scaling, parallels, profile_file)


def converted_dir(work_dir: Path, patients: int) -> Path:
    """Where ``run`` leaves the converted full-size cohort."""
    return work_dir / f'converted_{patients}p'


def summarise(singles: list[ChildRun], floors: list[ChildRun], scaling: dict[int, ChildRun],
              parallels: list[ChildRun], profile_file: Path | None) -> dict:
    """The conversion section of results.json (fastest run of each kind)."""
    best = min((run.value for run in singles), key=lambda value: value['wall_s'])
    parallel = min(parallels, key=lambda run: run.value['wall_s'])
    floor = {key: min(run.value[key] for run in floors)
             for key in ('read_dicom_s', 'encode_jpeg_s', 'wall_s', 'cpu_s')}
    per_patient = {str(n): run.value['wall_s'] / run.value['patients']
                   for n, run in sorted(scaling.items())}
    sizes = sorted(scaling)
    return {
        'cohort': {'patients': best['patients'], 'sequences': best['sequences'],
                   'dicom_files': floors[0].value['dicom_files'], 'slices_written': best['slices'],
                   'source': 'SYNTHETIC (python -m data_prep synth)'},
        'floor': {'definition': FLOOR_LABEL, **floor,
                  'wall_s_all_runs': [run.value['wall_s'] for run in floors]},
        'single_process': {
            'wall_s': best['wall_s'], 'cpu_s': min(run.value['cpu_s'] for run in singles),
            'wall_s_all_runs': [run.value['wall_s'] for run in singles],
            'slices_per_s': best['slices'] / best['wall_s'],
            'ratio_to_floor': best['wall_s'] / floor['wall_s'],
            'cpu_ratio_to_floor': min(run.value['cpu_s'] for run in singles) / floor['cpu_s'],
            'target_ratio': 2.0,
            'peak_rss_mib': max(run.peak_rss_mib for run in singles),
        },
        'scaling': {
            'wall_s_per_patient': per_patient,
            'per_patient_ratio_largest_to_smallest':
                per_patient[str(sizes[-1])] / per_patient[str(sizes[0])],
        },
        'parallel': {
            'workers': parallel.value['workers'], 'wall_s': parallel.value['wall_s'],
            'cpu_s': parallel.value['cpu_s'],
            'wall_s_all_runs': [run.value['wall_s'] for run in parallels],
            'speedup_vs_single_process': best['wall_s'] / parallel.value['wall_s'],
            'slices_per_s': parallel.value['slices'] / parallel.value['wall_s'],
            'peak_rss_mib_largest_process': max(run.peak_rss_mib for run in parallels),
        },
        'profile': shown_path(profile_file) if profile_file else None,
    }
