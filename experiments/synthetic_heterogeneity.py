"""Is one slice an oracle? What the generator's images show of its latents (a script).

For each generator version, renders ``--patients`` synthetic patients (no DICOM
written) and measures the CE-T1 heterogeneity (SD / mean of the signal inside
the contours, one voxel in from the edge) of

* one GTV slice drawn at random per patient, and the mean over the GTV's slices,
  each ranked against the primary-tumour latent ``z_img`` (Spearman);
* all node voxels, ranked against the nodal latent ``z_node`` (version 2).

Version 1 draws the same appearance on every slice, so one slice ranks the
patients almost as well as the whole tumour; version 2 lets each slice depart
from its tumour (``data_prep/synth.py``).

    python experiments/synthetic_heterogeneity.py [--patients 30 --seed 5] [--planned 1500]

It also prints, on ``--planned`` patients planned without images, the
prevalence and each latent's AUC per version.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

MEDIUM = dict(matrix=64, pixel_mm=2.5, n_slices=16, slice_mm=5.0)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='per-slice vs per-tumour image signal')
    parser.add_argument('--patients', type=int, default=30)
    parser.add_argument('--seed', type=int, default=5)
    parser.add_argument('--planned', type=int, default=1500,
                        help='patients planned (no images) for the latents\' AUCs')
    parser.add_argument('--planned-seed', type=int, default=11)
    return parser.parse_args(argv)


def latent_aucs(patients: int, seed: int, version: int) -> dict:
    """Prevalence and each latent's AUC against MSOM on planned patients (cheap)."""
    from sklearn.metrics import roc_auc_score

    from data_prep.synth import plan_cohort
    plans = plan_cohort(patients, seed, generator_version=version)
    labels = [int(p.clinical['msom']) for p in plans]
    return {'prevalence': float(np.mean(labels)),
            **{k: roc_auc_score(labels, [getattr(p, k) for p in plans])
               for k in ('z_img', 'z_node', 'image_risk', 'clinical_score', 'oracle_risk')}}


def heterogeneity(volume: np.ndarray, mask: np.ndarray) -> float:
    values = volume[mask]
    return float(values.std() / values.mean()) if values.size else float('nan')


def measure(version: int, patients: int, seed: int) -> dict:
    from scipy.ndimage import binary_erosion
    from scipy.stats import spearmanr

    from data_prep.rasterize import contours_to_mask
    from data_prep.synth import GTV_ALIASES, plan_cohort, patient_rois, render_patient
    from data_prep.types import Volume

    z_img, one, every, z_node, nodes = [], [], [], [], []
    for plan in plan_cohort(patients, seed, generator_version=version, **MEDIUM):
        cet1 = render_patient(plan, np.random.default_rng(0))['cet1']
        grid = Volume(cet1, plan.grid.spacing, plan.grid.origin)
        rois = patient_rois(plan)
        inner = np.stack([binary_erosion(m) for m in contours_to_mask(
            [c for name in rois if name in GTV_ALIASES for c in rois[name]], grid)])
        per_slice = [heterogeneity(cet1[k], inner[k]) for k in range(len(inner))
                     if inner[k].sum() >= 8]
        if not per_slice:
            continue  # a tumour too small for this grid after the edge is removed
        z_img.append(plan.z_img)
        one.append(per_slice[np.random.default_rng(plan.index).integers(len(per_slice))])
        every.append(float(np.mean(per_slice)))
        node_mask = contours_to_mask([c for name in rois if name.upper().startswith('GTV')
                                      and name not in GTV_ALIASES for c in rois[name]], grid)
        z_node.append(plan.z_node)
        nodes.append(heterogeneity(cet1, np.stack([binary_erosion(m) for m in node_mask])))
    seen = ~np.isnan(nodes)  # nodes too small for the grid once their edge is removed
    return {'n_patients': len(z_img), 'n_node_patients': int(seen.sum()), 'one_slice': spearmanr(z_img, one).statistic,
            'all_slices': spearmanr(z_img, every).statistic,
            'nodes': (spearmanr(np.asarray(z_node)[seen], np.asarray(nodes)[seen]).statistic
                      if version >= 2 else float('nan'))}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    print(f'{args.patients} patients (seed {args.seed}), CE-T1 heterogeneity, Spearman rho')
    print('| generator version | one GTV slice vs z_img | mean over GTV slices vs z_img '
          '| nodes vs z_node |\n|---|---|---|---|')
    for version in (1, 2):
        r = measure(version, args.patients, args.seed)
        print(f'| {version} ({r["n_patients"]} patients) | {r["one_slice"]:.2f} | {r["all_slices"]:.2f} | '
              + ('-' if np.isnan(r['nodes']) else f'{r["nodes"]:.2f} ({r["n_node_patients"]})')
              + ' |')
    print(f'\n{args.planned} planned patients (seed {args.planned_seed}), AUC of each latent')
    print('| version | prevalence | z_img | z_node | image_risk | clinical_score | oracle_risk |'
          '\n|---|---|---|---|---|---|---|')
    for version in (1, 2):
        r = latent_aucs(args.planned, args.planned_seed, version)
        print(f'| {version} | ' + ' | '.join(f'{v:.2f}' for v in r.values()) + ' |')


if __name__ == '__main__':
    main()
