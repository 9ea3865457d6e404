"""Metrics: pure functions of the tidy responses table and the per-persona scores table.

Sources: Lee, Cho & Lee 2024 (inertia, steerability, the effects grid as Hedges' g, robustness checks);
Kovač et al. 2024 (Rank-Order / Ipsative stability, distance to neutral, donation); the variance
decomposition (sampling, option order, conversation, personas) and ICC(1) for essay 004's question;
the position-bias diagnostic. Every distribution metric names its reading: ``_hard`` = the answers
(chosen options), ``_soft`` = the probabilities. See docs/metrics.md.
"""

from valuescope.analysis.metrics._common import (
    METRIC_COLUMNS,
    average_ranks,
    choose_level,
    metrics_frame,
    pearson_last,
    spearman_last,
    unit_ids,
)
from valuescope.analysis.metrics.ablation import COMPARE_COLUMNS, ablation_kind, compare_runs
from valuescope.analysis.metrics.effects import (
    EFFECT_COLUMNS,
    REFERENCE_LEVELS,
    bh_qvalues,
    cohens_d,
    cohens_d_ci,
    effects_grid,
    hedges_g,
    student_t,
    welch_t,
)
from valuescope.analysis.metrics.inertia import (
    answer_distribution,
    entropy_bits,
    inertia_index,
    jsd,
    top1_share,
    top2_adjacent,
)
from valuescope.analysis.metrics.position import position_bias
from valuescope.analysis.metrics.robustness import (
    forced_free_correlation,
    item_order_correlation,
    paired_correlation,
    seed_correlation,
)
from valuescope.analysis.metrics.stability import ipsative_by_persona, neutral_profile, profile_array
from valuescope.analysis.metrics.steerability import steerability_test
from valuescope.analysis.metrics.summary import HEADLINE_COLUMNS, MetricInputs, compute_metrics, headline, metric_table
from valuescope.analysis.metrics.variance import (
    convergence_curve,
    persona_dimension_means,
    repeat_design,
    variance_components,
)

__all__ = [
    "COMPARE_COLUMNS", "EFFECT_COLUMNS", "HEADLINE_COLUMNS", "METRIC_COLUMNS", "MetricInputs", "REFERENCE_LEVELS",
    "ablation_kind", "answer_distribution", "average_ranks", "bh_qvalues", "choose_level", "cohens_d",
    "cohens_d_ci", "compare_runs", "compute_metrics", "convergence_curve", "effects_grid", "entropy_bits",
    "forced_free_correlation", "headline", "hedges_g", "inertia_index", "ipsative_by_persona",
    "item_order_correlation", "jsd", "metric_table", "metrics_frame", "neutral_profile", "paired_correlation",
    "pearson_last", "persona_dimension_means", "position_bias", "profile_array", "repeat_design",
    "seed_correlation", "spearman_last", "steerability_test", "student_t", "top1_share", "top2_adjacent",
    "unit_ids", "variance_components", "welch_t",
]
