"""QUIP/GAP (``gap_fit``, ``quippy``) as the reference that gapfit's benchmarks compare against.

Benchmark-only: ``quippy-ase`` has a non-commercial licence and is never a gapfit dependency.
"""

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import PropertyNotImplementedError

try:
    from benchmarks._memory import measure_command
except ImportError:  # run as a script from inside benchmarks/
    from _memory import measure_command

__all__ = [
    "have_quip",
    "gap_fit_executable",
    "load_mlearn",
    "write_gap_fit_xyz",
    "gap_fit_command",
    "run_gap_fit",
    "quip_predict",
    "time_quip_calls",
    "prediction_errors",
]

def have_quip():
    """True when both the ``quippy`` module and the ``gap_fit`` executable are available."""
    try:
        import quippy.potential  # noqa: F401
    except ImportError:
        return False
    return gap_fit_executable() is not None


def gap_fit_executable():
    """Path of the ``gap_fit`` binary, or None.

    Prefers the Fortran binary bundled inside the ``quippy`` package over the ``gap_fit``
    console script (a Python wrapper that would add an interpreter to the measured process).
    """
    try:
        import quippy
    except ImportError:
        quippy = None
    if quippy is not None:
        bundled = Path(quippy.__path__[0]) / "gap_fit"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    return shutil.which("gap_fit")


# ---------------------------------------------------------------------------------------
# data


def load_mlearn(path):
    """Read an mlearn JSON file (list of Atoms with DFT labels on a SinglePointCalculator).

    Always ``gapfit.io.read_mlearn``, so both codes see the same labels: the stress component
    order it uses was checked against the data (tests/test_io.py) and differs from the one the
    data README states; a reader following the README hands gap_fit swapped shear virials
    (on Mo_train[::5] that raised gap_fit's test stress MAE from 0.27 to 0.64 GPa).
    """
    from gapfit.structures.io import read_mlearn

    return read_mlearn(path)


def _reference_labels(atoms, index):
    """Energy (eV), forces (eV/Å) and stress (eV/Å^3 Voigt, or None) attached to ``atoms``."""
    if atoms.calc is None:
        raise ValueError(f"configuration {index}: no reference labels (atoms.calc is None)")
    energy = float(atoms.get_potential_energy())
    forces = np.asarray(atoms.get_forces(), dtype=float)
    try:
        stress = np.asarray(atoms.get_stress(voigt=True), dtype=float)
    except PropertyNotImplementedError:
        stress = None
    if not np.isfinite(energy) or not np.all(np.isfinite(forces)):
        raise ValueError(f"configuration {index}: energy or forces contain NaN/inf")
    if stress is not None and not np.all(np.isfinite(stress)):
        raise ValueError(f"configuration {index}: stress contains NaN/inf")
    return energy, forces, stress


def _voigt_to_matrix(stress):
    """ASE Voigt (xx, yy, zz, yz, xz, xy) to a symmetric 3×3 matrix."""
    xx, yy, zz, yz, xz, xy = stress
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


def write_gap_fit_xyz(atoms_list, path):
    """Write reference-labelled structures as extended XYZ for ``gap_fit``.

    Each configuration carries ``dft_energy`` (eV), per-atom ``dft_forces`` (eV/Å),
    ``dft_virial`` (eV, 9 numbers of the 3×3 matrix -stress × volume, with stress in ASE's
    sign, so a compressed cell has a positive virial as gap_fit expects) when the labels have
    a stress and the cell is periodic in 3D, and ``config_type`` (``info["config_type"]``,
    else ``info["group"]``, else ``default``).

    The labels are read from the atoms' calculator (normally a SinglePointCalculator).  The
    file is written by hand rather than through ``ase.io.write``: ASE writes calculator
    results under ``energy``/``forces``/``stress`` (names gap_fit also looks for) and 3×3
    info arrays as JSON, which gap_fit cannot parse.
    """
    lines = []
    for index, atoms in enumerate(atoms_list):
        energy, forces, stress = _reference_labels(atoms, index)
        config_type = str(atoms.info.get("config_type", atoms.info.get("group", "default")))
        if not config_type or any(char.isspace() or char in "\"=" for char in config_type):
            raise ValueError(f"configuration {index}: config_type {config_type!r} must be a "
                             "non-empty word without spaces, quotes or '='")
        cell = np.asarray(atoms.cell[:], dtype=float)
        if not np.all(atoms.pbc) or abs(np.linalg.det(cell)) < 1e-12:
            raise ValueError(f"configuration {index}: gap_fit input needs a 3D periodic cell "
                             f"(pbc={atoms.pbc.tolist()}, volume={atoms.get_volume():.3g} Å^3)")
        fields = [
            'Lattice="' + " ".join(f"{value:.16g}" for value in cell.reshape(-1)) + '"',
            "Properties=species:S:1:pos:R:3:dft_forces:R:3",
            f"dft_energy={energy:.16g}",
        ]
        if stress is not None:
            virial = -_voigt_to_matrix(stress) * atoms.get_volume()
            fields.append('dft_virial="' + " ".join(f"{v:.16g}" for v in virial.reshape(-1)) + '"')
        fields += [f"config_type={config_type}", 'pbc="T T T"']
        lines.append(str(len(atoms)))
        lines.append(" ".join(fields))
        for symbol, position, force in zip(atoms.get_chemical_symbols(), atoms.positions, forces):
            numbers = " ".join(f"{value:.16g}" for value in (*position, *force))
            lines.append(f"{symbol} {numbers}")
    Path(path).write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------------
