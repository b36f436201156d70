"""QUIP's GAP covariance functions (dot_product, ard_se, pp) and a gap_fit model's local energies.

Formulas confirmed by black-box comparison with quippy 0.10.3 (``Potential`` against
``Descriptor`` features and a parsed model; agreement to ~1e-12 relative; see
/work/notes/quip_model_facts.md).  For one ``<gpCoordinates>`` block with signal variance δ,
signal mean μ, sparse points s_m, coefficients α_m and sparse cutoffs c_m, a descriptor
instance with vector q and covariance cutoff f contributes

    e(q) = f · Σ_m c_m α_m (δ² k(q, s_m) + μ²)        (μ² only for ard_se and pp)

and the total energy is Σ e + Σ_atoms e0[Z].  Kernels, on the vectors exactly as quippy's
``Descriptor`` returns them (SOAP: already unit length, then the covariance_sigma0 element;
no further normalisation happens in the kernel):

    dot_product   k = (q · s)^ζ
    ard_se        k = exp(-½ Σ_d (q_d - s_d)² / θ_d²)
    pp            k = (1 - r)₊^(j+1) ((j+1) r + 1),  r = |(q - s)/θ|,  j = ⌊d/2⌋ + 2
                  (Wendland / Rasmussen & Williams eq. 4.21 with q = 1)

Like gapfit/kernels.py, each kernel gives values and factors A, B with
∂k/∂q̃ = A s̃ + B q̃, δ² applied by the caller.  For ard_se and pp the tilde space is the
descriptor divided by θ per dimension (``prepare_features``/``prepare_sparse``): there the
kernels are isotropic; the gradient with respect to the raw q is (A s̃ + B q̃)/θ, so a caller
in the A/B form scales the descriptor Jacobian by 1/θ too.  For dot_product q̃ = q.
"""
import numpy as np

__all__ = [
    "QuipDotProduct",
    "QuipARDSE",
    "QuipPP",
    "quip_kernel",
    "local_energies",
    "energy_forces_virial",
]


class QuipDotProduct:
    """k(q, s) = (q · s)^ζ on descriptor vectors as given (no normalisation in the kernel)."""

    def __init__(self, zeta):
        self.zeta = zeta

    def prepare_features(self, features):
        return np.asarray(features, dtype=np.float64)

    def prepare_sparse(self, sparse):
        return np.asarray(sparse, dtype=np.float64)

    def values(self, features, sparse):
        return (features @ sparse.T) ** self.zeta

    def values_and_factors(self, features, sparse):
        """k, A = ζ (q·s)^(ζ-1), B = 0 (both (n, M))."""
        dot = features @ sparse.T
        values = dot ** self.zeta
        factor_sparse = self.zeta * dot ** (self.zeta - 1)
        return values, factor_sparse, np.zeros_like(values)

    def raw_gradient_scale(self):
        """Per-dimension factor from ∂k/∂q̃ to ∂k/∂q: 1 (q̃ = q)."""
        return 1.0

    def covariance(self, features_a, features_b):
        """k between two sets of raw descriptor vectors, (n_a, n_b)."""
        return self.values(self.prepare_features(features_a), self.prepare_sparse(features_b))

    def sparse_covariance(self, sparse):
        """k between raw sparse points, (M, M) (cutoffs and δ² are the caller's)."""
        return self.covariance(sparse, sparse)

    def gradient_covariance(self, features_a, jacobians_a, features_b, jacobians_b):
        """T[a, i, b, j] = J_a[i] · ∂²k(q_a, q_b)/∂q_a∂q_b · J_b[j], shape (n_a, 3, n_b, 3)
        (the prior covariance of forces, as ``gapfit.gp.kernels``), with c = q_a·q_b:
        ζ(ζ-1) c^(ζ-2) (J_a[i]·q_b)(J_b[j]·q_a) + ζ c^(ζ-1) J_a[i]·J_b[j]."""
        n_a, n_b = len(features_a), len(features_b)
        zeta = self.zeta
        dot = features_a @ features_b.T
        flat_a = jacobians_a.reshape(3 * n_a, -1)
        flat_b = jacobians_b.reshape(3 * n_b, -1)
        result = ((zeta * dot ** (zeta - 1))[:, None, :, None]
                  * (flat_a @ flat_b.T).reshape(n_a, 3, n_b, 3))
        if zeta != 1:
            a_on_b = (flat_a @ features_b.T).reshape(n_a, 3, n_b)
            b_on_a = (flat_b @ features_a.T).reshape(n_b, 3, n_a).transpose(2, 0, 1)
            result += ((zeta * (zeta - 1) * dot ** (zeta - 2))[:, None, :, None]
                       * a_on_b[:, :, :, None] * b_on_a[:, None, :, :])
        return result


