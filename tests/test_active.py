"""Adding data without a refit, choosing configurations by uncertainty, and on-the-fly learning."""
import copy
import json

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

import gapfit
from gapfit import hyperparameters
from gapfit.active import learning as active
from gapfit.gp import linalg as gp
from gapfit.fit import training
from gapfit.active.learning import OnTheFly

from conftest import make_cu_structures


def pair_model(**kwargs):
    terms = kwargs.pop("terms", None) or [gapfit.TwoBody(cutoff=4.5, n_sparse=15, theta=0.8)]
    kwargs.setdefault("optimize_hyperparameters", False)  # the sigmas as stated
    return gapfit.GAP(terms=terms, random_state=0, **kwargs)


def restricted(model, structures):
    """A copy of ``model`` (same sparse points, e0, hyperparameters) fitted to ``structures`` only."""
    subset = copy.deepcopy(model)
    subset.data_factors_ = training.factors(subset.terms_, subset.target_settings(),
                                            training.Chunk(0, structures=list(structures)))
    subset.solve_coefficients()
    subset.n_training_structures_ = len(structures)
    return subset


def same(a, b, rtol=1e-8):
    return np.allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())


@pytest.fixture(scope="module")
def alloy_data():
    return make_cu_structures(8, seed=51, repeat=(2, 1, 1), symbols=["Cu", "Au"])


def soap_terms(delta_soap=0.3):
    return [gapfit.TwoBody(cutoff=4.0, theta=0.6, n_sparse=5),
            gapfit.SOAP(r_cut=3.6, n_max=4, l_max=3, sigma=0.5, n_sparse=12, zeta=2,
                        delta=delta_soap)]


# ------------------------------------------------------------------ update

def test_update_equals_a_fit_on_the_union(alloy_data):
    # five of the structures: two to start, then one and two more (two updates)
    data = alloy_data[:5]
    union = pair_model(terms=soap_terms(), force_sigma=0.1).fit(data)
    model = restricted(union, data[:2])
    assert not same(model.alpha_, union.alpha_, 1e-3)
    model.update(data[2:3]).update(data[3:])
    assert same(model.alpha_, union.alpha_)
    # the same posterior too: R factors agree up to the signs of their rows
    assert same(np.abs(model.factor_), np.abs(union.factor_))
    assert model.n_training_structures_ == len(data)


def test_update_after_hyperparameter_optimisation_weights_new_data_alike(alloy_data):
    union = pair_model(terms=soap_terms(), energy_sigma=0.02, force_sigma=0.3).fit(alloy_data)
    model = restricted(union, alloy_data[:5])
    result = hyperparameters.optimize(model, alloy_data[:5], max_factor=4.0)
    scales = dict(zip(result["names"], result["scales"]))
    model.update(alloy_data[5:])
    refit = pair_model(terms=soap_terms(delta_soap=0.3 * scales["delta_1"]),
                       energy_sigma=0.02 * scales["sigma_energy"],
                       force_sigma=0.3 * scales["sigma_forces"],
                       virial_sigma=0.05 * scales["sigma_virial"])
    refit.terms[0].set_params(delta=scales["delta_0"])
    refit.fit(alloy_data)
    assert same(model.alpha_, refit.alpha_)


# ------------------------------------------------------------------ select

@pytest.fixture(scope="module")
def selection_case():
    train = make_cu_structures(3, seed=61, repeat=(2, 2, 1), rattle=0.05)
    pool = make_cu_structures(6, seed=62, repeat=(2, 2, 1), rattle=0.15, strain=0.05)
    # more coefficients than the picks determine, so conditioning on one pick leaves others open
    terms = [gapfit.SOAP(r_cut=4.0, n_max=4, l_max=3, n_sparse=40, zeta=2, delta=0.5)]
    return pair_model(terms=terms, force_sigma=0.02).fit(train), pool


def test_uncertainty_selection_takes_the_largest_predicted_stds(selection_case):
    model, pool = selection_case
    stds = np.array([v.forces_std.max() for v in model.predict_variances(pool)])
    assert active.select(model, pool, 3) == np.argsort(-stds)[:3].tolist()
    energy_stds = np.array([v.energy_std / len(a) for v, a in zip(model.predict_variances(pool),
                                                                    pool)])
    assert active.select(model, pool, 2, score="energy") == np.argsort(-energy_stds)[:2].tolist()
    rms_stds = np.array([np.sqrt(np.mean(v.forces_std ** 2)) for v in model.predict_variances(pool)])
    assert active.select(model, pool, 4, score="forces_rms") == np.argsort(-rms_stds)[:4].tolist()