# fitting


def gap_fit_command(train_xyz, gp_file, n_sparse_soap=1000, n_max=8, l_max=6, cutoff=5.0,
                    atom_sigma=0.5, zeta=4, delta_soap=0.2, delta_2b=1.0, n_sparse_2b=20,
                    sigmas=(0.002, 0.05, 0.05), use_virial=True, rnd_seed=1):
    """The ANCHORS ``gap_fit`` recipe (2-body + SOAP, CUR sparse points) as an argv list.

    Parameters
    ----------
    train_xyz, gp_file : paths of the training extended XYZ and of the model XML to write
    n_sparse_soap, n_sparse_2b : sparse points of the SOAP and 2-body terms
    n_max, l_max, cutoff (Å), atom_sigma (Å), zeta : SOAP settings (transition width 1 Å)
    delta_soap, delta_2b : energy scales of the two terms (eV)
    sigmas : regularisation of (energy eV/atom, force eV/Å, virial eV/atom); hessians 0
    use_virial : fit the ``dft_virial`` labels; without it gap_fit sees no virials
    rnd_seed : gap_fit's random seed, fixed so CUR selection is reproducible
    """
    two_body = (f"distance_2b cutoff={cutoff:g} covariance_type=ard_se delta={delta_2b:g} "
                f"theta_uniform=1.0 sparse_method=uniform n_sparse={int(n_sparse_2b)}")
    soap = (f"soap n_max={int(n_max)} l_max={int(l_max)} cutoff={cutoff:g} "
            f"cutoff_transition_width=1.0 atom_sigma={atom_sigma:g} zeta={zeta:g} "
            f"delta={delta_soap:g} covariance_type=dot_product sparse_method=cur_points "
            f"n_sparse={int(n_sparse_soap)}")
    sigma_energy, sigma_force, sigma_virial = sigmas
    argv = [
        gap_fit_executable() or "gap_fit",
        f"at_file={os.fspath(train_xyz)}",
        f"gap={{{two_body} : {soap}}}",
        f"default_sigma={{{sigma_energy:g} {sigma_force:g} {sigma_virial:g} 0.0}}",
        "e0_method=average",
        "sparse_jitter=1e-8",
        "energy_parameter_name=dft_energy",
        "force_parameter_name=dft_forces",
    ]
    if use_virial:
        argv.append("virial_parameter_name=dft_virial")
    argv += [f"rnd_seed={int(rnd_seed)}", f"gp_file={os.fspath(gp_file)}"]
    return argv


