"""Metrics: pure functions of the tidy responses table and the per-persona scores table.

Sources: Lee, Cho & Lee 2024 (inertia, steerability, Cohen's d grid, robustness checks);
Kovač et al. 2024 (Rank-Order / Ipsative stability, distance to neutral, donation); the
within/between variance split and ICC(1) for the run-to-run question. See docs/metrics.md.
"""

from valuescope.metrics._common import METRIC_COLUMNS, average_ranks, pearson_last, spearman_last
from valuescope.metrics.effects import EFFECT_COLUMNS, bh_qvalues, cohens_d, effects_grid, welch_t
from valuescope.metrics.inertia import (
    answer_distribution,
    entropy_bits,
    inertia_index,
    jsd,
    steerability_permutation,
    top1_share,
    top2_adjacent,
)
from valuescope.metrics.robustness import (
    forced_free_correlation,
    item_order_correlation,
    paired_correlation,
    seed_correlation,
)
from valuescope.metrics.stability import ipsative_by_persona, neutral_profile, profile_array
from valuescope.metrics.summary import HEADLINE_COLUMNS, compute_metrics, headline
from valuescope.metrics.variance import convergence_curve, persona_dimension_means, variance_components

__all__ = [
    "EFFECT_COLUMNS", "HEADLINE_COLUMNS", "METRIC_COLUMNS", "answer_distribution", "average_ranks",
    "bh_qvalues", "cohens_d", "compute_metrics", "convergence_curve", "effects_grid", "entropy_bits",
    "forced_free_correlation", "headline", "inertia_index", "ipsative_by_persona", "item_order_correlation",
    "jsd", "neutral_profile", "paired_correlation", "pearson_last", "persona_dimension_means",
    "profile_array", "seed_correlation", "spearman_last", "steerability_permutation", "top1_share",
    "top2_adjacent", "variance_components", "welch_t",
]
