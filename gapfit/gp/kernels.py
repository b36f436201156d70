"""Covariance functions between local environments and sparse points.

Every kernel returns, besides the values k(q_i, s_m), two factor matrices A and
B such that the gradient with respect to the environment's descriptor is

    ∂k(q_i, s_m)/∂q_i = A[i, m] * s_m + B[i, m] * q_i,

where s_m is the sparse point as the kernel stores it (``prepare_sparse``).
This shared form lets one assembly kernel contract any of them with
descriptor gradients. The signal variance δ² is applied by the caller.

For posterior variances every kernel also gives the prior covariance between
two raw feature sets (``covariance``) and the mixed second derivative
∂²k(q_a, q_b)/∂q_a∂q_b contracted with Jacobians J = ∂q/∂r on both sides
(``gradient_covariance``), which is the prior covariance of forces.
"""
import numpy as np

from ..descriptors.numerics import cosine_cutoff


class NormalizedDotProduct:
    """k(q, s) = (q̂ · ŝ)^ζ with q̂ = q/|q|: the SOAP kernel of GAP.

    Sparse points are stored normalised; ``zeta`` is a positive integer.
    """

    def __init__(self, zeta=4):
        self.zeta = zeta

    def prepare_sparse(self, features):
        """Sparse points as stored: unit vectors."""
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        return features / np.where(norms > 0.0, norms, 1.0)

    def values(self, features, sparse):
        norms = np.linalg.norm(features, axis=1)
        safe = np.where(norms > 0.0, norms, 1.0)
        cosine = (features @ sparse.T) / safe[:, None]
        return cosine ** self.zeta

    def values_and_factors(self, features, sparse):
        norms = np.linalg.norm(features, axis=1)
        safe = np.where(norms > 0.0, norms, 1.0)
        cosine = (features @ sparse.T) / safe[:, None]
        power = cosine ** (self.zeta - 1)
        values = power * cosine
        factor_sparse = self.zeta * power / safe[:, None]
        factor_self = -self.zeta * values / (safe ** 2)[:, None]
        return values, factor_sparse, factor_self

    def sparse_covariance(self, sparse):
        return (sparse @ sparse.T) ** self.zeta

    def covariance(self, features_a, features_b):
        """k(q_a, q_b) between two sets of raw (unnormalised) features, (n_a, n_b)."""
        return self.values(features_a, self.prepare_sparse(features_b))

    def gradient_covariance(self, features_a, jacobians_a, features_b, jacobians_b):
        """T[a, i, b, j] = J_a[i] · ∂²k(q_a, q_b)/∂q_a∂q_b · J_b[j], shape (n_a, 3, n_b, 3).

        jacobians : (n, 3, n_features), J[i] = ∂q/∂r_i (descriptor units per Å).
        With c = q̂_a·q̂_b and v = (J - q̂ (q̂·J))/|q| the Hessian collapses to
        ζ(ζ-1)c^(ζ-2) (v_a·q̂_b)(v_b·q̂_a) + ζ c^(ζ-1) v_a·v_b.
        """
        unit_a, tangent_a = _unit_and_tangent(features_a, jacobians_a)
        unit_b, tangent_b = _unit_and_tangent(features_b, jacobians_b)
        n_a, n_b = len(unit_a), len(unit_b)
        cosine = unit_a @ unit_b.T
        zeta = self.zeta
        tangent_products = (tangent_a.reshape(3 * n_a, -1) @ tangent_b.reshape(3 * n_b, -1).T)
        result = (zeta * cosine ** (zeta - 1))[:, None, :, None] * tangent_products.reshape(
            n_a, 3, n_b, 3)
        if zeta >= 2:
            a_along_b = (tangent_a.reshape(3 * n_a, -1) @ unit_b.T).reshape(n_a, 3, n_b)
            b_along_a = (tangent_b.reshape(3 * n_b, -1) @ unit_a.T).reshape(n_b, 3, n_a)
            b_along_a = b_along_a.transpose(2, 0, 1)
            result += ((zeta * (zeta - 1) * cosine ** (zeta - 2))[:, None, :, None]
                       * a_along_b[:, :, :, None] * b_along_a[:, None, :, :])
        return result


def _unit_and_tangent(features, jacobians):
    """q̂ and the Jacobian's part orthogonal to q, divided by |q| (what moves q̂)."""
    norms = np.linalg.norm(features, axis=1)
    safe = np.where(norms > 0.0, norms, 1.0)
    unit = features / safe[:, None]
    along = np.einsum("nid,nd->ni", jacobians, unit)
    tangent = (jacobians - along[:, :, None] * unit[:, None, :]) / safe[:, None, None]
    return unit, tangent