def test_batch_selection_conditions_on_its_picks(selection_case):
    model, pool = selection_case
    first = active.select(model, pool, 1, strategy="batch")[0]
    # a near-duplicate of the first pick: the same structure with atoms moved by ~0.001 Å
    near = pool[first].copy()
    near.positions += 1e-3 * np.random.default_rng(0).standard_normal(near.positions.shape)
    duplicated = pool + [near]
    # ranking by uncertainty takes the copy as well; the batch does not
    assert set(active.select(model, duplicated, 2)) == {first, len(pool)}
    batch = active.select(model, duplicated, 2, strategy="batch")
    assert batch[0] in (first, len(pool)) and batch[1] not in (first, len(pool))
    # conditioning equals the posterior of a model updated with the pick (labels do not
    # matter), for the full variance as for its reducible part
    posterior = active.Posterior(model)
    candidates = [active._Candidate(model, posterior, atoms, "forces") for atoms in pool]
    precision = gp.combine_factors([posterior.precision_upper, candidates[first].training_rows])
    updated = copy.deepcopy(model).update([pool[first]])
    expected = [v.forces_std.max() for v in updated.predict_variances(pool)]
    assert np.allclose([c.score(precision, "forces") for c in candidates], expected, rtol=1e-8)
    # a labelled structure's reducible std falls below its force sigma (0.02 eV/Å)
    before = candidates[first].score(posterior.precision_upper, "forces", reducible=True)
    after = candidates[first].score(precision, "forces", reducible=True)
    assert after < model.force_sigma < before


def test_coverage_gain_is_the_drop_of_the_pools_summed_variance(selection_case):
    model, pool = selection_case
    posterior = active.Posterior(model)
    candidates = [active._Candidate(model, posterior, atoms, "forces") for atoms in pool]

    def summed_reducible_variance(precision):
        return sum(np.sum(c.score_variances(precision)) for c in candidates)

    before = summed_reducible_variance(posterior.precision_upper)
    gains = active._coverage_gains(candidates, posterior.precision_upper)
    for index, candidate in enumerate(candidates):
        precision = gp.combine_factors([posterior.precision_upper, candidate.training_rows])
        assert np.isclose(gains[index], before - summed_reducible_variance(precision), rtol=1e-8)
    # greedy: the first pick has the largest gain; the second the largest after conditioning
    picks = active.select(model, pool, 2, strategy="coverage")
    assert picks[0] == int(np.argmax(gains))
    conditioned = gp.combine_factors([posterior.precision_upper, candidates[picks[0]].training_rows])
    rest = [i for i in range(len(pool)) if i != picks[0]]
    second = active._coverage_gains([candidates[i] for i in rest], conditioned)
    assert picks[1] == rest[int(np.argmax(second))]


def test_random_selection_is_reproducible_and_distinct(selection_case):
    model, pool = selection_case
    picks = active.select(model, pool, 4, strategy="random", random_state=3)
    assert picks == active.select(model, pool, 4, strategy="random", random_state=3)
    assert len(set(picks)) == 4
    with pytest.raises(ValueError, match="pool of 6"):
        active.select(model, pool, 7)


# ------------------------------------------------------------------ on the fly

class CountingOracle(EMT):
    """EMT that can be told to fail (an interruption) on its n-th call."""

    def __init__(self, fail_on_call=None):
        super().__init__()
        self.calls = 0
        self.fail_on_call = fail_on_call

    def calculate(self, atoms=None, properties=("energy",), system_changes=None):
        if "energy" in properties or "forces" in properties:
            if system_changes:
                self.calls += 1
                if self.calls == self.fail_on_call:
                    raise KeyboardInterrupt("simulated interruption in the oracle")
        super().calculate(atoms, properties, system_changes)


STEPS = 160


def otf(model, oracle, directory):
    return OnTheFly(model, oracle, directory, threshold=0.015, check_every=10,
                    temperature_K=1000.0, timestep_fs=2.0, random_state=1)


@pytest.fixture(scope="module")
def otf_start():
    train = make_cu_structures(2, seed=3, repeat=(2, 2, 1), rattle=0.05)
    return pair_model().fit(train), bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 1))


@pytest.fixture(scope="module")
def reference_run(otf_start, tmp_path_factory):
    model, start = otf_start

    def no_refit(self, X, y=None):
        raise AssertionError("OnTheFly refitted the model from scratch")

    with pytest.MonkeyPatch.context() as patch:  # learning must go through GAP.update
        patch.setattr(gapfit.GAP, "fit", no_refit)
        return otf(copy.deepcopy(model), EMT(), tmp_path_factory.mktemp("reference")).run(start,
                                                                                        STEPS)


def assert_same_run(run, reference):
    assert len(run.labelled) == len(reference.labelled) >= 3
    for a, b in zip(run.labelled, reference.labelled):
        assert np.array_equal(a.positions, b.positions)
        assert np.array_equal(a.get_forces(), b.get_forces())
    assert same(run.model.alpha_, reference.model.alpha_)
    calls = [json.loads(line) for line in (run.directory / "oracle_calls.jsonl").open()]
    assert [c["call"] for c in calls] == list(range(1, len(reference.labelled) + 1))
    assert [c["step"] for c in calls] == [a.info["otf_step"] for a in reference.labelled]
    stored = gapfit.io.read(run.directory / "labelled.xyz")
    assert len(stored) == len(reference.labelled)
    loaded = gapfit.load(run.directory / "model.gap")
    assert same(loaded.alpha_, reference.model.alpha_)


