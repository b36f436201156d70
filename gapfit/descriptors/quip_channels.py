"""QUIP descriptors grouped into kernel channels, one per gap_fit descriptor coordinate.

gap_fit turns one descriptor of its command line into one sparse GP (``<gpCoordinates>``)
per species combination (distance_2b: per unordered pair {Z1, Z2}; angle_3b: per centre Z
and unordered neighbour pair; soap: per centre Z). ``QuipChannels`` computes one QUIP
descriptor per combination and labels its environments with that combination's channel,
so that gapfit's channel machinery (separate GPs that never correlate) matches gap_fit's.
It can also divide the features by a length scale θ per dimension (ard_se and pp kernels
are then isotropic with unit length scale) and carries QUIP's covariance cutoff f_e of
every environment (a weight on its kernel) unless the kernel folds it in itself.
"""
import numpy as np

from .base import Descriptor, LocalEnvironments
from .quip_common import CutoffLocalEnvironments


def pair_channel(z1, z2):
    """Channel label of an unordered species pair (the same as ``TwoBodyDescriptor``'s)."""
    return min(z1, z2) * 1000 + max(z1, z2)


def triplet_channel(z, z1, z2):
    """Channel label of a centre species and an unordered neighbour pair."""
    return z * 1000000 + pair_channel(z1, z2)


class QuipChannels(Descriptor):
    """Several QUIP descriptors side by side, each one kernel channel.

    Parameters
    ----------
    parts : list of (channel label, descriptor) with QUIP descriptors of the same kind
        (``QuipDistance2bDescriptor``, ``QuipAngle3bDescriptor``, ``QuipSOAPDescriptor``) whose
        environments do not overlap. A descriptor with its own channels (SOAP with several
        centre species) is given with label None: its channels are kept.
    scale : None or (n_features,) factors multiplying every feature (and its gradients),
        e.g. 1/θ per dimension.
    weighted : bool, keep QUIP's covariance cutoff f_e (``CutoffLocalEnvironments``) so that
        fits and predictions multiply the environment's kernel by it; False drops it (the
        kernel then holds the cutoff itself, as gapfit's ``CutoffSquaredExponential``).
    """

    def __init__(self, parts, scale=None, weighted=True):
        if not parts:
            raise ValueError("QuipChannels needs at least one descriptor")
        self.parts = list(parts)
        self.cutoff = max(descriptor.cutoff for _, descriptor in self.parts)
        dims = {descriptor.n_features for _, descriptor in self.parts}
        if len(dims) != 1:
            raise ValueError(f"QuipChannels: descriptors of different lengths {sorted(dims)}")
        self._n_features = dims.pop()
        self.scale = None if scale is None else np.asarray(scale, dtype=np.float64)
        if self.scale is not None and self.scale.shape != (self._n_features,):
            raise ValueError(f"QuipChannels: scale must have {self._n_features} entries, "
                             f"got shape {self.scale.shape}")
        self.weighted = bool(weighted)

    @property
    def n_features(self):
        return self._n_features

    def compute(self, atoms, neighbor_list, gradients=False):
        pieces = [(label, descriptor.compute(atoms, neighbor_list, gradients=gradients))
                  for label, descriptor in self.parts]
        if len(pieces) == 1:
            label, environments = pieces[0]
            if label is not None:
                environments.channels = np.full(environments.n_envs, label, dtype=np.int64)
        else:
            environments = self._concatenate(pieces, gradients)
        return self._finish(environments)

    def _concatenate(self, pieces, gradients):
        def stack(name, empty_shape):
            arrays = [getattr(env, name) for _, env in pieces]
            if any(a is None for a in arrays):
                return None
            return np.concatenate(arrays) if arrays else np.zeros(empty_shape)

        channels = np.concatenate([
            env.channels if label is None else np.full(env.n_envs, label, dtype=np.int64)
            for label, env in pieces]).astype(np.int64)
        merged = CutoffLocalEnvironments(
            features=stack("features", (0, self._n_features)),
            center_atoms=stack("center_atoms", (0,)), channels=channels,
            covariance_cutoff=(stack("covariance_cutoff", (0,))
                               if all(isinstance(env, CutoffLocalEnvironments)
                                      for _, env in pieces) else None))
        if gradients:
            offsets = np.cumsum([0] + [env.n_envs for _, env in pieces])
            merged.pair_envs = np.concatenate([env.pair_envs + offset for (_, env), offset
                                               in zip(pieces, offsets)]).astype(np.int64)
            merged.pair_neighbors = stack("pair_neighbors", (0,))
            merged.pair_vectors = stack("pair_vectors", (0, 3))
            merged.pair_gradients = stack("pair_gradients", (0, 3, self._n_features))
            if merged.covariance_cutoff is not None:
                merged.pair_cutoff_gradients = stack("pair_cutoff_gradients", (0, 3))
        return merged

    def _finish(self, environments):
        if self.scale is not None:
            environments.features = environments.features * self.scale
            if environments.pair_gradients is not None:
                environments.pair_gradients = environments.pair_gradients * self.scale
        has_cutoff = getattr(environments, "covariance_cutoff", None) is not None
        if has_cutoff and not self.weighted:
            environments = LocalEnvironments(
                features=environments.features, center_atoms=environments.center_atoms,
                channels=environments.channels, pair_envs=environments.pair_envs,
                pair_neighbors=environments.pair_neighbors,
                pair_vectors=environments.pair_vectors,
                pair_gradients=environments.pair_gradients)
        return environments

    def backward(self, atoms, neighbor_list, d_energy_d_features, d_energy_d_cutoff=None):
        """∂E/∂(pair vector) from ∂E/∂q (n_envs, n_features, per scaled feature) and, for
        weighted environments, ∂E/∂f_e (n_envs,) in eV; as ``Descriptor.backward``."""
        d_energy_d_features = np.asarray(d_energy_d_features, dtype=np.float64)
        if self.scale is not None:
            d_energy_d_features = d_energy_d_features * self.scale
        if len(self.parts) == 1:
            return self._part_backward(self.parts[0][1], atoms, neighbor_list,
                                       d_energy_d_features, d_energy_d_cutoff)
        results, first = [], 0
        for _, descriptor in self.parts:
            count = descriptor.compute(atoms, neighbor_list, gradients=False).n_envs
            cut = None if d_energy_d_cutoff is None else d_energy_d_cutoff[first: first + count]
            pair_envs, neighbors, vectors, gradient = self._part_backward(
                descriptor, atoms, neighbor_list, d_energy_d_features[first: first + count], cut)
            results.append((pair_envs + first, neighbors, vectors, gradient))
            first += count
        if first != len(d_energy_d_features):
            raise ValueError(f"QuipChannels backward on {atoms.get_chemical_formula()}: "
                             f"{len(d_energy_d_features)} rows of ∂E/∂q for {first} environments")
        return tuple(np.concatenate(parts) for parts in zip(*results))

    @staticmethod
    def _part_backward(descriptor, atoms, neighbor_list, d_features, d_cutoff):
        if d_cutoff is None:
            return descriptor.backward(atoms, neighbor_list, d_features)
        return descriptor.backward(atoms, neighbor_list, d_features, d_energy_d_cutoff=d_cutoff)
