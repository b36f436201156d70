"""Point defects: the formation energy (eV) of one vacancy in a supercell, unrelaxed and with
positions relaxed at fixed cell."""
from dataclasses import dataclass

import numpy as np

from .cells import evaluated, relax_positions


@dataclass
class VacancyFormation:
    """Formation energy (eV) of one vacancy in a supercell of n_atoms sites:
    E(N−1 atoms) − (N−1)/N · E(N atoms), unrelaxed and after relaxing positions at fixed cell."""

    unrelaxed: float
    relaxed: float
    n_atoms: int
    max_force: float  # eV/Å remaining after relaxation


def vacancy_formation_energy(calculator, atoms, repeat=None, min_atoms=50, index=0, relax=True,
                             fmax=0.01, steps=1000):
    """Vacancy formation energy of ``atoms`` repeated into a supercell (eV).

    repeat : (n1, n2, n3); default the smallest cube repetition with at least ``min_atoms``.
    index : the atom removed. With ``relax`` the defective cell is relaxed (BFGS to ``fmax``
    eV/Å, fixed cell); the perfect cell is taken as is (at equilibrium its forces vanish).
    """
    if repeat is None:
        n = 1
        while n ** 3 * len(atoms) < min_atoms:
            n += 1
        repeat = (n, n, n)
    perfect = atoms.repeat(repeat)
    perfect.calc = None
    if not 0 <= index < len(perfect):
        raise ValueError(f"vacancy: index {index} is outside the supercell of {len(perfect)} atoms")
    bulk_energy = evaluated(perfect, calculator).get_potential_energy()
    defective = evaluated(perfect, calculator)
    del defective[index]
    n_atoms = len(perfect)
    unrelaxed = defective.get_potential_energy() - (n_atoms - 1) / n_atoms * bulk_energy
    max_force = float(np.linalg.norm(defective.get_forces(), axis=1).max())
    if relax:
        max_force = relax_positions(defective, fmax, steps)
    relaxed = defective.get_potential_energy() - (n_atoms - 1) / n_atoms * bulk_energy
    return VacancyFormation(float(unrelaxed), float(relaxed), n_atoms, max_force)