def run_gap_fit(train_atoms, workdir, reuse=False, **recipe):
    """Write ``train_atoms`` and fit them with ``gap_fit`` in ``workdir``, measuring the fit.

    ``recipe`` is passed to :func:`gap_fit_command`.  gap_fit's output is kept in
    ``workdir/gap_fit.log``, its measurements in ``workdir/gap_fit.json``; with ``reuse`` a
    model that an earlier run fitted there with the same command and the same training file
    is returned with the measurements of that run (gap_fit takes minutes to hours).

    Returns
    -------
    dict with ``wall_s`` (s), ``peak_rss_mb`` (MB, of the gap_fit process) and ``gp_file``
    (absolute path of the model XML).

    Raises
    ------
    RuntimeError if gap_fit fails (the message holds the end of its output).
    """
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    train_xyz = workdir / "train.xyz"
    gp_file = workdir / "gap.xml"
    record_file = workdir / "gap_fit.json"
    previous = json.loads(record_file.read_text()) if reuse and record_file.is_file() else None
    old_training = train_xyz.read_bytes() if previous and train_xyz.is_file() else None
    write_gap_fit_xyz(train_atoms, train_xyz)
    argv = gap_fit_command(train_xyz, gp_file, **recipe)
    if (previous and previous["argv"] == argv and gp_file.is_file()
            and old_training == train_xyz.read_bytes()):
        return {"wall_s": previous["wall_s"], "peak_rss_mb": previous["peak_rss_mb"],
                "gp_file": str(gp_file), "reused": True}
    record_file.unlink(missing_ok=True)
    returncode, wall_s, peak_mb, stdout, stderr = measure_command(argv, cwd=workdir)
    (workdir / "gap_fit.log").write_text(
        "$ " + " ".join(argv) + "\n" + stdout + ("\n--- stderr ---\n" + stderr if stderr else ""))
    if returncode != 0 or not gp_file.is_file():
        tail = "\n".join((stdout + "\n" + stderr).strip().splitlines()[-30:])
        raise RuntimeError(f"gap_fit failed (exit code {returncode}) in {workdir}; "
                           f"end of its output:\n{tail}")
    record_file.write_text(json.dumps({"argv": argv, "wall_s": wall_s, "peak_rss_mb": peak_mb}))
    return {"wall_s": wall_s, "peak_rss_mb": peak_mb, "gp_file": str(gp_file)}


# ---------------------------------------------------------------------------------------
# prediction


def _potential(gp_file):
    from quippy.potential import Potential

    return Potential(param_filename=os.fspath(gp_file))


def quip_predict(gp_file, atoms_list):
    """Predict with a gap_fit model through quippy's ASE calculator.

    The caller's atoms are not modified (each is copied before the calculator is attached).

    Returns
    -------
    energies : (n_configs,) array, eV
    forces_list : list of (n_atoms, 3) arrays, eV/Å
    stresses_list : list of (6,) arrays, eV/Å^3, ASE sign and Voigt order (None for a
        configuration that is not periodic in 3D)
    """
    potential = _potential(gp_file)
    energies, forces_list, stresses_list = [], [], []
    for atoms in atoms_list:
        atoms = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        atoms.calc = potential
        periodic = bool(np.all(atoms.pbc))
        properties = ["energy", "forces"] + (["stress"] if periodic else [])
        potential.calculate(atoms, properties=properties)
        energies.append(float(potential.results["energy"]))
        forces_list.append(np.array(potential.results["forces"], dtype=float))
        stresses_list.append(np.array(potential.results["stress"], dtype=float)
                             if periodic else None)
    return np.array(energies), forces_list, stresses_list


def time_quip_calls(gp_file, atoms, n_calls=5, displacement=1e-3, seed=0):
    """Wall time of quippy energy+forces calls, in µs per atom per call.

    One warm-up call is not counted.  Before every call the atoms move by a small random
    displacement (``displacement`` Å standard deviation) so that nothing can be reused
    from the previous call.  The caller's atoms are not modified.
    """
    potential = _potential(gp_file)
    atoms = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    atoms.calc = potential
    rng = np.random.default_rng(seed)
    atoms.get_forces()
    elapsed = 0.0
    for _ in range(int(n_calls)):
        atoms.positions = atoms.positions + rng.normal(scale=displacement, size=(len(atoms), 3))
        start = time.perf_counter()
        atoms.get_potential_energy()
        atoms.get_forces()
        elapsed += time.perf_counter() - start
    return elapsed / n_calls / len(atoms) * 1e6


# ---------------------------------------------------------------------------------------
# the reference benchmark


