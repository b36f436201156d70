"""The GAP estimator: a sum of sparse-GP terms fitted to energies, forces and virials.

scikit-learn conventions with a list of ``ase.Atoms`` as X: parameters are
stored unchanged by ``__init__``, everything learned ends in ``_``, ``fit``
returns self. Array-input validation of scikit-learn does not apply.
"""
import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted

from . import gp
from .assembly import column_offsets, design_rows, predict_structure
from .checks import check_labels, check_structures
from .terms import default_terms

KINDS = ("energy", "forces", "virial")


def _chunks(sizes, max_atoms):
    """Consecutive index groups whose atom counts add up to at most max_atoms (at least one each)."""
    group, total = [], 0
    for index, size in enumerate(sizes):
        if group and total + size > max_atoms:
            yield group
            group, total = [], 0
        group.append(index)
        total += size
    if group:
        yield group


class GAP(BaseEstimator):
    """Gaussian Approximation Potential fitted by sparse GP regression.

    Parameters
    ----------
    terms : list of gapfit terms (``TwoBody``, ``SOAP``, ``ACSF``) or None for
        the default recipe (2-body + SOAP).
    energy_sigma : float, eV/atom. Expected error of total energies per atom;
        a configuration's energy sigma is energy_sigma·√N.
    force_sigma : float, eV/Å. virial_sigma : float, eV/atom (scaled by √N).
    config_type_sigma : dict {config_type: (energy, force, virial) sigmas} or None.
        Per-configuration ``atoms.info`` keys ``energy_sigma``, ``force_sigma``,
        ``virial_sigma`` override both.
    e0 : "average" (mean energy per atom of the training set, for every
        species), "isolated" (from single-atom configurations), or a dict
        {symbol or atomic number: eV}.
    fit_forces, fit_virial : bool, use force / stress labels where present.
    sparse_jitter : float, relative jitter added to K_MM's diagonal.
    chunk_atoms : int, atoms per chunk in the streaming assembly (memory knob).
    random_state : int, numpy Generator or None, for sparse-point selection.
    verbose : bool, progress bars on standard error.
    """

    def __init__(self, terms=None, energy_sigma=0.002, force_sigma=0.05, virial_sigma=0.05,
                 config_type_sigma=None, e0="average", fit_forces=True, fit_virial=True,
                 sparse_jitter=1e-8, chunk_atoms=512, random_state=None, verbose=False):
        self.terms = terms
        self.energy_sigma = energy_sigma
        self.force_sigma = force_sigma
        self.virial_sigma = virial_sigma
        self.config_type_sigma = config_type_sigma
        self.e0 = e0
        self.fit_forces = fit_forces
        self.fit_virial = fit_virial
        self.sparse_jitter = sparse_jitter
        self.chunk_atoms = chunk_atoms
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None):
        """Fit to a list of Atoms carrying reference labels (SinglePointCalculator).

        ``y`` is ignored: labels travel on the structures.
        """
        structures = list(X)
        check_structures(structures)
        labels = check_labels(structures, need_forces=self.fit_forces)
        species = sorted({int(z) for atoms in structures for z in atoms.numbers})
        self.species_ = species
        self.e0_ = self._fit_e0(structures, labels.energies, species)
        self.terms_ = [clone(term).build(species) for term in (self.terms or default_terms())]
        self._choose_sparse_points(structures)
        self.data_factors_ = self._assemble(structures, labels)
        prior = gp.prior_factor(self._sparse_covariance(), self.sparse_jitter)
        self.alpha_, self.factor_ = gp.solve(list(self.data_factors_.values()), prior)
        self.n_training_structures_ = len(structures)
        return self

    def _fit_e0(self, structures, energies, species):
        """Isolated-atom energy per atomic number, eV."""
        from ase.data import atomic_numbers
        if isinstance(self.e0, dict):
            given = {(atomic_numbers[k] if isinstance(k, str) else int(k)): float(v)
                     for k, v in self.e0.items()}
            missing = [z for z in species if z not in given]
            if missing:
                raise ValueError(f"e0 has no value for atomic numbers {missing}")
            return {z: given[z] for z in species}
        if self.e0 == "average":
            per_atom = sum(energies) / sum(len(a) for a in structures)
            return {z: per_atom for z in species}
        if self.e0 == "isolated":
            found = {}
            for atoms, energy in zip(structures, energies):
                if len(atoms) == 1:
                    found[int(atoms.numbers[0])] = float(energy)
            missing = [z for z in species if z not in found]
            if missing:
                raise ValueError(f"e0='isolated' but no single-atom configuration for atomic numbers {missing}")
            return found
        raise ValueError(f"e0 must be 'average', 'isolated' or a dict, not {self.e0!r}")

    def _rng(self):
        if isinstance(self.random_state, np.random.Generator):
            return self.random_state
        return np.random.default_rng(self.random_state)

    def _choose_sparse_points(self, structures):
        from .assembly import neighbor_lists
        from .sparse import select_sparse
        rng = self._rng()
        collected = [([], []) for _ in self.terms_]
        for atoms in structures:
            for term, nl, (features, channels) in zip(self.terms_, neighbor_lists(self.terms_, atoms),
                                                      collected):
                environments = term.descriptor_.compute(atoms, nl, gradients=False)
                features.append(term.selection_features(environments.features))
                channels.append(environments.channels)
        for term, (features, channels) in zip(self.terms_, collected):
            chosen, chosen_channels = select_sparse(
                np.concatenate(features), np.concatenate(channels), term.n_sparse,
                term.sparse_method, rng, label=type(term).__name__)
            term.set_sparse(chosen, chosen_channels)

    def _sparse_covariance(self):
        offsets = column_offsets(self.terms_)
        covariance = np.zeros((offsets[-1], offsets[-1]))
        for term, start, stop in zip(self.terms_, offsets[:-1], offsets[1:]):
            covariance[start:stop, start:stop] = term.sparse_covariance()
        return covariance

    def _sigmas(self, atoms):
        """(energy, force, virial) sigmas of one configuration: eV, eV/Å, eV."""
        sigma = [self.energy_sigma, self.force_sigma, self.virial_sigma]
        config_type = atoms.info.get("config_type")
        if self.config_type_sigma and config_type in self.config_type_sigma:
            sigma = list(self.config_type_sigma[config_type])
        for position, key in enumerate(("energy_sigma", "force_sigma", "virial_sigma")):
            if key in atoms.info:
                sigma[position] = float(atoms.info[key])
        root_n = np.sqrt(len(atoms))
        return sigma[0] * root_n, sigma[1], sigma[2] * root_n

    def _chunk_factors(self, structures, labels, indices):
        """The map step: R factors {kind: (M+1)²} of one chunk of configurations."""
        chunk = [structures[i] for i in indices]
        rows = design_rows(self.terms_, chunk)
        e0 = np.array([sum(self.e0_[int(z)] for z in atoms.numbers) for atoms in chunk])
        energies = np.array([labels.energies[i] for i in indices]) - e0
        sigmas = np.array([self._sigmas(atoms) for atoms in chunk])
        factors = {"energy": gp.weighted_factor(rows.energy, energies, sigmas[:, 0])}
        if self.fit_forces:
            forces = np.concatenate([labels.forces[i] for i in indices]).reshape(-1)
            force_sigmas = np.repeat(sigmas[:, 1], [3 * len(a) for a in chunk])
            factors["forces"] = gp.weighted_factor(rows.forces.reshape(len(forces), -1), forces,
                                                   force_sigmas)
        if self.fit_virial:
            with_stress = [k for k, i in enumerate(indices) if labels.stresses[i] is not None]
            if with_stress:
                virials = np.concatenate([-labels.stresses[indices[k]] * chunk[k].get_volume()
                                          for k in with_stress])
                virial_rows = rows.virial[with_stress].reshape(len(virials), -1)
                factors["virial"] = gp.weighted_factor(virial_rows, virials,
                                                       np.repeat(sigmas[with_stress, 2], 6))
        return factors

    def _assemble(self, structures, labels):
        """Map over chunks of configurations, then reduce the R factors."""
        groups = list(_chunks([len(a) for a in structures], self.chunk_atoms))
        if self.verbose:
            from tqdm.auto import tqdm
            groups = tqdm(groups, desc="assembling", unit="chunk")
        pieces = [self._chunk_factors(structures, labels, group) for group in groups]
        return gp.combine_factor_dicts(pieces)

    # -------------------------------------------------------------- predict
    def _check_predictable(self, structures):
        check_is_fitted(self, "alpha_")
        check_structures(structures, species=self.species_)

    def predict_structure(self, atoms):
        """Prediction (local energies eV, forces eV/Å, virial eV) of one Atoms."""
        e0 = np.array([self.e0_[int(z)] for z in atoms.numbers])
        return predict_structure(self.terms_, self.alpha_, e0, atoms)

    def predict(self, X):
        """Total energies (eV), one per configuration of the list X."""
        structures = list(X)
        self._check_predictable(structures)
        return np.array([self.predict_structure(atoms).energy for atoms in structures])

    def predict_forces(self, X):
        """Forces (eV/Å), one (N, 3) array per configuration."""
        structures = list(X)
        self._check_predictable(structures)
        return [self.predict_structure(atoms).forces for atoms in structures]

    def score(self, X, y=None):
        """Minus the force RMSE in eV/Å (greater is better), for model selection."""
        from .metrics import force_errors
        return -force_errors(self, list(X))["rmse"]

    # ---------------------------------------------------------- persistence
    def save(self, path):
        """Write the fitted model to ``path`` atomically (see ``gapfit.persistence``)."""
        from .persistence import save_model
        check_is_fitted(self, "alpha_")
        save_model(self, path)
