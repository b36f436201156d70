"""Uncertainty at MD cost: exact local-energy variances from one GEMM, and a force score.

Local energy E_i = Σ_m α_m a_i[m] with the design row a_i[m] = δ² Σ_{e of atom i} k(q_e, s_m)
(the kernel values the MD path contracts anyway, ``StructurePredictor.predict(local_rows=)``).
Its projected-process variance (``gapfit.uncertainty.posterior``) is

    var E_i = k_ii - a_i (K_MM⁻¹ - Σ_α) a_iᵀ = k_ii - |a_i C|²,

with k_ii = δ² Σ_{e,e' of atom i} k(q_e, q_e') and a factor C (M × r) of K_MM⁻¹ - Σ_α
computed once per model (``LocalVarianceFactor``): with K_MM = L Lᵀ and Σ_α⁻¹ = RᵀR,
P = R⁻ᵀL = U S Vᵀ has singular values in (0, 1] and C = L⁻ᵀ V (I - S²)^½, so the
difference of the two explained variances is never formed by cancellation.

Force score (eV/Å, per atom): the force on atom i is minus the gradient of the local energies
of i and of its neighbours within the cutoff, so the score sums their variances,

    latent score_i = κ · sqrt(var E_i + Σ_{neighbour images j' of i} var E_j),

with κ (1/Å) learnt once per model (``force_score_scale``) so that, on training-like
structures, the mean square score equals the mean latent force-component variance of
``gapfit.uncertainty.posterior``: it is a rescaled neighbourhood energy std, not a force variance, and it
matches the full force std on average, not atom by atom. The predictive versions add the
fitted noise: sqrt(latent² + σ²) with σ the model's force (or local-energy) noise level
(``noise_levels``), which is what a force error against labels should be compared with.
"""
import logging
from dataclasses import dataclass

import numpy as np
from scipy.linalg import solve_triangular, svd
from sklearn.utils.validation import check_is_fitted

from . import _prior_sums_kernels as kernels
from .prior_sums import local_priors

logger = logging.getLogger(__name__)

# atoms of training-like structures used to learn the force-score scale κ
SCALE_ATOMS = 128
# τ of the calculator's factor: local variances overstated by at most τ/(1-τ) = 1.01 %
# (0.5 % in the std); on the default mlearn Mo model it drops 32 % of the directions
CALCULATOR_TOLERANCE = 0.01


class LocalVarianceFactor:
    """C (M, r) with C Cᵀ = K_MM⁻¹ - Σ_α, from the model's R factor (see the module doc).

    tolerance : τ; directions whose weight w = 1 - s² is at most τ are dropped (r < M).
        The variances are then overstated, never understated, by at most τ/(1 - τ) of
        themselves: with u = Vᵀ L⁻¹ aᵀ, var = (k_ii - |u|²) + Σ_j (1 - w_j) u_j², both parts
        ≥ 0, and a dropped direction adds w_j u_j² ≤ τ/(1 - τ) · (1 - w_j) u_j².
        0 keeps every direction the data constrain at all (exact to round-off).
    """

    def __init__(self, model, tolerance=0.0):
        from .posterior import Posterior
        posterior = Posterior(model)
        self.factor = posterior.factor
        prior_upper = posterior.prior_upper                     # Lᵀ
        projected = solve_triangular(posterior.precision_upper, prior_upper.T, trans="T",
                                     lower=False, check_finite=False)   # R⁻ᵀ L
        _, singular, vt = svd(projected, check_finite=False, lapack_driver="gesdd")
        weights = np.clip(1.0 - singular ** 2, 0.0, 1.0)
        self.weights = weights  # 1 - s² of every direction (1: fully determined by the data)
        keep = weights > tolerance
        directions = vt[keep].T * np.sqrt(weights[keep])
        self.matrix = np.ascontiguousarray(solve_triangular(prior_upper, directions, lower=False,
                                                            check_finite=False))
        self.tolerance = tolerance

    @property
    def rank(self):
        return self.matrix.shape[1]

    def is_current(self, model):
        """True while the model still holds the R factor this factor was taken from."""
        return getattr(model, "factor_", None) is self.factor

    def explained(self, rows):
        """a (K_MM⁻¹ - Σ_α) aᵀ for every row a of ``rows`` (n, M): one GEMM."""
        projected = np.asarray(rows, dtype=np.float64) @ self.matrix
        return np.einsum("nr,nr->n", projected, projected)


def noise_levels(model):
    """(force σ eV/Å, energy σ eV/atom) the model was fitted with, after any evidence scaling
    (its noise model ``noise_``): the noise a label carries, added to latent variances to
    compare predictions with labels."""
    noise = model.noise_
    return (noise.force_sigma * noise.scale("forces"), noise.energy_sigma * noise.scale("energy"))


@dataclass
class LocalUncertainty:
    """Cheap uncertainty of one structure.

    local_variances : (N,) latent variances of the local energies, eV² (exact).
    neighbourhood_variances : (N,) var E_i + Σ_{neighbour images j'} var E_j, eV².
    force_score_scale : κ, 1/Å. force_noise : σ_F, eV/Å. energy_noise : σ_E, eV/atom.
    """

    local_variances: np.ndarray
    neighbourhood_variances: np.ndarray
    force_score_scale: float
    force_noise: float
    energy_noise: float

    @property
    def energies_latent_std(self):
        """(N,) eV: std of each local energy under the posterior."""
        return np.sqrt(np.maximum(self.local_variances, 0.0))

    @property
    def energies_std(self):
        """(N,) eV: predictive, sqrt(latent² + σ_E²) with σ_E the per-atom energy noise."""
        return np.sqrt(np.maximum(self.local_variances, 0.0) + self.energy_noise ** 2)

    @property
    def forces_latent_score(self):
        """(N,) eV/Å: κ · sqrt(neighbourhood variance), the latent force score."""
        return self.force_score_scale * np.sqrt(np.maximum(self.neighbourhood_variances, 0.0))

    @property
    def forces_score(self):
        """(N,) eV/Å: predictive force score sqrt(latent score² + σ_F²), one per atom and
        standing for each of its three components."""
        return np.sqrt(self.forces_latent_score ** 2 + self.force_noise ** 2)


