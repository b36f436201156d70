"""Posterior variance of a fitted sparse GP: total energies, local energies and force components.

Projected-process (DTC) posterior for a target with design row a (the derivative of the
prediction with respect to the coefficients): var = k** - a K_MM⁻¹ aᵀ + a Σ_α aᵀ, where
Σ_α⁻¹ = K_MM + AᵀΣ⁻¹A = R11ᵀR11 comes from the model's total R factor and k** is the exact
prior variance of the target (double sums over environments of kernel values, or of
Jacobian-contracted kernel Hessians for forces). Variances are of the latent function:
add σ² of the observation to compare with noisy labels.
"""
from dataclasses import dataclass

import numpy as np
from scipy.linalg import solve_triangular
from sklearn.utils.validation import check_is_fitted

from . import prior_sums
from ..fit.threads import single_thread
from ..fit.assembly import DesignRows, add_term_rows, column_offsets, neighbor_lists

class Posterior:
    """The triangular factors a variance needs, taken from a fitted GAP.

    prior_upper : Lᵀ with L Lᵀ = K_MM + jitter (exactly the fit's prior rows).
    precision_upper : R11 with R11ᵀR11 = Σ_α⁻¹ = K_MM + AᵀΣ⁻¹A.
    """

    def __init__(self, model):
        check_is_fitted(model, "factor_")
        size = len(model.alpha_)
        self.factor = model.factor_
        self.prior_upper = model.prior_factor()[:, :size]
        self.precision_upper = np.ascontiguousarray(model.factor_[:size, :size])

    def is_current(self, model):
        """True while the model still holds the R factor these factors were taken from."""
        return getattr(model, "factor_", None) is self.factor

    def explained(self, rows):
        """(a K_MM⁻¹ aᵀ, a Σ_α aᵀ) for every row a of ``rows`` (n, M)."""
        rows_t = np.ascontiguousarray(np.asarray(rows, dtype=np.float64).T)
        nystrom = solve_triangular(self.prior_upper, rows_t, trans="T", lower=False,
                                   check_finite=False)
        posterior = solve_triangular(self.precision_upper, rows_t, trans="T", lower=False,
                                     check_finite=False)
        return np.einsum("mn,mn->n", nystrom, nystrom), np.einsum("mn,mn->n", posterior, posterior)

    def variances(self, prior, rows):
        """Posterior variances k** - a K_MM⁻¹ aᵀ + a Σ_α aᵀ of targets with prior variances ``prior``."""
        nystrom, posterior = self.explained(rows)
        return np.asarray(prior, dtype=np.float64) - nystrom + posterior


@dataclass
class StructureTargets:
    """Design rows and exact prior variances of one structure's targets (M columns).

    energy_row (M,) and energy_prior (eV²); local_rows (N, M), local_priors (N,) eV²;
    force_rows (N, 3, M) with force_priors (N, 3) (eV/Å)²; virial_rows (6, M), Voigt, eV.
    """

    energy_row: np.ndarray
    energy_prior: float
    local_rows: np.ndarray
    local_priors: np.ndarray
    force_rows: np.ndarray
    force_priors: np.ndarray
    virial_rows: np.ndarray


@dataclass
class StructureVariance:
    """Posterior variances of one structure: energy (eV²), local_energies (N,) eV²,
    forces (N, 3) (eV/Å)². Tiny negative round-off is clipped to zero in the stds."""

    energy: float
    local_energies: np.ndarray
    forces: np.ndarray

    @property
    def energy_std(self):
        return float(np.sqrt(max(self.energy, 0.0)))

    @property
    def local_energies_std(self):
        return np.sqrt(np.maximum(self.local_energies, 0.0))

    @property
    def forces_std(self):
        return np.sqrt(np.maximum(self.forces, 0.0))


def structure_targets(terms, atoms, priors=True):
    """StructureTargets of ``atoms`` for fitted terms (one descriptor evaluation per term).

    ``priors=False`` skips the exact prior variances (NaN then): the double sums over
    environments are most of the cost, and the reducible part a Σ_α aᵀ needs only the rows.
    """
    offsets = column_offsets(terms)
    n_atoms, n_columns = len(atoms), int(offsets[-1])
    rows = DesignRows(np.zeros((1, n_columns)), np.zeros((n_atoms, 3, n_columns)),
                      np.zeros((1, 6, n_columns)))
    local_rows = np.zeros((n_atoms, n_columns))
    energy_prior, local_priors, force_priors = 0.0, np.zeros(n_atoms), np.zeros((n_atoms, 3))
    for term, offset, nl in zip(terms, offsets, neighbor_lists(terms, atoms)):
        environments = term.descriptor_.compute(atoms, nl, gradients=True)
        add_term_rows(rows, term, environments, offset, 0, 0)
        for envs, start, stop, values, _, _ in term.kernel_blocks(environments):
            local_rows[:, offset + start: offset + stop] += _sum_by_atom(
                values, environments.center_atoms[envs], n_atoms)
        if priors:
            total, local = _energy_priors(term, environments, n_atoms)
            energy_prior += total
            local_priors += local
            force_priors += _force_priors(term, environments, n_atoms)
    if not priors:
        energy_prior, local_priors, force_priors = np.nan, local_priors * np.nan, force_priors * np.nan
    return StructureTargets(rows.energy[0], energy_prior, local_rows, local_priors, rows.forces,
                            force_priors, rows.virial[0])


