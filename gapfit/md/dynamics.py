"""Molecular dynamics with any ASE calculator (a GAPCalculator above all), and its analysis.

``run_md`` runs NVE (velocity Verlet), NVT (Langevin) or NPT (isotropic
Martyna–Tobias–Klein barostat with Nosé–Hoover chains, ASE's IsotropicMTKNPT),
writing an extended-XYZ trajectory and a text log (time, temperature,
potential/kinetic/total energy, volume, pressure, and the largest force
uncertainty when the calculator reports ``forces_std``). ``read_md_log``,
``energy_drift``, ``radial_distribution`` and ``mean_square_displacement``
analyse the result.
"""
import logging
from contextlib import ExitStack
from dataclasses import dataclass, field

import numpy as np
from ase import units
from ase.calculators.calculator import PropertyNotImplementedError

from ..structures.neighbors import build_neighbor_list

log = logging.getLogger(__name__)

ENSEMBLES = ("nve", "nvt", "npt")


# ----------------------------------------------------------------------------- integrators
def make_dynamics(atoms, ensemble, timestep_fs=1.0, temperature_K=300.0, pressure_GPa=0.0,
                  friction_per_fs=0.01, tdamp_fs=None, pdamp_fs=None, rng=None):
    """An ASE integrator for ``atoms`` (which must carry a calculator).

    ensemble : "nve" (VelocityVerlet), "nvt" (Langevin, friction in 1/fs) or
        "npt" (IsotropicMTKNPT at ``pressure_GPa``; thermostat and barostat
        time constants ``tdamp_fs`` and ``pdamp_fs`` default to 100 and 1000
        time steps, as ASE recommends).
    timestep_fs : fs. temperature_K : K (thermostat target).
    rng : numpy Generator for the Langevin noise.
    """
    timestep = timestep_fs * units.fs
    if ensemble == "nve":
        from ase.md.verlet import VelocityVerlet
        return VelocityVerlet(atoms, timestep=timestep)
    if ensemble == "nvt":
        from ase.md.langevin import Langevin
        return Langevin(atoms, timestep=timestep, temperature_K=temperature_K,
                        friction=friction_per_fs / units.fs, fixcm=False, rng=rng)
    if ensemble == "npt":
        from ase.md.nose_hoover_chain import IsotropicMTKNPT
        if not atoms.pbc.all():
            raise ValueError("NPT needs a structure periodic in all three directions")
        tdamp = (tdamp_fs if tdamp_fs is not None else 100 * timestep_fs) * units.fs
        pdamp = (pdamp_fs if pdamp_fs is not None else 1000 * timestep_fs) * units.fs
        return IsotropicMTKNPT(atoms, timestep=timestep, temperature_K=temperature_K,
                               pressure_au=pressure_GPa * units.GPa, tdamp=tdamp, pdamp=pdamp)
    raise ValueError(f"unknown ensemble {ensemble!r} (choose from {', '.join(ENSEMBLES)})")


def initialise_velocities(atoms, temperature_K, rng):
    """Maxwell–Boltzmann momenta scaled to exactly ``temperature_K`` (K), zero total momentum."""
    from ase.md import velocitydistribution as distribution
    if temperature_K <= 0:
        atoms.set_momenta(np.zeros((len(atoms), 3)))
        return
    if hasattr(distribution, "thermalize_momenta"):  # ASE >= 3.29
        distribution.thermalize_momenta(atoms, temperature_K, exact_temperature=True, rng=rng)
    else:
        distribution.MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=rng,
                                                  force_temp=True)
    distribution.Stationary(atoms)


# ----------------------------------------------------------------------------- recording
@dataclass
class MDResult:
    """What ``run_md`` returns: the final structure, the log as arrays, and kept frames."""

    atoms: object
    log: dict
    frames: list = field(default_factory=list)


def _max_force_std(calc):
    """Largest entry of the calculator's ``forces_std`` result (eV/Å), else of its cheap
    ``forces_score`` (``uncertainty="local"``), or None if it has neither."""
    results = getattr(calc, "results", {}) or {}
    std = results.get("forces_std", results.get("forces_score"))
    return None if std is None else float(np.max(np.asarray(std)))


