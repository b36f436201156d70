"""The GAP estimator: a sum of sparse-GP terms fitted to energies, forces and virials.

scikit-learn conventions with a list of ``ase.Atoms`` as X: parameters are
stored unchanged by ``__init__``, everything learned ends in ``_``, ``fit``
returns self. Array-input validation of scikit-learn does not apply.
"""
import copy
import logging
import os
import time
from functools import partial

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted

from ..gp import linalg as gp
from ..fit import training
from ..fit.assembly import column_offsets
from ..predict.predictor import StructurePredictor, predict_structure
from ..uncertainty.hyperparameters import (NoiseSummary, noise_summary, optimize_with_noise,
                                           scale_with_noise)
from ..uncertainty.local import force_score_scale, sample_of_chunks
from ..uncertainty.posterior import Posterior, structure_variance
from ..structures.checks import check_structures
from ..fit.memory import PeakMemory
from ..fit.parallel import map_chunks, map_reduce_chunks
from ..gp.sparse import finish_selection, plan_selection, pooled_moments
from . import recipe, stored
from .terms import default_terms
from .model_file import read_model_file, write_model_file
from ..structures.atomic_files import check_writable
from ..fit.noise import NoiseModel
from ..fit.baselines import complete_shortest, make_repulsion, merge_shortest, shortest_distances

