"""QUIP's ``angle_3b`` descriptor: one environment per centre and ordered pair of distinct
neighbour images within the cutoff, three features and a product covariance cutoff.

Equals ``quippy.descriptors.Descriptor("angle_3b ...")`` (quippy-ase 0.10.3): for centre i
and neighbour images j' != k' (both r < cutoff; (j', k') and (k', j') are both listed)
the features are (r_ij + r_ik, (r_ij - r_ik)², r_jk) in (Å, Å², Å) and the covariance
cutoff is f(r_ij) f(r_ik) (QUIP's cosine cutoff; r_jk is not cut). Z selects the centre,
{Z1, Z2} the neighbour species in either order (None/0 = any).
"""
import numpy as np

from .numerics import cosine_cutoff
from .quip_common import CutoffLocalEnvironments, QuipCutoffDescriptor, species_pair_mask


class QuipAngle3bDescriptor(QuipCutoffDescriptor):
    """QUIP ``angle_3b``: (r_ij + r_ik, (r_ij - r_ik)², r_jk) per triplet, weight f f.

    Parameters
    ----------
    cutoff : float, Å. cutoff_transition_width : float, Å (QUIP's default 0.5).
    Z : centre species or None (any). Z1, Z2 : neighbour species or None (any).

    Attributes: cutoff (Å), n_features = 3; channel 0 for all environments.
    Every environment has two pair rows, (j', D_ij) then (k', D_ik), with ∂q/∂r_j' and
    ∂q/∂r_k' (the centre's is minus their sum).
    """

    quip_name = "angle_3b"
    species_settings = ("Z", "Z1", "Z2")

    def __init__(self, cutoff, cutoff_transition_width=0.5, Z=None, Z1=None, Z2=None):
        self._set_settings(cutoff, cutoff_transition_width, Z, Z1, Z2)

    @property
    def n_features(self):
        return 3

    def _triplets(self, atoms, neighbor_list):
        """Pair indices (first, second) into the kept pairs, and the kept pair arrays."""
        numbers, keep = self._within_cutoff(atoms, neighbor_list)
        if self.Z is not None:
            keep &= numbers[neighbor_list.centers] == self.Z
        centers = neighbor_list.centers[keep]
        neighbors = neighbor_list.neighbors[keep]
        vectors = np.ascontiguousarray(neighbor_list.vectors[keep], dtype=np.float64)
        distances = neighbor_list.distances[keep]
        counts = np.bincount(centers, minlength=len(atoms))
        offsets = np.concatenate([[0], np.cumsum(counts)])
        per_pair = counts[centers]
        first = np.repeat(np.arange(len(centers)), per_pair)
        block_starts = np.repeat(np.cumsum(per_pair) - per_pair, per_pair)
        second = offsets[centers[first]] + (np.arange(len(first)) - block_starts)
        distinct = first != second
        first, second = first[distinct], second[distinct]
        chosen = species_pair_mask(numbers[neighbors[first]], numbers[neighbors[second]],
                                   self.Z1, self.Z2)
        return first[chosen], second[chosen], centers, neighbors, vectors, distances

    def _geometry(self, first, second, vectors, distances):
        r_ij = distances[first]
        r_ik = distances[second]
        d_jk = vectors[second] - vectors[first]
        r_jk = np.sqrt(np.einsum("pa,pa->p", d_jk, d_jk))
        return r_ij, r_ik, d_jk, r_jk

    def compute(self, atoms, neighbor_list, gradients=False):
        first, second, centers, neighbors, vectors, distances = self._triplets(atoms,
                                                                               neighbor_list)
        r_ij, r_ik, d_jk, r_jk = self._geometry(first, second, vectors, distances)
        f_ij, s_ij = cosine_cutoff(r_ij, self.cutoff, self.cutoff_transition_width)
        f_ik, s_ik = cosine_cutoff(r_ik, self.cutoff, self.cutoff_transition_width)
        n_envs = len(first)
        environments = CutoffLocalEnvironments(
            features=np.column_stack([r_ij + r_ik, (r_ij - r_ik) ** 2, r_jk]).reshape(n_envs, 3),
            center_atoms=centers[first].astype(np.int64),
            channels=np.zeros(n_envs, dtype=np.int64), covariance_cutoff=f_ij * f_ik)
        if not gradients:
            return environments
        u_ij = vectors[first] / r_ij[:, None]
        u_ik = vectors[second] / r_ik[:, None]
        u_jk = d_jk / r_jk[:, None]
        difference = 2.0 * (r_ij - r_ik)[:, None]
        # rows 2e (neighbour j') and 2e + 1 (neighbour k'); columns = the three features
        pair_gradients = np.empty((2 * n_envs, 3, 3))
        pair_gradients[0::2, :, 0] = u_ij
        pair_gradients[0::2, :, 1] = difference * u_ij
        pair_gradients[0::2, :, 2] = -u_jk
        pair_gradients[1::2, :, 0] = u_ik
        pair_gradients[1::2, :, 1] = -difference * u_ik
        pair_gradients[1::2, :, 2] = u_jk
        cutoff_gradients = np.empty((2 * n_envs, 3))
        cutoff_gradients[0::2] = (s_ij * f_ik)[:, None] * u_ij
        cutoff_gradients[1::2] = (f_ij * s_ik)[:, None] * u_ik
        environments.pair_envs = np.repeat(np.arange(n_envs, dtype=np.int64), 2)
        environments.pair_neighbors = np.column_stack(
            [neighbors[first], neighbors[second]]).reshape(-1).astype(np.int64)
        environments.pair_vectors = np.stack([vectors[first], vectors[second]],
                                             axis=1).reshape(-1, 3)
        environments.pair_gradients = pair_gradients
        environments.pair_cutoff_gradients = cutoff_gradients
        return environments

    def backward(self, atoms, neighbor_list, d_energy_d_features, d_energy_d_cutoff=None):
        """∂E/∂(pair vector) (2 n_envs, 3) in eV/Å from ∂E/∂q (n_envs, 3) and, optionally,
        ∂E/∂f (n_envs,) in eV. Returns (pair_envs, pair_neighbors, pair_vectors, gradient)
        with the rows ordered as in ``compute``."""
        environments = self.compute(atoms, neighbor_list, gradients=True)
        d_energy_d_features = np.asarray(d_energy_d_features, dtype=np.float64)
        if d_energy_d_features.shape != environments.features.shape:
            raise ValueError(f"QUIP angle_3b backward on {atoms.get_chemical_formula()}: "
                             f"d_energy_d_features has shape {d_energy_d_features.shape}, "
                             f"expected {environments.features.shape}")
        upstream = d_energy_d_features[environments.pair_envs]
        gradient = np.einsum("pak,pk->pa", environments.pair_gradients, upstream)
        if d_energy_d_cutoff is not None:
            weights = np.asarray(d_energy_d_cutoff, dtype=np.float64)[environments.pair_envs]
            gradient += environments.pair_cutoff_gradients * weights[:, None]
        return (environments.pair_envs, environments.pair_neighbors, environments.pair_vectors,
                gradient)
