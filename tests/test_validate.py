"""gapfit.validate against independent computations on EMT, whose properties ASE gives directly.

EMT itself plays the model: the equation of state must find the lattice constant of a direct
minimisation, the stress–strain elastic constants must equal energy second derivatives, the
phonons' sound speeds must equal those of the elastic constants, and ``properties_from_data``
must recover the constants of cells EMT labelled. A small gapfit model fitted on data/cu_train.xyz
must land near EMT's values.
"""
from pathlib import Path

import numpy as np
import pytest
from ase import units
from ase.build import bulk
from ase.calculators.emt import EMT
from scipy.optimize import minimize_scalar

from conftest import label_with_emt
from gapfit import validate

DATA = Path(__file__).resolve().parents[1] / "data"


def emt_energy(atoms):
    copy = atoms.copy()
    copy.calc = EMT()
    return copy.get_potential_energy()


def cubic_cu(a):
    return bulk("Cu", "fcc", a=a, cubic=True)


@pytest.fixture(scope="module")
def emt_lattice_constant():
    """EMT's Cu lattice constant by direct minimisation of the energy over a (independent of ase.eos)."""
    result = minimize_scalar(lambda a: emt_energy(cubic_cu(a)), bounds=(3.5, 3.7), method="bounded",
                             options={"xatol": 1e-9})
    return result.x


@pytest.fixture(scope="module")
def emt_eos():
    return validate.energy_volume(EMT(), cubic_cu(3.65))


def energy_stiffness(a, h=1e-3):
    """C11, C12, C44 (GPa) from central second differences of EMT energies under strain."""
    atoms = cubic_cu(a)
    volume = atoms.get_volume()

    def energy(exx=0.0, eyy=0.0, gyz=0.0):
        deformed = atoms.copy()
        deformation = np.array([[1 + exx, 0, 0], [0, 1 + eyy, gyz / 2], [0, gyz / 2, 1]])
        deformed.set_cell(atoms.cell.array @ deformation, scale_atoms=True)
        return emt_energy(deformed)

    e0 = energy()
    c11 = (energy(exx=h) + energy(exx=-h) - 2 * e0) / h ** 2 / volume
    c12 = (energy(h, h) - energy(h, -h) - energy(-h, h) + energy(-h, -h)) / (4 * h ** 2) / volume
    c44 = (energy(gyz=h) + energy(gyz=-h) - 2 * e0) / h ** 2 / volume
    return {"C11": c11 / units.GPa, "C12": c12 / units.GPa, "C44": c44 / units.GPa}


# ----------------------------------------------------------------------------- EMT as the model
def test_equation_of_state_finds_the_directly_minimised_lattice_constant(emt_eos, emt_lattice_constant):
    assert emt_eos.lattice_constant == pytest.approx(emt_lattice_constant, rel=1e-4)
    # bulk modulus against V d²E/dV² by finite differences at the minimum
    def energy_per_atom(volume):
        return emt_energy(cubic_cu((4 * volume) ** (1 / 3))) / 4
    v0, dv = emt_lattice_constant ** 3 / 4, 0.01
    curvature = (energy_per_atom(v0 + dv) + energy_per_atom(v0 - dv) - 2 * energy_per_atom(v0)) / dv ** 2
    assert emt_eos.bulk_modulus == pytest.approx(v0 * curvature / units.GPa, rel=0.01)
    equilibrium = emt_eos.equilibrium_structure()
    assert equilibrium.cell.lengths() == pytest.approx([emt_eos.lattice_constant] * 3)
    assert emt_eos.energy_curve([emt_eos.volume])[0] == pytest.approx(emt_eos.energy)


def test_elastic_constants_equal_energy_second_derivatives(emt_eos, emt_lattice_constant):
    stiffness = validate.elastic_constants(EMT(), emt_eos.equilibrium_structure())
    expected = energy_stiffness(emt_lattice_constant)
    for name, value in stiffness.cubic.items():
        assert value == pytest.approx(expected[name], rel=0.01), name
    matrix = stiffness.matrix
    np.testing.assert_allclose(matrix, matrix.T, atol=0.01 * matrix.max())
    off_diagonal_shear = matrix[3:, 3:] - np.diag(np.diag(matrix[3:, 3:]))
    assert np.abs(matrix[:3, 3:]).max() < 0.5 and np.abs(off_diagonal_shear).max() < 0.5  # cubic
    assert stiffness.bulk_modulus == pytest.approx(emt_eos.bulk_modulus, rel=0.01)
    assert np.abs(stiffness.stress).max() < 0.05  # GPa: the equilibrium cell is stress-free