class CutoffSquaredExponential:
    """k(r, x) = f_c(r) f_c(x) exp(-(r - x)² / 2θ²) on one scalar (a distance, Å).

    The cutoff factors make pair energies vanish smoothly at the cutoff.
    """

    def __init__(self, theta, cutoff, transition_width):
        self.theta = theta
        self.cutoff = cutoff
        self.transition_width = transition_width

    def prepare_sparse(self, features):
        return np.asarray(features, dtype=np.float64).copy()

    def _parts(self, features, sparse):
        r = features[:, 0]
        x = sparse[:, 0]
        f_r, df_r = cosine_cutoff(r, self.cutoff, self.transition_width)
        f_x, _ = cosine_cutoff(x, self.cutoff, self.transition_width)
        gauss = np.exp(-0.5 * ((r[:, None] - x[None, :]) / self.theta) ** 2) * f_x[None, :]
        return r, f_r, df_r, gauss

    def values(self, features, sparse):
        _, f_r, _, gauss = self._parts(features, sparse)
        return f_r[:, None] * gauss

    def values_and_factors(self, features, sparse):
        r, f_r, df_r, gauss = self._parts(features, sparse)
        inv_theta2 = 1.0 / self.theta ** 2
        values = f_r[:, None] * gauss
        factor_sparse = values * inv_theta2
        safe_r = np.where(r > 0.0, r, 1.0)
        factor_self = gauss * (df_r / safe_r)[:, None] - values * inv_theta2
        return values, factor_sparse, factor_self

    def sparse_covariance(self, sparse):
        return self.values(sparse, sparse)

    def covariance(self, features_a, features_b):
        """k(r_a, r_b) between two sets of distances (n, 1) in Å, (n_a, n_b)."""
        return self.values(features_a, features_b)

    def gradient_covariance(self, features_a, jacobians_a, features_b, jacobians_b):
        """T[a, i, b, j] = J_a[i] J_b[j] ∂²k(r_a, r_b)/∂r_a∂r_b, shape (n_a, 3, n_b, 3).

        jacobians : (n, 3, 1), ∂r/∂(position) (dimensionless).
        """
        r_a, r_b = features_a[:, 0], features_b[:, 0]
        f_a, df_a = cosine_cutoff(r_a, self.cutoff, self.transition_width)
        f_b, df_b = cosine_cutoff(r_b, self.cutoff, self.transition_width)
        inv_theta2 = 1.0 / self.theta ** 2
        slope = (r_a[:, None] - r_b[None, :]) * inv_theta2
        gauss = np.exp(-0.5 * (r_a[:, None] - r_b[None, :]) ** 2 * inv_theta2)
        mixed = gauss * (np.outer(df_a, df_b) + slope * (df_a[:, None] * f_b[None, :]
                                                         - f_a[:, None] * df_b[None, :])
                         + np.outer(f_a, f_b) * (inv_theta2 - slope ** 2))
        return mixed[:, None, :, None] * np.einsum("ai,bj->aibj", jacobians_a[:, :, 0],
                                                   jacobians_b[:, :, 0])


class SquaredExponential:
    """k(q, s) = exp(-|q - s|² / 2θ²) on feature vectors (θ in feature units)."""

    def __init__(self, theta):
        self.theta = theta

    def prepare_sparse(self, features):
        return np.asarray(features, dtype=np.float64).copy()

    def values(self, features, sparse):
        sq = (np.sum(features ** 2, axis=1)[:, None] + np.sum(sparse ** 2, axis=1)[None, :]
              - 2.0 * features @ sparse.T)
        return np.exp(-0.5 * np.maximum(sq, 0.0) / self.theta ** 2)

    def values_and_factors(self, features, sparse):
        values = self.values(features, sparse)
        factor = values / self.theta ** 2
        return values, factor, -factor

    def sparse_covariance(self, sparse):
        return self.values(sparse, sparse)

    def covariance(self, features_a, features_b):
        """k(q_a, q_b) between two sets of features, (n_a, n_b)."""
        return self.values(features_a, features_b)

    def gradient_covariance(self, features_a, jacobians_a, features_b, jacobians_b):
        """T[a, i, b, j] = J_a[i] · ∂²k(q_a, q_b)/∂q_a∂q_b · J_b[j], shape (n_a, 3, n_b, 3).

        With Δ = q_a - q_b the Hessian is k (I/θ² - Δ Δᵀ/θ⁴).
        """
        values = self.values(features_a, features_b)
        n_a, n_b = len(features_a), len(features_b)
        inv_theta2 = 1.0 / self.theta ** 2
        products = (jacobians_a.reshape(3 * n_a, -1) @ jacobians_b.reshape(3 * n_b, -1).T)
        # J_a·Δ_ab and J_b·Δ_ab for every pair, from projections on both feature sets
        a_on_a = np.einsum("aid,ad->ai", jacobians_a, features_a)
        a_on_b = (jacobians_a.reshape(3 * n_a, -1) @ features_b.T).reshape(n_a, 3, n_b)
        b_on_b = np.einsum("bjd,bd->bj", jacobians_b, features_b)
        b_on_a = (jacobians_b.reshape(3 * n_b, -1) @ features_a.T).reshape(n_b, 3, n_a)
        b_on_a = b_on_a.transpose(2, 0, 1)
        a_delta = a_on_a[:, :, None] - a_on_b
        b_delta = b_on_a - b_on_b[None, :, :]
        result = inv_theta2 * products.reshape(n_a, 3, n_b, 3)
        result -= inv_theta2 ** 2 * a_delta[:, :, :, None] * b_delta[:, None, :, :]
        return values[:, None, :, None] * result
