"""The recipe chosen from the data: deterministic, blind to data outside the training set,
bounded in time, stored in the model file, built from the data's own length scale, chosen by
cross-validation on a config_type-stratified screen with a per-group guard."""
import warnings

import numpy as np
import pytest
from ase.build import bulk

import gapfit
from gapfit.model import recipe

from conftest import make_cu_structures


@pytest.fixture(scope="module")
def split():
    structures = make_cu_structures(18, seed=11)
    return structures[:14], structures[14:]


@pytest.fixture(scope="module")
def searched(split):
    """A searched fit (seven candidates cross-validated, 3 folds each, and a final fit): slow,
    run with -m slow."""
    train, _ = split
    return gapfit.GAP(random_state=0, recipe="search", search_time=None).fit(train)


@pytest.mark.slow
def test_search_is_deterministic_and_never_reads_the_test_split(split, searched):
    train, test = split
    # poison the held-out labels: a search that looked at them would choose or fit differently
    for atoms in test:
        atoms.calc.results["energy"] *= -1000.0
        atoms.calc.results["forces"] = -atoms.calc.results["forces"] * 50.0
    again = gapfit.GAP(random_state=0, recipe="search", search_time=None).fit(train)
    assert again.recipe_.chosen == searched.recipe_.chosen
    assert [c.log_evidence_per_row for c in again.recipe_.candidates] == \
        [c.log_evidence_per_row for c in searched.recipe_.candidates]
    assert [c.cv_mae for c in again.recipe_.candidates] == \
        [c.cv_mae for c in searched.recipe_.candidates]
    assert np.array_equal(again.alpha_, searched.alpha_)


@pytest.mark.slow
def test_the_choice_is_the_best_allowed_cv_score(searched):
    report = searched.recipe_
    screened = [c for c in report.candidates if c.cv_mae]
    assert len(screened) == len(report.candidates) >= 5
    reference = report.candidates[0]
    assert reference.score == pytest.approx(1.0)
    allowed = [c for c in screened if c.allowed]
    assert reference in allowed
    assert report.chosen == min(allowed, key=lambda c: c.score).name
    for c in screened:
        assert (c in allowed) == (c is reference or (
            c.md_cost_ratio <= recipe.MAX_MD_COST_RATIO and not recipe.worse_groups(c, reference)))
        assert len(c.cv_configurations["energy"]) == report.screen_configurations
    # the fitted terms are the chosen candidate's, and the noise was scaled by the evidence
    chosen = next(c for c in report.candidates if c.name == report.chosen)
    assert [recipe.term_settings(t)["type"] for t in searched.terms_] == \
        [t["type"] for t in chosen.terms]
    assert searched.hyperparameter_result_["log_marginal_likelihood_after"] >= \
        searched.hyperparameter_result_["log_marginal_likelihood_before"]
    assert searched.terms is None  # the setting stays: the choice lives in the fitted record


def _typed(structures, config_type):
    for atoms in structures:
        atoms.info["config_type"] = config_type
    return structures


def test_the_screen_keeps_small_groups_whole_and_every_fold_holds_every_group():
    bulk_set = _typed(make_cu_structures(40, seed=3), "bulk")
    rare = _typed(make_cu_structures(4, seed=4), "surface")
    structures = bulk_set[:20] + rare[:2] + bulk_set[20:] + rare[2:]
    subset = recipe.screen(structures, max_atoms=20 * 32)
    groups = [a.info["config_type"] for a in subset]
    assert groups.count("surface") == 4          # a small group is never thinned
    assert 2 * recipe.FOLDS <= groups.count("bulk") <= 17
    assert all(any(a is b for b in structures) for a in subset)
    assignment = recipe.folds(subset)
    for fold in range(recipe.FOLDS):
        held = {g for g, f in zip(groups, assignment) if f == fold}
        assert held == {"bulk", "surface"}
    assert recipe.screen(structures, max_atoms=10 ** 6) == structures


def test_the_guard_refuses_a_candidate_clearly_worse_in_a_group():
    groups = ["bulk"] * 6 + ["surface"] * 4
    reference_energy = [2.0, 1.0, 3.0, 2.0, 1.0, 3.0, 5.0, 4.0, 6.0, 5.0]

    def candidate(name, energy, force, energies, cost=1.0):
        c = recipe.Candidate(name, [], md_cost_ratio=cost)
        c.cv_mae = {"energy": energy, "forces": force, "stress": 0.1}
        c.cv_configurations = {"energy": energies, "forces": [100.0] * 10, "groups": groups}
        return c
    listed = [candidate("ref", 2.0, 100.0, reference_energy),
              # best overall, but every surface is 1.3x the reference's
              candidate("lopsided", 1.0, 90.0, [0.5] * 6 + [6.5, 5.2, 7.8, 6.5]),
              # surfaces 1.3x worse on average, but only through one configuration: noise
              candidate("noisy", 1.5, 92.0, [1.0] * 6 + [5.0, 4.0, 6.0, 11.0]),
              candidate("even", 1.8, 95.0, [1.8] * 6 + [5.1, 4.1, 6.1, 5.1]),
              candidate("dear", 1.0, 80.0, [1.0] * 10, 2.0)]
    assert recipe.judge(listed, "speed").name == "noisy"
    assert not listed[1].allowed and "surface E" in listed[1].reason
    assert listed[2].allowed and listed[3].allowed
    assert not listed[4].allowed and "MD cost" in listed[4].reason
    assert recipe.judge(listed, "accuracy").name == "dear"
    # without the noisy one the best allowed is the even one, never the lopsided one
    assert recipe.judge([c for c in listed if c.name != "noisy"], "speed").name == "even"


