"""Active learning: choosing configurations to label by the posterior variance, labelling them,
on-the-fly learning during MD, and pools of candidate structures (``gapfit.sampling``)."""
from . import sampling  # noqa: F401
from .learning import STRATEGIES, OnTheFly, label, select, uncertainty_score  # noqa: F401

__all__ = ["OnTheFly", "STRATEGIES", "label", "select", "uncertainty_score", "sampling"]
