"""Figures of the validation results: the energy–volume curve with its Birch–Murnaghan fit, and
the phonon dispersion with the DOS."""
import numpy as np

from .eos import EquationOfState


def plot_equation_of_state(eos, path, references=None, title=None):
    """E–V points and Birch–Murnaghan curve (eV/atom against Å³/atom); returns the path.

    references : {label: EquationOfState or (volumes Å³/atom, energies eV/atom)}, drawn
        as points (and as a dashed curve for an EquationOfState) beside the model's.
    """
    from ..plots import new_figure, save_figure
    references = dict(references or {})
    figure = new_figure(5.6, 4.2)
    axes = figure.add_subplot()
    point_sets = {label: ((ref.volumes, ref.energies) if isinstance(ref, EquationOfState) else ref)
                  for label, ref in references.items()}
    all_volumes = np.concatenate([np.asarray(eos.volumes)]
                                 + [np.asarray(v, dtype=float) for v, _ in point_sets.values()])
    grid = np.linspace(all_volumes.min(), all_volumes.max(), 200)
    axes.plot(grid, eos.energy_curve(grid), color="tab:blue",
              label=f"model: V0 {eos.volume:.3f} Å³, B {eos.bulk_modulus:.1f} GPa")
    axes.scatter(eos.volumes, eos.energies, color="tab:blue", s=18, zorder=3)
    colours = iter(["tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"])
    markers = iter(["x", "+", "^", "s", "v"])
    for label, reference in references.items():
        colour, marker = next(colours, "0.4"), next(markers, "o")
        volumes, energies = point_sets[label]
        if isinstance(reference, EquationOfState):
            axes.plot(grid, reference.energy_curve(grid), color=colour, linestyle="--")
            label = f"{label}: V0 {reference.volume:.3f} Å³, B {reference.bulk_modulus:.1f} GPa"
        axes.scatter(volumes, energies, color=colour, marker=marker, s=26, zorder=3, label=label)
    axes.set_xlabel("volume (Å³/atom)")
    axes.set_ylabel("energy (eV/atom)")
    axes.set_title(title or f"energy–volume, {eos.reference.get_chemical_formula()}")
    axes.legend(fontsize=7)
    return save_figure(figure, path)


def plot_phonons(result, path, title="phonons"):
    """Dispersion along the band path and the DOS beside it (THz); returns the path."""
    from ..plots import new_figure, save_figure
    figure = new_figure(7.0, 4.2)
    bands, dos = figure.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [3, 1]})
    # a path with a jump ("...H,PN") repeats its distance there: draw each piece on its own
    pieces = np.split(np.arange(len(result.distances)),
                      np.flatnonzero(np.diff(result.distances) == 0) + 1)
    for piece in pieces:
        bands.plot(result.distances[piece], result.band_frequencies[piece], color="tab:blue",
                   linewidth=1.0)
    ticks = {}
    for x, name in zip(result.special_distances, result.path.get_linear_kpoint_axis()[2]):
        name = "Γ" if name == "G" else name
        ticks[x] = f"{ticks[x]}|{name}" if x in ticks and ticks[x] != name else name
    for x in ticks:
        bands.axvline(x, color="0.7", linewidth=0.6)
    bands.axhline(0.0, color="0.3", linewidth=0.6)
    bands.set_xticks(list(ticks), list(ticks.values()))
    bands.set_xlim(result.distances[0], result.distances[-1])
    bands.set_ylabel("frequency (THz)")
    bands.set_title(title)
    dos.fill_betweenx(result.dos_frequencies, 0.0, result.dos, color="tab:blue", alpha=0.5)
    dos.set_xlabel("DOS (1/THz)")
    dos.set_xlim(left=0.0)
    return save_figure(figure, path)
