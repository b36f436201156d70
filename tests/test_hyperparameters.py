"""Log marginal likelihood from R factors against a dense Gaussian density, and its optimisation."""
import numpy as np
import pytest
from sklearn.base import clone

import gapfit
from gapfit import hyperparameters
from gapfit.fit.assembly import design_rows
from gapfit.structures.io import labels

from conftest import make_cu_structures


def terms(delta_pair=1.0, delta_soap=0.3):
    return [gapfit.TwoBody(cutoff=4.0, transition_width=1.0, theta=0.6, n_sparse=4, delta=delta_pair),
            gapfit.SOAP(r_cut=3.6, n_max=4, l_max=3, sigma=0.5, n_sparse=6, zeta=2,
                        delta=delta_soap)]


def make_model(energy_sigma=0.02, force_sigma=0.2, virial_sigma=0.1, **kwargs):
    kwargs.setdefault("optimize_hyperparameters", False)  # the sigmas as stated
    return gapfit.GAP(terms=kwargs.pop("terms", None) or terms(), energy_sigma=energy_sigma,
                      force_sigma=force_sigma, virial_sigma=virial_sigma, sparse_jitter=1e-6,
                      random_state=0, **kwargs)


@pytest.fixture(scope="module")
def data():
    return make_cu_structures(3, seed=41, repeat=(2, 1, 1), symbols=["Cu", "Au"])


def dense_log_marginal_likelihood(model, structures):
    """log N(y; 0, A K_MM⁻¹ Aᵀ + Σ) with every matrix formed explicitly."""
    rows = design_rows(model.terms_, structures)
    targets, sigmas, design = [], [], []
    for index, atoms in enumerate(structures):
        energy, forces, stress = labels(atoms)
        root_n = np.sqrt(len(atoms))
        e0 = sum(model.e0_[int(z)] for z in atoms.numbers)
        targets.append([energy - e0])
        sigmas.append([model.energy_sigma * root_n])
        design.append(rows.energy[index][None, :])
        start = sum(len(a) for a in structures[:index])
        targets.append(forces.ravel())
        sigmas.append(np.full(3 * len(atoms), model.force_sigma))
        design.append(rows.forces[start: start + len(atoms)].reshape(3 * len(atoms), -1))
        targets.append(-stress * atoms.get_volume())
        # shear components count twice in the tensor's squared norm: sigma / √2 in Voigt form
        sigmas.append(model.virial_sigma * root_n * np.array([1, 1, 1, 2 ** -0.5, 2 ** -0.5, 2 ** -0.5]))
        design.append(rows.virial[index])
    y, sigma, a = np.concatenate(targets), np.concatenate(sigmas), np.concatenate(design)
    k_mm = model.sparse_covariance()
    k_mm = k_mm + model.sparse_jitter * k_mm.diagonal().max() * np.eye(len(k_mm))
    covariance = a @ np.linalg.solve(k_mm, a.T) + np.diag(sigma ** 2)
    _, log_det = np.linalg.slogdet(covariance)
    return -0.5 * (y @ np.linalg.solve(covariance, y) + log_det + len(y) * np.log(2 * np.pi))


def test_log_marginal_likelihood_equals_dense_density(data):
    model = make_model().fit(data)
    expected = dense_log_marginal_likelihood(model, data)
    assert np.isclose(hyperparameters.log_marginal_likelihood(model, data), expected, rtol=1e-9)


def test_scaled_evidence_equals_the_refitted_models(data):
    model = make_model().fit(data)
    scaled = hyperparameters.log_marginal_likelihood(
        model, data, sigma_scales={"energy": 2.0, "forces": 0.5, "virial": 3.0},
        delta_scales=[1.7, 0.6])
    refit = make_model(energy_sigma=0.04, force_sigma=0.1, virial_sigma=0.3,
                       terms=terms(delta_pair=1.7, delta_soap=0.18)).fit(data)
    for a, b in zip(refit.terms_, model.terms_):
        assert np.array_equal(a.sparse_points_, b.sparse_points_)
    assert np.isclose(scaled, hyperparameters.log_marginal_likelihood(refit, data), rtol=1e-9)
    assert np.isclose(scaled, dense_log_marginal_likelihood(refit, data), rtol=1e-9)


