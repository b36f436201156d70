"""The ``gapfit`` command: fit, eval, md and select, each a thin layer over the library.

Every subcommand parses its arguments and calls library functions
(``gapfit.cli.settings``, ``gapfit.evaluate``, ``gapfit.validate``,
``gapfit.md``, ``gapfit.active``). Errors in the user's files (missing, truncated, corrupted)
end the command with a one-line message on standard error and exit status 1;
usage errors exit with status 2.
"""
import argparse
import json
import logging
import sys
from pathlib import Path

log = logging.getLogger("gapfit.cli")

EXAMPLES = {
    "fit": """examples:
  gapfit fit data/cu_train.xyz -o cu.gap --seed 0
  gapfit fit train.xyz --energy-key dft_energy --forces-key dft_forces -o model.gap
  gapfit fit -c fit.toml --soap n_sparse=200 l_max=4     # file settings, two overridden
  gapfit fit data/cu_train.xyz --terms twobody --print-settings > fit.toml

settings file (TOML; YAML with PyYAML), every entry optional, flags override it:
  train = ["train.xyz"]            # relative to the settings file
  validate = ["test.xyz"]
  output = "model.gap"
  [read]
  energy_key = "dft_energy"        # also forces_key, stress_key, virial_key, format
  [gap]
  energy_sigma = 0.002             # any gapfit.GAP parameter except terms
  random_state = 0
  [[terms]]
  type = "TwoBody"                 # a term class and its parameters
  cutoff = 5.0
  [[terms]]
  type = "SOAP"
  n_sparse = 500""",
    "eval": """examples:
  gapfit eval cu.gap data/cu_test.xyz
  gapfit eval cu.gap test.xyz --json errors.json --plots plots/
  gapfit eval cu.gap --properties                 # ASE's reference crystal of the model's element
  gapfit eval cu.gap test.xyz --properties cu_cubic.xyz --md-time 1 --plots plots/""",
    "md": """examples:
  gapfit md cu.gap data/cu_test.xyz --ensemble nvt --temperature 300 --steps 2000
  gapfit md cu.gap cu.xyz --repeat 3 3 3 --ensemble npt --pressure 0 -o npt.xyz --log npt.log""",
    "select": """examples:
  gapfit select cu.gap pool.xyz -n 20 -o to_label.xyz""",
}


# ----------------------------------------------------------------------------- parser
def _common(parser):
    group = parser.add_argument_group("messages")
    group.add_argument("-q", "--quiet", action="store_true",
                       help="only warnings and errors; no progress bars")
    group.add_argument("-v", "--verbose", action="count", default=0, help="debugging messages")


def _read_options(parser):
    group = parser.add_argument_group("reading labelled data (see gapfit.io.read)")
    group.add_argument("--energy-key", help="name of the total energy (eV) in the comment line "
                                            "(default: energy)")
    group.add_argument("--forces-key", help="name of the per-atom force columns, eV/Å (default: forces)")
    group.add_argument("--stress-key", help="name of the stress, eV/Å³ in ASE's sign (default: stress)")
    group.add_argument("--virial-key", help="name of the virial, eV (converted to stress)")
    group.add_argument("--format", help="ASE format name, or 'mlearn' for mlearn JSON (default: from the "
                                        "file name; .json files are read as mlearn)")


def _term_help(cls):
    defaults = cls().get_params(deep=False)
    return (f"{cls.__name__} parameters as KEY=VALUE (defaults: "
            + " ".join(f"{k}={v!r}" for k, v in defaults.items()) + ")")


