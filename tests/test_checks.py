"""gapfit.checks: every check fires on a bad configuration and names its index in the list."""
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from gapfit.structures.checks import Labels, check_labels, check_structures

BAD = 2  # position of the faulty configuration in every list below


def good_cell(seed=0):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.rattle(0.05, seed=seed)
    atoms.calc = EMT()
    results = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces(),
               "stress": atoms.get_stress()}
    atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def with_bad(bad):
    """Four configurations, the one at index BAD faulty."""
    structures = [good_cell(seed) for seed in range(4)]
    structures[BAD] = bad
    return structures


def relabelled(atoms, **changes):
    """``atoms`` with its SinglePointCalculator results changed (None removes a label)."""
    results = dict(atoms.calc.results)
    for name, value in changes.items():
        if value is None:
            results.pop(name, None)
        else:
            results[name] = value
    atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


# ----------------------------------------------------------------------------- structures
def test_good_structures_pass():
    structures = with_bad(good_cell(7))
    check_structures(structures)
    check_structures(structures, species=["Cu"])
    check_structures(structures, species=[29, 79])
    check_structures([molecule("H2O")], species=["H", "O"])  # non-periodic, no cell


def test_empty_list():
    with pytest.raises(ValueError, match="no configurations"):
        check_structures([])


def test_item_that_is_not_atoms():
    with pytest.raises(ValueError, match=f"configuration {BAD}: expected an ase.Atoms, got .*str"):
        check_structures(with_bad("POSCAR"))


def test_single_atoms_instead_of_a_list():
    with pytest.raises(ValueError, match="single Atoms"):
        check_structures(good_cell())
    with pytest.raises(ValueError, match="configuration 0: .*not one Atoms"):
        check_structures(list(good_cell()))  # what list(atoms) gives: Atom objects


def test_structure_without_atoms():
    with pytest.raises(ValueError, match=f"configuration {BAD}: has no atoms"):
        check_structures(with_bad(Atoms(cell=[3, 3, 3], pbc=True)))


@pytest.mark.parametrize("value, name", [(np.nan, "NaN"), (np.inf, "inf")])
def test_non_finite_positions(value, name):
    bad = good_cell()
    bad.positions[1, 2] = value
    with pytest.raises(ValueError, match=f"configuration {BAD}: positions contain {name}"):
        check_structures(with_bad(bad))


def test_non_finite_cell():
    bad = good_cell()
    cell = bad.cell.array.copy()
    cell[0, 0] = np.inf
    bad.set_cell(cell)
    with pytest.raises(ValueError, match=f"configuration {BAD}: cell contains inf"):
        check_structures(with_bad(bad))


def test_unknown_species_names_symbol_and_known_ones():
    bad = good_cell()
    bad.symbols[0] = "Au"
    with pytest.raises(ValueError) as error:
        check_structures(with_bad(bad), species=["Cu", "Ag"])
    message = str(error.value)
    assert message.startswith(f"configuration {BAD}: species Au")
    assert "(Cu, Ag)" in message  # in order of atomic number


def test_overlapping_atoms():
    bad = good_cell()
    bad.positions[3] = bad.positions[1] + [0.2, 0.0, 0.0]
    with pytest.raises(ValueError, match=f"configuration {BAD}: atoms 1 and 3 overlap, 0.200 Å"):
        check_structures(with_bad(bad))
    check_structures(with_bad(bad), min_distance=0.1)  # threshold is the caller's
    check_structures(with_bad(bad), min_distance=None)


def test_coincident_atoms():
    bad = good_cell()
    bad.positions[2] = bad.positions[0]
    with pytest.raises(ValueError, match=f"configuration {BAD}: atoms 0 and 2 overlap, 0.000 Å"):
        check_structures(with_bad(bad))


def test_atom_too_close_to_its_own_image():
    bad = Atoms("Cu", positions=[[0, 0, 0]], cell=[0.3, 5, 5], pbc=True)
    with pytest.raises(ValueError, match=f"configuration {BAD}: atom 0 is 0.300 Å from its own"):
        check_structures(with_bad(bad))


