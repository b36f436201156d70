"""The QUIP/gap_fit reference used by the benchmarks: input file, virial sign, measurements.

quippy-ase is a benchmark-only extra; the tests that run gap_fit skip without it.
"""

import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _memory, _quip_reference  # noqa: E402

needs_quip = pytest.mark.skipif(
    not _quip_reference.have_quip(),
    reason="quippy-ase (gap_fit, quippy) is not installed; it is a benchmark-only extra: "
    "pip install quippy-ase",
)


def _emt_copper(scales, seed=0):
    """Rattled 4-atom fcc Cu cells at the given lattice scalings, labelled by EMT."""
    configurations = []
    for index, scale in enumerate(scales):
        atoms = bulk("Cu", "fcc", a=3.61 * scale, cubic=True)
        atoms.rattle(stdev=0.05, seed=seed + index)
        atoms.calc = EMT()
        labels = dict(energy=atoms.get_potential_energy(), forces=atoms.get_forces(),
                      stress=atoms.get_stress())
        atoms.calc = SinglePointCalculator(atoms, **labels)
        atoms.info["config_type"] = "bulk"
        configurations.append(atoms)
    return configurations


def test_gap_fit_xyz_carries_labels_and_virial_as_minus_stress_times_volume(tmp_path):
    import ase.io

    configurations = _emt_copper([0.97, 1.03])
    path = tmp_path / "train.xyz"
    _quip_reference.write_gap_fit_xyz(configurations, path)
    read_back = ase.io.read(path, index=":")
    assert len(read_back) == 2
    for original, written in zip(configurations, read_back):
        # Nothing gap_fit or ASE could take for a calculator result or a default label.
        assert written.calc is None
        assert not {"energy", "stress", "virial"} & set(written.info)
        assert "forces" not in written.arrays
        assert written.info["config_type"] == "bulk"
        np.testing.assert_allclose(written.info["dft_energy"], original.get_potential_energy(),
                                   rtol=1e-14)
        np.testing.assert_allclose(written.arrays["dft_forces"], original.get_forces(),
                                   rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(written.cell[:], original.cell[:], rtol=1e-14)
        virial = np.reshape(written.info["dft_virial"], (3, 3))
        np.testing.assert_allclose(virial, virial.T)
        stress = -virial / original.get_volume()
        voigt = stress[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
        np.testing.assert_allclose(voigt, original.get_stress(), rtol=1e-12, atol=1e-15)
    # Compressed cell: positive virial (gap_fit's sign); expanded: negative.
    assert np.trace(np.reshape(read_back[0].info["dft_virial"], (3, 3))) > 0
    assert np.trace(np.reshape(read_back[1].info["dft_virial"], (3, 3))) < 0


def test_gap_fit_command_follows_the_recipe_and_drops_virials_on_request():
    command = _quip_reference.gap_fit_command("train.xyz", "gap.xml", n_sparse_soap=30,
                                              n_max=4, l_max=3, sigmas=(0.001, 0.04, 0.03))
    gap = next(part for part in command if part.startswith("gap={"))
    assert "distance_2b" in gap and "soap" in gap
    assert "n_max=4" in gap and "l_max=3" in gap and "n_sparse=30" in gap
    assert "default_sigma={0.001 0.04 0.03 0.0}" in command
    assert "virial_parameter_name=dft_virial" in command
    assert "at_file=train.xyz" in command and "gp_file=gap.xml" in command
    without = _quip_reference.gap_fit_command("train.xyz", "gap.xml", use_virial=False)
    assert not any(part.startswith("virial_parameter_name") for part in without)


def _touch_bytes(n_bytes):
    """Allocate and write ``n_bytes`` bytes; return their count (runs in a child process)."""
    return len(b"\x01" * n_bytes)


def test_memory_measurements_see_the_child_peak_and_not_the_parents():
    # The parent's own peak must not leak into the child's figure (it does with a plain
    # ru_maxrss after fork/vfork + exec).
    parent_ballast = b"\x02" * 400_000_000
    result, wall_seconds, peak_mb = _memory.measure_call(_touch_bytes, 200_000_000)
    assert result == 200_000_000
    assert wall_seconds >= 0
    assert 200 <= peak_mb < 390
    returncode, wall_seconds, peak_mb, stdout, stderr = _memory.measure_command(
        [sys.executable, "-c", "import sys; x = b'1' * 150_000_000; print(len(x)); sys.exit(3)"])
    assert (returncode, stdout.strip()) == (3, "150000000")
    assert wall_seconds > 0
    assert 150 <= peak_mb < 250
    returncode, _, peak_mb, _, _ = _memory.measure_command([sys.executable, "-c", "pass"])
    assert returncode == 0 and peak_mb < 100
    del parent_ballast


@pytest.mark.slow
@needs_quip
def test_tiny_gap_fit_model_predicts_shapes_and_the_virial_sign_round_trips(tmp_path):
    train = _emt_copper(np.linspace(0.96, 1.04, 6))
    fit = _quip_reference.run_gap_fit(train, tmp_path, n_sparse_soap=10, n_max=4, l_max=3,
                                      cutoff=4.0, n_sparse_2b=10)
    assert Path(fit["gp_file"]).is_file()
    assert fit["wall_s"] > 0 and fit["peak_rss_mb"] > 0

    compressed = bulk("Cu", "fcc", a=3.61 * 0.97, cubic=True).repeat(2)
    expanded = bulk("Cu", "fcc", a=3.61 * 1.03, cubic=True)
    for atoms in (compressed, expanded):
        atoms.rattle(stdev=0.02, seed=7)
    positions_before = compressed.positions.copy()
    energies, forces_list, stresses_list = _quip_reference.quip_predict(
        fit["gp_file"], [compressed, expanded])
    assert energies.shape == (2,)
    assert [forces.shape for forces in forces_list] == [(32, 3), (4, 3)]
    assert [stress.shape for stress in stresses_list] == [(6,), (6,)]
    assert compressed.calc is None
    np.testing.assert_array_equal(compressed.positions, positions_before)

    for atoms, model_stress in zip((compressed, expanded), stresses_list):
        atoms.calc = EMT()
        emt_pressure = -np.mean(atoms.get_stress()[:3])
        model_pressure = -np.mean(model_stress[:3])
        # A virial written or read with the wrong sign turns these around (checked by hand:
        # flipping the labels' stress gives model pressures of the opposite sign).
        assert np.sign(model_pressure) == np.sign(emt_pressure)
        assert abs(model_pressure - emt_pressure) < 0.3 * abs(emt_pressure)
    # The model reproduces its training energies closely (eV/atom).
    train_energies, _, _ = _quip_reference.quip_predict(fit["gp_file"], train)
    reference = np.array([atoms.get_potential_energy() for atoms in train])
    assert np.max(np.abs(train_energies - reference)) / 4 < 0.01

    microseconds = _quip_reference.time_quip_calls(fit["gp_file"], compressed, n_calls=2)
    assert microseconds > 0
