"""Log marginal likelihood of a fitted sparse GAP, and its maximisation over sigmas and deltas.

Both come from the stored per-kind R factors without touching the data again: scaling a
kind's sigmas by λ divides its R factor by λ, and scaling a term's δ by μ multiplies its
columns (design rows ∝ δ²) by μ² and its block of K_MM by μ². With the total R factor
[[R11, r], [0, ρ]] of the data rows and the prior rows [Lᵀ | 0] (K_MM + jitter = L Lᵀ),

    log p(y) = -½ (ρ² + log|Σ| + log|R11ᵀR11| - log|L Lᵀ| + n log 2π),

the projected-process (DTC) evidence of y ~ N(0, A K_MM⁻¹ Aᵀ + Σ) by the matrix
determinant lemma. log|Σ| needs each kind's row count and Σ log σ, which the fitted
factors do not hold: ``noise_summary`` collects them from the labels (cheap).
"""
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize
from sklearn.utils.validation import check_is_fitted

from ..gp import linalg as gp
from ..fit import training
from ..fit.assembly import column_offsets
from ..structures.checks import check_labels


@dataclass
class NoiseSummary:
    """Per target kind: number of rows and Σ log σ over them (σ in eV, eV/Å, eV)."""

    rows: dict = field(default_factory=dict)
    log_sigma: dict = field(default_factory=dict)

    def add(self, kind, n_rows, log_sigma):
        self.rows[kind] = self.rows.get(kind, 0) + int(n_rows)
        self.log_sigma[kind] = self.log_sigma.get(kind, 0.0) + float(log_sigma)
        return self

    @staticmethod
    def combine(summaries):
        total = NoiseSummary()
        for summary in summaries:
            for kind in summary.rows:
                total.add(kind, summary.rows[kind], summary.log_sigma[kind])
        return total


def noise_summary(settings, chunk):
    """NoiseSummary of one chunk: the same rows ``training.factors`` weights (a map step)."""
    structures = chunk.load()
    labels = check_labels(structures, need_forces=settings.fit_forces)
    sigmas = np.array([settings.sigmas_of(atoms) for atoms in structures])
    n_atoms = np.array([len(atoms) for atoms in structures])
    summary = NoiseSummary().add("energy", len(structures), np.log(sigmas[:, 0]).sum())
    if settings.fit_forces:
        summary.add("forces", 3 * n_atoms.sum(), (3 * n_atoms * np.log(sigmas[:, 1])).sum())
    if settings.fit_virial:
        with_stress = [k for k, s in enumerate(labels.stresses) if s is not None]
        if with_stress:
            summary.add("virial", 6 * len(with_stress),
                        np.log(settings.noise.voigt_sigmas(sigmas[with_stress, 2])).sum())
    return summary


def structures_noise(model, structures):
    """NoiseSummary of a list of labelled Atoms (the model's training set), with the sigmas
    of the model's noise model as it stands (optimised scales included)."""
    settings = model.target_settings()
    chunks = training.chunks_of_structures(list(structures), model.chunk_atoms)
    return NoiseSummary.combine(noise_summary(settings, chunk) for chunk in chunks)


def _nonzero_rows(factor):
    """An R factor without its all-zero rows (the padding of square factors from model files
    written before factors were kept lean): fewer rows to re-factorise."""
    return factor[np.any(factor != 0.0, axis=1)]