def test_fit_elastic_constants_returns_the_slopes_at_zero_strain_despite_curvature():
    rng = np.random.default_rng(0)
    root = rng.normal(size=(6, 6))
    stiffness = root @ root.T + 6 * np.eye(6)  # eV/Å³, symmetric positive definite
    curvature = rng.normal(size=(6, 6)) * 20
    offset = rng.normal(size=6) * 1e-3
    strains = [np.zeros(6)]
    for j in range(6):
        for magnitude in (-0.04, -0.02, 0.02, 0.04):
            strain = np.zeros(6)
            strain[j] = magnitude
            strains.append(strain)
    strains = np.array(strains)
    stresses = offset + strains @ stiffness.T + (strains ** 2) @ curvature.T
    fitted = validate.fit_elastic_constants(strains, stresses)
    np.testing.assert_allclose(fitted.matrix * units.GPa, stiffness, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(fitted.stress * units.GPa, offset, atol=1e-12)
    with pytest.raises(ValueError, match="no cell is strained along xy"):
        validate.fit_elastic_constants(strains[:-4], stresses[:-4])


def test_strain_between_inverts_strained():
    atoms = bulk("Cu", "fcc", a=3.6)
    voigt = np.array([0.01, -0.02, 0.005, 0.03, -0.01, 0.02])
    np.testing.assert_allclose(validate.strain_between(atoms.cell.array,
                                                       validate.strained(atoms, voigt).cell.array),
                               voigt, atol=1e-15)


def test_vacancy_relaxation_lowers_the_energy_to_an_independent_relaxation(emt_eos):
    from ase.optimize import FIRE
    equilibrium = emt_eos.equilibrium_structure()
    vacancy = validate.vacancy_formation_energy(EMT(), equilibrium, repeat=(2, 2, 2), fmax=1e-3)
    assert vacancy.n_atoms == 32 and vacancy.max_force <= 1e-3
    assert 0 < vacancy.relaxed < vacancy.unrelaxed
    perfect = equilibrium.repeat((2, 2, 2))
    defective = perfect.copy()
    del defective[0]
    defective.calc = EMT()
    FIRE(defective, logfile=None).run(fmax=1e-4)
    expected = defective.get_potential_energy() - 31 / 32 * emt_energy(perfect)
    assert vacancy.relaxed == pytest.approx(expected, abs=2e-3)
    assert vacancy.unrelaxed == pytest.approx(emt_energy(perfect[1:]) - 31 / 32 * emt_energy(perfect),
                                              abs=1e-9)


@pytest.fixture(scope="module")
def emt_phonons(emt_eos):
    primitive = bulk("Cu", "fcc", a=emt_eos.lattice_constant)
    return validate.phonons(EMT(), primitive, dos_kpoints=(12, 12, 12))


def test_phonon_sound_speeds_match_the_elastic_constants(emt_phonons, emt_eos, emt_lattice_constant):
    """Along [100], ω = v q with v = √(C11/ρ) (longitudinal) and √(C44/ρ) (transverse)."""
    primitive = bulk("Cu", "fcc", a=emt_eos.lattice_constant)
    x_point = np.array(emt_phonons.path.special_points["X"])
    fraction = 0.02
    frequencies = np.sort(emt_phonons.frequencies(fraction * x_point)[0])  # THz
    q = np.linalg.norm(fraction * x_point @ primitive.cell.reciprocal())  # 1/Å, no 2π
    density = primitive.get_masses().sum() * units._amu / (primitive.get_volume() * 1e-30)  # kg/m³
    stiffness = energy_stiffness(emt_lattice_constant)
    transverse, longitudinal = (np.sqrt(stiffness[name] * 1e9 / density) for name in ("C44", "C11"))
    speeds = frequencies * 1e12 / (q * 1e10)  # m/s
    assert speeds == pytest.approx([transverse, transverse, longitudinal], rel=0.03)
    assert np.abs(emt_phonons.special_points["G"]).max() < 0.05  # acoustic sum rule
    assert emt_phonons.min_frequency > -0.05  # no unstable mode in fcc Cu
    step = emt_phonons.dos_frequencies[1] - emt_phonons.dos_frequencies[0]
    assert emt_phonons.dos.sum() * step == pytest.approx(3.0, rel=0.02)


def test_md_stability_passes_emt_and_flags_violations(emt_eos):
    cell = emt_eos.equilibrium_structure()
    stable = validate.md_stability(EMT(), cell, temperature_K=300, time_ps=0.1, timestep_fs=2,
                                   min_width=7.0, random_state=0)
    assert stable.stable and stable.reason == "" and stable.time_ps == pytest.approx(0.1)
    assert 0.6 * 2.5 < stable.min_distance_threshold < stable.min_distance < 2.6
    crowded = validate.md_stability(EMT(), cell, time_ps=0.1, min_width=7.0, min_distance=3.0)
    assert not crowded.stable and "came within" in crowded.reason and crowded.time_ps < 0.1
    hot = validate.md_stability(EMT(), cell, time_ps=0.1, min_width=7.0, max_energy_change=1e-4)
    assert not hot.stable and "potential energy rose" in hot.reason
    assert hot.max_energy_change > hot.energy_change_threshold
    strained_start = cell.repeat((2, 2, 2))
    strained_start.positions += np.random.default_rng(0).normal(0, 0.15, strained_start.positions.shape)
    falling = validate.md_stability(EMT(), strained_start, temperature_K=10, time_ps=0.1, min_width=None,
                                    max_energy_change=0.01)
    assert not falling.stable and "potential energy fell" in falling.reason


def test_plots_are_written(emt_eos, emt_phonons, tmp_path):
    other = validate.energy_volume(EMT(), cubic_cu(3.59), strains=np.linspace(-0.03, 0.03, 7))
    eos_path = validate.plot_equation_of_state(
        emt_eos, tmp_path / "eos.png",
        references={"wider sampling": other, "points": (other.volumes, other.energies)})
    phonon_path = validate.plot_phonons(emt_phonons, tmp_path / "phonons.png")
    for path in (eos_path, phonon_path):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


# ----------------------------------------------------------------------------- from data
def emt_elastic_data(a=3.60, vacancy_strain=-0.003, seed=0):
    """mlearn-like labelled cells: an "Elastic" strain series of a 2×2×2 cell at lattice a,
    and two "Vacancy" cells (one rattled more than the other) under a small isotropic strain."""
    reference = cubic_cu(a).repeat((2, 2, 2))
    cells = [reference.copy()]
    for j in range(6):
        for magnitude in (-0.02, -0.01, 0.01, 0.02):
            strain = np.zeros(6)
            strain[j] = magnitude
            cells.append(validate.strained(reference, strain))
    cells.append(validate.strained(reference, [0.06, 0, 0, 0, 0, 0]))  # beyond max_strain
    for atoms in cells:
        atoms.info["config_type"] = "Elastic"
    rng = np.random.default_rng(seed)
    vacancy_cells = []
    for rattle in (0.05, 0.005):
        atoms = validate.strained(reference, [vacancy_strain] * 3 + [0, 0, 0])
        del atoms[5]
        atoms.positions += rng.normal(0, rattle, atoms.positions.shape)
        atoms.info["config_type"] = "Vacancy"
        vacancy_cells.append(atoms)
    return [label_with_emt(atoms) for atoms in cells + vacancy_cells]


def test_properties_from_data_recover_emt_and_treat_model_and_labels_alike(emt_eos):
    data = emt_elastic_data()
    derived = validate.properties_from_data(data, atoms_per_cell=4)
    assert derived.notes["elastic_cells"] == 25 and derived.notes["elastic_cells_beyond_max_strain"] == 1
    direct = validate.elastic_constants(EMT(), cubic_cu(3.60), relax_ions=False)
    for name, value in derived.elastic.cubic.items():
        assert value == pytest.approx(direct.cubic[name], rel=0.005), name
    assert derived.lattice_constant == pytest.approx(emt_eos.lattice_constant, rel=2e-4)
    assert derived.bulk_modulus == pytest.approx(direct.bulk_modulus, rel=0.005)

    # the vacancy cell with the smaller rattle is chosen; the bulk energy at its strain comes
    # from second-order elasticity, checked here against EMT on the strained perfect cell
    chosen = data[-1]
    assert derived.notes["vacancy_cell_rms_force_eV_per_A"] == pytest.approx(
        np.sqrt(np.mean(chosen.get_forces() ** 2)))
    perfect = validate.strained(cubic_cu(3.60).repeat((2, 2, 2)), [-0.003] * 3 + [0, 0, 0])
    expected = chosen.get_potential_energy() - 31 / 32 * emt_energy(perfect)
    assert derived.vacancy_formation == pytest.approx(expected, abs=2e-3)

    same_cells = validate.properties_from_data(data, calculator=EMT(), atoms_per_cell=4)
    np.testing.assert_allclose(same_cells.elastic.matrix, derived.elastic.matrix, rtol=1e-10, atol=1e-8)
    assert same_cells.vacancy_formation == pytest.approx(derived.vacancy_formation, abs=1e-10)
    assert same_cells.lattice_constant == pytest.approx(derived.lattice_constant, rel=1e-12)


def test_properties_from_data_name_what_is_missing():
    data = emt_elastic_data()
    with pytest.raises(ValueError, match="no 'Strained' configurations"):
        validate.properties_from_data(data, elastic_type="Strained")
    with pytest.raises(ValueError, match="at least 7 cells"):
        validate.properties_from_data(data[:5])


def test_reference_crystal_and_table():
    conventional, primitive = validate.reference_crystal([29])
    assert len(conventional) == 4 and len(primitive) == 1
    with pytest.raises(ValueError, match="one element"):
        validate.reference_crystal([29, 79])
    table = validate.format_table({"C11": (110.0, "GPa")}, {"C11": 100.0})
    assert "+10.00%" in table and "GPa" in table


# ----------------------------------------------------------------------------- a fitted model
@pytest.fixture(scope="module")
def cu_model():
    import gapfit
    model = gapfit.GAP(terms=[gapfit.TwoBody(n_sparse=15),
                              gapfit.SOAP(r_cut=4.5, n_max=4, l_max=3, n_sparse=150)],
                       energy_sigma=0.001, force_sigma=0.03, virial_sigma=0.02, random_state=0)
    return model.fit(gapfit.io.read(DATA / "cu_train.xyz"))


def test_a_model_fitted_on_emt_data_lands_near_emt(cu_model, emt_eos, emt_lattice_constant):
    """Tolerances: lattice constant 0.2 %, bulk modulus and C11, C12, C44 5 % (this fit lands
    within 0.01 % and 1 %; the issue asks for 0.5 % and 10–15 %)."""
    import gapfit
    calculator = gapfit.GAPCalculator(cu_model)
    eos = validate.energy_volume(calculator, cubic_cu(3.59))
    assert eos.lattice_constant == pytest.approx(emt_lattice_constant, rel=0.002)
    assert eos.bulk_modulus == pytest.approx(emt_eos.bulk_modulus, rel=0.05)
    stiffness = validate.elastic_constants(calculator, eos.equilibrium_structure(), relax_ions=False)
    expected = energy_stiffness(emt_lattice_constant)
    for name, value in stiffness.cubic.items():
        assert value == pytest.approx(expected[name], rel=0.05), name


def test_eval_properties_on_the_command_line(cu_model, tmp_path, capsys):
    import json

    from gapfit.cli.commands import main
    cu_model.save(tmp_path / "cu.gap")
    status = main(["eval", str(tmp_path / "cu.gap"), "--properties", "--md-time", "0.02",
                   "--json", str(tmp_path / "p.json"), "--plots", str(tmp_path / "plots"), "-q"])
    assert status == 0
    out = capsys.readouterr().out
    assert "lattice constant" in out and "C44" in out and "stable" in out
    document = json.loads((tmp_path / "p.json").read_text())["properties"]
    assert document["lattice constant"]["unit"] == "Å"
    assert abs(document["lattice constant"]["value"] / 3.59 - 1) < 0.01
    assert len(document["elastic_matrix_GPa"]) == 6
    assert (tmp_path / "plots" / "eos.png").exists() and (tmp_path / "plots" / "phonons.png").exists()
    assert main(["eval", str(tmp_path / "cu.gap")]) == 1
    assert "nothing to evaluate" in capsys.readouterr().err


# ----------------------------------------------------------------------------- real DFT data
def test_mlearn_mo_references_are_cubic_and_agree_with_the_two_atom_cell(mlearn_dir):
    """The 54-atom strain series gives a cubic stiffness and a zero-stress lattice constant that
    the data's separate, ideal 2-atom Mo cell confirms through its own DFT stress."""
    import gapfit
    from gapfit.structures.io import labels
    data = gapfit.io.read_mlearn(mlearn_dir / "Mo_train.json") + gapfit.io.read_mlearn(
        mlearn_dir / "Mo_test.json")
    derived = validate.properties_from_data(data, atoms_per_cell=2)
    matrix = derived.elastic.matrix
    assert np.ptp(np.diag(matrix)[:3]) < 0.02 * matrix[0, 0]
    assert np.ptp(np.diag(matrix)[3:]) < 0.02 * matrix[3, 3]
    assert np.abs(matrix[:3, 3:]).max() < 0.01 * matrix[0, 0]
    assert derived.vacancy_formation is not None and derived.notes["vacancy_cell_atoms"] == 53
    two_atom = [atoms for atoms in data if atoms.info["config_type"] == "Elastic" and len(atoms) == 2]
    assert len(two_atom) == 1
    _, forces, stress = labels(two_atom[0])
    assert np.abs(forces).max() < 1e-6
    mean_stress = stress[:3].mean() / units.GPa
    a_two_atom = two_atom[0].cell.lengths()[0] * (1 - mean_stress / (3 * derived.bulk_modulus))
    assert derived.lattice_constant == pytest.approx(a_two_atom, rel=1e-3)
