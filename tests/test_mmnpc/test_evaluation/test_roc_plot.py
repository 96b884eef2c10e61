"""roc.png: written, non-empty, a real image; a one-class split does not stop the plot."""
from __future__ import annotations

import matplotlib.image
import numpy as np
import pandas as pd

from mmnpc.evaluation import plot_roc


def _table(seed=0, n=30, val_one_class=False):
    rng = np.random.default_rng(seed)
    split = np.where(np.arange(n) < n // 2, 'train', 'val')
    label = (rng.random(n) < 0.4).astype(int)
    if val_one_class:
        label[split == 'val'] = 0
    label[:2] = (0, 1)  # train always has both classes
    return pd.DataFrame({'patient_id': [f'P{i:02d}' for i in range(n)], 'split': split,
                         'score': rng.normal(label, 1.0), 'label': label})


def test_roc_png_is_written(tmp_path):
    path = plot_roc(_table(), tmp_path / 'out' / 'roc.png', cutoff=0.3)
    assert path.stat().st_size > 10_000
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 500
    # not a blank canvas: the curves are drawn in colour
    assert (np.abs(image[..., 0] - image[..., 2]) > 0.3).mean() > 1e-4


def test_one_class_split_and_no_cutoff_still_plot(tmp_path):
    path = plot_roc(_table(val_one_class=True), tmp_path / 'roc.png', cutoff=float('nan'))
    assert path.stat().st_size > 10_000
    path = plot_roc(_table().iloc[0:0], tmp_path / 'empty.png')
    assert path.stat().st_size > 0