class MarginalLikelihood:
    """log p(y) of a fitted model as a function of log scale factors, relative to its state.

    Parameters are ``names``: "sigma_<kind>" for each fitted target kind, then
    "delta_<i>" for each term. ``log_marginal_likelihood(x)`` at x = 0 is the
    model's own evidence.
    """

    def __init__(self, model, noise):
        check_is_fitted(model, "data_factors_")
        self.kinds = sorted(model.data_factors_)
        missing = [kind for kind in self.kinds if kind not in noise.rows]
        if missing:
            raise ValueError(f"noise summary has no rows of kind {missing}: it must describe "
                             "the data the model was fitted to")
        self.factors = [_nonzero_rows(model.data_factors_[kind]) for kind in self.kinds]
        self.covariance = model.sparse_covariance()
        self.jitter = model.sparse_jitter
        self.jitter_relative = model.sparse_jitter_relative
        offsets = column_offsets(model.terms_)
        self.term_of_column = np.repeat(np.arange(len(model.terms_)), np.diff(offsets))
        self.n_rows = np.array([noise.rows[kind] for kind in self.kinds], dtype=float)
        # Σ log σ of the fitted state (the noise summary is taken from the model's noise model)
        self.log_sigma = np.array([noise.log_sigma[kind] for kind in self.kinds])
        self.names = [f"sigma_{kind}" for kind in self.kinds] + [
            f"delta_{index}" for index in range(len(model.terms_))]

    def split(self, log_scales):
        """(sigma scale per kind, delta scale per term) of a parameter vector."""
        log_scales = np.asarray(log_scales, dtype=float)
        return np.exp(log_scales[: len(self.kinds)]), np.exp(log_scales[len(self.kinds):])

    def scaled_factors(self, log_scales):
        """Data R factors and sparse covariance of the scaled model."""
        sigma_scales, delta_scales = self.split(log_scales)
        column_delta = delta_scales[self.term_of_column]
        columns = np.append(column_delta ** 2, 1.0)
        factors = [factor * (columns / scale) for factor, scale in zip(self.factors, sigma_scales)]
        covariance = self.covariance * np.outer(column_delta, column_delta)
        return factors, covariance

    def __call__(self, log_scales):
        """log p(y) (dimensionless; natural log of a density in the units of y)."""
        factors, covariance = self.scaled_factors(log_scales)
        prior = gp.prior_factor(covariance, self.jitter, self.jitter_relative)
        total = gp.total_factor(factors, prior)
        size = len(covariance)
        sigma_scales, _ = self.split(log_scales)
        log_det_noise = 2.0 * np.sum(self.log_sigma + self.n_rows * np.log(sigma_scales))
        log_det_posterior = 2.0 * np.sum(np.log(np.abs(np.diag(total)[:size])))
        log_det_prior = 2.0 * np.sum(np.log(np.diag(prior)[:size]))
        return -0.5 * (total[size, size] ** 2 + log_det_noise + log_det_posterior - log_det_prior
                       + self.n_rows.sum() * np.log(2.0 * np.pi))


def log_marginal_likelihood(model, structures, sigma_scales=None, delta_scales=None):
    """log p(y) of ``model`` fitted to ``structures``, optionally with its sigmas of each kind
    ({"energy", "forces", "virial": factor}) and its terms' deltas (list of factors) scaled."""
    evidence = MarginalLikelihood(model, structures_noise(model, structures))
    sigma_scales = sigma_scales or {}
    delta_scales = np.ones(len(model.terms_)) if delta_scales is None else delta_scales
    log_scales = np.concatenate([np.log([sigma_scales.get(kind, 1.0) for kind in evidence.kinds]),
                                 np.log(np.asarray(delta_scales, dtype=float))])
    return evidence(log_scales)


def apply_scales(model, evidence, log_scales):
    """Put the scaled state into the model's fitted record: data factors, noise scales,
    fitted deltas (``delta_``), then the coefficients (``GAP.solve_coefficients``)."""
    sigma_scales, delta_scales = evidence.split(log_scales)
    factors, _ = evidence.scaled_factors(log_scales)
    # the scaled factors are lean already (zero rows dropped); combine_factors checks their form
    model.data_factors_ = {kind: gp.combine_factors([factor])
                           for kind, factor in zip(evidence.kinds, factors)}
    model.noise_ = model.noise_.with_scales(
        {kind: float(scale) for kind, scale in zip(evidence.kinds, sigma_scales)})
    for term, scale in zip(model.terms_, delta_scales):
        term.delta_ = term.delta_ * float(scale)
    model.solve_coefficients()


