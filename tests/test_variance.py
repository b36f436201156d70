"""Posterior variances against a dense computation of the same projected-process posterior.

The dense reference builds every matrix explicitly: full Jacobians ∂q_e/∂r (3N × d) from
the descriptor's pair gradients, d × d kernel Hessians from closed forms written out here,
the prior covariance of all targets, and explicit inverses of K_MM and of the posterior
precision.
"""
import numpy as np
import pytest
from ase import Atoms

import gapfit
from gapfit.uncertainty import posterior as variance
from gapfit.fit.assembly import neighbor_lists

from conftest import label_with_emt, make_cu_structures

# ------------------------------------------------------------------ dense reference


def _cutoff(r, cutoff, width):
    """Cosine cutoff, its first derivative (written independently of gapfit.kernels)."""
    start = cutoff - width
    if r <= start:
        return 1.0, 0.0
    if r >= cutoff:
        return 0.0, 0.0
    x = (r - start) / width
    return 0.5 * (1 + np.cos(np.pi * x)), -0.5 * np.pi / width * np.sin(np.pi * x)


class DensePair:
    """k(r, x) = f(r) f(x) exp(-(r-x)²/2θ²) with value, gradient in r, mixed second derivative."""

    def __init__(self, term):
        self.theta, self.cutoff, self.width = term.theta, term.cutoff, term.transition_width

    def value(self, q, s):
        (r,), (x,) = q, s
        return _cutoff(r, self.cutoff, self.width)[0] * _cutoff(x, self.cutoff, self.width)[0] * \
            np.exp(-(r - x) ** 2 / (2 * self.theta ** 2))

    def gradient(self, q, s):
        (r,), (x,) = q, s
        f, df = _cutoff(r, self.cutoff, self.width)
        g, _ = _cutoff(x, self.cutoff, self.width)
        gauss = np.exp(-(r - x) ** 2 / (2 * self.theta ** 2))
        return np.array([g * gauss * (df - f * (r - x) / self.theta ** 2)])

    def hessian(self, q, s):
        (r,), (x,) = q, s
        f, df = _cutoff(r, self.cutoff, self.width)
        g, dg = _cutoff(x, self.cutoff, self.width)
        t2 = self.theta ** 2
        gauss = np.exp(-(r - x) ** 2 / (2 * t2))
        d_gauss_dr = -(r - x) / t2 * gauss
        d_gauss_dx = (r - x) / t2 * gauss
        d2_gauss = (1 / t2 - (r - x) ** 2 / t2 ** 2) * gauss
        return np.array([[df * dg * gauss + df * g * d_gauss_dx + f * dg * d_gauss_dr
                          + f * g * d2_gauss]])


class DenseDotProduct:
    """k(q, s) = (q·s / |q||s|)^ζ with explicit projector matrices."""

    def __init__(self, term):
        self.zeta = term.zeta

    def value(self, q, s):
        return (q @ s / (np.linalg.norm(q) * np.linalg.norm(s))) ** self.zeta

    def _dc(self, q, s):
        """∂c/∂q (d,)."""
        nq, ns = np.linalg.norm(q), np.linalg.norm(s)
        projector = np.eye(len(q)) - np.outer(q, q) / nq ** 2
        return projector @ (s / ns) / nq

    def gradient(self, q, s):
        c = q @ s / (np.linalg.norm(q) * np.linalg.norm(s))
        return self.zeta * c ** (self.zeta - 1) * self._dc(q, s)

    def hessian(self, q, s):
        nq, ns = np.linalg.norm(q), np.linalg.norm(s)
        c = q @ s / (nq * ns)
        pq = np.eye(len(q)) - np.outer(q, q) / nq ** 2
        ps = np.eye(len(s)) - np.outer(s, s) / ns ** 2
        mixed = pq @ ps / (nq * ns)
        z = self.zeta
        return z * (z - 1) * c ** (z - 2) * np.outer(self._dc(q, s), self._dc(s, q)) \
            + z * c ** (z - 1) * mixed


