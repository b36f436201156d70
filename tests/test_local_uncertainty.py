"""Cheap uncertainty (``gapfit.uncertainty.local``): exact local-energy variances at MD cost,
the force score's definition, the prior sums behind them, and the calculator's results."""
import numpy as np
import pytest
from ase.calculators.calculator import PropertyNotImplementedError
from ase.neighborlist import neighbor_list

import gapfit
from gapfit.uncertainty import local as local_uncertainty
from gapfit.uncertainty import prior_sums
from gapfit.uncertainty import posterior as variance
from gapfit.descriptors.base import LocalEnvironments
from gapfit.predict.predictor import StructurePredictor

from conftest import make_cu_structures


def close(actual, expected, rtol=1e-8):
    actual, expected = np.asarray(actual), np.asarray(expected)
    return np.max(np.abs(actual - expected)) <= rtol * np.max(np.abs(expected))


@pytest.fixture(scope="module")
def alloy():
    train = make_cu_structures(3, seed=11, repeat=(2, 2, 1), symbols=["Cu", "Au"])
    test = make_cu_structures(1, seed=12, repeat=(2, 2, 1), symbols=["Cu", "Au"], rattle=0.2)[0]
    return train, test


TERMS = {
    "twobody": lambda: [gapfit.TwoBody(cutoff=4.0, transition_width=1.0, theta=0.6, n_sparse=6)],
    "soap": lambda: [gapfit.SOAP(r_cut=3.6, n_max=4, l_max=3, n_sparse=20, zeta=3)],
    "twobody+soap": lambda: [gapfit.TwoBody(cutoff=4.0, n_sparse=6),
                             gapfit.SOAP(r_cut=3.6, n_max=4, l_max=3, n_sparse=20, zeta=2)],
    "acsf": lambda: [gapfit.ACSF(r_cut=4.0, n_sparse=20)],
}


@pytest.fixture(scope="module", params=sorted(TERMS))
def fitted(request, alloy):
    train, _ = alloy
    return gapfit.GAP(terms=TERMS[request.param](), random_state=0).fit(train)


def test_local_variances_equal_the_exact_posterior(fitted, alloy):
    _, atoms = alloy
    exact = variance.structure_variance(fitted, atoms)
    predictor = local_uncertainty.LocalUncertaintyPredictor(fitted, skin=0.5)
    prediction, result = predictor.predict(atoms)
    assert close(result.local_variances, exact.local_energies, 1e-8)
    assert close(result.energies_latent_std, exact.local_energies_std, 1e-8)
    # the data constrain the local energies: well below the prior
    targets = variance.structure_targets(fitted.terms_, atoms)
    assert np.all(result.local_variances <= targets.local_priors * (1 + 1e-12))
    assert result.local_variances.sum() < 0.8 * targets.local_priors.sum()
    # the prediction of the same pass is the plain MD-path prediction (the same skin list: a
    # fresh neighbour search orders the pairs otherwise, and the coefficients' cancellation
    # (sum |α| ~ 700 here) turns that reordering into ~1e-12 eV)
    plain = StructurePredictor.from_model(fitted, skin=0.5).predict(atoms)
    assert np.allclose(prediction.local_energies, plain.local_energies, rtol=0, atol=1e-12)
    assert np.allclose(prediction.forces, plain.forces, rtol=0, atol=1e-12)
    assert np.allclose(prediction.virial, plain.virial, rtol=0, atol=1e-12)


def test_local_rows_are_the_design_rows_of_local_energies(fitted, alloy):
    _, atoms = alloy
    rows = np.zeros((len(atoms), len(fitted.alpha_)))
    predictor = StructurePredictor.from_model(fitted)
    prediction = predictor.predict(atoms, local_rows=rows)
    assert close(rows, variance.structure_targets(fitted.terms_, atoms).local_rows, 1e-12)
    e0 = np.array([fitted.e0_[int(z)] for z in atoms.numbers])
    # the repulsion baseline adds its own local energies where atoms are closer than the data
    baseline = fitted.repulsion_.predict(atoms)[0] if fitted.repulsion_ is not None else 0.0
    assert np.allclose(rows @ fitted.alpha_ + e0 + baseline, prediction.local_energies, atol=1e-10)


