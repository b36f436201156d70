"""QUIP's ``distance_2b`` descriptor: one environment per ordered pair within the cutoff,
its feature the distance, with QUIP's covariance cutoff (cosine taper) as a weight.

Equals ``quippy.descriptors.Descriptor("distance_2b ...")`` (quippy-ase 0.10.3): every
ordered pair (i, j') with r < cutoff is a descriptor of centre i (so an unordered pair
appears twice), selected by the species pair {Z1, Z2} in either order (None/0 = any),
covariance_cutoff = f(r), QUIP's cosine cutoff over the last ``cutoff_transition_width`` Å.
"""
import numpy as np

from .base import Descriptor
from .numerics import cosine_cutoff
from .quip_common import (CutoffLocalEnvironments, optional_atomic_number,
                          validated_cutoff)


def species_pair_mask(z_a, z_b, z1, z2):
    """Pairs whose species (z_a, z_b) match (z1, z2) in either order; None matches any."""
    def match(values, wanted):
        return np.ones(len(values), dtype=bool) if wanted is None else values == wanted
    return (match(z_a, z1) & match(z_b, z2)) | (match(z_a, z2) & match(z_b, z1))


class QuipDistance2bDescriptor(Descriptor):
    """QUIP ``distance_2b``: feature r (Å) per ordered pair, weight f(r) per pair.

    Parameters
    ----------
    cutoff : float, Å. cutoff_transition_width : float, Å (QUIP's default 0.5).
    Z1, Z2 : atomic numbers or symbols of the two species, or None (QUIP's 0, any).

    Attributes
    ----------
    cutoff (Å), n_features = 1. All environments share channel 0: one QUIP descriptor is
    one GP (use one descriptor per species pair for separate ones).
    ``compute`` returns CutoffLocalEnvironments with ``covariance_cutoff`` f(r) and, with
    gradients, ``pair_cutoff_gradients`` ∂f/∂r_j'.
    """

    def __init__(self, cutoff, cutoff_transition_width=0.5, Z1=None, Z2=None):
        what = "QUIP distance_2b"
        self.cutoff, self.cutoff_transition_width = validated_cutoff(
            cutoff, cutoff_transition_width, what)
        self.Z1 = optional_atomic_number(Z1, what)
        self.Z2 = optional_atomic_number(Z2, what)

    @property
    def n_features(self):
        return 1

    def quip_string(self):
        """The quippy ``Descriptor`` string with these settings."""
        return (f"distance_2b cutoff={self.cutoff!r} cutoff_transition_width="
                f"{self.cutoff_transition_width!r} Z1={self.Z1 or 0} Z2={self.Z2 or 0}")

    def _pairs(self, atoms, neighbor_list):
        if neighbor_list.n_atoms != len(atoms):
            raise ValueError(f"QUIP distance_2b on {atoms.get_chemical_formula()}: neighbour "
                             f"list has {neighbor_list.n_atoms} atoms, structure has "
                             f"{len(atoms)}")
        numbers = np.asarray(atoms.numbers)
        keep = (neighbor_list.distances < self.cutoff) & species_pair_mask(
            numbers[neighbor_list.centers], numbers[neighbor_list.neighbors], self.Z1, self.Z2)
        return (neighbor_list.centers[keep], neighbor_list.neighbors[keep],
                np.ascontiguousarray(neighbor_list.vectors[keep], dtype=np.float64),
                neighbor_list.distances[keep])

    def compute(self, atoms, neighbor_list, gradients=False):
        """One environment per selected ordered pair (centre = its first atom)."""
        centers, neighbors, vectors, distances = self._pairs(atoms, neighbor_list)
        weight, slope = cosine_cutoff(distances, self.cutoff, self.cutoff_transition_width)
        environments = CutoffLocalEnvironments(
            features=distances[:, None].copy(), center_atoms=centers.astype(np.int64),
            channels=np.zeros(len(centers), dtype=np.int64), covariance_cutoff=weight)
        if gradients:
            units = vectors / distances[:, None]
            environments.pair_envs = np.arange(len(centers), dtype=np.int64)
            environments.pair_neighbors = neighbors.astype(np.int64)
            environments.pair_vectors = vectors
            environments.pair_gradients = units[:, :, None].copy()
            environments.pair_cutoff_gradients = units * slope[:, None]
        return environments

    def backward(self, atoms, neighbor_list, d_energy_d_features, d_energy_d_cutoff=None):
        """∂E/∂(pair vector) (n_pairs, 3) in eV/Å from ∂E/∂r (n_envs, 1) in eV/Å and,
        optionally, ∂E/∂f (n_envs,) in eV. Returns (pair_envs, pair_neighbors,
        pair_vectors, gradient)."""
        centers, neighbors, vectors, distances = self._pairs(atoms, neighbor_list)
        d_energy_d_features = np.asarray(d_energy_d_features, dtype=np.float64)
        if d_energy_d_features.shape != (len(centers), 1):
            raise ValueError(f"QUIP distance_2b backward on {atoms.get_chemical_formula()}: "
                             f"d_energy_d_features has shape {d_energy_d_features.shape}, "
                             f"expected {(len(centers), 1)}")
        scalar = d_energy_d_features[:, 0]
        if d_energy_d_cutoff is not None:
            _, slope = cosine_cutoff(distances, self.cutoff, self.cutoff_transition_width)
            scalar = scalar + np.asarray(d_energy_d_cutoff, dtype=np.float64) * slope
        gradient = vectors / distances[:, None] * scalar[:, None]
        return np.arange(len(centers), dtype=np.int64), neighbors.astype(np.int64), vectors, gradient
