"""The ZBL repulsion baseline and the warning about distances shorter than the training data.

Checks: the pair energy against the ZBL formula, the switch (zero beyond the shortest training
distance, C² there, monotone), forces and stress against finite differences with the baseline
active, a fit that subtracts it and predictions that add it back, the repulsion curves of a
dimer and of an atom pushed into its neighbour in a crystal, the model file, the variance, the
survey's per-pair minimum over chunks, and the calculator's warning (once per formula).
"""
import logging

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

import gapfit
from gapfit.fit import training
from gapfit.fit.baselines import ZBL, complete_shortest, merge_shortest
from conftest import finite_difference_forces, finite_difference_stress, make_cu_structures

COULOMB = 14.399645  # eV Å


def zbl_reference(z_i, z_j, r):
    """The ZBL pair energy (eV) written out from the universal screening function."""
    a = 0.46850 / (z_i ** 0.23 + z_j ** 0.23)
    x = np.asarray(r) / a
    phi = (0.18175 * np.exp(-3.1998 * x) + 0.50986 * np.exp(-0.94229 * x)
           + 0.28022 * np.exp(-0.4029 * x) + 0.02817 * np.exp(-0.20162 * x))
    return COULOMB * z_i * z_j * phi / r


def small_soap_model(**kwargs):
    return gapfit.GAP(terms=[gapfit.TwoBody(n_sparse=15), gapfit.SOAP(n_max=4, l_max=3, n_sparse=60)],
                      random_state=0, **kwargs)


@pytest.fixture(scope="module")
def cu_data():
    return gapfit.io.read(str(__import__("pathlib").Path(__file__).resolve().parents[1]
                              / "data" / "cu_train.xyz"))[::3]


@pytest.fixture(scope="module")
def cu_model(cu_data):
    return small_soap_model().fit(cu_data)


@pytest.fixture(scope="module")
def cu_model_without(cu_data):
    return small_soap_model(repulsion=None).fit(cu_data)


# ------------------------------------------------------------------ the pair energy itself
@pytest.mark.parametrize("pair, shortest, fraction", [((42, 42), 2.1, 0.5), ((29, 79), 2.3, 0.3),
                                                      ((1, 8), 0.9, 0.7), ((14, 14), 2.0, 0.9)])
def test_switched_zbl_is_zbl_inside_zero_outside_smooth_and_monotone(pair, shortest, fraction):
    zbl = ZBL(inner_fraction=fraction).build({pair: shortest})
    inner = fraction * shortest
    # below the inner radius: ZBL plus a constant, with ZBL's own force
    r = np.linspace(0.3, inner - 1e-3, 200)
    energies, slopes = zbl.pair_energy(*pair, r)
    shift = energies - zbl_reference(*pair, r)
    assert np.ptp(shift) < 1e-9 * np.abs(energies).max()
    h = 1e-6
    numeric = (zbl_reference(*pair, r + h) - zbl_reference(*pair, r - h)) / (2 * h)
    assert np.allclose(slopes, numeric, rtol=1e-6)
    # the whole range: slope = dE/dr, energy falling and repulsive force growing as r shrinks
    r = np.linspace(0.3, shortest, 4000)
    energies, slopes = zbl.pair_energy(*pair, r)
    plus, _ = zbl.pair_energy(*pair, r + h)
    minus, _ = zbl.pair_energy(*pair, r - h)
    assert np.allclose(slopes, (plus - minus) / (2 * h), rtol=1e-5, atol=1e-7)
    assert np.all(np.diff(energies) < 0) and np.all(energies[:-1] > 0)
    assert np.all(np.diff(-slopes[:-1]) < 0)  # force -dE/dr decreases with r
    # C² at the shortest distance, and exactly zero from it on
    # (energy ∝ d³ and slope ∝ d² at a distance d below it: value, slope, curvature vanish)
    e, s = zbl.pair_energy(*pair, shortest - np.array([1e-3, 1e-4]))
    assert e[0] / e[1] == pytest.approx(1000, rel=0.01) and s[0] / s[1] == pytest.approx(100, rel=0.01)
    beyond, beyond_slopes = zbl.pair_energy(*pair, np.linspace(shortest, shortest + 3, 50))
    assert np.all(beyond == 0.0) and np.all(beyond_slopes == 0.0)