def prediction_errors(atoms_list, energies, forces_list, stresses_list):
    """Mean absolute errors of predictions against the labels on ``atoms_list``.

    Returns a dict with ``energy_mae`` (meV/atom), ``energy_rmse`` (meV/atom), ``force_mae``
    and ``force_rmse`` (meV/Å, over all force components) and ``stress_mae`` (GPa, over the
    6 Voigt components of the configurations that have a stress label).
    """
    energy_errors, force_errors, stress_errors = [], [], []
    for index, atoms in enumerate(atoms_list):
        energy, forces, stress = _reference_labels(atoms, index)
        energy_errors.append((energies[index] - energy) / len(atoms))
        force_errors.append((forces_list[index] - forces).reshape(-1))
        if stress is not None and stresses_list[index] is not None:
            stress_errors.append(stresses_list[index] - stress)
    energy_errors = np.array(energy_errors) * 1e3
    force_errors = np.concatenate(force_errors) * 1e3
    stress_mae = (float(np.mean(np.abs(np.concatenate(stress_errors)))) * 160.21766208
                  if stress_errors else float("nan"))
    return {
        "energy_mae": float(np.mean(np.abs(energy_errors))),
        "energy_rmse": float(np.sqrt(np.mean(energy_errors**2))),
        "force_mae": float(np.mean(np.abs(force_errors))),
        "force_rmse": float(np.sqrt(np.mean(force_errors**2))),
        "stress_mae": stress_mae,
    }


def _bcc_supercell(symbol, lattice_constant, repeat, rattle, seed):
    from ase.build import bulk

    atoms = bulk(symbol, "bcc", a=lattice_constant, cubic=True).repeat(repeat)
    atoms.rattle(stdev=rattle, seed=seed)
    return atoms


def main(argv=None):
    """Fit gap_fit on a strided subset of an mlearn training set and print the reference table."""
    import argparse
    import tempfile

    default_data = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlearn"
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--element", default="Mo")
    parser.add_argument("--data-dir", type=Path, default=default_data)
    parser.add_argument("--stride", type=int, default=5, help="fit on train[::stride]")
    parser.add_argument("--n-sparse-soap", type=int, default=1000)
    parser.add_argument("--no-virial", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--lattice-constant", type=float, default=3.16,
                        help="bcc lattice constant (Å) of the timing supercells")
    arguments = parser.parse_args(argv)
    if not have_quip():
        raise SystemExit("quippy-ase is not installed (pip install quippy-ase)")
    train_path = arguments.data_dir / f"{arguments.element}_train.json"
    test_path = arguments.data_dir / f"{arguments.element}_test.json"
    if not train_path.is_file():
        raise SystemExit(f"{train_path} not found: the mlearn data live in ../shared/data/mlearn")
    train = load_mlearn(train_path)[::arguments.stride]
    test = load_mlearn(test_path)
    workdir = arguments.workdir or Path(tempfile.mkdtemp(prefix="gap_fit_reference_"))
    n_train_atoms = sum(len(atoms) for atoms in train)
    print(f"training on {arguments.element}_train[::{arguments.stride}]: {len(train)} "
          f"configurations, {n_train_atoms} atoms; workdir {workdir}", flush=True)
    fit = run_gap_fit(train, workdir, n_sparse_soap=arguments.n_sparse_soap,
                      use_virial=not arguments.no_virial)
    start = time.perf_counter()
    errors = prediction_errors(test, *quip_predict(fit["gp_file"], test))
    predict_s = time.perf_counter() - start
    rows = [
        ("fit wall time (s)", f"{fit['wall_s']:.1f}"),
        ("fit peak RSS (MB)", f"{fit['peak_rss_mb']:.0f}"),
        ("test energy MAE / RMSE (meV/atom)",
         f"{errors['energy_mae']:.2f} / {errors['energy_rmse']:.2f}"),
        ("test force MAE / RMSE (meV/Å)", f"{errors['force_mae']:.0f} / {errors['force_rmse']:.0f}"),
        ("test stress MAE (GPa)", f"{errors['stress_mae']:.3f}"),
        ("test prediction, all configurations (s)", f"{predict_s:.1f}"),
    ]
    groups = sorted({atoms.info.get("config_type", "default") for atoms in test})
    for group in groups:
        members = [atoms for atoms in test if atoms.info.get("config_type", "default") == group]
        group_errors = prediction_errors(members, *quip_predict(fit["gp_file"], members))
        rows.append((f"  {group} ({len(members)}): E MAE meV/atom, F MAE meV/Å",
                     f"{group_errors['energy_mae']:.2f}, {group_errors['force_mae']:.0f}"))
    for repeat in (4, 8):
        atoms = _bcc_supercell(arguments.element, arguments.lattice_constant, repeat, 0.02, 0)
        microseconds = time_quip_calls(fit["gp_file"], atoms, n_calls=5)
        rows.append((f"quip energy+forces, {len(atoms)} atoms (µs/atom)", f"{microseconds:.0f}"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
