"""Known truth: the synthetic model's ground truth, simulation and power analysis."""