def test_zero_cell_vector_along_a_periodic_direction():
    bad = molecule("H2O")
    bad.cell = [[5, 0, 0], [0, 5, 0], [0, 0, 0]]
    bad.pbc = True
    with pytest.raises(ValueError, match=f"configuration {BAD}: periodic along axis 2"):
        check_structures(with_bad(bad))
    bad.pbc = (True, True, False)  # not periodic along the zero vector: fine
    check_structures(with_bad(bad))


def test_degenerate_cell():
    bad = good_cell()
    bad.set_cell([[3.6, 0, 0], [0, 3.6, 0], [3.6, 3.6, 0]])
    with pytest.raises(ValueError, match=f"configuration {BAD}: .*linearly dependent"):
        check_structures(with_bad(bad))


# ----------------------------------------------------------------------------- labels
def test_labels_are_returned_in_order():
    structures = with_bad(good_cell(9))
    slab = good_cell(5)
    slab.pbc = (True, True, False)
    structures[3] = relabelled(slab, stress=None)
    labels = check_labels(structures)
    assert isinstance(labels, Labels)
    assert np.array_equal(labels.energies, [a.calc.results["energy"] for a in structures])
    assert all(np.array_equal(f, a.calc.results["forces"]) for f, a in zip(labels.forces, structures))
    assert np.array_equal(labels.stresses[0], structures[0].calc.results["stress"])
    assert labels.stresses[3] is None


def test_empty_label_list():
    with pytest.raises(ValueError, match="no configurations"):
        check_labels([])


def test_missing_energy_without_calculator():
    bad = good_cell()
    bad.calc = None
    with pytest.raises(ValueError, match=f"configuration {BAD}: no reference energy .*no calculator"):
        check_labels(with_bad(bad))


def test_model_predictions_are_not_labels():
    bad = good_cell()
    bad.calc = EMT()
    with pytest.raises(ValueError, match=f"configuration {BAD}: no reference energy .*EMT"):
        check_labels(with_bad(bad))


def test_missing_energy_on_single_point_calculator():
    bad = relabelled(good_cell(), energy=None)
    with pytest.raises(ValueError, match=f"configuration {BAD}: no reference energy"):
        check_labels(with_bad(bad))


def test_missing_forces_only_matter_when_needed():
    bad = relabelled(good_cell(), forces=None)
    with pytest.raises(ValueError, match=f"configuration {BAD}: no reference forces"):
        check_labels(with_bad(bad))
    labels = check_labels(with_bad(bad), need_forces=False)
    assert labels.forces[BAD] is None and labels.forces[0] is not None


def test_forces_shape_mismatch():
    bad = relabelled(good_cell(), forces=np.zeros((3, 3)))
    with pytest.raises(ValueError, match=rf"configuration {BAD}: forces have shape \(3, 3\), "
                                         rf"expected \(4, 3\)"):
        check_labels(with_bad(bad), need_forces=False)


def test_forces_contain_nan():
    forces = good_cell().calc.results["forces"].copy()
    forces[2, 1] = np.nan
    bad = relabelled(good_cell(), forces=forces)
    with pytest.raises(ValueError, match=f"configuration {BAD}: forces contain NaN"):
        check_labels(with_bad(bad))


def test_energy_is_inf():
    bad = relabelled(good_cell(), energy=np.inf)
    with pytest.raises(ValueError, match=f"configuration {BAD}: energy is inf"):
        check_labels(with_bad(bad))


def test_stress_contains_nan():
    stress = good_cell().calc.results["stress"].copy()
    stress[4] = np.nan
    bad = relabelled(good_cell(), stress=stress)
    with pytest.raises(ValueError, match=f"configuration {BAD}: stress contains NaN"):
        check_labels(with_bad(bad))


def test_stress_on_a_structure_not_periodic_in_3d():
    bad = good_cell()
    bad.pbc = (True, True, False)
    with pytest.raises(ValueError, match=f"configuration {BAD}: has a stress but is not periodic"):
        check_labels(with_bad(bad))