def dense_kernel(term):
    return DensePair(term) if isinstance(term, gapfit.TwoBody) else DenseDotProduct(term)


def full_jacobians(environments, n_atoms):
    """J[e] = ∂q_e/∂r as a dense (3N, d) matrix per environment."""
    d = environments.features.shape[1]
    jac = np.zeros((environments.n_envs, 3 * n_atoms, d))
    for p, e in enumerate(environments.pair_envs):
        j = environments.pair_neighbors[p]
        c = environments.center_atoms[e]
        jac[e, 3 * j: 3 * j + 3] += environments.pair_gradients[p]
        jac[e, 3 * c: 3 * c + 3] -= environments.pair_gradients[p]
    return jac


def dense_structure(model, atoms):
    """Explicit rows and prior covariances: energy (M,), local (N, M), forces (3N, M)."""
    n_atoms = len(atoms)
    n_columns = sum(t.n_sparse_points for t in model.terms_)
    energy_row, local_rows = np.zeros(n_columns), np.zeros((n_atoms, n_columns))
    force_rows = np.zeros((3 * n_atoms, n_columns))
    energy_prior, local_prior = 0.0, np.zeros(n_atoms)
    force_prior = np.zeros((3 * n_atoms, 3 * n_atoms))
    offset = 0
    for term, nl in zip(model.terms_, neighbor_lists(model.terms_, atoms)):
        kernel, scale = dense_kernel(term), term.delta_ ** 2
        env = term.descriptor_.compute(atoms, nl, gradients=True)
        jac = full_jacobians(env, n_atoms)
        for e in range(env.n_envs):
            for m, s in enumerate(term.sparse_points_):
                if term.sparse_channels_[m] != env.channels[e]:
                    continue
                value = scale * kernel.value(env.features[e], s)
                energy_row[offset + m] += value
                local_rows[env.center_atoms[e], offset + m] += value
                force_rows[:, offset + m] -= scale * jac[e] @ kernel.gradient(env.features[e], s)
            for f in range(env.n_envs):
                if env.channels[e] != env.channels[f]:
                    continue
                value = scale * kernel.value(env.features[e], env.features[f])
                energy_prior += value
                if env.center_atoms[e] == env.center_atoms[f]:
                    local_prior[env.center_atoms[e]] += value
                hessian = kernel.hessian(env.features[e], env.features[f])
                force_prior += scale * jac[e] @ hessian @ jac[f].T
        offset += term.n_sparse_points
    return energy_row, energy_prior, local_rows, local_prior, force_rows, force_prior


def dense_sparse_covariance(model):
    blocks = []
    for term in model.terms_:
        kernel = dense_kernel(term)
        points = term.sparse_points_
        block = np.array([[kernel.value(a, b) if ca == cb else 0.0
                           for b, cb in zip(points, term.sparse_channels_)]
                          for a, ca in zip(points, term.sparse_channels_)])
        blocks.append(term.delta_ ** 2 * block)
    size = sum(len(b) for b in blocks)
    covariance = np.zeros((size, size))
    start = 0
    for block in blocks:
        covariance[start: start + len(block), start: start + len(block)] = block
        start += len(block)
    return covariance + model.sparse_jitter * covariance.diagonal().max() * np.eye(size)


def dense_posterior(model, train, atoms):
    """Posterior variances (energy, local (N,), forces (N, 3)) by explicit matrix algebra."""
    k_mm = dense_sparse_covariance(model)
    rows, weights = [], []
    for structure in train:
        e_row, _, _, _, f_rows, _ = dense_structure(model, structure)
        root_n = np.sqrt(len(structure))
        rows += [e_row[None, :], f_rows]
        weights += [[1 / (model.energy_sigma * root_n) ** 2],
                    np.full(len(f_rows), 1 / model.force_sigma ** 2)]
    design, weights = np.concatenate(rows), np.concatenate(weights)
    sigma_alpha = np.linalg.inv(k_mm + design.T @ (weights[:, None] * design))
    k_inv = np.linalg.inv(k_mm)
    e_row, e_prior, l_rows, l_prior, f_rows, f_prior = dense_structure(model, atoms)

    def posterior(row_block, prior):
        return prior - row_block @ k_inv @ row_block.T + row_block @ sigma_alpha @ row_block.T

    energy = posterior(e_row[None, :], np.array([[e_prior]]))[0, 0]
    local = np.array([posterior(l_rows[i:i + 1], np.array([[l_prior[i]]]))[0, 0]
                      for i in range(len(atoms))])
    forces = np.diag(posterior(f_rows, f_prior)).reshape(len(atoms), 3)
    return energy, local, forces, f_rows