class _Recorder:
    """ASE observer: one log line and one trajectory frame per call."""

    def __init__(self, atoms, dynamics, timestep_fs, log_stream, trajectory_stream, keep_frames,
                 header):
        self.atoms, self.dynamics, self.timestep_fs = atoms, dynamics, timestep_fs
        self.log_stream, self.trajectory_stream = log_stream, trajectory_stream
        self.keep_frames, self.header = keep_frames, header
        self.columns, self.rows, self.frames = None, [], []

    def _row(self):
        atoms = self.atoms
        potential = atoms.get_potential_energy()
        kinetic = atoms.get_kinetic_energy()
        row = {"step": self.dynamics.nsteps, "time_ps": self.dynamics.nsteps * self.timestep_fs / 1000,
               "temperature_K": atoms.get_temperature(), "potential_eV": potential,
               "kinetic_eV": kinetic, "total_eV": potential + kinetic}
        if atoms.pbc.all():
            row["volume_A3"] = atoms.get_volume()
            try:
                stress = atoms.get_stress(include_ideal_gas=True)
                row["pressure_GPa"] = -stress[:3].mean() / units.GPa
            except PropertyNotImplementedError:
                pass
        std = _max_force_std(atoms.calc)
        if std is not None or (self.columns and "max_F_std_eV/A" in self.columns):
            row["max_F_std_eV/A"] = np.nan if std is None else std
        return row

    def __call__(self):
        row = self._row()
        if self.columns is None:
            self.columns = list(row)
            if self.log_stream is not None:
                self.log_stream.write(self.header + "\n# " + " ".join(f"{c:>14}" for c in self.columns)[2:]
                                      + "\n")
        self.rows.append([row.get(column, np.nan) for column in self.columns])
        if self.log_stream is not None:
            self.log_stream.write(" ".join(f"{row['step']:>14d}" if c == "step" else f"{row[c]:>14.6f}"
                                           for c in self.columns) + "\n")
            self.log_stream.flush()
        frame = self._frame(row)
        if self.trajectory_stream is not None:
            import ase.io
            ase.io.write(self.trajectory_stream, frame, format="extxyz")
            self.trajectory_stream.flush()
        if self.keep_frames:
            self.frames.append(frame)

    def _frame(self, row):
        """A copy of the structure with the model's results under gap_* names (not reference labels)."""
        atoms = self.atoms
        frame = atoms.copy()
        frame.info.update({"step": row["step"], "time_ps": row["time_ps"],
                           "temperature_K": row["temperature_K"],
                           "gap_energy": row["potential_eV"]})
        frame.arrays["gap_forces"] = atoms.get_forces().copy()
        if "pressure_GPa" in row:
            frame.info["gap_stress"] = atoms.get_stress().copy()
        return frame

    def log_arrays(self, n_atoms):
        table = np.array(self.rows, dtype=np.float64).reshape(len(self.rows), -1)
        result = {column: table[:, index] for index, column in enumerate(self.columns or [])}
        if "step" in result:
            result["step"] = result["step"].astype(np.int64)
        result["n_atoms"] = n_atoms
        return result


def run_md(atoms, calculator, ensemble="nvt", steps=1000, timestep_fs=1.0, temperature_K=300.0,
           pressure_GPa=0.0, friction_per_fs=0.01, tdamp_fs=None, pdamp_fs=None, interval=10,
           initial_temperature_K=None, keep_velocities=False, seed=None, trajectory=None,
           logfile=None, keep_frames=False, progress=False):
    """Run MD on a copy of ``atoms`` with ``calculator``; returns an MDResult.

    Parameters
    ----------
    ensemble, timestep_fs, temperature_K, pressure_GPa, friction_per_fs,
    tdamp_fs, pdamp_fs : see ``make_dynamics`` (fs, K, GPa, 1/fs).
    steps : number of time steps. interval : steps between log lines and frames
        (step 0 is always recorded).
    initial_temperature_K : K, temperature of the Maxwell–Boltzmann velocities
        drawn at the start (default: ``temperature_K``); ignored when
        ``keep_velocities`` and the structure carries momenta.
    seed : int or None, for the initial velocities and the Langevin noise.
    trajectory : path of an extended-XYZ file (overwritten): the structure and
        the calculator's energy (info ``gap_energy``, eV), forces (array
        ``gap_forces``, eV/Å) and stress (info ``gap_stress``, eV/Å³) under names
        that are never taken for reference labels.
    logfile : path of the text log (see ``read_md_log``).
    keep_frames : keep the frames in ``MDResult.frames`` as well.
    progress : show a tqdm progress bar on standard error.
    """
    if ensemble not in ENSEMBLES:
        raise ValueError(f"unknown ensemble {ensemble!r} (choose from {', '.join(ENSEMBLES)})")
    if steps < 0 or interval < 1:
        raise ValueError(f"steps must be >= 0 and interval >= 1 (got steps={steps}, interval={interval})")
    atoms = atoms.copy()
    atoms.calc = calculator
    rng = np.random.default_rng(seed)
    if not (keep_velocities and np.any(atoms.get_momenta())):
        initialise_velocities(atoms, temperature_K if initial_temperature_K is None
                              else initial_temperature_K, rng)
    dynamics = make_dynamics(atoms, ensemble, timestep_fs, temperature_K, pressure_GPa,
                             friction_per_fs, tdamp_fs, pdamp_fs, rng)
    header = (f"# gapfit md ensemble={ensemble} n_atoms={len(atoms)} timestep_fs={timestep_fs} "
              f"temperature_K={temperature_K}" + (f" pressure_GPa={pressure_GPa}" if ensemble == "npt"
                                                  else ""))
    with ExitStack() as stack:
        log_stream = stack.enter_context(open(logfile, "w")) if logfile else None
        trajectory_stream = stack.enter_context(open(trajectory, "w")) if trajectory else None
        recorder = _Recorder(atoms, dynamics, timestep_fs, log_stream, trajectory_stream, keep_frames,
                             header)
        dynamics.attach(recorder, interval=interval)
        if progress:
            from tqdm.auto import tqdm
            bar = stack.enter_context(tqdm(total=steps, desc=f"MD {ensemble}", unit="step"))
            dynamics.attach(lambda: bar.update(1) if dynamics.nsteps else None, interval=1)
        log.info("MD %s: %d atoms, %d steps of %g fs at %g K", ensemble, len(atoms), steps,
                 timestep_fs, temperature_K)
        dynamics.run(steps)
    atoms.calc = None
    return MDResult(atoms, recorder.log_arrays(len(atoms)), recorder.frames)


