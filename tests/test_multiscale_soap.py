"""Two SOAP terms of different cutoffs and atom widths in one model ("multi-scale SOAP"): the
fit, the MD path (GAPCalculator) and the model file agree with each other and with finite
differences of the energy."""
import numpy as np

import gapfit

from conftest import finite_difference_forces, make_cu_structures


def test_two_soap_terms_fit_and_the_calculator_matches_finite_differences(tmp_path):
    train = make_cu_structures(8, 0)
    atoms = make_cu_structures(1, 1)[0]
    terms = [gapfit.TwoBody(cutoff=4.0, n_sparse=10),
             gapfit.SOAP(r_cut=4.0, n_max=4, l_max=3, weighting="cosine", n_sparse=40),
             gapfit.SOAP(r_cut=3.0, n_max=3, l_max=2, sigma=0.3, weighting="cosine",
                         transition_width=0.8, delta=0.2, n_sparse=20)]
    model = gapfit.GAP(terms=terms, random_state=0).fit(train)
    assert [t.n_sparse_points for t in model.terms_] == [10, 40, 20]
    # each term keeps its own delta (the common evidence scale multiplies all of them)
    deltas = [t.delta_ for t in model.terms_]
    assert np.isclose(deltas[2] / deltas[1], 0.2 / 0.5)

    prediction = model.predict_structure(atoms)
    assert np.allclose(prediction.forces[:3], finite_difference_forces(model, atoms), atol=1e-5)

    probe = atoms.copy()
    probe.calc = gapfit.GAPCalculator(model)
    assert np.isclose(probe.get_potential_energy(), prediction.energy, atol=1e-10)
    assert np.allclose(probe.get_forces(), prediction.forces, atol=1e-10)
    stress = probe.get_stress()
    step = 1e-5
    numeric = np.zeros(6)
    for index, (i, j) in enumerate([(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]):
        energies = []
        for sign in (1, -1):
            strain = np.eye(3)
            strain[i, j] += sign * step / (1 if i == j else 2)
            strain[j, i] += 0 if i == j else sign * step / 2
            strained = atoms.copy()
            strained.set_cell(atoms.cell.array @ strain, scale_atoms=True)
            energies.append(model.predict_structure(strained).energy)
        numeric[index] = (energies[0] - energies[1]) / (2 * step) / atoms.get_volume()
    assert np.allclose(stress, numeric, atol=1e-7)

    model.save(tmp_path / "two_soap.gap")
    loaded = gapfit.load(tmp_path / "two_soap.gap")
    assert np.isclose(loaded.predict_structure(atoms).energy, prediction.energy, atol=1e-10)
