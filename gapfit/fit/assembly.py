"""From structures to design rows (for the fit); predictions come from ``gapfit.predict.predictor``.

Design rows are the derivatives of the model's predictions with respect to
its coefficients: one row per total energy, per force component and per
virial component. They are built term by term and channel by channel, with
descriptor gradients projected onto the sparse points a block of pairs at a time
so that memory stays bounded by ``pair_block`` × 3 × M.
"""
from dataclasses import dataclass

import numpy as np

from . import _assembly_kernels as kernels
from ..structures.neighbors import build_neighbor_list, within

PAIR_BLOCK_BYTES = 64 * 2 ** 20


@dataclass
class DesignRows:
    """Rows of one chunk of structures against all sparse points (columns).

    energy : (n_structures, M), eV per unit coefficient.
    forces : (n_atoms, 3, M), atoms of all structures concatenated, eV/Å.
    virial : (n_structures, 6, M), Voigt xx,yy,zz,yz,xz,xy, eV.
    """

    energy: np.ndarray
    forces: np.ndarray
    virial: np.ndarray


def column_offsets(terms):
    """First column of each term's sparse points in the concatenated coefficient vector."""
    sizes = [term.n_sparse_points for term in terms]
    return np.concatenate([[0], np.cumsum(sizes)]).astype(int)


def neighbor_lists(terms, atoms):
    """One neighbour search at the largest cutoff, filtered for each term."""
    largest = build_neighbor_list(atoms, max(term.neighbor_cutoff for term in terms))
    return [within(largest, term.neighbor_cutoff) for term in terms]


def design_rows(terms, structures):
    """DesignRows of ``structures`` (a list of Atoms) for fitted terms."""
    offsets = column_offsets(terms)
    n_columns = offsets[-1]
    n_atoms = [len(atoms) for atoms in structures]
    atom_offsets = np.concatenate([[0], np.cumsum(n_atoms)]).astype(int)
    rows = DesignRows(np.zeros((len(structures), n_columns)),
                      np.zeros((atom_offsets[-1], 3, n_columns)),
                      np.zeros((len(structures), 6, n_columns)))
    for index, atoms in enumerate(structures):
        for term, offset, nl in zip(terms, offsets, neighbor_lists(terms, atoms)):
            environments = term.descriptor_.compute(atoms, nl, gradients=True)
            add_term_rows(rows, term, environments, offset, index, atom_offsets[index])
    return rows


def add_term_rows(rows, term, environments, column0, structure, atom_offset):
    """Add one term's contribution for one structure to ``rows``.

    Environments that carry a covariance cutoff f_e (QUIP's 2-/3-body descriptors,
    ``CutoffLocalEnvironments``) weigh their kernel by it: the row is f_e K, and its
    gradient f_e (A s + B q)·g + K ∂f_e/∂r."""
    local_index = np.full(environments.n_envs, -1, dtype=np.int64)
    weights = getattr(environments, "covariance_cutoff", None)
    for envs, start, stop, values, factor_sparse, factor_self in term.kernel_blocks(environments):
        unweighted = None
        if weights is not None:
            weight = weights[envs][:, None]
            unweighted = np.ascontiguousarray(values)
            values, factor_sparse, factor_self = (values * weight, factor_sparse * weight,
                                                  factor_self * weight)
        rows.energy[structure, column0 + start: column0 + stop] += values.sum(axis=0)
        local_index[:] = -1
        local_index[envs] = np.arange(len(envs))
        pairs = np.flatnonzero(local_index[environments.pair_envs] >= 0)
        sparse = term.sparse_points_[start:stop]
        n_features = sparse.shape[1]
        block = max(1, PAIR_BLOCK_BYTES // (8 * 3 * max(stop - start, n_features)))
        env_atoms = environments.center_atoms[envs]
        features = environments.features[envs]
        for first in range(0, len(pairs), block):
            chosen = pairs[first: first + block]
            gradients = environments.pair_gradients[chosen]
            pair_envs = local_index[environments.pair_envs[chosen]]
            projected = (gradients.reshape(-1, n_features) @ sparse.T).reshape(len(chosen), 3, -1)
            gq = np.einsum("pak,pk->pa", gradients, features[pair_envs])
            targets = kernels.force_targets(pair_envs, environments.pair_neighbors[chosen],
                                            env_atoms, atom_offset)
            weighting = ()
            if unweighted is not None:
                weighting = (unweighted, np.ascontiguousarray(
                    environments.pair_cutoff_gradients[chosen], dtype=np.float64))
            kernels.add_force_rows(rows.forces, column0 + start, projected, gq, factor_sparse,
                                   factor_self, pair_envs, *targets, *weighting)
            kernels.add_virial_rows(rows.virial, column0 + start, projected, gq, factor_sparse,
                                    factor_self, pair_envs,
                                    np.ascontiguousarray(environments.pair_vectors[chosen]),
                                    np.full(len(chosen), structure, dtype=np.int64), *weighting)
