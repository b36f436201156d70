"""Physical properties of the default model on mlearn Mo and Si against DFT values derived from the data.

    python benchmarks/properties.py                         # Mo then Si
    python benchmarks/properties.py --elements Mo --plots plots/ --json properties.json

For each element the default recipe (``gapfit.GAP()``: TwoBody + SOAP, 1000 sparse points) is
fitted on the training set; the DFT references come from the data themselves
(``gapfit.validate.properties_from_data`` on train + test: the "Elastic" strain series and the
"Vacancy" cells), never typed in. Two model columns:

- "same cells": the model's energies and stresses on exactly the data's cells, through the same
  formulas as DFT (equal terms; ions as in the data, i.e. clamped in the strained cells);
- "computed": ``gapfit.validate`` on an ideal crystal: Birch–Murnaghan E–V, clamped-ion
  stress–strain elastic constants at the model's equilibrium (relaxed-ion C44 printed below),
  relaxed vacancy formation energy; plus phonons and an MD stability check.

Targets (issue 8): lattice constant within 0.5 %, elastic constants within 10 %.
Data: ../shared/data/mlearn (Zuo et al., J. Phys. Chem. A 124, 731 (2020)).
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np

MLEARN = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlearn"
STRUCTURES = {"Mo": "bcc", "Si": "diamond"}
TARGETS = {"lattice constant": 0.005, "C11": 0.10, "C12": 0.10, "C44": 0.10}


def timed(label, function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    print(f"  {label}: {time.perf_counter() - start:.1f} s", flush=True)
    return result


def data_rows(derived):
    return {"lattice constant": derived.lattice_constant, "bulk modulus": derived.bulk_modulus,
            **derived.elastic.cubic, "vacancy formation": derived.vacancy_formation}


def run_element(element, md_time_ps, md_temperature_K, plots, n_sparse=None):
    import gapfit
    from ase.build import bulk
    from gapfit import validate

    train = gapfit.io.read_mlearn(MLEARN / f"{element}_train.json")
    test = gapfit.io.read_mlearn(MLEARN / f"{element}_test.json")
    data = train + test
    cubic = bulk(element, STRUCTURES[element], a=5.0, cubic=True)
    atoms_per_cell = len(cubic)
    print(f"\n{element}: {len(train)} training configurations; references from {len(data)} "
          "(train + test)", flush=True)
    dft = validate.properties_from_data(data, atoms_per_cell=atoms_per_cell)
    model = gapfit.GAP(random_state=0)
    if n_sparse is not None:  # a smaller SOAP sparse set, for a quick look only
        model.set_params(terms=[gapfit.TwoBody(), gapfit.SOAP(n_sparse=n_sparse)])
    timed("fit (default recipe)" if n_sparse is None else f"fit (SOAP n_sparse={n_sparse})",
          model.fit, train)
    calculator = gapfit.GAPCalculator(model)
    same = timed("model on the data's cells", validate.properties_from_data, data,
                 calculator=calculator, atoms_per_cell=atoms_per_cell)

    # ideal crystal at the data's own zero-stress lattice constant as the starting point
    reference = bulk(element, STRUCTURES[element], a=dft.lattice_constant, cubic=True)
    eos = timed("E–V", validate.energy_volume, calculator, reference)
    equilibrium = eos.equilibrium_structure()
    clamped = timed("elastic (clamped ions)", validate.elastic_constants, calculator, equilibrium,
                    relax_ions=False)
    relaxed = timed("elastic (relaxed ions)", validate.elastic_constants, calculator, equilibrium,
                    relax_ions=True)
    vacancy = timed("vacancy (relaxed)", validate.vacancy_formation_energy, calculator, equilibrium)
    primitive = bulk(element, STRUCTURES[element], a=eos.lattice_constant)
    phonons = timed("phonons", validate.phonons, calculator, primitive)
    md = timed("MD stability", validate.md_stability, calculator, equilibrium,
               temperature_K=md_temperature_K, time_ps=md_time_ps, random_state=0)

    reference_values = data_rows(dft)
    same_values = data_rows(same)
    computed = {"lattice constant": eos.lattice_constant, "bulk modulus": eos.bulk_modulus,
                **clamped.cubic, "vacancy formation": vacancy.relaxed}
    units = {"lattice constant": "Å", "bulk modulus": "GPa", "C11": "GPa", "C12": "GPa",
             "C44": "GPa", "vacancy formation": "eV"}
    print(f"\n{element}: default model against DFT derived from the data")
    print(f"{'property':<20}{'unit':<6}{'DFT (data)':>11}{'same cells':>12}{'error':>9}"
          f"{'computed':>11}{'error':>9}  target")
    verdicts = {}
    for name, unit in units.items():
        ref, a, b = reference_values[name], same_values[name], computed[name]
        err_a, err_b = validate.relative_error(a, ref), validate.relative_error(b, ref)
        target = TARGETS.get(name)
        verdict = ""
        if target is not None:
            ok_a, ok_b = abs(err_a) <= target, abs(err_b) <= target
            verdict = f"±{100 * target:g}%: {'ok' if ok_a else 'MISSED'} / {'ok' if ok_b else 'MISSED'}"
            verdicts[name] = (ok_a, ok_b)
        print(f"{name:<20}{unit:<6}{ref:>11.4g}{a:>12.4g}{100 * err_a:>+8.2f}%{b:>11.4g}"
              f"{100 * err_b:>+8.2f}%  {verdict}")
    notes = dft.notes
    print(f"DFT references: {notes['elastic_cells']} Elastic cells of {notes['reference_atoms']} atoms "
          f"within ±5% strain ({notes['elastic_cells_beyond_max_strain']} beyond); vacancy from the "
          f"{notes.get('vacancy_cell_atoms')}-atom Vacancy cell with the smallest DFT RMS force "
          f"({notes.get('vacancy_cell_rms_force_eV_per_A', float('nan')):.3f} eV/Å, an unrelaxed "
          "snapshot: its thermal energy is in both 'DFT' and 'same cells', not in 'computed')")
    print(f"model, relaxed ions: C11 {relaxed.cubic['C11']:.1f}, C12 {relaxed.cubic['C12']:.1f}, "
          f"C44 {relaxed.cubic['C44']:.1f} GPa; unrelaxed vacancy {vacancy.unrelaxed:.3f} eV "
          f"({vacancy.n_atoms}-site cell, max force after relaxation {vacancy.max_force:.3f} eV/Å)")
    special = ", ".join(f"{'Γ' if k == 'G' else k}: " + "/".join(f"{f:.2f}" for f in np.sort(v)[-3:])
                        for k, v in phonons.special_points.items())
    print(f"phonons (THz, top three modes at the special points): {special}; lowest on the path "
          f"{phonons.min_frequency:.3f} THz")
    print(f"MD {md.n_atoms} atoms, {md.time_ps:.2f} ps at {md_temperature_K:g} K (mean "
          f"{md.temperature_K:.0f} K): {'stable' if md.stable else 'UNSTABLE: ' + md.reason}; "
          f"closest approach {md.min_distance:.2f} Å (limit {md.min_distance_threshold:.2f}), "
          f"largest potential-energy change {1e3 * md.max_energy_change:.1f} meV/atom "
          f"(limit {1e3 * md.energy_change_threshold:.0f})")
    if plots:
        write_plots(element, data, calculator, eos, phonons, Path(plots))
    return {"reference": reference_values, "same_cells": same_values, "computed": computed,
            "relaxed_ion_elastic": relaxed.cubic, "vacancy_unrelaxed": vacancy.unrelaxed,
            "dft_notes": notes, "md": {"stable": md.stable, "reason": md.reason, "time_ps": md.time_ps},
            "phonon_special_points_THz": {k: v.tolist() for k, v in phonons.special_points.items()},
            "targets_met": {k: list(v) for k, v in verdicts.items()}}


def write_plots(element, data, calculator, eos, phonons, directory):
    """E–V of the model with the data's Elastic cells (DFT and model energies) and phonons."""
    from gapfit import validate
    from gapfit.structures.io import labels
    cells = [atoms for atoms in data if atoms.info.get("config_type") == "Elastic"]
    volumes = np.array([atoms.get_volume() / len(atoms) for atoms in cells])
    dft = np.array([labels(atoms)[0] / len(atoms) for atoms in cells])
    model = np.array([validate._evaluated(atoms, calculator).get_potential_energy() / len(atoms)
                      for atoms in cells])
    path = validate.plot_equation_of_state(
        eos, directory / f"{element}_eos.png",
        references={"DFT, data's Elastic cells (uniaxial/shear strains)": (volumes, dft),
                    "model on the same cells": (volumes, model)},
        title=f"{element}: model E–V (ideal crystal) and the Elastic cells")
    print(f"plot written to {path}")
    path = validate.plot_phonons(phonons, directory / f"{element}_phonons.png",
                                 title=f"{element} phonons, default model")
    print(f"plot written to {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", nargs="+", default=["Mo", "Si"], choices=sorted(STRUCTURES))
    parser.add_argument("--md-time", type=float, default=2.0, help="MD stability run, ps (default 2)")
    parser.add_argument("--md-temperature", type=float, default=300.0, help="K (default 300)")
    parser.add_argument("--plots", metavar="DIR", help="write E–V and phonon plots here")
    parser.add_argument("--json", metavar="FILE", help="write the numbers as JSON")
    parser.add_argument("--n-sparse", type=int, help="SOAP sparse points instead of the default "
                                                     "recipe's 1000 (a quicker, rougher look)")
    args = parser.parse_args(argv)
    if not MLEARN.is_dir():
        print(f"skipped: mlearn data not found at {MLEARN}")
        return 0
    results = {element: run_element(element, args.md_time, args.md_temperature, args.plots,
                                      args.n_sparse)
               for element in args.elements}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