class _ScaledIsotropic:
    """Shared parts of ard_se and pp: descriptors divided by θ per dimension."""

    def __init__(self, theta):
        self.theta = theta

    def _theta(self):
        return np.asarray(self.theta, dtype=np.float64)

    def prepare_features(self, features):
        return np.asarray(features, dtype=np.float64) / self._theta()

    def prepare_sparse(self, sparse):
        return np.asarray(sparse, dtype=np.float64) / self._theta()

    def raw_gradient_scale(self):
        """Per-dimension factor 1/θ from ∂k/∂q̃ to ∂k/∂q."""
        return 1.0 / self._theta()

    def covariance(self, features_a, features_b):
        """k between two sets of raw descriptor vectors, (n_a, n_b)."""
        return self.values(self.prepare_features(features_a), self.prepare_sparse(features_b))

    def sparse_covariance(self, sparse):
        """k between raw sparse points, (M, M) (cutoffs, δ² and μ² are the caller's)."""
        return self.covariance(sparse, sparse)

    @staticmethod
    def _squared_distances(features, sparse):
        sq = (np.sum(features ** 2, axis=1)[:, None] + np.sum(sparse ** 2, axis=1)[None, :]
              - 2.0 * features @ sparse.T)
        return np.maximum(sq, 0.0)


class QuipARDSE(_ScaledIsotropic):
    """k(q, s) = exp(-½ Σ_d (q_d - s_d)²/θ_d²), θ per dimension (descriptor units)."""

    def values(self, features, sparse):
        """k on prepared (θ-scaled) features and sparse points, (n, M)."""
        return np.exp(-0.5 * self._squared_distances(features, sparse))

    def values_and_factors(self, features, sparse):
        """k, A = k, B = -k in the θ-scaled space."""
        values = self.values(features, sparse)
        return values, values, -values


class QuipPP(_ScaledIsotropic):
    """Piecewise polynomial k = (1 - r)₊^(j+1) ((j+1) r + 1), r = |(q - s)/θ|, j = ⌊d/2⌋ + 2.

    Compact support r < 1; twice differentiable.  ``dimensions`` is d, the descriptor length.
    """

    def __init__(self, theta, dimensions):
        super().__init__(theta)
        self.dimensions = dimensions

    def _j(self):
        return int(self.dimensions) // 2 + 2

    def values(self, features, sparse):
        r = np.sqrt(self._squared_distances(features, sparse))
        j = self._j()
        m = np.maximum(1.0 - r, 0.0)
        return m ** (j + 1) * ((j + 1) * r + 1.0)

    def values_and_factors(self, features, sparse):
        """k, A = (j+1)(j+2)(1-r)₊^j, B = -A in the θ-scaled space (dk/dr = -A r)."""
        r = np.sqrt(self._squared_distances(features, sparse))
        j = self._j()
        m = np.maximum(1.0 - r, 0.0)
        values = m ** (j + 1) * ((j + 1) * r + 1.0)
        factor = (j + 1) * (j + 2) * m ** j
        return values, factor, -factor


def quip_kernel(coordinate):
    """The kernel object of a ``QuipCoordinate`` (``gapfit.quip_xml``)."""
    kind = coordinate.covariance_type
    if kind == "dot_product":
        return QuipDotProduct(coordinate.zeta)
    if kind == "ard_se":
        return QuipARDSE(np.asarray(coordinate.theta, dtype=np.float64))
    if kind == "pp":
        return QuipPP(np.asarray(coordinate.theta, dtype=np.float64),
                      coordinate.sparse_points.shape[1])
    raise ValueError(f"coordinate {coordinate.label}: covariance_type {kind!r} is not supported")


