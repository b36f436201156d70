"""MD stability check: Langevin NVT MD of a supercell, stopped when atoms come too close (Å) or
the potential energy departs too far (eV/atom) from its start."""
from dataclasses import dataclass

import numpy as np
from ase import units

from ...structures.neighbors import build_neighbor_list
from .cells import repeat_for_width


@dataclass
class MDStability:
    """Outcome of ``md_stability``: stable unless atoms came too close or the energy blew up.

    time_ps : simulated time (ps; shorter than asked when the run stopped early).
    min_distance, min_distance_threshold : closest pair met (Å) and the limit.
    max_energy_change, energy_change_threshold : largest departure of the potential energy
        from its starting value, either way, eV/atom, and the limit (a rise is a blow-up, a
        drop a collapse into a spurious well). reason : "" when stable, else what went wrong.
    """

    stable: bool
    reason: str
    time_ps: float
    temperature_K: float
    n_atoms: int
    min_distance: float
    min_distance_threshold: float
    max_energy_change: float
    energy_change_threshold: float


def md_stability(calculator, atoms, temperature_K=300.0, time_ps=2.0, timestep_fs=2.0,
                 min_width=10.0, min_distance=None, max_energy_change=None, interval=10,
                 friction_per_fs=0.01, random_state=None):
    """Langevin NVT MD of ``atoms`` (repeated to ``min_width`` Å) checked every ``interval`` steps.

    min_distance : Å; default 0.6 × the shortest distance of the starting structure.
    max_energy_change : eV/atom, largest allowed |E_pot − E_pot(start)| per atom; default
        max(10 k_B T, 0.1 eV) (a harmonic solid started at its minimum rises by 1.5 k_B T).
    The run stops at the first violation or non-finite energy. Returns MDStability.
    """
    from ...md.dynamics import initialise_velocities, make_dynamics
    system = atoms.repeat(repeat_for_width(atoms, min_width)) if min_width else atoms.copy()
    system.calc = calculator
    shortest = _shortest_distance(system)
    threshold = 0.6 * shortest if min_distance is None else float(min_distance)
    change_limit = (max(10 * units.kB * temperature_K, 0.1) if max_energy_change is None
                    else float(max_energy_change))
    rng = np.random.default_rng(random_state)
    initialise_velocities(system, temperature_K, rng)
    dynamics = make_dynamics(system, "nvt", timestep_fs=timestep_fs, temperature_K=temperature_K,
                             friction_per_fs=friction_per_fs, rng=rng)
    n_atoms = len(system)
    start = system.get_potential_energy() / n_atoms
    closest, change, reason, temperatures = shortest, 0.0, "", []
    n_checks = max(1, int(round(time_ps * 1000 / timestep_fs / interval)))
    for _ in range(n_checks):
        dynamics.run(interval)
        energy = system.get_potential_energy() / n_atoms
        temperatures.append(system.get_temperature())
        closest = min(closest, _shortest_distance(system, threshold * 2))
        if not np.isfinite(energy) or not np.all(np.isfinite(system.positions)):
            reason = "energy or positions became non-finite"
        else:
            change = max(change, abs(energy - start))
            if closest < threshold:
                reason = f"two atoms came within {closest:.2f} Å (limit {threshold:.2f} Å)"
            elif abs(energy - start) > change_limit:
                reason = (f"potential energy {'rose' if energy > start else 'fell'} by "
                          f"{abs(energy - start):.3f} eV/atom (limit {change_limit:.3f} eV/atom)")
        if reason:
            break
    time_done = dynamics.nsteps * timestep_fs / 1000.0
    return MDStability(not reason, reason, time_done, float(np.mean(temperatures)), n_atoms,
                       float(closest), float(threshold), float(change), float(change_limit))


def _shortest_distance(atoms, cutoff=None):
    """Shortest interatomic distance (Å); ``cutoff`` when no pair is closer than it."""
    if cutoff is None:
        cutoff = 2.0 * (atoms.get_volume() / len(atoms)) ** (1 / 3) if atoms.pbc.all() else 6.0
        while True:
            distances = build_neighbor_list(atoms, cutoff).distances
            if distances.size:
                return float(distances.min())
            cutoff *= 2
    distances = build_neighbor_list(atoms, cutoff).distances
    return float(distances.min()) if distances.size else float(cutoff)
