"""Voigt vectors and the stress–virial relation, in ASE's conventions.

Voigt order xx, yy, zz, yz, xz, xy; stress in eV/Å³ with ASE's sign (positive = tensile);
virial W = −σ V in eV. Every module that turns one into the other calls these.
"""
import numpy as np

# (row, column) of each Voigt component, in ASE's order xx, yy, zz, yz, xz, xy
VOIGT_PAIRS = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
# flat indices of the Voigt components in a row-major 3×3 matrix
VOIGT_FLAT = [3 * i + j for i, j in VOIGT_PAIRS]


def voigt_from_matrix(matrix):
    """Voigt vector (xx, yy, zz, yz, xz, xy) of a 3×3 tensor (its symmetric part)."""
    matrix = np.asarray(matrix, dtype=np.float64).reshape(3, 3)
    return (0.5 * (matrix + matrix.T)).reshape(9)[VOIGT_FLAT]


def matrix_from_voigt(voigt):
    """Symmetric 3×3 tensor of a Voigt vector (xx, yy, zz, yz, xz, xy)."""
    voigt = np.asarray(voigt, dtype=np.float64).reshape(6)
    matrix = np.empty((3, 3))
    for value, (i, j) in zip(voigt, VOIGT_PAIRS):
        matrix[i, j] = matrix[j, i] = value
    return matrix


def stress_from_virial(virial, volume):
    """ASE stress (eV/Å³, Voigt) of a virial (eV; 3×3 or 6 Voigt numbers) in a cell of
    ``volume`` Å³: −virial / volume."""
    virial = np.asarray(virial, dtype=np.float64)
    voigt = virial.reshape(6) if virial.size == 6 else voigt_from_matrix(virial)
    return -voigt / float(volume)


def virial_from_stress(stress, volume):
    """Virial (eV, Voigt) of an ASE stress (eV/Å³, Voigt) in a cell of ``volume`` Å³."""
    return -np.asarray(stress, dtype=np.float64) * float(volume)
