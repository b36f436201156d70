"""MD with a GAPCalculator: energy conservation, neighbour-list reuse, NPT lattice constant of Mo,
and examples/md.py with tiny settings."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from ase import units
from ase.build import bulk
from ase.md.verlet import VelocityVerlet

import gapfit
from gapfit.md.dynamics import initialise_velocities
from gapfit.structures.neighbors import SkinNeighborList, build_neighbor_list

from conftest import MLEARN

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cu_model():
    """A small 2-body + SOAP model of EMT copper (tiny SOAP keeps numba and the fit cheap)."""
    train = gapfit.io.read(REPO / "data" / "cu_train.xyz")[:12]
    model = gapfit.GAP(terms=[gapfit.TwoBody(cutoff=4.5, n_sparse=10),
                              gapfit.SOAP(r_cut=4.0, n_max=4, l_max=3, n_sparse=40)],
                       energy_sigma=0.001, force_sigma=0.03, virial_sigma=0.02, random_state=0)
    return model.fit(train)


def pair_set(nl, decimals=9):
    """The pairs of a neighbour list as a set of (i, j, rounded pair vector)."""
    vectors = np.round(nl.vectors, decimals)
    return {(int(i), int(j), *map(float, v)) for i, j, v in zip(nl.centers, nl.neighbors, vectors)}


def test_skin_list_equals_a_fresh_search_and_searches_only_when_needed():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    atoms.rattle(0.05, seed=1)
    cutoff, skin = 4.0, 0.6
    skin_list = SkinNeighborList(cutoff, skin)
    step = np.random.default_rng(0).normal(size=(len(atoms), 3))
    step *= 0.25 / np.linalg.norm(step, axis=1).max()  # largest move 0.25 Å < skin / 2
    for moved, searches in [(False, 1), (True, 1), (True, 2)]:  # twice: 0.5 Å > skin / 2
        if moved:
            atoms.positions += step
        reused = skin_list.get(atoms)
        assert pair_set(reused) == pair_set(build_neighbor_list(atoms, cutoff))
        assert skin_list.n_searches == searches
    atoms.set_cell(atoms.cell.array * 1.01, scale_atoms=True)
    assert pair_set(skin_list.get(atoms)) == pair_set(build_neighbor_list(atoms, cutoff))
    assert skin_list.n_searches == 3
    atoms.numbers[0] = 47
    skin_list.get(atoms)
    assert skin_list.n_searches == 4


def test_reused_neighbor_list_gives_the_forces_of_a_fresh_calculation(cu_model):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    atoms.rattle(0.05, seed=2)
    calculator = gapfit.GAPCalculator(cu_model, skin=1.0)
    atoms.calc = calculator
    rng = np.random.default_rng(3)
    step = rng.normal(size=(len(atoms), 3))
    step *= 0.45 / np.linalg.norm(step, axis=1).max()  # below skin / 2; twice above it
    pair_counts = []
    for moved, change_cell in [(False, False), (True, False), (True, False), (False, True)]:
        if moved:
            atoms.positions += step
        if change_cell:
            atoms.set_cell(atoms.cell.array @ (np.eye(3) + 0.01 * rng.normal(size=(3, 3))),
                           scale_atoms=True)
        forces, stress = atoms.get_forces(), atoms.get_stress()
        fresh = cu_model.predict_structure(atoms)  # no skin: a new neighbour search
        np.testing.assert_allclose(forces, fresh.forces, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(atoms.get_potential_energy(), fresh.energy, rtol=0, atol=1e-10)
        np.testing.assert_allclose(stress, (-fresh.virial / atoms.get_volume()).flat[
            [0, 4, 8, 5, 2, 1]], rtol=1e-10, atol=1e-12)
        pair_counts.append([len(build_neighbor_list(atoms, term.neighbor_cutoff).centers)
                            for term in cu_model.terms_])
    # the reused list (second call) had pairs enter or leave the cutoffs, so reuse was tested
    assert pair_counts[0] != pair_counts[1]
    assert calculator._predictor.neighbor_list.n_searches == 3


def test_dedicated_kernel_contractions_equal_the_generic_kernel_path(cu_model):
    """The numba dot-product and pair-distance contractions against kernels.values_and_factors."""
    from gapfit.predict.predictor import TermPredictor
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    atoms.rattle(0.1, seed=4)
    nl = build_neighbor_list(atoms, max(t.neighbor_cutoff for t in cu_model.terms_))
    offset = 0
    for term in cu_model.terms_:
        alpha = cu_model.alpha_[offset: offset + term.n_sparse_points]
        offset += term.n_sparse_points
        predictor = TermPredictor(term, alpha)
        assert predictor._contract != predictor._generic  # a dedicated path exists for both
        environments = term.descriptor_.compute(atoms, nl)
        fast = predictor.energies_and_gradients(environments)
        predictor._contract = predictor._generic
        slow = predictor.energies_and_gradients(environments)
        # the sums cancel (coefficients of alternating sign, |α| up to ~1e4 here), so
        # round-off is relative to Σ|α δ²| rather than to the result
        scale = np.abs(alpha).sum() * term.delta_ ** 2
        for ours, reference in zip(fast, slow):
            np.testing.assert_allclose(ours, reference, rtol=1e-11, atol=1e-14 * scale)


def nve_drift(model, repeat, steps, temperature_K=300.0, seed=0):
    """NVE with a 1 fs step: drift of the total energy (meV/atom/ps, slope of a straight-line
    fit), its fluctuation (meV/atom) and the largest displacement of an atom (Å)."""
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(repeat)
    atoms.calc = gapfit.GAPCalculator(model)
    initialise_velocities(atoms, temperature_K, np.random.default_rng(seed))
    start = atoms.positions.copy()
    dynamics = VelocityVerlet(atoms, 1.0 * units.fs)
    times, totals = [], []
    dynamics.attach(lambda: (times.append(dynamics.nsteps * 1e-3),
                             totals.append(atoms.get_total_energy() / len(atoms))), interval=10)
    dynamics.run(steps)
    largest_move = np.linalg.norm(atoms.positions - start, axis=1).max()
    return 1e3 * np.polyfit(times, totals, 1)[0], 1e3 * np.std(totals), largest_move


def test_nve_conserves_energy_over_2_ps(cu_model):
    drift, fluctuation, largest_move = nve_drift(cu_model, repeat=2, steps=2000)
    assert largest_move > 0.1  # the atoms really moved (thermal vibration at 300 K)
    assert abs(drift) < 0.1, f"drift {drift:.4f} meV/atom/ps"
    assert fluctuation < 1.0  # meV/atom: 1 fs velocity Verlet on a smooth potential


def test_example_md_runs_with_tiny_settings(capsys):
    spec = importlib.util.spec_from_file_location("example_md", REPO / "examples" / "md.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    status = example.main(["--train-limit", "8", "--n-sparse", "30", "--n-max", "3",
                           "--l-max", "2", "--r-cut", "4.0", "--repeat", "2", "--ps", "0.3"])
    out = capsys.readouterr().out
    assert "NVE on 32 atoms, 300 steps of 1 fs" in out
    drift = float(out.split("total-energy drift")[1].split()[0])
    assert abs(drift) < 0.1 and status == 0
    assert float(out.split("speed")[1].split()[0]) > 0


@pytest.mark.slow
@pytest.mark.skipif(not (MLEARN / "Mo_train.json").is_file(),
                    reason="mlearn Mo data not found at ../shared/data/mlearn")
def test_npt_keeps_bcc_mo_at_its_lattice_constant():
    from gapfit.md.dynamics import run_md
    train = gapfit.io.read_mlearn(MLEARN / "Mo_train.json")[::2]  # every group, half the cost
    model = gapfit.GAP(terms=[gapfit.TwoBody(cutoff=5.0, n_sparse=20),
                              gapfit.SOAP(r_cut=5.0, n_max=6, l_max=4, n_sparse=300)],
                       random_state=0).fit(train)
    atoms = bulk("Mo", "bcc", a=3.16, cubic=True).repeat(4)
    result = run_md(atoms, gapfit.GAPCalculator(model), ensemble="npt", steps=3000,
                    timestep_fs=2.0, temperature_K=300.0, pdamp_fs=500.0, interval=20, seed=0)
    second_half = result.log["volume_A3"][len(result.log["volume_A3"]) // 2:]
    lattice_constant = (second_half.mean() / len(atoms) * 2) ** (1 / 3)
    temperature = result.log["temperature_K"][len(result.log["temperature_K"]) // 2:].mean()
    structure = result.atoms
    assert abs(lattice_constant - 3.16) / 3.16 < 0.01, lattice_constant
    assert 250 < temperature < 350
    # still bcc: atoms keep 8 nearest neighbours within 1.1 x a sqrt(3)/2 (in a 300 K snapshot
    # a second-shell atom now and then comes that close; fcc would give 12, and a melt would
    # not keep 95% of the atoms at exactly 8)
    nl = build_neighbor_list(structure, 1.1 * lattice_constant * np.sqrt(3) / 2)
    coordination = np.bincount(nl.centers, minlength=len(structure))
    assert np.mean(coordination == 8) > 0.95 and abs(coordination.mean() - 8) < 0.1, coordination
