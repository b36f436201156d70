"""Figures as PNG files: parity plots and error histograms of an evaluation, RDF and MSD of an MD run.

Figures are drawn with matplotlib's object API (``matplotlib.figure.Figure``),
so nothing here touches pyplot's global state or needs a display.
"""
from pathlib import Path

import numpy as np

from .errors import DISPLAY_UNITS

_LABELS = {"energy": "energy per atom", "forces": "force component", "stress": "stress component"}


def new_figure(width=4.8, height=4.4):
    from matplotlib.figure import Figure
    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def save_figure(figure, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


def plot_parity(series, quantity, path, title=None):
    """Predicted against reference values of one quantity, coloured by config_type; returns the path.

    series : ``gapfit.evaluate.errors.Series`` in eV-based units; drawn in display units
    (meV/atom, meV/Å, GPa). The legend gives each group's RMSE.
    """
    unit, factor = DISPLAY_UNITS[quantity]
    figure = new_figure()
    axes = figure.add_subplot()
    reference, predicted = series.reference * factor, series.predicted * factor
    groups = sorted(set(series.config_types.tolist()))
    point_size = 12 if reference.size < 500 else 3
    for group in groups:
        mask = series.config_types == group
        rmse = np.sqrt(np.mean((predicted[mask] - reference[mask]) ** 2))
        axes.scatter(reference[mask], predicted[mask], s=point_size, alpha=0.7, linewidths=0,
                     label=f"{group} (RMSE {rmse:.3g})")
    low, high = min(reference.min(), predicted.min()), max(reference.max(), predicted.max())
    margin = 0.05 * (high - low or 1.0)
    limits = (low - margin, high + margin)
    axes.plot(limits, limits, color="0.3", linewidth=0.8, zorder=0)
    axes.set_xlim(limits)
    axes.set_ylim(limits)
    axes.set_aspect("equal")
    axes.set_xlabel(f"reference {_LABELS[quantity]} ({unit})")
    axes.set_ylabel(f"predicted {_LABELS[quantity]} ({unit})")
    axes.set_title(title or f"{quantity} parity")
    axes.legend(fontsize=7, markerscale=2 if point_size < 10 else 1, loc="upper left")
    return save_figure(figure, path)


def plot_error_histogram(series, quantity, path, bins=60):
    """Histogram of predicted − reference of one quantity (display units, log counts); returns the path."""
    unit, factor = DISPLAY_UNITS[quantity]
    errors = series.errors * factor
    figure = new_figure(5.2, 3.8)
    axes = figure.add_subplot()
    axes.hist(errors, bins=bins, color="tab:blue", alpha=0.8)
    axes.axvline(0.0, color="0.3", linewidth=0.8)
    axes.set_yscale("log")
    axes.set_xlabel(f"{_LABELS[quantity]} error, predicted − reference ({unit})")
    axes.set_ylabel("count")
    mae, rmse = np.mean(np.abs(errors)), np.sqrt(np.mean(errors ** 2))
    axes.set_title(f"{_LABELS[quantity]} errors: MAE {mae:.3g}, RMSE {rmse:.3g} {unit}")
    return save_figure(figure, path)


def evaluation_plots(data, directory, prefix=""):
    """Parity plots (energy, forces, stress) and the force-error histogram of ``ParityData``.

    Files ``{prefix}parity_energy.png``, ``parity_forces.png``,
    ``parity_stress.png`` and ``force_errors.png`` in ``directory``; a quantity
    without reference values gets no plot. Returns {name: path} of the files written.
    """
    directory = Path(directory)
    written = {}
    for quantity in ("energy", "forces", "stress"):
        series = data.series(quantity)
        if series.reference.size:
            written[f"parity_{quantity}"] = plot_parity(
                series, quantity, directory / f"{prefix}parity_{quantity}.png")
    if data.forces.reference.size:
        written["force_errors"] = plot_error_histogram(data.forces, "forces",
                                                       directory / f"{prefix}force_errors.png")
    return written


def plot_rdf(distances, rdf, path, title="radial distribution function"):
    """g(r) against r (Å); returns the path."""
    figure = new_figure(5.2, 3.8)
    axes = figure.add_subplot()
    axes.plot(distances, rdf, color="tab:blue")
    axes.axhline(1.0, color="0.5", linewidth=0.7, linestyle="--")
    axes.set_xlabel("r (Å)")
    axes.set_ylabel("g(r)")
    axes.set_title(title)
    return save_figure(figure, path)


def plot_msd(times_ps, msd, path, title="mean-square displacement"):
    """MSD (Å²) against lag time (ps); returns the path."""
    figure = new_figure(5.2, 3.8)
    axes = figure.add_subplot()
    axes.plot(times_ps, msd, color="tab:red", marker="o", markersize=2.5)
    axes.set_xlabel("lag time (ps)")
    axes.set_ylabel("MSD (Å²)")
    axes.set_title(title)
    return save_figure(figure, path)


def plot_md_log(log, path):
    """Temperature (K) and total energy per atom drift (meV/atom) of an MD log against time (ps)."""
    figure = new_figure(5.2, 5.0)
    top, bottom = figure.subplots(2, 1, sharex=True)
    top.plot(log["time_ps"], log["temperature_K"], color="tab:orange")
    top.set_ylabel("temperature (K)")
    total = log["total_eV"] / log["n_atoms"]
    bottom.plot(log["time_ps"], 1e3 * (total - total[0]), color="tab:green", label="total")
    potential = log["potential_eV"] / log["n_atoms"]
    bottom.plot(log["time_ps"], 1e3 * (potential - potential[0]), color="tab:blue", label="potential")
    bottom.set_ylabel("energy change (meV/atom)")
    bottom.set_xlabel("time (ps)")
    bottom.legend(fontsize=8)
    return save_figure(figure, path)