def test_factor_tolerance_bounds_the_error(alloy):
    train, atoms = alloy
    model = gapfit.GAP(terms=TERMS["twobody+soap"](), random_state=0).fit(train)
    exact = variance.structure_variance(model, atoms)
    priors = variance.structure_targets(model.terms_, atoms).local_priors
    full = local_uncertainty.LocalVarianceFactor(model)
    for tolerance in np.quantile(full.weights, [0.25, 0.75]):
        truncated = local_uncertainty.LocalVarianceFactor(model, tolerance)
        assert truncated.rank < full.rank
        predictor = local_uncertainty.LocalUncertaintyPredictor(model, tolerance=tolerance)
        _, result = predictor.predict(atoms)
        error = result.local_variances - exact.local_energies
        round_off = 1e-10 * priors.max()
        assert np.all(error >= -round_off)  # dropping directions can only overstate the variance
        assert np.all(error <= tolerance / (1 - tolerance) * exact.local_energies + round_off)
        assert error.max() > 1e3 * round_off  # and it does change them


def test_force_score_definition(alloy):
    train, atoms = alloy
    model = gapfit.GAP(terms=TERMS["twobody+soap"](), random_state=0).fit(train)
    kappa = model.force_score_scale_
    assert kappa > 0
    exact = variance.structure_variance(model, atoms)
    # neighbourhood sums written independently, with ASE's neighbour list
    cutoff = max(term.neighbor_cutoff for term in model.terms_)
    first, second = neighbor_list("ij", atoms, cutoff)
    neighbourhood = exact.local_energies + np.bincount(first, weights=exact.local_energies[second],
                                                       minlength=len(atoms))
    calculator = gapfit.GAPCalculator(model, uncertainty="local", local_tolerance=0)
    copy = atoms.copy()
    copy.calc = calculator
    latent = copy.calc.get_property("forces_latent_score", copy)
    assert close(latent, kappa * np.sqrt(neighbourhood), 1e-8)
    sigma_f, _ = local_uncertainty.noise_levels(model)
    assert np.allclose(copy.calc.get_property("forces_score", copy) ** 2, latent ** 2 + sigma_f ** 2)
    # κ: on the structures it is learnt on, the mean square score is the mean latent force
    # component variance of gapfit.uncertainty.posterior
    sample = train[:2]
    scale = local_uncertainty.force_score_scale(model, sample)
    force_mean = np.mean(np.concatenate([v.forces.mean(axis=1)
                                         for v in model.predict_variances(sample)]))
    score_mean = np.mean(np.concatenate([
        scale ** 2 * local_uncertainty.neighbourhood_variances(model, a, v.local_energies)
        for a, v in zip(sample, model.predict_variances(sample))]))
    assert np.isclose(score_mean, force_mean, rtol=1e-10)


def test_training_sample_is_spread_and_bounded():
    structures = make_cu_structures(10, seed=3, repeat=(2, 1, 1))  # 8 atoms each
    picked = local_uncertainty.training_sample(structures, max_atoms=24)
    assert len(picked) == 3 and sum(len(a) for a in picked) <= 24
    assert picked[0] is structures[0] and picked[-1] is structures[-1]
    assert len(local_uncertainty.training_sample(structures[:1], max_atoms=4)) == 1


