"""QUIP's ``distance_2b`` descriptor: one environment per ordered pair within the cutoff,
its feature the distance, with QUIP's covariance cutoff (cosine taper) as a weight.

Equals ``quippy.descriptors.Descriptor("distance_2b ...")`` (quippy-ase 0.10.3): every
ordered pair (i, j') with r < cutoff is a descriptor of centre i (so an unordered pair
appears twice), selected by the species pair {Z1, Z2} in either order (None/0 = any),
covariance_cutoff = f(r), QUIP's cosine cutoff over the last ``cutoff_transition_width`` Å.
"""
import numpy as np

from .numerics import cosine_cutoff
from .quip_common import CutoffLocalEnvironments, QuipCutoffDescriptor, species_pair_mask


class QuipDistance2bDescriptor(QuipCutoffDescriptor):
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

    quip_name = "distance_2b"
    species_settings = ("Z1", "Z2")

    def __init__(self, cutoff, cutoff_transition_width=0.5, Z1=None, Z2=None):
        self._set_settings(cutoff, cutoff_transition_width, Z1, Z2)

    @property
    def n_features(self):
        return 1

    def _pairs(self, atoms, neighbor_list):
        numbers, keep = self._within_cutoff(atoms, neighbor_list)
        keep &= species_pair_mask(numbers[neighbor_list.centers],
                                  numbers[neighbor_list.neighbors], self.Z1, self.Z2)
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
