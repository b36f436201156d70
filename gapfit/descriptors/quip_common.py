"""What QUIP's descriptors share: species arguments, the cosine cutoff, the pair plumbing of
the 2-body and 3-body descriptors and the local environments that carry QUIP's
per-descriptor covariance cutoff.

QUIP's 2-body and 3-body descriptors come with a weight f_e per environment (gap_fit's
``covariance_cutoff``) that multiplies that environment's kernel; it is kept next to the
features, with its pair gradients, so that fits and forces can use it.
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .base import Descriptor, LocalEnvironments, atomic_number


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


def species_pair_mask(z_a, z_b, z1, z2):
    """Pairs whose species (z_a, z_b) match (z1, z2) in either order; None matches any."""
    def match(values, wanted):
        return np.ones(len(values), dtype=bool) if wanted is None else values == wanted
    return (match(z_a, z1) & match(z_b, z2)) | (match(z_a, z2) & match(z_b, z1))


class QuipCutoffDescriptor(Descriptor):
    """What ``distance_2b`` and ``angle_3b`` share: a cutoff and its cosine taper (Å), species
    selections (None = QUIP's 0, any species) named by ``species_settings``, the quippy
    string of these settings and the neighbour-list pairs within the cutoff."""

    quip_name = None
    species_settings = ()

    def _set_settings(self, cutoff, cutoff_transition_width, *species):
        """Validate and store the cutoff, the taper width and the species settings (given
        in the order of ``species_settings``)."""
        what = f"QUIP {self.quip_name}"
        self.cutoff, self.cutoff_transition_width = validated_cutoff(
            cutoff, cutoff_transition_width, what)
        for name, value in zip(self.species_settings, species):
            setattr(self, name, optional_atomic_number(value, what))

    def quip_string(self):
        """The quippy ``Descriptor`` string with these settings."""
        species = " ".join(f"{name}={getattr(self, name) or 0}" for name in self.species_settings)
        return (f"{self.quip_name} cutoff={self.cutoff!r} cutoff_transition_width="
                f"{self.cutoff_transition_width!r} {species}")

    def _within_cutoff(self, atoms, neighbor_list):
        """(atomic numbers of ``atoms``, mask of the neighbour list's pairs shorter than the
        cutoff), after checking that the list belongs to ``atoms``."""
        if neighbor_list.n_atoms != len(atoms):
            raise ValueError(f"QUIP {self.quip_name} on {atoms.get_chemical_formula()}: "
                             f"neighbour list has {neighbor_list.n_atoms} atoms, structure "
                             f"has {len(atoms)}")
        return np.asarray(atoms.numbers), neighbor_list.distances < self.cutoff


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