def test_on_the_fly_learns_and_logs(reference_run, otf_start):
    model, _ = otf_start
    run = reference_run
    calls = [json.loads(line) for line in (run.directory / "oracle_calls.jsonl").open()]
    assert len(calls) == len(run.labelled) >= 3
    assert all(c["uncertainty"] > 0.015 for c in calls)
    assert run.model.n_training_structures_ == model.n_training_structures_ + len(run.labelled)
    # the learned model predicts as the start model updated with every labelled configuration
    # (coefficients of this small pair model cancel strongly, so compare predictions)
    replay = copy.deepcopy(model).update(run.labelled)
    for atoms in run.labelled[:2]:
        assert same(replay.predict_structure(atoms).forces, run.model.predict_structure(atoms).forces)
    # and it is more certain about what it was taught
    before = model.predict_variances(run.labelled)
    after = run.model.predict_variances(run.labelled)
    assert all(a.forces_std.max() < b.forces_std.max() for a, b in zip(after, before))


def test_resume_after_interruption_in_the_oracle(otf_start, reference_run, tmp_path):
    model, start = otf_start
    oracle = CountingOracle(fail_on_call=3)
    with pytest.raises(KeyboardInterrupt):
        otf(copy.deepcopy(model), oracle, tmp_path).run(start, STEPS)
    assert len(gapfit.io.read(tmp_path / "labelled.xyz")) == 2
    resumed = otf(None, EMT(), tmp_path).run(None, STEPS)
    assert_same_run(resumed, reference_run)


def test_resume_after_interruption_between_labelling_and_saving(otf_start, reference_run, tmp_path,
                                                                monkeypatch):
    model, start = otf_start
    original = OnTheFly._save_model

    def crash_on_second_call(self, **kwargs):
        if len(self.labelled) == 2:
            raise KeyboardInterrupt("simulated interruption while saving the model")
        original(self, **kwargs)

    monkeypatch.setattr(OnTheFly, "_save_model", crash_on_second_call)
    with pytest.raises(KeyboardInterrupt):
        otf(copy.deepcopy(model), EMT(), tmp_path).run(start, STEPS)
    monkeypatch.setattr(OnTheFly, "_save_model", original)
    assert len(gapfit.io.read(tmp_path / "labelled.xyz")) == 2  # on disk though not in the model
    resumed = otf(None, EMT(), tmp_path).run(None, STEPS)
    assert_same_run(resumed, reference_run)


def test_resume_after_a_stop_in_the_middle(otf_start, reference_run, tmp_path):
    model, start = otf_start
    otf(copy.deepcopy(model), EMT(), tmp_path).run(start, 0)  # state written, nothing labelled
    otf(None, EMT(), tmp_path).run(None, STEPS // 2)
    resumed = otf(None, EMT(), tmp_path).run(None, STEPS)
    assert_same_run(resumed, reference_run)


# ------------------------------------------------------------------ growing the sparse set

@pytest.fixture(scope="module")
def narrow_start():
    """A SOAP model whose sparse points all come from one nearly perfect cell: environments
    of 1000 K MD lie outside their span, so labels alone cannot lower their uncertainty."""
    train = make_cu_structures(1, seed=5, repeat=(2, 2, 1), rattle=0.02, strain=0.0)
    terms = [gapfit.SOAP(r_cut=3.6, n_max=4, l_max=3, sigma=0.5, n_sparse=40, zeta=2, delta=0.5)]
    return pair_model(terms=terms, force_sigma=0.02).fit(train), train


def growing(model, oracle, directory, training):
    return OnTheFly(model, oracle, directory, threshold=0.03, check_every=10,
                    temperature_K=1000.0, random_state=2, training=training)


def test_on_the_fly_refits_when_labels_cannot_lower_the_uncertainty(narrow_start, tmp_path):
    model, train = narrow_start
    start = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 1))
    plain = growing(copy.deepcopy(model), EMT(), tmp_path / "plain", None).run(start, 60)
    run = growing(copy.deepcopy(model), EMT(), tmp_path / "grow", train).run(start, 60)
    calls = [json.loads(line) for line in (run.directory / "oracle_calls.jsonl").open()]
    assert any(c["refit"] for c in calls)
    # the refit chose sparse points from the labelled data too (16 before, up to 40 now)
    assert run.model.terms_[0].n_sparse_points > model.terms_[0].n_sparse_points
    # without the training structures the model only grows by update and keeps its sparse set
    assert plain.model.terms_[0].n_sparse_points == model.terms_[0].n_sparse_points
    # with them, it ends more certain about what it was taught than the update-only run
    last = run.labelled[-1:] + plain.labelled[-1:]
    assert all(a.forces_std.max() < b.forces_std.max() for a, b in
               zip(run.model.predict_variances(last), plain.model.predict_variances(last)))
    # an interrupted run with refits resumes to the same state
    with pytest.raises(KeyboardInterrupt):
        growing(copy.deepcopy(model), CountingOracle(fail_on_call=len(run.labelled)), tmp_path / "cut",
                train).run(start, 60)
    resumed = growing(None, EMT(), tmp_path / "cut", None).run(None, 60)
    assert len(resumed.labelled) == len(run.labelled)
    assert same(resumed.model.alpha_, run.model.alpha_)