class LocalUncertaintyPredictor:
    """Prediction plus cheap uncertainty of single structures for one fitted model.

    Wraps a ``StructurePredictor`` (same skin and neighbour-list reuse): each call is one
    MD-path prediction that also writes the local-energy rows, one GEMM with the
    ``LocalVarianceFactor``, the per-atom prior sums and one pass over the pairs.
    """

    def __init__(self, model, skin=None, tolerance=0.0, force_score_scale=None):
        from ..predict.predictor import StructurePredictor
        check_is_fitted(model, "factor_")
        self.model = model
        self.predictor = StructurePredictor.from_model(model, skin=skin)
        self.factor = LocalVarianceFactor(model, tolerance)
        self.force_noise, self.energy_noise = noise_levels(model)
        if force_score_scale is None:
            force_score_scale = getattr(model, "force_score_scale_", None)
        self.force_score_scale = force_score_scale

    def is_current(self, model):
        return (model is self.model and self.predictor.is_current(model)
                and self.factor.is_current(model))

    def predict(self, atoms, e0_per_atom=None):
        """(Prediction, LocalUncertainty) of ``atoms``. Without a known force-score scale
        (a model fitted before it existed) it is learnt from ``atoms`` itself on first use."""
        n_atoms = len(atoms)
        rows = np.zeros((n_atoms, int(self.predictor.column_offsets[-1])))
        prediction = self.predictor.predict(atoms, e0_per_atom, local_rows=rows)
        priors = np.zeros(n_atoms)
        for term, environments in zip(self.predictor.terms, prediction.environments):
            priors += local_priors(term, environments, n_atoms)
        variances = priors - self.factor.explained(rows)
        neighbour_list = prediction.neighbor_list
        neighbourhood = np.empty(n_atoms)
        kernels.neighbourhood_sums(np.maximum(variances, 0.0), neighbour_list.centers,
                                   neighbour_list.neighbors, neighbourhood)
        if self.force_score_scale is None:
            self.force_score_scale = force_score_scale(self.model, [atoms])
            logger.info("force-score scale learnt from the first structure: %.4g 1/Å",
                        self.force_score_scale)
        return prediction, LocalUncertainty(variances, neighbourhood, self.force_score_scale,
                                            self.force_noise, self.energy_noise)


def neighbourhood_variances(model, atoms, local_variances):
    """var E_i + Σ_{neighbour images j' of i} var E_j (eV²) within the model's cutoff."""
    from ..structures.neighbors import build_neighbor_list
    cutoff = max(term.neighbor_cutoff for term in model.terms_)
    neighbour_list = build_neighbor_list(atoms, cutoff)
    out = np.empty(len(atoms))
    kernels.neighbourhood_sums(np.maximum(np.asarray(local_variances, dtype=np.float64), 0.0),
                               neighbour_list.centers, neighbour_list.neighbors, out)
    return out


def force_score_scale(model, structures):
    """κ (1/Å) with κ² Σ_i (neighbourhood variance)_i = Σ_i mean_a var F_ia (latent, from
    ``gapfit.uncertainty.posterior``) over the atoms of ``structures``: the score's mean square equals the
    mean force-component variance there."""
    from .posterior import Posterior, structure_variance
    posterior = Posterior(model)
    force_total = neighbourhood_total = 0.0
    for atoms in structures:
        result = structure_variance(model, atoms, posterior)
        force_total += float(np.maximum(result.forces, 0.0).mean(axis=1).sum())
        neighbourhood_total += float(neighbourhood_variances(model, atoms,
                                                             result.local_energies).sum())
    if neighbourhood_total <= 0.0:
        return 0.0
    return float(np.sqrt(force_total / neighbourhood_total))


def training_sample(structures, max_atoms=SCALE_ATOMS):
    """Evenly spaced structures of a training set with at most ``max_atoms`` atoms in all
    (at least one), the structures ``force_score_scale`` is learnt on."""
    structures = list(structures)
    if not structures:
        return []
    sizes = np.array([len(atoms) for atoms in structures])
    count = max(1, min(len(structures), int(max_atoms // max(1.0, sizes.mean()))))
    chosen = np.unique(np.linspace(0, len(structures) - 1, count).round().astype(int))
    picked, total = [], 0
    for index in chosen:
        if picked and total + sizes[index] > max_atoms:
            continue
        picked.append(structures[index])
        total += sizes[index]
    return picked


def sample_of_chunks(chunks, max_atoms=SCALE_ATOMS, max_chunks=4):
    """``training_sample`` drawn from up to ``max_chunks`` evenly spaced training chunks
    (``gapfit.training.Chunk``; file chunks are read again, a few hundred atoms)."""
    if not chunks:
        return []
    picked = np.unique(np.linspace(0, len(chunks) - 1, min(len(chunks), max_chunks))
                       .round().astype(int))
    structures = [atoms for index in picked for atoms in chunks[index].load()]
    return training_sample(structures, max_atoms)
