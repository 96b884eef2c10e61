"""ROC curves of the training and validation patients, AUC + CI in the legend, cut-off marked."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from .binary_stats import binary_classification_report, delong_auc_ci, has_both_classes

SPLIT_COLOURS = {'train': 'tab:blue', 'val': 'tab:red', 'test': 'tab:green'}


def plot_roc(table: pd.DataFrame, out_file: Path, cutoff: Optional[float] = None,
             level: float = 0.95, splits: Sequence[str] = ('train', 'val'),
             eval_split: str = 'val') -> Path:
    """Draw one ROC curve per split of a patient table and save it as an image.

    Args:
        table: one row per patient with ``split``, ``score``, ``label`` (0/1).
        out_file: image path (format from the suffix, e.g. ``roc.png``).
        cutoff: the cut-off to mark on every curve (None or NaN: no marker).
        level: confidence level of the DeLong interval shown in the legend.
        splits: the splits to draw, in order; one without both classes gets a
            legend line saying its AUC is undefined instead of a curve.
        eval_split: the split drawn solid (the others dashed).

    Returns:
        ``out_file`` as a Path.
    """
    figure = Figure(figsize=(5.5, 5.5))
    axes = figure.subplots()
    axes.plot([0, 1], [0, 1], color='0.7', linestyle=':', linewidth=1, label='chance')
    marked = False
    for split in splits:
        patients = table[table['split'] == split]
        colour = SPLIT_COLOURS.get(split)
        if not has_both_classes(patients['label']):
            axes.plot([], [], color=colour or 'k', linestyle='none',
                      label=f'{split} (n={len(patients)}): AUC undefined (one class)')
            continue
        fpr, tpr, _ = roc_curve(patients['label'], patients['score'], drop_intermediate=False)
        interval = delong_auc_ci(patients['score'], patients['label'], level)
        ci = ('' if math.isnan(interval.ci_low) else
              f', {level:.0%} CI {interval.ci_low:.3f}-{interval.ci_high:.3f}')
        line, = axes.plot(fpr, tpr, color=colour, linestyle='-' if split == eval_split else '--',
                          label=f'{split} (n={len(patients)}): AUC {interval.auc:.3f}{ci}')
        if cutoff is not None and math.isfinite(cutoff):
            stats = binary_classification_report(patients['score'], patients['label'], cutoff)
            axes.plot(1 - stats['specificity'], stats['recall'], marker='o', markersize=8,
                      markerfacecolor='none', markeredgewidth=2, color=line.get_color(),
                      linestyle='none')
            marked = True
    if marked:  # one legend entry for the markers of all curves
        axes.plot([], [], marker='o', markerfacecolor='none', markeredgewidth=2, color='k',
                  linestyle='none', label=f'cut-off {cutoff:.4g} (score >= cut-off: high risk)')
    axes.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), aspect='equal',
             xlabel='1 - specificity (false-positive rate)',
             ylabel='sensitivity (true-positive rate)',
             title='Patient-level ROC (DeLong CI)')
    axes.legend(loc='lower right', fontsize='small')
    figure.tight_layout()
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_file, dpi=150)
    return out_file