def test_zbl_settings_are_checked():
    with pytest.raises(ValueError, match="inner_fraction"):
        ZBL(inner_fraction=1.2).build({(29, 29): 2.0})
    with pytest.raises(ValueError, match="repulsion must be"):
        gapfit.GAP(repulsion="lj").fit(make_cu_structures(2, seed=3))


# ------------------------------------------------------------------ survey of the shortest distances
def test_shortest_distances_are_the_minimum_over_chunks_per_species_pair():
    structures = make_cu_structures(6, seed=4, symbols=["Cu", "Au"], rattle=0.2)
    chunks = training.chunks_of_structures(structures, 64)
    assert len(chunks) > 2
    found = {}
    for chunk in chunks:
        found = merge_shortest(found, training.survey(chunk).shortest)
    expected = {}
    for atoms in structures:  # brute force: the middle cell of a 3×3×3 supercell (7 Å cells)
        big = atoms.repeat((3, 3, 3))
        distances = big.get_all_distances()
        numbers = big.numbers
        centre = np.arange(len(atoms)) + 13 * len(atoms)  # the middle copy
        for i in centre:
            for j in range(len(big)):
                if i == j:
                    continue
                key = tuple(sorted((int(numbers[i]), int(numbers[j]))))
                expected[key] = min(expected.get(key, np.inf), distances[i, j])
    assert set(found) == set(expected)
    for key in expected:
        assert found[key] == pytest.approx(expected[key], abs=1e-10)
    assert complete_shortest({(29, 29): 2.0}, [29, 79]) == {(29, 29): 2.0, (29, 79): 5.0,
                                                            (79, 79): 5.0}


# ------------------------------------------------------------------ zero where the data are
def test_baseline_is_zero_on_the_training_data(cu_model, cu_model_without, cu_data):
    shortest = cu_model.shortest_distances_[(29, 29)]
    assert shortest == pytest.approx(min(a.get_all_distances(mic=True)[np.triu_indices(len(a), 1)].min()
                                         for a in cu_data), abs=1e-9)
    assert np.array_equal(cu_model.alpha_, cu_model_without.alpha_)
    for atoms in cu_data[:5]:
        _, forces, virial = cu_model.repulsion_.predict(atoms)
        assert not forces.any() and not virial.any()
    # a pair just beyond the shortest distance: nothing; just inside: something
    dimer = Atoms("Cu2", positions=[[0, 0, 0], [shortest + 1e-9, 0, 0]])
    assert not cu_model.repulsion_.predict(dimer)[0].any()
    dimer.positions[1, 0] = shortest - 0.05
    assert cu_model.repulsion_.predict(dimer)[0].sum() > 0


def test_variance_is_unaffected(cu_model, cu_model_without):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    atoms.positions[0] += [0.9, 0.9, 0.0]  # within the switching region of a neighbour
    with_baseline = cu_model.predict_variances([atoms])[0]
    without = cu_model_without.predict_variances([atoms])[0]
    assert np.allclose(with_baseline.forces, without.forces, rtol=1e-10, atol=0)
    assert with_baseline.energy == pytest.approx(without.energy, rel=1e-10)


# ------------------------------------------------------------------ derivatives with the baseline active
def compressed_crystal(model, depth=0.5):
    """fcc Cu with atom 0 pushed along a nearest-neighbour bond to ``depth`` of the way
    into the switching region of the default ZBL (between half the shortest training
    distance and the shortest)."""
    crystal = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    crystal.rattle(0.02, seed=1)
    outer = model.shortest_distances_[(29, 29)]
    inner = 0.5 * outer
    neighbour = np.argsort(crystal.get_distances(0, range(len(crystal)), mic=True))[1]
    bond = crystal.get_distance(0, neighbour, mic=True, vector=True)
    target = outer - depth * (outer - inner)
    crystal.positions[0] += bond * (1 - target / np.linalg.norm(bond))
    assert crystal.get_distance(0, neighbour, mic=True) == pytest.approx(target)
    return crystal


