"""Strain in Voigt notation (xx yy zz yz xz xy, engineering shears): the deformation gradient of
a strain, the strain between two cells, and strained copies of a structure."""
import numpy as np

from ...structures.voigt import matrix_from_voigt


def strain_deformation(strain_voigt):
    """Deformation gradient I + ε of a Voigt strain (xx yy zz yz xz xy; engineering shears)."""
    return np.eye(3) + matrix_from_voigt(np.asarray(strain_voigt, dtype=np.float64)
                                         * np.array([1, 1, 1, 0.5, 0.5, 0.5]))


def strain_between(reference_cell, cell):
    """Voigt strain (engineering shears) taking ``reference_cell`` to ``cell`` (rows are lattice
    vectors): the symmetric part of F − I, with F = (reference⁻¹ · cell)ᵀ."""
    deformation = np.linalg.solve(np.asarray(reference_cell), np.asarray(cell)).T
    small = 0.5 * (deformation + deformation.T) - np.eye(3)
    return np.array([small[0, 0], small[1, 1], small[2, 2],
                     2 * small[1, 2], 2 * small[0, 2], 2 * small[0, 1]])


def strained(atoms, strain_voigt):
    """A copy of ``atoms`` with cell and positions deformed by the Voigt strain."""
    copy = atoms.copy()
    copy.set_cell(atoms.cell.array @ strain_deformation(strain_voigt).T, scale_atoms=True)
    return copy