def optimize_with_noise(model, noise, max_factor=10.0, optimize_sigmas=True, optimize_deltas=True,
                        step=1e-4, fixed=()):
    """Maximise log p(y) over log scale factors bounded by ±log(max_factor); update the model.

    fixed : parameter names (``MarginalLikelihood.names``, e.g. "sigma_energy") held at 1.

    L-BFGS-B with central-difference gradients (2 evaluations per parameter each). Returns
    a dict: names, scale factors, log p(y) before and after, number of evaluations.
    """
    if max_factor <= 1.0:
        raise ValueError(f"max_factor must exceed 1, got {max_factor}")
    evidence = MarginalLikelihood(model, noise)
    free = np.array([optimize_sigmas] * len(evidence.kinds)
                    + [optimize_deltas] * len(model.terms_), dtype=bool)
    free &= np.array([name not in fixed for name in evidence.names], dtype=bool)
    n_rows = evidence.n_rows.sum()
    evaluations = [0]

    def full(x):
        values = np.zeros(len(free))
        values[free] = x
        return values

    def objective(x):
        evaluations[0] += 1
        return -evidence(full(x)) / n_rows

    def gradient(x):
        result = np.zeros(len(x))
        for i in range(len(x)):
            shift = np.zeros(len(x))
            shift[i] = step
            result[i] = (objective(x + shift) - objective(x - shift)) / (2.0 * step)
        return result

    before = evidence(np.zeros(len(free)))
    bound = np.log(max_factor)
    result = minimize(objective, np.zeros(int(free.sum())), jac=gradient, method="L-BFGS-B",
                      bounds=[(-bound, bound)] * int(free.sum()))
    best = full(result.x)
    after = evidence(best)
    if after < before:  # never leave the model worse than it came
        best, after = np.zeros(len(free)), before
    apply_scales(model, evidence, best)
    return {"names": evidence.names, "scales": np.exp(best).tolist(),
            "log_marginal_likelihood_before": float(before),
            "log_marginal_likelihood_after": float(after), "evaluations": evaluations[0],
            "n_rows": int(n_rows)}


def optimize(model, structures, max_factor=10.0, optimize_sigmas=True, optimize_deltas=True):
    """Maximise log p(y) of ``model`` fitted to ``structures`` (a list of Atoms); see
    ``optimize_with_noise``. The model's settings stay; the fitted terms' ``delta_`` and the
    noise model's scales (``noise_.scales``) change, so ``update`` keeps weighting new data
    alike."""
    return optimize_with_noise(model, structures_noise(model, structures), max_factor,
                               optimize_sigmas, optimize_deltas)


def common_scale(model, noise):
    """(evidence, λ, log p(y) at λ = 1, log p(y) at λ) for ``scale_with_noise``, without
    changing the model: ``evidence`` is its ``MarginalLikelihood``, λ the factor on every
    sigma and delta that maximises log p(y) along that ray (see ``scale_with_noise``)."""
    check_is_fitted(model, "factor_")
    evidence = MarginalLikelihood(model, noise)
    scale = float(np.sqrt(model.factor_[-1, -1] ** 2 / evidence.n_rows.sum()))
    log_scales = np.full(len(evidence.names), np.log(scale))
    return evidence, scale, evidence(np.zeros(len(log_scales))), evidence(log_scales)


def scale_with_noise(model, noise):
    """Multiply every sigma and every delta by the one factor λ that maximises log p(y) along
    that ray, in closed form; update the model.

    Scaling all of them by λ leaves the coefficients' predictions unchanged (the fit depends
    on the ratios δ/σ only) and multiplies every posterior variance by λ²; the evidence is
    then -½(ρ²/λ² + 2 n log λ) + const, with ρ² = yᵀ(A K_MM⁻¹ Aᵀ + Σ)⁻¹y the last diagonal
    entry of the R factor squared and n the number of data rows, so λ² = ρ²/n: the labels'
    misfit, measured by the model's own covariance, sets the size of its uncertainties.
    Returns a dict: scale, log p(y) before and after.
    """
    evidence, scale, before, after = common_scale(model, noise)
    apply_scales(model, evidence, np.full(len(evidence.names), np.log(scale)))
    return {"scale": scale, "log_marginal_likelihood_before": float(before),
            "log_marginal_likelihood_after": float(after)}


def scale_to_evidence(model, structures):
    """``scale_with_noise`` for a model fitted to ``structures`` (a list of Atoms)."""
    return scale_with_noise(model, structures_noise(model, structures))