@pytest.mark.parametrize("depth", [0.3, 0.9, 1.4])  # in the switch, near and beyond its inner end
def test_forces_and_stress_are_derivatives_with_the_baseline_active(cu_model, depth):
    atoms = compressed_crystal(cu_model, depth)
    _, baseline_forces, _ = cu_model.repulsion_.predict(atoms)
    assert np.abs(baseline_forces).max() > 0.1  # the baseline is really at work
    analytic = cu_model.predict_structure(atoms).forces[:3]
    numeric = finite_difference_forces(cu_model, atoms, step=1e-5)
    assert np.abs(analytic - numeric).max() < 1e-5 * np.abs(analytic).max() + 1e-6
    atoms.calc = gapfit.GAPCalculator(cu_model)
    stress = atoms.get_stress()
    numeric_stress = finite_difference_stress(cu_model, atoms, step=1e-6)
    assert np.abs(stress - numeric_stress).max() < 1e-5 * np.abs(stress).max() + 1e-7


# ------------------------------------------------------------------ the fit subtracts, predictions add
def test_fit_subtracts_the_baseline_and_predictions_add_it(cu_model, cu_model_without):
    """An update with configurations closer than the training data: the shortest distance
    follows the data down, and the GP sees labels minus the (new) baseline, so the model
    equals a baseline-free model fitted to those differences."""
    import copy
    with_baseline, without = copy.deepcopy(cu_model), copy.deepcopy(cu_model_without)
    close = []
    for seed in range(3):
        atoms = compressed_crystal(cu_model, 0.5 + 0.3 * seed)
        atoms.calc = SinglePointCalculator(atoms, energy=-1.0 + seed, forces=np.full((len(atoms), 3), 0.1),
                                           stress=np.full(6, 0.01 * seed))
        close.append(atoms)
    with_baseline.update(close)
    closest = min(a.get_distance(0, int(np.argsort(a.get_distances(0, range(len(a)), mic=True))[1]),
                                 mic=True) for a in close)
    assert with_baseline.shortest_distances_[(29, 29)] == pytest.approx(closest)
    assert closest < cu_model.shortest_distances_[(29, 29)]
    shifted = []
    for atoms in close:
        energies, forces, virial = with_baseline.repulsion_.predict(atoms)
        copy = atoms.copy()
        stress = -virial.flat[[0, 4, 8, 5, 2, 1]] / atoms.get_volume()
        copy.calc = SinglePointCalculator(copy, energy=atoms.get_potential_energy() - energies.sum(),
                                          forces=atoms.get_forces() - forces,
                                          stress=atoms.get_stress() - stress)
        shifted.append(copy)
    without.update(shifted)
    assert np.allclose(with_baseline.alpha_, without.alpha_, rtol=1e-8, atol=1e-10)
    probe = compressed_crystal(with_baseline, 0.8)
    ours = with_baseline.predict_structure(probe)
    base_energies, base_forces, base_virial = with_baseline.repulsion_.predict(probe)
    theirs = without.predict_structure(probe)
    assert base_energies.sum() > 1.0  # eV: the baseline matters here
    assert ours.energy == pytest.approx(theirs.energy + base_energies.sum(), abs=1e-6)
    assert np.allclose(ours.forces, theirs.forces + base_forces, rtol=1e-7, atol=1e-6)
    assert np.allclose(ours.virial, theirs.virial + base_virial, rtol=1e-7, atol=1e-6)


# ------------------------------------------------------------------ repulsion curves
def repulsion_curves(model, element, crystal, distances):
    """Energy (eV) and repulsive force (eV/Å) along a dimer and along an atom pushed toward a
    nearest neighbour in ``crystal``, at the given separations (Å)."""
    curves = {}
    dimer_e, dimer_f = [], []
    for r in distances:
        dimer = Atoms(element * 2, positions=[[0, 0, 0], [r, 0, 0]])
        prediction = model.predict_structure(dimer)
        dimer_e.append(prediction.energy)
        dimer_f.append(prediction.forces[1, 0])  # on the atom at +r: repulsive is +x
    curves["dimer"] = np.array(dimer_e), np.array(dimer_f)
    neighbour = np.argsort(crystal.get_distances(0, range(len(crystal)), mic=True))[1]
    bond = crystal.get_distance(0, neighbour, mic=True, vector=True)
    unit = bond / np.linalg.norm(bond)
    pushed_e, pushed_f = [], []
    for r in distances:
        atoms = crystal.copy()
        atoms.positions[0] = crystal.positions[0] + bond - r * unit
        prediction = model.predict_structure(atoms)
        pushed_e.append(prediction.energy)
        pushed_f.append(-prediction.forces[0] @ unit)  # pushed back, away from the neighbour
    curves["crystal"] = np.array(pushed_e), np.array(pushed_f)
    return curves


