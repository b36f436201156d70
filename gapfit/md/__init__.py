"""Molecular dynamics with any ASE calculator: NVE, NVT, NPT runs with a trajectory and a log,
and their analysis (energy drift, radial distribution, mean square displacement)."""
from .dynamics import (ENSEMBLES, MDResult, energy_drift, initialise_velocities,  # noqa: F401
                       make_dynamics, mean_square_displacement, radial_distribution,
                       read_md_log, run_md, summarise_md)

__all__ = ["ENSEMBLES", "MDResult", "energy_drift", "initialise_velocities", "make_dynamics",
           "mean_square_displacement", "radial_distribution", "read_md_log", "run_md",
           "summarise_md"]