def close(actual, expected, rtol=1e-8):
    scale = np.abs(expected).max()
    return np.allclose(actual, expected, rtol=rtol, atol=rtol * scale)


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def alloy():
    train = make_cu_structures(2, seed=11, repeat=(2, 1, 1), symbols=["Cu", "Au"])
    test = make_cu_structures(1, seed=12, repeat=(2, 1, 1), symbols=["Cu", "Au"], rattle=0.2)[0]
    return train, test


def small_model(terms, **kwargs):
    # sigmas and sparse sets that keep the posterior precision well conditioned: the
    # comparison at 1e-8 is then about the mathematics, not about round-off
    settings = dict(energy_sigma=0.05, force_sigma=0.3, fit_virial=False, sparse_jitter=1e-6,
                    random_state=0, optimize_hyperparameters=False)
    settings.update(kwargs)
    return gapfit.GAP(terms=terms, **settings)


# ------------------------------------------------------------------ tests

@pytest.mark.parametrize("make_terms", [
    lambda: [gapfit.TwoBody(cutoff=4.0, transition_width=1.0, theta=0.6, n_sparse=4)],
    lambda: [gapfit.SOAP(r_cut=3.6, n_max=4, l_max=3, sigma=0.5, n_sparse=8, zeta=3, delta=0.5)],
    lambda: [gapfit.TwoBody(cutoff=3.5, transition_width=0.8, theta=0.8, n_sparse=4),
             gapfit.SOAP(r_cut=3.6, n_max=4, l_max=3, sigma=0.5, n_sparse=6, zeta=2, delta=0.3)],
], ids=["twobody", "soap", "twobody+soap"])
def test_variances_equal_dense_posterior(alloy, make_terms):
    train, atoms = alloy
    model = small_model(make_terms()).fit(train)
    energy, local, forces, force_rows = dense_posterior(model, train, atoms)
    targets = variance.structure_targets(model.terms_, atoms)
    # the dense rows are the implementation's design rows (sign and contraction conventions)
    assert close(targets.force_rows.reshape(len(force_rows), -1), force_rows, 1e-10)
    result = variance.structure_variance(model, atoms)
    assert close(result.energy, energy)
    assert close(result.local_energies, local)
    assert close(result.forces, forces)
    # the data matter: the posterior lies below the prior
    assert np.all(result.forces <= targets.force_priors)
    assert result.forces.sum() < 0.8 * targets.force_priors.sum()


def test_dense_hessians_are_second_derivatives():
    """The reference's closed forms, checked by finite differences of the kernel values."""
    rng = np.random.default_rng(4)
    pair = DensePair(gapfit.TwoBody(cutoff=5.0, transition_width=1.5, theta=0.7))
    dot = DenseDotProduct(gapfit.SOAP(zeta=3))
    h = 1e-4
    for kernel, q, s in [(pair, np.array([3.9]), np.array([4.4])),
                         (dot, rng.uniform(0.2, 1.0, 5), rng.uniform(0.2, 1.0, 5))]:
        d = len(q)
        numeric = np.zeros((d, d))
        gradient = np.zeros(d)
        for i in range(d):
            step_i = np.eye(d)[i] * h
            gradient[i] = (kernel.value(q + step_i, s) - kernel.value(q - step_i, s)) / (2 * h)
            for j in range(d):
                step_j = np.eye(d)[j] * h
                numeric[i, j] = (kernel.value(q + step_i, s + step_j)
                                 - kernel.value(q + step_i, s - step_j)
                                 - kernel.value(q - step_i, s + step_j)
                                 + kernel.value(q - step_i, s - step_j)) / (4 * h * h)
        assert np.allclose(kernel.gradient(q, s), gradient, atol=1e-7)
        assert np.allclose(kernel.hessian(q, s), numeric, atol=1e-6)