def _sum_by_atom(values, atoms_of_rows, n_atoms):
    """Rows of ``values`` summed per atom, (n_atoms, n_columns)."""
    order = np.argsort(atoms_of_rows, kind="stable")
    sorted_atoms = atoms_of_rows[order]
    starts = np.flatnonzero(np.r_[True, sorted_atoms[1:] != sorted_atoms[:-1]])
    summed = np.zeros((n_atoms, values.shape[1]))
    if len(order):
        summed[sorted_atoms[starts]] = np.add.reduceat(values[order], starts, axis=0)
    return summed


def _energy_priors(term, environments, n_atoms):
    """δ² Σ_{e,e'} k(q_e, q_e') over the structure (eV²) and over each atom's own environments,
    in memory linear in the environments (``gapfit.prior_sums``)."""
    return (prior_sums.total_prior(term, environments),
            prior_sums.local_priors(term, environments, n_atoms))


def _force_priors(term, environments, n_atoms):
    """Prior variance (eV/Å)² of every force component: δ² Σ_{e,e'} J_eᵀ ∂²k/∂q∂q' J_e'.

    J_e = ∂q_e/∂r_atom is the sum of the pair gradients of e whose neighbour
    image belongs to the atom, minus all of e's pair gradients if the atom is e's centre.
    """
    kernel = term.kernel_
    gradients = environments.pair_gradients
    pair_envs, pair_neighbors = environments.pair_envs, environments.pair_neighbors
    n_envs = environments.n_envs
    env_sums = _sum_by_atom(gradients.reshape(len(gradients), -1), pair_envs, n_envs).reshape(
        n_envs, 3, -1)
    pairs_of_atom = _groups(pair_neighbors, n_atoms)
    envs_of_atom = _groups(environments.center_atoms, n_atoms)
    priors = np.zeros((n_atoms, 3))
    with single_thread():  # small products per atom: threads cost more than they save
        for atom in range(n_atoms):
            _add_atom_force_prior(priors, atom, kernel, environments, pairs_of_atom[atom],
                                  envs_of_atom[atom], env_sums)
    return term.delta_ ** 2 * priors


def _add_atom_force_prior(priors, atom, kernel, environments, pairs, own, env_sums):
    """priors[atom] = Σ_{e,e' same channel} J_eᵀ ∂²k/∂q∂q' J_e' over the environments the
    atom moves (without δ²)."""
    gradients, pair_envs = environments.pair_gradients, environments.pair_envs
    envs = np.concatenate([pair_envs[pairs], own])
    jacobians = np.concatenate([gradients[pairs], -env_sums[own]])
    envs, jacobians = _merge_duplicates(envs, jacobians)
    if len(envs) == 0:
        return
    features = environments.features[envs]
    channels = environments.channels[envs]
    block = kernel.gradient_covariance(features, jacobians, features, jacobians)
    same_channel = channels[:, None] == channels[None, :]
    block = np.where(same_channel[:, None, :, None], block, 0.0)
    priors[atom] = np.einsum("aibi->i", block)


def _groups(labels, n_groups):
    """Indices of ``labels`` grouped by value 0 .. n_groups-1 (a list of index arrays)."""
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(n_groups + 1))
    return [order[bounds[g]: bounds[g + 1]] for g in range(n_groups)]


def _merge_duplicates(envs, jacobians):
    """Add Jacobians of the same environment (an atom seen as a neighbour image and as centre)."""
    unique, inverse = np.unique(envs, return_inverse=True)
    if len(unique) == len(envs):
        return envs, jacobians
    membership = np.zeros((len(unique), len(envs)))
    membership[inverse, np.arange(len(envs))] = 1.0
    merged = membership @ jacobians.reshape(len(envs), -1)
    return unique, merged.reshape((len(unique),) + jacobians.shape[1:])


def target_variances(posterior, targets):
    """StructureVariance from StructureTargets: one pair of triangular solves for all rows."""
    n_atoms, n_columns = targets.local_rows.shape
    rows = np.concatenate([targets.energy_row[None, :], targets.local_rows,
                           targets.force_rows.reshape(3 * n_atoms, n_columns)])
    priors = np.concatenate([[targets.energy_prior], targets.local_priors,
                             targets.force_priors.ravel()])
    variances = posterior.variances(priors, rows)
    return StructureVariance(float(variances[0]), variances[1: 1 + n_atoms],
                             variances[1 + n_atoms:].reshape(n_atoms, 3))


def structure_variance(model, atoms, posterior=None):
    """StructureVariance of one Atoms; pass a ``Posterior`` to reuse its factors across calls."""
    if posterior is None or not posterior.is_current(model):
        posterior = Posterior(model)
    return target_variances(posterior, structure_targets(model.terms_, atoms))
