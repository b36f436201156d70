"""What QUIP's descriptors share: species arguments, the cosine cutoff and the local
environments that carry QUIP's per-descriptor covariance cutoff.

QUIP's 2-body and 3-body descriptors come with a weight f_e per environment (gap_fit's
``covariance_cutoff``) that multiplies that environment's kernel; it is kept next to the
features, with its pair gradients, so that fits and forces can use it.
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np
from ase.data import atomic_numbers as _ATOMIC_NUMBERS
from ase.data import chemical_symbols as _CHEMICAL_SYMBOLS

from .base import LocalEnvironments


def atomic_number(species, what):
    """Atomic number of a chemical symbol or a positive integer; ValueError naming ``what``."""
    if isinstance(species, str):
        if species not in _ATOMIC_NUMBERS or species == "X":
            raise ValueError(f"{what}: unknown chemical symbol {species!r}")
        return _ATOMIC_NUMBERS[species]
    number = int(species)
    if number != species or not 1 <= number < len(_CHEMICAL_SYMBOLS):
        raise ValueError(f"{what}: {species!r} is not an atomic number")
    return number


def optional_atomic_number(species, what):
    """None (QUIP's wild card, Z=0) or an atomic number."""
    if species is None or (not isinstance(species, str) and species == 0):
        return None
    return atomic_number(species, what)


def validated_cutoff(cutoff, width, what):
    """(cutoff, width) as floats, with 0 < cutoff and 0 <= width <= cutoff (Å)."""
    cutoff = float(cutoff)
    width = float(width)
    if not cutoff > 0:
        raise ValueError(f"{what}: cutoff must be > 0 Å, got {cutoff}")
    if not 0 <= width <= cutoff:
        raise ValueError(f"{what}: cutoff_transition_width must be in [0, cutoff = {cutoff}] Å, "
                         f"got {width}")
    return cutoff, width


@dataclass
class CutoffLocalEnvironments(LocalEnvironments):
    """LocalEnvironments plus QUIP's covariance cutoff of each environment.

    Attributes (beyond LocalEnvironments)
    ----------
    covariance_cutoff : (n_envs,) float64, dimensionless weight f_e in [0, 1] by which
        gap_fit multiplies the environment's kernel (its local energy is f_e k(q_e, ·)).
    pair_cutoff_gradients : (n_pairs, 3) float64 or None, ∂f_e/∂r_image per Å for every
        pair row (present with gradients).
    """

    covariance_cutoff: Optional[np.ndarray] = None
    pair_cutoff_gradients: Optional[np.ndarray] = None
