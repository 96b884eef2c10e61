"""Draw Kaplan-Meier curves of the risk groups with 95 % bands and a number-at-risk table.

The table under the axis (lifelines ``add_at_risk_counts``) gives, at every
12-month tick, the patients still at risk and the cumulative events and
censorings of each group. A dotted line marks the survival horizon (36 months).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from lifelines import KaplanMeierFitter
from lifelines.plotting import add_at_risk_counts

GROUP_COLOURS: dict[str, str] = {'high': 'tab:red', 'low': 'tab:blue'}
GROUP_LABELS: dict[str, str] = {'high': 'High MSOM risk', 'low': 'Low MSOM risk'}
TICK_MONTHS = 12.0


def plot_km(fitters: dict[str, KaplanMeierFitter], out_stem: Path, *, title: str,
            legend_text: str, horizon_months: float) -> list[Path]:
    """Write ``out_stem``.png and .pdf; return their paths.

    fitters: group ('high'/'low') -> fitted KaplanMeierFitter (empty groups left
    out); at least one is needed. legend_text: statistics printed in the plot
    (log-rank p, hazard ratio). Times are months.
    """
    from matplotlib import pyplot as plt  # add_at_risk_counts draws through pyplot

    if not fitters:
        raise ValueError(f'{out_stem}: no group to plot')
    fig, ax = plt.subplots(figsize=(7.0, 6.0))
    try:
        last = max(float(kmf.timeline.max()) for kmf in fitters.values())
        for group, kmf in fitters.items():
            kmf.plot_survival_function(ax=ax, ci_show=True, show_censors=True,
                                       color=GROUP_COLOURS.get(group),
                                       label=f'{GROUP_LABELS.get(group, group)} '
                                             f'(n={int(kmf.event_table["at_risk"].iloc[0])})')
        ax.axvline(horizon_months, color='grey', linestyle=':', linewidth=1)
        ax.set_xlim(0, max(last, horizon_months) * 1.02)
        ax.set_xticks(np.arange(0, max(last, horizon_months) + 1e-9, TICK_MONTHS))
        ax.set_ylim(0, 1.02)
        ax.set_xlabel('Months')
        ax.set_ylabel('Survival probability')
        ax.set_title(title)
        ax.text(0.02, 0.03, legend_text, transform=ax.transAxes, fontsize=9, va='bottom',
                bbox={'boxstyle': 'round', 'facecolor': 'white', 'alpha': 0.8})
        ax.legend(loc='upper right', fontsize=9)
        add_at_risk_counts(*fitters.values(), ax=ax, fig=fig,
                           labels=[GROUP_LABELS.get(g, g) for g in fitters])
        fig.tight_layout()
        paths = [Path(f'{out_stem}.png'), Path(f'{out_stem}.pdf')]
        for path in paths:
            fig.savefig(path, dpi=150)
    finally:
        plt.close(fig)
    return paths
