"""Covariance functions between local environments and sparse points.

Every kernel returns, besides the values k(q_i, s_m), two factor matrices A and
B such that the gradient with respect to the environment's descriptor is

    ∂k(q_i, s_m)/∂q_i = A[i, m] * s_m + B[i, m] * q_i,

where s_m is the sparse point as the kernel stores it (``prepare_sparse``).
This shared form lets one assembly kernel contract any of them with
descriptor gradients. The signal variance δ² is applied by the caller.
"""
import numpy as np


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


def cosine_cutoff(distance, cutoff, transition_width):
    """GAP's smooth cutoff: 1 below cutoff - width, cosine to 0 at the cutoff (Å).

    Returns the value and its derivative with respect to distance (1/Å).
    """
    start = cutoff - transition_width
    x = np.clip((distance - start) / transition_width, 0.0, 1.0)
    value = 0.5 * (1.0 + np.cos(np.pi * x))
    slope = np.where((x > 0.0) & (x < 1.0),
                     -0.5 * np.pi / transition_width * np.sin(np.pi * x), 0.0)
    return value, slope


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