def test_optimisation_improves_evidence_within_bounds_and_matches_a_refit(data):
    model = make_model(energy_sigma=0.2, force_sigma=1.0, virial_sigma=1.0).fit(data)
    result = hyperparameters.optimize(model, data, max_factor=5.0)
    assert result["log_marginal_likelihood_after"] > result["log_marginal_likelihood_before"] + 1.0
    scales = dict(zip(result["names"], result["scales"]))
    assert all(1 / 5.0 - 1e-9 <= s <= 5.0 + 1e-9 for s in scales.values())
    # the evidence is stationary (or at a bound) at the optimum
    assert np.isclose(hyperparameters.log_marginal_likelihood(model, data),
                      result["log_marginal_likelihood_after"], rtol=1e-10)
    # a model refitted with the optimised settings has the same coefficients
    refit = make_model(energy_sigma=0.2 * scales["sigma_energy"],
                       force_sigma=1.0 * scales["sigma_forces"],
                       virial_sigma=1.0 * scales["sigma_virial"],
                       terms=terms(delta_pair=scales["delta_0"], delta_soap=0.3 * scales["delta_1"]))
    refit.fit(data)
    assert np.allclose(model.alpha_, refit.alpha_, rtol=1e-8, atol=1e-8 * np.abs(refit.alpha_).max())
    assert [t.delta_ for t in model.terms_] == pytest.approx([t.delta_ for t in refit.terms_])
    assert model.noise_.scales == pytest.approx({k[6:]: v for k, v in scales.items()
                                                 if k.startswith("sigma_")})
    # optimised values live in the fitted record: the terms' delta settings are unchanged
    assert [t.delta for t in model.terms_] == [t.delta for t in model.terms]


def test_fit_option_runs_the_optimisation(data):
    plain = make_model(energy_sigma=0.2, force_sigma=1.0).fit(data)
    model = make_model(energy_sigma=0.2, force_sigma=1.0, optimize_hyperparameters=3.0).fit(data)
    result = model.hyperparameter_result_
    assert result["log_marginal_likelihood_after"] > result["log_marginal_likelihood_before"]
    assert np.isclose(result["log_marginal_likelihood_before"],
                      hyperparameters.log_marginal_likelihood(plain, data), rtol=1e-10)
    assert clone(model).get_params()["optimize_hyperparameters"] == 3.0
    assert model.energy_sigma == 0.2  # settings are not changed by fit


def test_default_scale_keeps_predictions_and_maximises_the_evidence_along_the_ray(data):
    """The default fit multiplies every sigma and delta by one closed-form factor λ: the
    predictions stay, every latent variance is multiplied by λ², and log p(y) is largest at λ
    along that ray."""
    plain = make_model().fit(data)
    model = make_model(optimize_hyperparameters="scale").fit(data)
    assert gapfit.GAP().optimize_hyperparameters == "scale"
    scale = model.hyperparameter_result_["scale"]
    assert abs(np.log(scale)) > 0.05  # the case is not trivial
    assert model.noise_.scales == pytest.approx({"energy": scale, "forces": scale, "virial": scale})
    assert [t.delta_ for t in model.terms_] == pytest.approx([scale * t.delta_ for t in plain.terms_])
    atoms = make_cu_structures(1, seed=42, repeat=(2, 1, 1), symbols=["Cu", "Au"], rattle=0.2)[0]
    assert np.allclose(model.predict_structure(atoms).forces, plain.predict_structure(atoms).forces,
                       rtol=1e-8, atol=1e-10)
    assert np.isclose(model.predict([atoms])[0], plain.predict([atoms])[0], rtol=1e-12)
    before, after = plain.predict_variances([atoms])[0], model.predict_variances([atoms])[0]
    assert np.allclose(after.forces, scale ** 2 * before.forces, rtol=1e-6)
    evidence = [hyperparameters.log_marginal_likelihood(
        plain, data, sigma_scales={"energy": f, "forces": f, "virial": f}, delta_scales=[f, f])
        for f in (0.98 * scale, scale, 1.02 * scale)]
    assert evidence[1] > max(evidence[0], evidence[2])
    assert np.isclose(evidence[1], model.hyperparameter_result_["log_marginal_likelihood_after"],
                      rtol=1e-9)
    assert np.isclose(hyperparameters.log_marginal_likelihood(model, data), evidence[1], rtol=1e-9)
    with pytest.raises(ValueError, match="optimize_hyperparameters must be"):
        make_model(optimize_hyperparameters="scaled").fit(data)