def dimer(distance):
    return label_with_emt(Atoms("Cu2", positions=[[0, 0, 0], [distance, 0, 0]]))


def test_variance_vanishes_at_training_data_and_grows_away():
    """Dimers whose distances are exactly the sparse points, spaced θ/10: the sparse set
    spans values and slopes at the data, so the variance there is at the level of the
    sigmas, and it grows beyond the data."""
    distances = np.linspace(2.0, 3.6, 33)
    sigma = 1e-4
    terms = [gapfit.TwoBody(cutoff=5.0, transition_width=1.0, theta=0.5, n_sparse=len(distances))]
    model = gapfit.GAP(terms=terms, energy_sigma=sigma, force_sigma=sigma, fit_virial=False,
                       e0={"Cu": 0.0}, sparse_jitter=1e-12,
                       optimize_hyperparameters=False).fit([dimer(r) for r in distances])
    assert np.allclose(model.terms_[0].sparse_points_[:, 0], distances)
    for result in model.predict_variances([dimer(r) for r in distances]):
        assert result.energy < 2 * sigma ** 2  # the energy sigma of a dimer is sigma·√2
        assert result.forces.max() < 10 * sigma ** 2
    stds = [model.predict_variances([dimer(r)])[0].forces_std.max() for r in (3.8, 4.0, 4.2)]
    assert 1e2 * sigma < stds[0] < stds[1] < stds[2]


@pytest.fixture(scope="module")
def tight_model():
    train = make_cu_structures(6, seed=21, repeat=(2, 2, 1))
    terms = [gapfit.TwoBody(cutoff=4.5, transition_width=1.0, theta=1.0, n_sparse=20)]
    model = gapfit.GAP(terms=terms, energy_sigma=1e-3, force_sigma=1e-2, fit_virial=False,
                       random_state=0).fit(train)
    return model, train


def test_predict_return_std_and_calculator(tight_model):
    model, train = tight_model
    atoms = make_cu_structures(1, seed=30, repeat=(2, 2, 1), rattle=0.2)[0]
    energies, stds = model.predict([atoms], return_std=True)
    assert np.allclose(energies, model.predict([atoms]))
    expected = model.predict_variances([atoms])[0]
    assert np.isclose(stds[0], expected.energy_std)
    copy = atoms.copy()
    copy.calc = gapfit.GAPCalculator(model, uncertainty=True)
    copy.get_forces()
    results = copy.calc.results
    assert np.isclose(results["energy_latent_std"], expected.energy_std)
    assert np.allclose(results["energies_std"], expected.local_energies_std)
    assert np.allclose(results["forces_latent_std"], expected.forces_std)
    # the predictive stds add the fitted noise: σ_F per component, σ_E·√N for the energy,
    # the settings' sigmas times the evidence scale of the default fit
    scale = model.hyperparameter_result_["scale"]
    # (stored as exp(log λ): equal to the last bit or not, depending on λ)
    assert model.noise_.scales == pytest.approx({"energy": scale, "forces": scale}, rel=1e-14)
    sigma_f, sigma_e = scale * model.force_sigma, scale * model.energy_sigma
    assert np.allclose(results["forces_std"] ** 2, expected.forces_std ** 2 + sigma_f ** 2)
    assert np.isclose(results["energy_std"] ** 2,
                      expected.energy_std ** 2 + len(atoms) * sigma_e ** 2)
    plain = atoms.copy()
    plain.calc = gapfit.GAPCalculator(model)
    plain.get_forces()
    assert "forces_std" not in plain.calc.results
    assert np.allclose(plain.calc.results["forces"], results["forces"])
