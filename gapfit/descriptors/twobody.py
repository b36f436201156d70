"""The 2-body descriptor: one environment per ordered pair, its feature the distance.

Each pair (i, j') within the cutoff is an environment of atom i whose single
feature is |r_j' - r_i| in Å; pairs of different species pairs never correlate.
"""
import numpy as np

from .base import Descriptor, LocalEnvironments


class TwoBodyDescriptor(Descriptor):
    """Pair distances within ``cutoff`` Å, channel = the unordered species pair."""

    def __init__(self, species, cutoff):
        self.species = sorted(int(z) for z in species)
        self.cutoff = float(cutoff)

    @property
    def n_features(self):
        return 1

    @staticmethod
    def pair_channel(z_a, z_b):
        """Channel label of a species pair, the same for (a, b) and (b, a)."""
        low = np.minimum(z_a, z_b)
        high = np.maximum(z_a, z_b)
        return low * 1000 + high

    def compute(self, atoms, neighbor_list, gradients=False):
        numbers = atoms.numbers
        inside = neighbor_list.distances < self.cutoff
        centers = neighbor_list.centers[inside]
        neighbors = neighbor_list.neighbors[inside]
        vectors = neighbor_list.vectors[inside]
        distances = neighbor_list.distances[inside]
        environments = LocalEnvironments(
            features=distances[:, None].copy(),
            center_atoms=centers.copy(),
            channels=self.pair_channel(numbers[centers], numbers[neighbors]).astype(np.int64),
        )
        if gradients:
            environments.pair_envs = np.arange(len(centers), dtype=np.int64)
            environments.pair_neighbors = neighbors.copy()
            environments.pair_vectors = vectors.copy()
            environments.pair_gradients = (vectors / distances[:, None])[:, :, None]
        return environments

    def unordered_pairs(self, atoms, neighbor_list):
        """One of the two ordered pairs (i, j') and (j, i'') of every pair within the cutoff
        (the full list holds both, with opposite vectors): (centers, neighbors, vectors Å,
        distances Å, channels), the pair with i < j kept, and for an atom and its own image
        the one whose vector is lexicographically positive. Each is an environment of i whose
        twin, an environment of j with the same distance, is left out: a pair potential
        evaluates once per pair and credits both atoms (the MD path)."""
        inside = neighbor_list.distances < self.cutoff
        centers = neighbor_list.centers
        neighbors = neighbor_list.neighbors
        vectors = neighbor_list.vectors
        x, y, z = vectors[:, 0], vectors[:, 1], vectors[:, 2]
        positive = (x > 0) | ((x == 0) & ((y > 0) | ((y == 0) & (z > 0))))
        keep = np.flatnonzero(inside & ((centers < neighbors)
                                        | ((centers == neighbors) & positive)))
        centers = centers[keep]
        neighbors = neighbors[keep]
        numbers = atoms.numbers
        return (centers, neighbors, vectors[keep], neighbor_list.distances[keep],
                self.pair_channel(numbers[centers], numbers[neighbors]).astype(np.int64))

    def backward(self, atoms, neighbor_list, d_energy_d_features):
        """∂E/∂(pair vector) for every pair, given ∂E/∂r for every pair environment."""
        inside = neighbor_list.distances < self.cutoff
        vectors = neighbor_list.vectors[inside]
        distances = neighbor_list.distances[inside]
        gradient = vectors / distances[:, None] * d_energy_d_features[:, :1]
        return (np.arange(len(distances), dtype=np.int64), neighbor_list.neighbors[inside],
                vectors, gradient)