def local_energies(coordinate, features, cutoffs=None, gradient=False):
    """Energies of descriptor instances of one coordinate, and their derivatives.

    Parameters
    ----------
    coordinate : a ``QuipCoordinate`` (covariance_type, zeta/theta, signal_variance δ,
        signal_mean μ, sparse_points, alpha, sparse_cutoff)
    features : (n, d) descriptor vectors q_i (as quippy's Descriptor gives them)
    cutoffs : (n,) covariance cutoffs f_i of the instances (default 1)
    gradient : also return the derivatives

    Returns
    -------
    energies : (n,) e_i = f_i u_i with u_i = Σ_m c_m α_m (δ² k(q_i, s_m) + μ²), eV
    and with ``gradient``:
    d_features : (n, d) ∂e_i/∂q_i = f_i δ² Σ_m c_m α_m ∂k/∂q_i (eV per descriptor unit)
    d_cutoffs : (n,) ∂e_i/∂f_i = u_i (eV), to contract with the cutoff's position gradient
    """
    features = np.atleast_2d(np.asarray(features, dtype=np.float64))
    n = len(features)
    cutoffs = np.ones(n) if cutoffs is None else np.asarray(cutoffs, dtype=np.float64)
    kernel = quip_kernel(coordinate)
    q = kernel.prepare_features(features)
    s = kernel.prepare_sparse(coordinate.sparse_points)
    weights = np.asarray(coordinate.alpha) * np.asarray(coordinate.sparse_cutoff)
    delta2 = coordinate.signal_variance ** 2
    mean2 = coordinate.signal_mean ** 2 if coordinate.covariance_type in ("ard_se", "pp") else 0.0
    if not gradient:
        u = delta2 * (kernel.values(q, s) @ weights) + mean2 * weights.sum()
        return cutoffs * u
    values, factor_sparse, factor_self = kernel.values_and_factors(q, s)
    u = delta2 * (values @ weights) + mean2 * weights.sum()
    d_scaled = (factor_sparse * weights) @ s + (factor_self @ weights)[:, None] * q
    d_features = (cutoffs * delta2)[:, None] * d_scaled * kernel.raw_gradient_scale()
    return cutoffs * u, d_features, u


def energy_forces_virial(coordinate, features, cutoffs, gradients, cutoff_gradients,
                         gradient_descriptor, gradient_atom, gradient_positions, n_atoms):
    """Energy, forces and virial of one coordinate from descriptor values and gradients.

    Parameters
    ----------
    coordinate : a ``QuipCoordinate``
    features : (n, d) descriptor vectors; cutoffs : (n,) their covariance cutoffs
    gradients : (g, 3, d) ∂q/∂r for each (descriptor, atom) entry (1/Å in descriptor units)
    cutoff_gradients : (g, 3) ∂f/∂r of the same entries (1/Å)
    gradient_descriptor, gradient_atom : (g,) 0-based descriptor and atom of each entry
    gradient_positions : (g, 3) position (Å) of the entry's atom as seen by the descriptor
        (the periodic image that enters it)
    n_atoms : number of atoms

    Returns
    -------
    energy (eV, without e0), forces (n_atoms, 3) eV/Å, virial (3, 3) eV,
    W = -Σ_entries r ⊗ ∂E/∂r (ASE stress = -W / V)
    """
    energies, d_features, d_cutoffs = local_energies(coordinate, features, cutoffs,
                                                     gradient=True)
    gradient_descriptor = np.asarray(gradient_descriptor, dtype=np.int64)
    d_positions = (np.einsum("gxd,gd->gx", np.asarray(gradients, dtype=np.float64),
                             d_features[gradient_descriptor])
                   + d_cutoffs[gradient_descriptor][:, None] * np.asarray(cutoff_gradients))
    forces = np.zeros((int(n_atoms), 3))
    np.add.at(forces, np.asarray(gradient_atom, dtype=np.int64), -d_positions)
    virial = -np.asarray(gradient_positions, dtype=np.float64).T @ d_positions
    return float(energies.sum()), forces, virial