# ----------------------------------------------------------------------------- analysis
def read_md_log(path):
    """Columns of a log written by ``run_md``: {name: array} plus "n_atoms" and the header's settings."""
    metadata, names, rows = {}, None, []
    with open(path) as stream:
        for line in stream:
            if line.startswith("# gapfit md"):
                for item in line.split()[3:]:
                    key, _, value = item.partition("=")
                    metadata[key] = value
            elif line.startswith("#"):
                names = line[1:].split()
            elif line.strip():
                rows.append([float(v) for v in line.split()])
    if names is None:
        raise ValueError(f"{path}: not a gapfit MD log (no column header)")
    table = np.array(rows, dtype=np.float64).reshape(len(rows), len(names))
    result = {name: table[:, index] for index, name in enumerate(names)}
    result["step"] = result["step"].astype(np.int64)
    result["n_atoms"] = int(metadata.get("n_atoms", 0))
    result["settings"] = metadata
    return result


def energy_drift(log):
    """Slope of a straight-line fit of total energy per atom against time, meV/atom/ps."""
    time_ps = np.asarray(log["time_ps"])
    if time_ps.size < 2:
        return float("nan")
    total = np.asarray(log["total_eV"]) / log["n_atoms"]
    return float(1e3 * np.polyfit(time_ps, total, 1)[0])


def summarise_md(log):
    """{mean/std temperature K, energy drift meV/atom/ps, duration ps, [volume Å³, pressure GPa]}."""
    summary = {"duration_ps": float(log["time_ps"][-1] - log["time_ps"][0]),
               "temperature_mean_K": float(np.mean(log["temperature_K"])),
               "temperature_std_K": float(np.std(log["temperature_K"])),
               "energy_drift_meV_per_atom_ps": energy_drift(log)}
    for column, name in (("volume_A3", "volume_mean_A3"), ("pressure_GPa", "pressure_mean_GPa"),
                         ("max_F_std_eV/A", "max_F_std_eV/A")):
        if column in log:
            values = log[column]
            summary[name] = float(np.nanmax(values) if column.startswith("max") else np.mean(values))
    return summary


def radial_distribution(frames, r_max, n_bins=100):
    """Radial distribution function g(r) averaged over frames: (bin centres Å, g).

    g(r) = n(r) / (N ρ V_shell), n(r) the number of ordered pairs with a
    distance in the bin (periodic images included, so r_max may exceed half
    the cell), ρ = N / V the number density and V_shell the exact volume of
    the spherical shell.
    """
    edges = np.linspace(0.0, r_max, n_bins + 1)
    shells = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    total = np.zeros(n_bins)
    for atoms in frames:
        if not atoms.pbc.all():
            raise ValueError("radial_distribution needs frames periodic in all three directions")
        neighbors = build_neighbor_list(atoms, r_max)
        counts, _ = np.histogram(neighbors.distances, bins=edges)
        density = len(atoms) / atoms.get_volume()
        total += counts / (len(atoms) * density * shells)
    return 0.5 * (edges[1:] + edges[:-1]), total / len(frames)


def mean_square_displacement(frames, times_ps=None):
    """Mean-square displacement against lag time: (lags ps, MSD Å²).

    Positions must be unwrapped (as ASE's integrators leave them); the centre
    of mass motion is removed, and every frame serves as a time origin.
    times_ps defaults to each frame's ``info["time_ps"]``.
    """
    positions = np.array([atoms.positions for atoms in frames])
    masses = frames[0].get_masses()
    if times_ps is None:
        times_ps = np.array([atoms.info["time_ps"] for atoms in frames])
    times_ps = np.asarray(times_ps, dtype=np.float64)
    centre = np.einsum("fad,a->fd", positions, masses) / masses.sum()
    relative = positions - centre[:, None, :]
    msd = np.array([np.mean(np.sum((relative[lag:] - relative[:len(frames) - lag]) ** 2, axis=-1))
                    for lag in range(len(frames))])
    return times_ps - times_ps[0], msd
