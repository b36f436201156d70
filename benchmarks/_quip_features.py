"""quippy's Descriptor as a black-box feature source for gap_fit model records (tests, benchmarks).

Benchmark/test-only: quippy-ase has a non-commercial licence and is never a gapfit dependency.
``record_prediction`` evaluates a ``gapfit.quip_xml.QuipModel`` with features (values and
gradients) from ``quippy.descriptors.Descriptor`` and everything else from the record
(``gapfit.quip_kernels``); ``quippy_prediction`` is quippy's own ``Potential``.
``RECIPES`` are small gap_fit models used by tests/test_quip_xml.py and
benchmarks/quip_xml_agreement.py.
"""
import subprocess
from pathlib import Path

import ase.io
import numpy as np

from gapfit.gp.quip_kernels import energy_forces_virial

try:
    from benchmarks._quip_reference import gap_fit_executable, write_gap_fit_xyz
except ImportError:  # run as a script from inside benchmarks/
    from _quip_reference import gap_fit_executable, write_gap_fit_xyz

__all__ = ["DATA", "RECIPES", "fit_gap_fit", "fresh_structures", "quippy_entries",
           "record_prediction", "quippy_prediction"]

DATA = Path(__file__).resolve().parents[1] / "data"

SOAP = ("soap n_max=4 l_max=3 cutoff=4.0 cutoff_transition_width=1.0 atom_sigma=0.5 zeta=2 "
        "delta=0.1 covariance_type=dot_product sparse_method=cur_points n_sparse=25")
TWO_BODY = ("distance_2b cutoff=4.0 covariance_type=ard_se delta=0.5 theta_uniform=1.0 "
            "sparse_method=uniform n_sparse=10")
THREE_BODY = ("angle_3b cutoff=3.0 covariance_type=ard_se delta=0.1 theta_fac=0.5 "
              "sparse_method=random n_sparse=15")
# pp kernels, signal means and a SOAP with covariance_sigma0 and zeta = 3
PP_TWO_BODY = ("distance_2b cutoff=4.0 covariance_type=pp delta=0.5 theta_uniform=2.5 f0=0.2 "
               "sparse_method=uniform n_sparse=10")
PP_THREE_BODY = ("angle_3b cutoff=3.0 covariance_type=pp delta=0.1 theta_fac=1.5 f0=0.05 "
                 "sparse_method=random n_sparse=15")
SIGMA0_SOAP = ("soap n_max=3 l_max=2 cutoff=4.0 cutoff_transition_width=1.0 atom_sigma=0.5 "
               "zeta=3 covariance_sigma0=0.3 delta=0.1 covariance_type=dot_product "
               "sparse_method=cur_points n_sparse=20")

RECIPES = {
    "2b+soap": ("cu", [TWO_BODY, SOAP], []),
    "2b+3b+soap": ("cu", [TWO_BODY, THREE_BODY, SOAP], []),
    "cuau 2b+soap": ("cuau", [TWO_BODY, SOAP], ["e0={Cu:-0.25:Au:-0.75}"]),
    "pp+mean+sigma0": ("cu", [PP_TWO_BODY, PP_THREE_BODY, SIGMA0_SOAP], []),
}


def fit_gap_fit(workdir, data_name, terms, extra, n_configurations=10):
    """Fit a small gap_fit model on data/<data_name>_train.xyz[:n] in ``workdir``; the XML path.

    ``terms`` are gap_fit descriptor strings, ``extra`` more gap_fit arguments (default
    ``e0_method=average``).  Raises RuntimeError with the end of gap_fit's output on failure.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    train = ase.io.read(DATA / f"{data_name}_train.xyz", index=f":{n_configurations}")
    write_gap_fit_xyz(train, workdir / "train.xyz")
    argv = [gap_fit_executable(), "at_file=train.xyz",
            "gap={" + " : ".join(terms) + "}", "default_sigma={0.002 0.05 0.05 0.0}",
            "sparse_jitter=1e-8", "energy_parameter_name=dft_energy",
            "force_parameter_name=dft_forces", "virial_parameter_name=dft_virial",
            "rnd_seed=1", "gp_file=gap.xml"]
    argv += extra if extra else ["e0_method=average"]
    result = subprocess.run(argv, cwd=workdir, capture_output=True, text=True)
    if result.returncode != 0 or not (workdir / "gap.xml").is_file():
        raise RuntimeError(f"gap_fit failed in {workdir}: {result.stdout[-2000:]}{result.stderr[-1000:]}")
    return workdir / "gap.xml"



def fresh_structures(data_name, n=2):
    """Test-set configurations (never fitted), rattled so nothing coincides with training."""
    structures = ase.io.read(DATA / f"{data_name}_test.xyz", index=f":{n}")
    for index, atoms in enumerate(structures):
        atoms.calc = None
        atoms.rattle(stdev=0.05, seed=index)
    return structures


def quippy_entries(coordinate, atoms):
    """quippy Descriptor output as plain arrays, with each gradient entry's descriptor and atom.

    quippy 0.10.3's ``grad_index_0based`` gives (centre atom, atom), not (descriptor, atom):
    for soap the centre maps to the descriptor through ``ci``; for distance_2b/angle_3b the
    entries come in descriptor order, 2 (3) per descriptor, for the atoms in ``ii``.
    (Checked against finite differences of the descriptor values.)
    """
    from quippy.descriptors import Descriptor

    result = Descriptor(coordinate.descriptor).calc(atoms, grad=True)
    if "data" not in result:
        return None
    index = np.asarray(result["grad_index_0based"], dtype=np.int64)
    if coordinate.name == "soap":
        centres = np.asarray(result["ci"]).reshape(-1) - 1
        descriptor_of_centre = -np.ones(len(atoms), dtype=np.int64)
        descriptor_of_centre[centres] = np.arange(len(centres))
        descriptor, atom = descriptor_of_centre[index[:, 0]], index[:, 1]
        assert np.all(descriptor >= 0)
    else:
        per = {"distance_2b": 2, "angle_3b": 3}[coordinate.name]
        members = np.asarray(result["ii"], dtype=np.int64) - 1
        entry = np.arange(len(index))
        descriptor, atom = entry // per, members[entry // per, entry % per]
    return dict(features=np.asarray(result["data"]), cutoffs=np.asarray(result["covariance_cutoff"]),
                gradients=np.asarray(result["grad_data"]),
                cutoff_gradients=np.asarray(result["grad_covariance_cutoff"]),
                gradient_descriptor=descriptor, gradient_atom=atom,
                gradient_positions=np.asarray(result["pos"]))


def record_prediction(model, atoms):
    """Energy (eV), forces (eV/Å), ASE stress (eV/Å³ Voigt) from the record + quippy features."""
    energy = model.e0_energy(atoms.numbers)
    forces = np.zeros((len(atoms), 3))
    virial = np.zeros((3, 3))
    for coordinate in model.coordinates:
        entries = quippy_entries(coordinate, atoms)
        if entries is None:
            continue
        e, f, w = energy_forces_virial(coordinate, n_atoms=len(atoms), **entries)
        energy, forces, virial = energy + e, forces + f, virial + w
    stress = -0.5 * (virial + virial.T) / atoms.get_volume()
    return energy, forces, stress[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]


def quippy_prediction(path, atoms, init_args=None):
    from quippy.potential import Potential

    atoms = atoms.copy()
    atoms.calc = (Potential(param_filename=str(path)) if init_args is None
                  else Potential(init_args, param_filename=str(path)))
    return atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