logger = logging.getLogger(__name__)


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
    virial_weighting : "tensor" (default: the squared virial error summed over the nine
        tensor components, unchanged when the structures rotate) or "voigt" (each of the six
        Voigt components weighed with the virial sigma, as gap_fit does: with QUIP terms,
        gap_fit's sparse points and ``sparse_jitter_relative=False`` a fit then gives
        gap_fit's predictions, to ~1e-9 relative).
    e0 : "average" (mean energy per atom of the training set, for every
        species), "isolated" (from single-atom configurations), or a dict
        {symbol or atomic number: eV}.
    fit_forces, fit_virial : bool, use force / stress labels where present.
    sparse_jitter : float, jitter added to K_MM's diagonal: relative to its largest element
        (default), or in eV² with ``sparse_jitter_relative=False`` (gap_fit's convention).
    chunk_atoms : int, atoms per chunk of the streaming assembly; memory of
        one chunk is about chunk_atoms × 3 × M × 8 bytes plus descriptor
        gradients.
    n_jobs : None or 1 (this process, all cores through numba/BLAS), or the
        number of local worker processes (-1: all cores).
    backend : None, "dask" (the current ``dask.distributed`` client) or a
        ``dask.distributed.Client``: chunks run on its workers, and their
        pieces are reduced there too.
    random_state : int, numpy Generator or None, for sparse-point selection.
        The sparse points depend only on the data, chunk_atoms and this seed,
        not on n_jobs or backend.
    verbose : bool, progress bars on standard error.
    optimize_hyperparameters : "scale" (default), False, True, or a number F > 1.
        "scale": multiply all sigmas and all deltas by the one factor λ that
        maximises the log marginal likelihood, in closed form
        (``gapfit.hyperparameters.scale_with_noise``): predictions are unchanged
        (they depend on δ/σ only) and the posterior stds get the size the data
        support, so the predictive force std sqrt(latent² + (λσ_F)²) is
        calibrated (on the mlearn Mo and Si test sets 94 % and 93 % of force errors
        within 2σ, against 6 % on Mo for the latent std alone;
        ``benchmarks/calibration.py``). True or F: scale the energy/force/virial
        sigmas and each term's delta separately to maximise the log marginal
        likelihood, each within a factor F (True: 10) of its start (this changes
        the predictions). False: the sigmas and deltas as given, whose stds are
        far too small on DFT data (6 % of Mo test force errors within 2σ).
        The settings stay unchanged: the fitted record holds the result,
        ``noise_.scales`` the sigma factors and each fitted term's ``delta_`` its
        signal scale.
    recipe : "fixed" (default: without terms, TwoBody() + SOAP()) or "search": without terms,
        ``fit`` chooses the recipe from the training data (``gapfit.model.recipe``: candidates
        from the data's nearest-neighbour distance, compared by k-fold cross-validation by
        configuration on a subset stratified by config_type, with a per-group guard; the
        chosen one is fitted to all data with ``optimize_hyperparameters`` as set);
        ``recipe_`` reports the candidates, their scores and MD costs.
    prefer : "speed" (default: the chosen recipe's MD cost stays within 1.5× the fixed
        recipe's) or "accuracy" (larger bases allowed). search_time : "auto" (default), s, or None.
        "auto": the screening's fold fits may cost ``recipe.SCREEN_BUDGET_FITS`` (4) default
        fits' work, estimated from atom counts (deterministic: the same choice on any machine),
        so that search and final fit stay within about 6 default fits; on small data sets,
        whose screen is the whole training set, fewer candidates are screened (reported in
        ``recipe_``). A number: screening stops when that many seconds are spent, with a
        warning. None: every candidate is screened. At least one candidate always is.
    repulsion : "zbl" (default), a ``gapfit.ZBL`` with its own settings, or None / False (off):
        a fixed screened-Coulomb (ZBL) pair repulsion switched off at the shortest distance
        of each species pair in the training data (``shortest_distances_``), so it is zero
        where the data are; the terms fit the labels minus it and predictions add it back.
        It holds atoms apart where there are no data (``repulsion_`` is the fitted one).

    ``shortest_distances_`` : {(Z_i, Z_j): Å}, the shortest distance of every species pair
    in the training data (5 Å where a pair is never closer than that); the calculator
    warns when it meets closer pairs.

    After ``fit``, ``force_score_scale_`` (1/Å) is the scale κ of the cheap force
    score of ``GAPCalculator(uncertainty="local")``, learnt on about a hundred
    training atoms (``gapfit.uncertainty.local``).

    ``fit`` takes a list of Atoms, or file names (str/Path or a list of
    them) that the workers read themselves with ``read_options``.

    After ``fit``, ``peak_memory_mb_`` is the peak resident memory (MB) of this
    process during the fit and ``worker_peak_memory_mb_`` the largest peak of a
    worker process that ran chunks (None in a serial fit; since the worker
    started). Both are also logged at INFO level.
    """

    def __init__(self, terms=None, energy_sigma=0.002, force_sigma=0.05, virial_sigma=0.05,
                 config_type_sigma=None, e0="average", fit_forces=True, fit_virial=True,
                 sparse_jitter=1e-8, chunk_atoms=512, n_jobs=None, backend=None,
                 read_options=None, random_state=None, verbose=False,
                 optimize_hyperparameters="scale", recipe="fixed", prefer="speed",
                 search_time="auto", repulsion="zbl", virial_weighting="tensor",
                 sparse_jitter_relative=True):
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
        self.n_jobs = n_jobs
        self.backend = backend
        self.read_options = read_options
        self.random_state = random_state
        self.verbose = verbose
        self.optimize_hyperparameters = optimize_hyperparameters
        self.recipe = recipe
        self.prefer = prefer
        self.search_time = search_time
        self.repulsion = repulsion
        self.virial_weighting = virial_weighting
        self.sparse_jitter_relative = sparse_jitter_relative

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None):
        """Fit to structures carrying reference labels (SinglePointCalculator).

        ``y`` is ignored: labels travel on the structures.
        """
        return self._fit_measuring_memory(X)

    def _fit_measuring_memory(self, X, hyperparameters=None):
        with PeakMemory() as memory:
            self._memory = memory
            try:
                self._fit(X, hyperparameters)
            finally:
                del self._memory
        self.peak_memory_mb_ = memory.process_mb
        self.worker_peak_memory_mb_ = memory.workers_mb
        workers = ("" if memory.workers_mb is None
                   else f", largest worker {memory.workers_mb:.0f} MB")
        logger.info("fit: %d configurations, peak memory %.0f MB in this process%s",
                    self.n_training_structures_, memory.process_mb, workers)
        return self

    def _fit(self, X, hyperparameters=None):
        started = time.perf_counter()
        chunks = self._training_chunks(X)
        surveys = self._map(partial(training.survey, need_forces=self.fit_forces), chunks, "checking")
        self.species_ = sorted(set().union(*(s.species for s in surveys)))
        self.e0_ = self._fit_e0(surveys)
        self.noise_ = NoiseModel(self.energy_sigma, self.force_sigma, self.virial_sigma,
                                 self.config_type_sigma, virial_weighting=self.virial_weighting)
        found = {}
        for s in surveys:
            found = merge_shortest(found, s.shortest)
        self.shortest_distances_ = complete_shortest(found, self.species_)
        self.repulsion_ = make_repulsion(self.repulsion, self.shortest_distances_)
        terms = self.terms
        if terms is None and self._searches():
            terms, self.recipe_ = recipe.search(self, [a for c in chunks for a in c.load()])
            if hyperparameters is None:  # (a refit's scales hold the recipe's already)
                self.noise_ = self.noise_.with_scales(self.recipe_.chosen_scales())
        elif terms is None:
            terms = default_terms()
        self.terms_ = [clone(term).build(self.species_) for term in terms]
        if hyperparameters is not None:
            noise_scales, deltas = hyperparameters
            self.noise_ = self.noise_.with_scales(noise_scales)
            for term, delta in zip(self.terms_, deltas):
                term.delta_ = float(delta)
        self._choose_sparse_points(chunks)
        self.data_factors_ = self._map_reduce(partial(training.factors, self.terms_,
                                                      self.target_settings()),
                                              training.combine_factors, chunks, "assembling")
        self.solve_coefficients()
        self.n_training_structures_ = int(sum(len(s.n_atoms) for s in surveys))
        if self.optimize_hyperparameters:
            self._optimize_hyperparameters(chunks)
        self._learn_force_score_scale(chunks)
        if self._searches():
            self.recipe_.final_md_us_per_atom = self.md_microseconds_per_atom(chunks[0].load())
            self.recipe_.seconds = time.perf_counter() - started
            logger.info("%s", self.recipe_.format_table())

    def _searches(self):
        """Whether ``fit`` chooses the recipe from the data (no terms given, recipe="search")."""
        if self.recipe not in ("fixed", "search"):
            raise ValueError(f"recipe must be 'fixed' or 'search', got {self.recipe!r}")
        return self.terms is None and self.recipe == "search"

    def md_microseconds_per_atom(self, structures):
        """Best of three energy+forces+stress calls on the largest of ``structures`` (µs/atom)."""
        atoms = max(structures, key=len)
        predictor = StructurePredictor.from_model(self)
        predictor.predict(atoms)
        times = []
        for _ in range(3):
            began = time.perf_counter()
            predictor.predict(atoms)
            times.append(time.perf_counter() - began)
        return 1e6 * min(times) / len(atoms)

    def _optimize_hyperparameters(self, chunks):
        """The ``optimize_hyperparameters`` step at the end of ``fit`` (evidence maximisation
        from the stored R factors; the labels are read once more for their sigmas): "scale"
        (one closed-form factor of all sigmas and deltas), True or a factor (each separately)."""
        offsets = [type(term).__name__ for term in self.terms_ if term.kernel_offset()]
        setting = self.optimize_hyperparameters
        if offsets and setting == "scale":
            logger.warning("%s has a signal_mean: the evidence is not a function of delta "
                           "scales alone, so the sigmas and deltas stay as given (posterior "
                           "stds not calibrated)", offsets[0])
            return
        if offsets:
            raise ValueError(f"optimize_hyperparameters: {offsets[0]} has a signal_mean, so "
                             "the evidence is not a function of delta scales alone; not supported")
        noise = NoiseSummary.combine(self._map(partial(noise_summary, self.target_settings()),
                                               chunks, "noise"))
        if isinstance(setting, str):
            if setting != "scale":
                raise ValueError(f"optimize_hyperparameters must be False, True, 'scale' or a "
                                 f"factor > 1, not {setting!r}")
            self.hyperparameter_result_ = scale_with_noise(self, noise)
            return
        max_factor = 10.0 if setting is True else float(setting)
        self.hyperparameter_result_ = optimize_with_noise(self, noise, max_factor)

    def target_settings(self):
        """How this fitted model weighs labels: e0, the noise model, the label kinds and the
        repulsion baseline the terms do not fit."""
        check_is_fitted(self, "noise_")
        return training.TargetSettings(e0=self.e0_, noise=self.noise_,
                                       fit_forces=self.fit_forces, fit_virial=self.fit_virial,
                                       baseline=getattr(self, "repulsion_", None))

    def sparse_covariance(self):
        """δ² K_MM of all terms (block diagonal), with the fitted deltas (eV²)."""
        offsets = column_offsets(self.terms_)
        covariance = np.zeros((offsets[-1], offsets[-1]))
        for term, start, stop in zip(self.terms_, offsets[:-1], offsets[1:]):
            covariance[start:stop, start:stop] = term.sparse_covariance()
        return covariance

    def prior_factor(self):
        """The prior rows [Lᵀ | 0] with L Lᵀ = δ² K_MM + jitter (``gapfit.gp.linalg``)."""
        return gp.prior_factor(self.sparse_covariance(), self.sparse_jitter,
                               self.sparse_jitter_relative)

    def solve_coefficients(self):
        """Solve for ``alpha_`` and the total R factor ``factor_`` from ``data_factors_``
        and the prior; the one place where coefficients are computed. Returns self."""
        self.alpha_, self.factor_ = gp.solve(list(self.data_factors_.values()), self.prior_factor())
        return self

    def with_sigma_scales(self, scales):
        """A copy of this fitted model re-solved with the sigmas of some target kinds
        multiplied by ``scales`` ({"energy" | "forces" | "virial": factor > 0}), without a
        refit: a kind's rows are weighted by 1/σ, so its data R factor is divided by the
        factor; the noise model's scales are multiplied, so ``update`` weighs new data alike.
        The copy shares the fitted terms (sparse points, deltas) with this model."""
        check_is_fitted(self, "data_factors_")
        unknown = sorted(set(scales) - set(self.data_factors_))
        if unknown:
            raise ValueError(f"sigma scales for {unknown}: the model was fitted to "
                             f"{sorted(self.data_factors_)} only")
        if any(not float(factor) > 0 for factor in scales.values()):
            raise ValueError(f"sigma scales must be positive, got {scales}")
        resolved = copy.copy(self)
        resolved.data_factors_ = {kind: factor / float(scales.get(kind, 1.0))
                                  for kind, factor in self.data_factors_.items()}
        resolved.noise_ = self.noise_.with_scales(scales)
        resolved._posterior = None
        return resolved.solve_coefficients()

    def _learn_force_score_scale(self, chunks):
        """``force_score_scale_`` (1/Å) of the cheap force score on a few hundred training
        atoms (``gapfit.uncertainty.local.force_score_scale``)."""
        if not all(hasattr(term.kernel_, "gradient_covariance") for term in self.terms_):
            self.force_score_scale_ = None  # no force posterior for this kernel: no score
            return
        self.force_score_scale_ = force_score_scale(self, sample_of_chunks(chunks))

    def update(self, X):
        """Add labelled structures (a list of Atoms) without a refit: their R factors
        join ``data_factors_`` and the coefficients are solved again.

        Sparse points, e0 and hyperparameters stay as fitted; the result equals a
        fit on all the data with the same sparse points and e0. New structures with pairs
        closer than the training data lower ``shortest_distances_`` and the repulsion
        switches off there instead (it stays zero on the earlier data, which are farther
        apart, so their factors stand). Returns self.
        """
        check_is_fitted(self, "data_factors_")
        structures = list(X)
        self.check_predictable(structures)
        self._follow_shortest_distances(structures)
        chunks = training.chunks_of_structures(structures, self.chunk_atoms)
        pieces = self._map(partial(training.factors, self.terms_, self.target_settings()), chunks,
                           "updating")
        self.data_factors_ = gp.combine_factor_dicts([self.data_factors_] + pieces)
        self.solve_coefficients()
        self.n_training_structures_ += len(structures)
        return self

    def _follow_shortest_distances(self, structures):
        """Lower ``shortest_distances_`` (and rebuild ``repulsion_``) where ``structures``
        hold closer pairs."""
        if not hasattr(self, "shortest_distances_"):
            return
        found = dict(self.shortest_distances_)
        for atoms in structures:
            found = merge_shortest(found, shortest_distances(atoms))
        if found != self.shortest_distances_:
            self.shortest_distances_ = found
            self.repulsion_ = make_repulsion(self.repulsion, found)

    def refit(self, X):
        """A new model of the same settings fitted afresh to X (sparse points chosen again),
        keeping this model's fitted hyperparameters: noise scales and term deltas."""
        check_is_fitted(self, "noise_")
        refitted = clone(self)
        refitted.set_params(optimize_hyperparameters=False)
        refitted._fit_measuring_memory(X, (dict(self.noise_.scales),
                                           [term.delta_ for term in self.terms_]))
        return refitted

    def _training_chunks(self, X):
        if isinstance(X, (str, os.PathLike)):
            X = [X]
        X = list(X)
        if not X:
            raise ValueError("no training configurations given")
        if all(isinstance(item, (str, os.PathLike)) for item in X):
            return training.chunks_of_files(X, self.chunk_atoms, self.read_options)
        return training.chunks_of_structures(X, self.chunk_atoms)

    def _progress(self, description):
        if not self.verbose:
            return None
        from tqdm.auto import tqdm
        return partial(tqdm, desc=description, unit="chunk")

    def _map(self, func, chunks, description):
        return map_chunks(func, chunks, n_jobs=self.n_jobs, client=self.backend,
                          progress=self._progress(description),
                          memory=getattr(self, "_memory", None))

    def _map_reduce(self, func, combine, chunks, description):
        return map_reduce_chunks(func, combine, chunks, n_jobs=self.n_jobs, client=self.backend,
                                 progress=self._progress(description),
                                 memory=getattr(self, "_memory", None))

    def _fit_e0(self, surveys):
        """Isolated-atom energy per atomic number, eV."""
        from ase.data import atomic_numbers
        species = self.species_
        if isinstance(self.e0, dict):
            given = {(atomic_numbers[k] if isinstance(k, str) else int(k)): float(v)
                     for k, v in self.e0.items()}
            missing = [z for z in species if z not in given]
            if missing:
                raise ValueError(f"e0 has no value for atomic numbers {missing}")
            return {z: given[z] for z in species}
        if self.e0 == "average":
            per_atom = (sum(s.energies.sum() for s in surveys)
                        / sum(s.n_atoms.sum() for s in surveys))
            return {z: float(per_atom) for z in species}
        if self.e0 == "isolated":
            found = {}
            for s in surveys:
                found.update(s.single_atom_energies)
            missing = [z for z in species if z not in found]
            if missing:
                raise ValueError(f"e0='isolated' but no single-atom configuration for atomic numbers {missing}")
            return {z: found[z] for z in species}
        raise ValueError(f"e0 must be 'average', 'isolated' or a dict, not {self.e0!r}")

    def _selection_seed(self):
        """Integer seed of the sparse-point proposals (``gapfit.gp.sparse.chunk_rng``)."""
        if isinstance(self.random_state, (int, np.integer)):
            return int(self.random_state)
        rng = (self.random_state if isinstance(self.random_state, np.random.Generator)
               else np.random.default_rng(self.random_state))
        return int(rng.integers(2 ** 63))

    def _choose_sparse_points(self, chunks):
        """Sparse points of every term in passes over the chunks (``gapfit.gp.sparse``):
        feature statistics, then candidates; no process holds all the features."""
        all_terms = range(len(self.terms_))
        summaries = self._map_reduce(partial(training.summarize_features, self.terms_, all_terms),
                                     training.merge_summary_lists, chunks, "feature statistics")
        adapted = [i for i, term in enumerate(self.terms_)
                   if term.adapt_to_moments(*pooled_moments(summaries[i]))]
        if adapted:  # their descriptors changed: summarise the new features
            again = self._map_reduce(partial(training.summarize_features, self.terms_, adapted),
                                     training.merge_summary_lists, chunks, "feature statistics")
            summaries = [again[i] if i in adapted else s for i, s in enumerate(summaries)]
        plans = [plan_selection(summary, term.n_sparse, term.selection_method)
                 for term, summary in zip(self.terms_, summaries)]
        proposing = [plan if plan.method != "uniform" else None for plan in plans]
        candidates = [None] * len(plans)
        if any(plan is not None for plan in proposing):
            candidates = self._map_reduce(
                partial(training.propose_sparse, self.terms_, proposing, self._selection_seed()),
                partial(training.merge_candidate_lists, proposing), chunks, "sparse candidates")
        for term, plan, summary, proposed in zip(self.terms_, plans, summaries, candidates):
            chosen, chosen_channels = finish_selection(plan, summary, proposed, term.n_sparse,
                                                       label=type(term).__name__)
            term.set_sparse(chosen, chosen_channels)

    # -------------------------------------------------------------- predict
    def check_predictable(self, structures):
        """Raise unless the model is fitted and ``structures`` hold only its species and no
        overlapping atoms."""
        check_is_fitted(self, "alpha_")
        check_structures(structures, species=self.species_)

    def predict_structure(self, atoms):
        """Prediction (local energies eV, forces eV/Å, virial eV) of one Atoms."""
        e0 = np.array([self.e0_[int(z)] for z in atoms.numbers])
        return predict_structure(self.terms_, self.alpha_, e0, atoms,
                                 baseline=getattr(self, "repulsion_", None))

    def predict(self, X, return_std=False):
        """Total energies (eV), one per configuration of the list X.

        With ``return_std``, also the posterior standard deviations (eV) of the
        latent energies (``predict_variances`` has local energies and forces).
        """
        structures = list(X)
        self.check_predictable(structures)
        energies = np.array([self.predict_structure(atoms).energy for atoms in structures])
        if not return_std:
            return energies
        return energies, np.array([v.energy_std for v in self.predict_variances(structures)])

    def posterior(self):
        """The factors posterior variances need (``gapfit.uncertainty.posterior.Posterior``),
        computed once per fitted state and kept until the coefficients change."""
        if hasattr(self, "alpha_") and not hasattr(self, "factor_"):
            raise ValueError(f"{getattr(self, 'source_', 'this model')}: a model read from a "
                             "gap_fit XML file carries no posterior covariance, so predictive "
                             "variances are not available")
        check_is_fitted(self, "factor_")
        for term in getattr(self, "terms_", []):
            reason = term.posterior_unsupported() if hasattr(term, "posterior_unsupported") \
                else None
            if reason:
                raise ValueError(reason)
        cached = getattr(self, "_posterior", None)
        if cached is None or not cached.is_current(self):
            cached = self._posterior = Posterior(self)
        return cached

    def predict_variances(self, X):
        """Posterior variances per configuration (``gapfit.uncertainty.posterior.StructureVariance``:
        energy eV², local_energies eV², forces (eV/Å)², with ``*_std`` properties)."""
        structures = list(X)
        self.check_predictable(structures)
        posterior = self.posterior()
        return [structure_variance(self, atoms, posterior) for atoms in structures]

    def predict_forces(self, X):
        """Forces (eV/Å), one (N, 3) array per configuration."""
        structures = list(X)
        self.check_predictable(structures)
        return [self.predict_structure(atoms).forces for atoms in structures]

    def score(self, X, y=None):
        """Minus the force RMSE in eV/Å (greater is better), for model selection."""
        from ..evaluate.errors import force_errors
        return -force_errors(self, list(X))["rmse"]

    # ---------------------------------------------------------- persistence
    def save(self, path):
        """Write the fitted model to ``path`` atomically (see ``gapfit.model.model_file``)."""
        check_is_fitted(self, "alpha_")
        if not hasattr(self, "factor_"):
            raise ValueError(f"{getattr(self, 'source_', 'this model')}: a model read from a "
                             "gap_fit XML file can be written with save_xml only")
        check_writable(path)  # before any work: the error names the user's path
        write_model_file(path, stored.model_header(self), stored.model_arrays(self))
    def save_xml(self, path, label=None):
        """Write the fitted model as a gap_fit XML file plus sparseX files (md5-summed), which
        quippy's ``Potential(param_filename=path)`` and LAMMPS ``pair_style quip`` load.

        label : the GAP label (``Potential xml_label=LABEL``); default the label of a model
        read from XML, else "GAP_gapfit". Raises ValueError naming the first term that the
        format cannot hold (only QuipSOAP, QuipDistance2b, QuipAngle3b and TwoBody can).
        Returns the path written."""
        from .quip_model import record_from_model
        from .quip_xml import write_gap_xml
        check_is_fitted(self, "alpha_")
        if getattr(self, "repulsion_", None) is not None:
            raise ValueError("save_xml: the ZBL repulsion baseline has no gap_fit XML form; fit "
                             "with GAP(repulsion=None) to export the model")
        label = label or getattr(self, "quip_label_", "GAP_gapfit")
        return write_gap_xml(record_from_model(self, label), path)


def load_model(path):
    """The fitted GAP of a model file written by ``GAP.save``; ModelFileError on any damage,
    a newer format or a setting this gapfit does not know."""
    return stored.model_from_file_contents(GAP, path, *read_model_file(path))