def test_a_budget_too_small_still_fits_with_a_warning(split):
    train, test = split
    with pytest.warns(UserWarning, match="time budget"):
        model = gapfit.GAP(random_state=0, recipe="search", search_time=0.0).fit(train)
    # only the reference's term set is screened, with each sigma option
    options = model.recipe_.candidates[:len(recipe.SIGMA_OPTIONS)]
    assert model.recipe_.chosen in [c.name for c in options]
    assert [c.scales for c in options] == list(recipe.SIGMA_OPTIONS)
    assert sum(np.isfinite(c.log_evidence_per_row)
               for c in model.recipe_.candidates) == len(recipe.SIGMA_OPTIONS)
    assert model.noise_.scale("virial") == pytest.approx(
        model.recipe_.chosen_scales().get("virial", 1.0) * model.noise_.scale("energy"))
    assert np.all(np.isfinite(model.predict(test)))


@pytest.mark.slow
def test_the_model_file_restores_the_recipe(searched, split, tmp_path):
    _, test = split
    searched.save(tmp_path / "m.gap")
    loaded = gapfit.load(tmp_path / "m.gap")
    assert loaded.recipe_.to_dict() == searched.recipe_.to_dict()
    assert loaded.terms is None
    assert np.allclose(loaded.predict(test), searched.predict(test), rtol=0, atol=1e-10)
    assert loaded.noise_ == searched.noise_


def test_candidates_follow_the_datas_length_scale():
    fcc = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    assert recipe.nearest_neighbour_distance([fcc]) == pytest.approx(3.6 / np.sqrt(2))
    for d1 in (2.2, 2.7):
        cutoffs = sorted({t.r_cut for _, terms in recipe.candidates(d1)[1:] for t in terms
                          if isinstance(t, gapfit.SOAP)})
        assert cutoffs == pytest.approx([round(k * d1, 2) for k in recipe.CUTOFF_MULTIPLES])
    accurate = recipe.candidates(2.7, prefer="accuracy")
    assert len(accurate) > len(recipe.candidates(2.7))
    reference = recipe.candidates(2.7)[0][1]
    larger = [gapfit.TwoBody(), gapfit.SOAP(n_max=10, l_max=8)]
    assert recipe.md_cost(larger) > recipe.md_cost(reference)
    assert recipe.md_cost(reference) == pytest.approx(1.0)
    wider = [gapfit.TwoBody(), gapfit.SOAP(r_cut=6.0)]
    assert recipe.md_cost(wider) > recipe.md_cost(reference)


def test_an_unknown_preference_or_budget_is_refused(split):
    train, _ = split
    with pytest.raises(ValueError, match="prefer"):
        gapfit.GAP(prefer="fast", recipe="search").fit(train)
    for budget in ("fast", -1.0, True):
        with pytest.raises(ValueError, match="search_time"):
            gapfit.GAP(search_time=budget, recipe="search").fit(train)


def test_fit_work_grows_with_atoms_cutoff_and_sparse_points():
    reference = recipe.candidates(2.7)[0][1]
    assert recipe.fit_work(reference, 2000) == pytest.approx(2 * recipe.fit_work(reference, 1000))
    assert recipe.fit_work(reference, 1000) == pytest.approx(
        1000 * (recipe.DESCRIPTOR_WORK + 1.0))
    wider = [gapfit.TwoBody(), gapfit.SOAP(r_cut=6.0)]
    denser = [gapfit.TwoBody(), gapfit.SOAP(n_sparse=1500)]
    for other in (wider, denser):
        assert recipe.fit_work(other, 1000) > recipe.fit_work(reference, 1000)
    assert recipe.fit_work([gapfit.TwoBody()], 1000) == 0.0