def assert_monotone_repulsion(curves, label):
    for kind, (energies, forces) in curves.items():
        assert np.all(np.diff(energies) > 0), f"{label} {kind}: energy not rising as atoms approach"
        assert np.all(np.diff(forces) > 0), f"{label} {kind}: repulsive force not growing"
        assert forces[-1] > 0


def test_repulsion_rises_monotonically_down_to_0_6_angstrom(cu_model):
    shortest = cu_model.shortest_distances_[(29, 29)]
    distances = np.linspace(shortest, 0.6, 120)
    crystal = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((3, 3, 3))
    curves = repulsion_curves(cu_model, "Cu", crystal, distances)
    assert_monotone_repulsion(curves, "Cu")
    assert curves["crystal"][1][-1] > 1000.0  # eV/Å at 0.6 Å: a hard core


# ------------------------------------------------------------------ model file
@pytest.mark.parametrize("repulsion", ["zbl", None, "custom"])
def test_model_file_keeps_the_baseline(cu_data, tmp_path, repulsion):
    setting = ZBL(inner_fraction=0.35) if repulsion == "custom" else repulsion
    model = gapfit.GAP(terms=[gapfit.TwoBody(n_sparse=10)], random_state=0,
                       repulsion=setting).fit(cu_data[:10])
    model.save(tmp_path / "m.gap")
    loaded = gapfit.load(tmp_path / "m.gap")
    assert loaded.shortest_distances_ == model.shortest_distances_
    assert (loaded.repulsion_ is None) == (repulsion is None)
    if repulsion == "custom":
        assert loaded.repulsion.inner_fraction == 0.35
    atoms = compressed_crystal(model, 1.0)
    ours, theirs = model.predict_structure(atoms), loaded.predict_structure(atoms)
    assert ours.energy == theirs.energy and np.array_equal(ours.forces, theirs.forces)


# ------------------------------------------------------------------ the warning
def test_calculator_warns_once_per_formula_about_short_distances(cu_model, caplog):
    calculator = gapfit.GAPCalculator(cu_model)
    near = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    near.calc = calculator
    with caplog.at_level(logging.WARNING):
        near.get_potential_energy()
        assert not [r for r in caplog.records if "training data" in r.getMessage()]
        atoms = compressed_crystal(cu_model, 0.5)
        atoms.calc = calculator
        for step in range(5):
            atoms.positions[3] += 0.01
            atoms.get_forces()
        other = compressed_crystal(cu_model, 0.7).repeat((1, 1, 2))
        other.calc = calculator
        other.get_potential_energy()
        other.positions[0] += 0.01
        other.get_potential_energy()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING
                and r.name.endswith("calculator")]
    assert len(warnings) == 2, [r.getMessage() for r in warnings]
    message = warnings[0].getMessage()
    assert "Cu32" in message and "Cu-Cu" in message and "closer than the shortest" in message
    assert f"{cu_model.shortest_distances_[(29, 29)]:.3f}" in message
    assert "Cu64" in warnings[1].getMessage()


@pytest.mark.slow
def test_repulsion_of_mo_fitted_to_dft_rises_monotonically(mlearn_dir):
    """mlearn Mo (every third training configuration, a smaller SOAP): a dimer and an atom
    pushed into its neighbour in bcc Mo, from the shortest training distance to 0.6 Å."""
    train = gapfit.io.read_mlearn(mlearn_dir / "Mo_train.json")[::3]
    model = gapfit.GAP(terms=[gapfit.TwoBody(), gapfit.SOAP(n_sparse=300)], random_state=0).fit(train)
    shortest = model.shortest_distances_[(42, 42)]
    distances = np.linspace(shortest, 0.6, 120)
    crystal = bulk("Mo", "bcc", a=3.16, cubic=True).repeat((3, 3, 3))
    curves = repulsion_curves(model, "Mo", crystal, distances)
    assert_monotone_repulsion(curves, "Mo")
    assert curves["crystal"][1][-1] > 1000.0
