"""A structure under a calculator: a fresh copy carrying it, relaxed positions at fixed cell,
and the supercell repetition reaching a given thickness (Å)."""
import math

import numpy as np


def evaluated(atoms, calculator):
    """A copy of ``atoms`` carrying ``calculator``."""
    copy = atoms.copy()
    copy.calc = calculator
    return copy


def relax_positions(atoms, fmax=1e-3, steps=1000):
    """Relax the positions of ``atoms`` (which carries a calculator) at fixed cell with BFGS;
    returns the largest remaining force (eV/Å)."""
    from ase.optimize import BFGS
    forces = atoms.get_forces()
    if np.abs(forces).max() > fmax:
        BFGS(atoms, logfile=None).run(fmax=fmax, steps=steps)
        forces = atoms.get_forces()
    return float(np.linalg.norm(forces, axis=1).max()) if len(atoms) else 0.0


def repeat_for_width(atoms, min_width):
    """Smallest repetition (n1, n2, n3) whose cell is at least ``min_width`` Å thick in each direction."""
    cell = atoms.cell.array
    volume = abs(np.linalg.det(cell))
    widths = [volume / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3]))
              for i in range(3)]
    return tuple(max(1, math.ceil(min_width / width - 1e-9)) for width in widths)