def test_pair_total_prior_equals_the_dense_double_sum():
    rng = np.random.default_rng(0)
    for theta in (0.2, 0.5, 1.0, 3.0):
        term = gapfit.TwoBody(cutoff=5.0, transition_width=1.0, theta=theta).build([29])
        distances = rng.uniform(1.8, 5.2, 400)
        envs = LocalEnvironments(
            features=distances[:, None], center_atoms=np.zeros(400, dtype=np.int64),
            channels=np.where(np.arange(400) % 3 == 0, 29029, 29079).astype(np.int64))
        same = envs.channels[:, None] == envs.channels[None, :]
        dense = term.delta ** 2 * np.sum(np.where(
            same, term.kernel_.covariance(envs.features, envs.features), 0.0))
        assert np.isclose(prior_sums.total_prior(term, envs), dense, rtol=1e-12, atol=0)
        local = prior_sums.local_priors(term, envs, 1)
        assert np.isclose(local[0], dense, rtol=1e-12, atol=0)


def test_calculator_lists_and_returns_every_uncertainty(alloy):
    train, atoms = alloy
    model = gapfit.GAP(terms=TERMS["twobody+soap"](), random_state=0).fit(train)
    listed = gapfit.GAPCalculator.implemented_properties
    assert isinstance(listed, tuple)
    names = ("energy_std", "energy_latent_std", "energies_std", "forces_std", "forces_latent_std",
             "forces_score", "forces_latent_score")
    assert set(names) <= set(listed)
    exact = variance.structure_variance(model, atoms)
    shapes = {"energy_std": (), "energy_latent_std": (), "energies_std": (len(atoms),),
              "forces_std": (len(atoms), 3), "forces_latent_std": (len(atoms), 3),
              "forces_score": (len(atoms),), "forces_latent_score": (len(atoms),)}
    for mode in (False, True, "full", "local"):
        copy = atoms.copy()
        copy.calc = gapfit.GAPCalculator(model, uncertainty=mode, local_tolerance=0)
        for name in names:  # each result on its own, whatever the setting
            value = np.asarray(copy.calc.get_property(name, copy))
            assert value.shape == shapes[name], (mode, name)
        assert close(copy.calc.get_property("forces_latent_std", copy), exact.forces_std)
        assert close(copy.calc.get_property("energies_std", copy), exact.local_energies_std)
    with pytest.raises(ValueError, match="uncertainty must be"):
        gapfit.GAPCalculator(model, uncertainty="cheap")
    with pytest.raises(PropertyNotImplementedError):
        copy.calc.get_property("magmom", copy)


def test_calculator_local_results_follow_md_moves(alloy):
    """uncertainty="local" along moves that reuse the skin neighbour list: every call equals
    the exact local variances and the plain calculator's energy, forces and stress."""
    train, atoms = alloy
    model = gapfit.GAP(terms=TERMS["twobody+soap"](), random_state=0).fit(train)
    local = atoms.copy()
    local.calc = gapfit.GAPCalculator(model, uncertainty="local", skin=0.5, local_tolerance=0)
    plain = atoms.copy()
    plain.calc = gapfit.GAPCalculator(model, skin=0.5)
    rng = np.random.default_rng(1)
    for _ in range(3):
        step = rng.normal(scale=0.02, size=(len(atoms), 3))
        local.positions += step
        plain.positions += step
        assert np.allclose(local.get_forces(), plain.get_forces(), rtol=0, atol=1e-12)
        assert np.allclose(local.get_stress(), plain.get_stress(), rtol=0, atol=1e-12)
        results = local.calc.results
        assert set(results) >= {"energies_std", "forces_score", "forces_latent_score"}
        assert "forces_std" not in results  # the full std is not computed on the cheap path
        exact = variance.structure_variance(model, local)
        assert close(results["energies_std"], exact.local_energies_std, 1e-8)


def test_model_file_keeps_noise_scales_and_force_score_scale(alloy, tmp_path):
    train, _ = alloy
    model = gapfit.GAP(terms=TERMS["twobody"](), random_state=0,
                       optimize_hyperparameters=True).fit(train)
    model.save(tmp_path / "m.gap")
    loaded = gapfit.load(tmp_path / "m.gap")
    assert loaded.force_score_scale_ == model.force_score_scale_
    assert loaded.noise_ == model.noise_
    assert local_uncertainty.noise_levels(loaded) == local_uncertainty.noise_levels(model)