def test_the_automatic_budget_screens_what_fits_in_it_without_a_warning(split):
    """On a small training set the screen is the whole set, so each candidate's fold fits
    cost more than a default fit: the automatic budget screens only the first ones."""
    train, test = split
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.filterwarnings("ignore", message=".*distinct environments")
        model = gapfit.GAP(random_state=0, recipe="search").fit(train)
    report = model.recipe_
    screened = [c for c in report.candidates if c.cv_mae]
    skipped = [c for c in report.candidates if not c.cv_mae]
    assert screened and skipped and any("screening budget" in note for note in report.warnings)
    assert report.chosen in [c.name for c in screened]
    table = report.format_table().splitlines()
    assert [line.split(" not screened")[0].strip() for line in table if "not screened" in line] \
        == [c.name for c in skipped]
    assert [line for line in table if line.endswith("<- chosen")][0].startswith(report.chosen)
    assert any(line.startswith("note: screening budget") for line in table)
    # the work the screened term sets cost (their sigma options share fold fits), in default
    # fits, is within the budget, and the first skipped one would have exceeded it
    default_fit = recipe.fit_work(recipe.candidates(2.7)[0][1], sum(len(a) for a in train))
    subset = recipe.screen(train)

    def work(candidate):
        return recipe.screening_work(_terms_of(candidate), subset, default_fit)

    spent = sum(work(c) for c in screened if not c.scales)
    assert spent <= recipe.SCREEN_BUDGET_FITS < spent + work(skipped[0])
    assert np.all(np.isfinite(model.predict(test)))


def test_explicit_terms_skip_the_search(split):
    train, _ = split
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = gapfit.GAP(terms=[gapfit.TwoBody(n_sparse=10)], random_state=0).fit(train)
    assert not hasattr(model, "recipe_")


def _terms_of(candidate):
    """The terms of a reported candidate, rebuilt from its settings."""
    kinds = {"TwoBody": gapfit.TwoBody, "SOAP": gapfit.SOAP}
    return [kinds[settings["type"]](**{k: v for k, v in settings.items() if k != "type"})
            for settings in candidate.terms]


def _small_terms():
    return [gapfit.TwoBody(cutoff=4.0, theta=0.8, n_sparse=10),
            gapfit.SOAP(r_cut=3.6, n_max=4, l_max=3, zeta=2, n_sparse=40)]


def test_sigma_scales_by_re_solving_equal_a_fit_with_those_sigmas(split):
    train, test = split
    settings = dict(terms=_small_terms(), random_state=0, optimize_hyperparameters=False)
    fitted = gapfit.GAP(**settings).fit(train)
    resolved = fitted.with_sigma_scales({"virial": 0.3, "forces": 2.0})
    direct = gapfit.GAP(virial_sigma=0.05 * 0.3, force_sigma=0.05 * 2.0, **settings).fit(train)
    # energies (eV) equal to rounding (α is ill-conditioned at a jitter of 1e-8)
    np.testing.assert_allclose(resolved.predict(test), direct.predict(test), rtol=0, atol=1e-7)
    assert np.abs(resolved.predict(test) - fitted.predict(test)).max() > 1e-4
    assert resolved.noise_.scales == {"virial": 0.3, "forces": 2.0}
    assert fitted.noise_.scales == {}  # the original is untouched
    with pytest.raises(ValueError, match="fitted to"):
        fitted.with_sigma_scales({"stress": 0.3})
    with pytest.raises(ValueError, match="positive"):
        fitted.with_sigma_scales({"virial": 0.0})


def test_cross_validation_of_a_sigma_option_equals_cv_with_those_sigmas(split):
    train, _ = split
    subset = recipe.screen(train)
    assignment = recipe.folds(subset)
    model = gapfit.GAP(random_state=0)
    both = recipe.cross_validate(model, _small_terms(), subset, assignment,
                                 ({}, {"virial": 0.3}))
    direct = recipe.cross_validate(gapfit.GAP(random_state=0, virial_sigma=0.015),
                                   _small_terms(), subset, assignment)[0]
    for kind in recipe.KINDS:
        assert both[1][0][kind] == pytest.approx(direct[0][kind], rel=1e-6)
    assert both[0][0]["stress"] != pytest.approx(both[1][0]["stress"], rel=1e-3)
    assert both[1][3] == pytest.approx(direct[3], rel=1e-6)  # log evidence per row


def test_atom_width_candidates_change_only_the_soap_width():
    name, terms = recipe.candidates(2.7)[2]
    widths = recipe.with_atom_widths(name, terms)
    assert [w for w, _ in widths] == [f"{name} a{a:g}" for a in recipe.ATOM_WIDTHS]
    for (_, changed), width in zip(widths, recipe.ATOM_WIDTHS):
        settings = [recipe.term_settings(t) for t in changed]
        original = [recipe.term_settings(t) for t in terms]
        assert [s.pop("sigma", None) for s in settings] == [None, width]
        assert [s.pop("sigma", None) for s in original] == [None, 0.5]
        assert settings == original
        assert recipe.md_cost(changed) == recipe.md_cost(terms)
    assert recipe.with_atom_widths("pair", [gapfit.TwoBody()]) == []