def _add_fit(subparsers):
    from .settings import term_classes
    parser = subparsers.add_parser(
        "fit", help="fit a GAP to labelled structures", epilog=EXAMPLES["fit"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Fit a Gaussian Approximation Potential to energies, forces and stresses. Settings "
                    "come from the library defaults, then a settings file (-c), then these flags.")
    parser.add_argument("train", nargs="*", help="training files (extended XYZ, anything ASE reads, "
                                                 "or mlearn JSON)")
    parser.add_argument("-c", "--config", help="settings file, TOML (or YAML with PyYAML)")
    parser.add_argument("-o", "--output", help="model file to write (default: model.gap)")
    parser.add_argument("--validate", nargs="+", metavar="FILE",
                        help="labelled files whose errors are printed after the fit")
    parser.add_argument("--print-settings", action="store_true",
                        help="print the effective settings, defaults included, as TOML and exit "
                             "without fitting (a settings file for -c)")
    _read_options(parser)
    model = parser.add_argument_group("model")
    names = sorted(term_classes())
    model.add_argument("--terms", nargs="+", metavar="TERM", choices=names,
                       help=f"terms to sum, in order, from {{{', '.join(names)}}} "
                            "(default: twobody soap)")
    for name, cls in sorted(term_classes().items()):
        model.add_argument(f"--{name}", nargs="+", metavar="KEY=VALUE", dest=f"term_{name}",
                           help=_term_help(cls))
    model.add_argument("--energy-sigma", type=float, help="expected energy error, eV/atom (default 0.002)")
    model.add_argument("--force-sigma", type=float, help="expected force error, eV/Å (default 0.05)")
    model.add_argument("--virial-sigma", type=float, help="expected virial error, eV/atom (default 0.05)")
    model.add_argument("--e0", help="isolated-atom energies: 'average', 'isolated', or SYMBOL=eV,... "
                                    "(default: average)")
    model.add_argument("--sparse-jitter", type=float, help="relative jitter on K_MM (default 1e-8)")
    model.add_argument("--no-forces", dest="fit_forces", action="store_false", default=None,
                       help="do not fit forces")
    model.add_argument("--no-virial", dest="fit_virial", action="store_false", default=None,
                       help="do not fit stresses/virials")
    model.add_argument("--seed", type=int, help="random seed of the sparse-point selection")
    model.add_argument("--n-jobs", type=int, help="worker processes (default: this process)")
    _common(parser)
    parser.set_defaults(handler=command_fit)


def _add_eval(subparsers):
    parser = subparsers.add_parser(
        "eval", help="errors of a model on labelled data, with parity plots; physical properties",
        epilog=EXAMPLES["eval"], formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Print energy, force and stress MAE, RMSE and R² overall and per config_type; "
                    "optionally write them as JSON and draw parity plots and a force-error histogram. "
                    "With --properties, also compute physical properties of a crystal "
                    "(gapfit.validate): E–V curve with a Birch–Murnaghan fit (lattice constant, bulk "
                    "modulus), elastic constants by stress–strain, relaxed vacancy formation energy, "
                    "phonons (dispersion, DOS) and an MD stability check.")
    parser.add_argument("model", help="model file written by gapfit fit")
    parser.add_argument("data", nargs="*", help="labelled structure files (optional with --properties)")
    parser.add_argument("--json", metavar="FILE", help="write the numbers of the table (and of the "
                                                       "properties) as JSON")
    parser.add_argument("--plots", metavar="DIR", help="write parity_energy.png, parity_forces.png, "
                                                       "parity_stress.png and force_errors.png here; "
                                                       "with --properties also eos.png and phonons.png")
    group = parser.add_argument_group("physical properties (gapfit.validate)")
    group.add_argument("--properties", nargs="?", const="auto", metavar="STRUCTURE",
                       help="compute the properties of the crystal in STRUCTURE (any ASE-readable "
                            "file, last frame; give the conventional cell for the cubic lattice "
                            "constant); without STRUCTURE, ASE's reference crystal of the model's "
                            "single element (ase.build.bulk)")
    group.add_argument("--md-time", type=float, default=2.0, metavar="PS",
                       help="length of the MD stability run, ps (default 2)")
    group.add_argument("--md-temperature", type=float, default=300.0, metavar="K",
                       help="temperature of the MD stability run, K (default 300)")
    _read_options(parser)
    _common(parser)
    parser.set_defaults(handler=command_eval)


def _add_md(subparsers):
    from ..md.dynamics import ENSEMBLES
    parser = subparsers.add_parser(
        "md", help="molecular dynamics with a model", epilog=EXAMPLES["md"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run NVE (velocity Verlet), NVT (Langevin) or NPT (isotropic MTK barostat with "
                    "Nosé-Hoover chains) MD with ASE, writing an extended-XYZ trajectory and a log.")
    parser.add_argument("model", help="model file written by gapfit fit")
    parser.add_argument("structure", help="starting structure (any ASE-readable file)")
    parser.add_argument("--index", default="-1", help="which configuration of the file (default: last)")
    parser.add_argument("--repeat", nargs=3, type=int, metavar=("NA", "NB", "NC"),
                        help="replicate the structure into a supercell first")
    parser.add_argument("--ensemble", choices=ENSEMBLES, default="nvt", help="default: nvt")
    parser.add_argument("--steps", type=int, default=1000, help="number of steps (default 1000)")
    parser.add_argument("--timestep", type=float, default=1.0, help="time step, fs (default 1)")
    parser.add_argument("--temperature", type=float, default=300.0,
                        help="thermostat target, K (default 300)")
    parser.add_argument("--init-temperature", type=float,
                        help="temperature of the initial velocities, K (default: --temperature)")
    parser.add_argument("--keep-velocities", action="store_true",
                        help="start from the momenta stored in the structure file, if any")
    parser.add_argument("--pressure", type=float, default=0.0, help="NPT pressure, GPa (default 0)")
    parser.add_argument("--friction", type=float, default=0.01,
                        help="Langevin friction, 1/fs (default 0.01)")
    parser.add_argument("--tdamp", type=float, help="NPT thermostat time, fs (default 100 steps)")
    parser.add_argument("--pdamp", type=float, help="NPT barostat time, fs (default 1000 steps)")
    parser.add_argument("--interval", type=int, default=10,
                        help="steps between log lines and trajectory frames (default 10)")
    parser.add_argument("--seed", type=int, help="random seed of the velocities and Langevin noise")
    parser.add_argument("--uncertainty", action="store_true",
                        help="also predict force uncertainties and log the largest (slower)")
    parser.add_argument("-o", "--trajectory", default="md.xyz",
                        help="extended-XYZ trajectory (default md.xyz)")
    parser.add_argument("--log", default="md.log", help="text log (default md.log)")
    _common(parser)
    parser.set_defaults(handler=command_md)


def _add_select(subparsers):
    parser = subparsers.add_parser(
        "select", help="pick the most uncertain configurations of a pool", epilog=EXAMPLES["select"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Choose the n configurations of a pool the model is least sure about "
                    "(gapfit.active.select) and write them for labelling.")
    parser.add_argument("model", help="model file written by gapfit fit")
    parser.add_argument("pool", help="candidate structures (any ASE-readable file)")
    parser.add_argument("-n", type=int, required=True, help="how many configurations to pick")
    parser.add_argument("-o", "--output", default="selected.xyz",
                        help="extended XYZ of the chosen configurations (default selected.xyz)")
    parser.add_argument("--strategy", default="uncertainty",
                        help="uncertainty (the n largest scores), batch (greedy, near-duplicates of a "
                             "pick lose their score), coverage (greedy on the expected drop of the "
                             "whole pool's variance) or random (default: uncertainty)")
    parser.add_argument("--score", default="forces",
                        help="forces (largest force-component std) or energy (energy std per atom); "
                             "default: forces")
    parser.add_argument("--seed", type=int, help="random seed (strategy random)")
    _common(parser)
    parser.set_defaults(handler=command_select)


def _add_export(subparsers):
    parser = subparsers.add_parser(
        "export", help="write a model as a gap_fit XML file (quippy, LAMMPS pair_style quip)",
        description="Write a fitted model whose terms are QUIP-representable (QuipSOAP, "
                    "QuipDistance2b, QuipAngle3b, TwoBody) as a gap_fit XML file plus its "
                    "sparseX files, for quippy's Potential and LAMMPS pair_style quip.")
    parser.add_argument("model", help="model file written by gapfit fit (or a gap_fit XML)")
    parser.add_argument("-o", "--output", required=True, help="XML file to write")
    parser.add_argument("--label", help="GAP label (Potential xml_label=...); default GAP_gapfit")
    _common(parser)
    parser.set_defaults(handler=command_export)


def command_export(args):
    from .. import load
    model = load(args.model)
    path = model.save_xml(args.output, label=args.label)
    print(f"wrote {path} (label {args.label or getattr(model, 'quip_label_', 'GAP_gapfit')})")
    return 0


def build_parser():
    from .. import __version__
    parser = argparse.ArgumentParser(
        prog="gapfit", description="Fit, evaluate and run Gaussian Approximation Potentials.")
    parser.add_argument("--version", action="version", version=f"gapfit {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_fit(subparsers)
    _add_eval(subparsers)
    _add_md(subparsers)
    _add_select(subparsers)
    _add_export(subparsers)
    return parser


# ----------------------------------------------------------------------------- fit
def _parse_e0(text):
    """'average', 'isolated', or {symbol: eV} from 'Cu=-0.1,Au=-0.2'."""
    from .settings import parse_assignments
    if "=" not in text:
        return text
    entries = parse_assignments(text.replace(",", " ").split(), "--e0 entry")
    try:
        return {key: float(value) for key, value in entries.items()}
    except (TypeError, ValueError):
        raise ValueError(f"--e0 {text!r}: every SYMBOL=VALUE needs a number in eV") from None


def fit_settings(args):
    """Effective settings: the file's (if any) with the command line's flags applied."""
    from . import settings as fs
    base = fs.read_settings(args.config) if args.config else {}
    overrides = {}
    if args.train:
        overrides["train"] = [str(Path(p).resolve()) for p in args.train]
    if args.validate:
        overrides["validate"] = [str(Path(p).resolve()) for p in args.validate]
    if args.output:
        overrides["output"] = str(Path(args.output).resolve())
    read = {key: getattr(args, key) for key in fs.READ_KEYS if getattr(args, key) is not None}
    if read:
        overrides["read"] = read
    gap = {"energy_sigma": args.energy_sigma, "force_sigma": args.force_sigma,
           "virial_sigma": args.virial_sigma, "sparse_jitter": args.sparse_jitter,
           "fit_forces": args.fit_forces, "fit_virial": args.fit_virial,
           "random_state": args.seed, "n_jobs": args.n_jobs,
           "e0": _parse_e0(args.e0) if args.e0 is not None else None}
    gap = {key: value for key, value in gap.items() if value is not None}
    if gap:
        overrides["gap"] = gap
    settings = fs.merge_settings(base, overrides)
    if args.terms:
        settings["terms"] = fs.select_terms(settings, args.terms)
    for name in sorted(fs.term_classes()):
        assignments = getattr(args, f"term_{name}")
        if assignments:
            terms = settings.get("terms") or fs.default_term_tables()
            settings["terms"] = fs.set_term_parameters(
                terms, name, fs.parse_assignments(assignments, f"--{name} setting"))
    settings.setdefault("output", str(Path("model.gap").resolve()))
    return fs.validate_settings(settings, source="command line")


def _evaluate_and_print(model, paths, settings):
    from ..evaluate.errors import format_report, parity_data, report
    from .settings import read_structures
    structures = read_structures(paths, settings, species=model.species_)
    result = report(parity_data(model, structures))
    print(f"errors on {', '.join(map(str, paths))} ({len(structures)} configurations):")
    print(format_report(result))
    return result


def command_fit(args):
    from .logging_setup import show_progress
    from .settings import explicit_settings, fit_from_settings, to_toml
    settings = fit_settings(args)
    if args.print_settings:
        sys.stdout.write(to_toml(explicit_settings(settings)))
        return 0
    model = fit_from_settings(settings, verbose=show_progress(args.quiet))
    model.set_params(verbose=False)
    model.save(settings["output"])
    log.info("model written to %s", settings["output"])
    if settings.get("validate"):
        _evaluate_and_print(model, settings["validate"], settings)
    return 0


# ----------------------------------------------------------------------------- eval
def _read_only_settings(args):
    from .settings import READ_KEYS
    return {"read": {key: getattr(args, key) for key in READ_KEYS if getattr(args, key) is not None}}


def command_eval(args):
    from .. import load
    from ..evaluate.errors import format_report, json_safe, parity_data, report
    from ..evaluate.plots import evaluation_plots
    from .settings import read_structures
    if not args.data and args.properties is None:
        raise ValueError("nothing to evaluate: give labelled data files, --properties, or both")
    model = load(args.model)
    document = {"model": str(args.model)}
    if args.data:
        structures = read_structures(args.data, _read_only_settings(args), species=model.species_)
        data = parity_data(model, structures)
        result = report(data)
        print(f"model {args.model} on {', '.join(args.data)} ({len(structures)} configurations):")
        print(format_report(result))
        document.update({"data": list(args.data), **result})
        if args.plots:
            for path in evaluation_plots(data, args.plots).values():
                log.info("plot written to %s", path)
    if args.properties is not None:
        document["properties"] = _properties(model, args)
    if args.json:
        Path(args.json).write_text(json.dumps(json_safe(document), indent=2) + "\n")
        log.info("numbers written to %s", args.json)
    return 0


def _properties(model, args):
    """Print the property table of ``--properties``, draw its plots; return its JSON form."""
    from .. import GAPCalculator
    from ..evaluate import physical as validate
    if args.properties == "auto":
        atoms, primitive = validate.reference_crystal(model.species_)
        source = f"ASE's reference crystal of {atoms.get_chemical_formula(mode='reduce')}"
    else:
        atoms, primitive = _starting_structure(args.properties, "-1", None), None
        source = args.properties
    model.check_predictable([atoms])
    result = validate.properties(GAPCalculator(model), atoms, primitive=primitive,
                                 md_temperature_K=args.md_temperature, md_time_ps=args.md_time)
    print(f"\nproperties of {source} ({len(atoms)} atoms in the reference cell):")
    print(validate.format_table(result.values()))
    md = result.md
    print(f"MD {md.n_atoms} atoms, {md.time_ps:.2f} ps at {args.md_temperature:g} K: "
          + ("stable" if md.stable else f"UNSTABLE ({md.reason})"))
    if args.plots:
        for path in (validate.plot_equation_of_state(result.eos, Path(args.plots) / "eos.png"),
                     validate.plot_phonons(result.phonons, Path(args.plots) / "phonons.png")):
            log.info("plot written to %s", path)
    return {"structure": source, **validate.report_json(result)}


# ----------------------------------------------------------------------------- md
def _starting_structure(path, index, repeat):
    import ase.io
    try:
        atoms = ase.io.read(path, index=index)
    except (FileNotFoundError, IsADirectoryError):
        raise
    except Exception as error:  # ASE raises many kinds for a malformed file
        raise ValueError(f"{path}: cannot read a structure ({type(error).__name__}: {error})") from None
    if not hasattr(atoms, "positions"):
        raise ValueError(f"{path}: --index {index} selects several structures; give one index")
    atoms.calc = None
    return atoms.repeat(repeat) if repeat else atoms


def command_md(args):
    from tqdm.contrib.logging import logging_redirect_tqdm

    from .. import GAPCalculator, load
    from .logging_setup import show_progress
    from ..md.dynamics import run_md, summarise_md
    model = load(args.model)
    atoms = _starting_structure(args.structure, args.index, args.repeat)
    model.check_predictable([atoms])
    with logging_redirect_tqdm(loggers=[logging.getLogger("gapfit")]):
        calculator = GAPCalculator(model, uncertainty=args.uncertainty)
        result = run_md(atoms, calculator, ensemble=args.ensemble, steps=args.steps,
                        timestep_fs=args.timestep, temperature_K=args.temperature,
                        pressure_GPa=args.pressure, friction_per_fs=args.friction,
                        tdamp_fs=args.tdamp, pdamp_fs=args.pdamp, interval=args.interval,
                        initial_temperature_K=args.init_temperature,
                        keep_velocities=args.keep_velocities, seed=args.seed,
                        trajectory=args.trajectory, logfile=args.log,
                        progress=show_progress(args.quiet))
    summary = summarise_md(result.log)
    print(f"{args.ensemble.upper()} MD, {len(atoms)} atoms, {summary['duration_ps']:.3f} ps: "
          f"T = {summary['temperature_mean_K']:.1f} ± {summary['temperature_std_K']:.1f} K"
          + (f", total-energy drift {summary['energy_drift_meV_per_atom_ps']:+.3f} meV/atom/ps"
             if args.ensemble == "nve" else "")
          + (f", <V> = {summary['volume_mean_A3']:.2f} Å³" if "volume_mean_A3" in summary else "")
          + (f", <P> = {summary['pressure_mean_GPa']:.3f} GPa" if "pressure_mean_GPa" in summary else "")
          + (f", max force std {summary['max_F_std_eV/A']:.3f} eV/Å"
             if "max_F_std_eV/A" in summary else ""))
    log.info("trajectory %s, log %s", args.trajectory, args.log)
    return 0


# ----------------------------------------------------------------------------- select
def command_select(args):
    from .. import load
    from ..active import learning as active
    from ..structures import io
    model = load(args.model)
    pool = io.read(args.pool)
    if not 0 < args.n <= len(pool):
        raise ValueError(f"-n must be between 1 and the pool size ({len(pool)}), not {args.n}")
    indices = [int(i) for i in active.select(model, pool, args.n, strategy=args.strategy,
                                             score=args.score, random_state=args.seed)]
    chosen = [pool[i] for i in indices]
    print("selected configurations (index in the pool): " + " ".join(map(str, indices)))
    io.write(args.output, chosen)
    log.info("%d configurations written to %s", len(chosen), args.output)
    return 0


# ----------------------------------------------------------------------------- main
def _one_line(error):
    if isinstance(error, FileNotFoundError) and error.filename:
        return f"{error.filename}: no such file or directory"
    if isinstance(error, IsADirectoryError) and error.filename:
        return f"{error.filename}: is a directory, not a file"
    if isinstance(error, PermissionError) and error.filename:
        return f"{error.filename}: permission denied"
    return " ".join(str(error).split()) or type(error).__name__


def main(argv=None):
    """Run the ``gapfit`` command; returns the exit status (0 success, 1 error, 2 usage, 130 Ctrl-C)."""
    from .logging_setup import configure_logging
    from ..model.model_file import ModelFileError
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("gapfit: interrupted", file=sys.stderr)
        return 130
    except (ModelFileError, ValueError, OSError) as error:
        if args.verbose:
            log.exception("details")
        print(f"gapfit {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
