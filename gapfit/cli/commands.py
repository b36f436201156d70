"""The ``gapfit`` command: fit, eval, md, select and otf, each a thin layer over the library.

Every subcommand parses its arguments and calls library functions
(``gapfit.cli.settings``, ``gapfit.cli.otf_settings``, ``gapfit.evaluate``, ``gapfit.validate``,
``gapfit.md``, ``gapfit.active``). Errors in the user's files (missing, truncated, corrupted)
end the command with a one-line message on standard error and exit status 1;
usage errors exit with status 2.
"""
import argparse
import json
import logging
import math
import os
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
    "otf": """examples:
  gapfit otf otf.toml                 # run; run again after a kill to continue where it stopped
  gapfit otf otf.toml -o run2 --max-calls 50

settings file (TOML; paths relative to it):
  start = "start.xyz"              # start structures
  model = "cu.gap"                 # optional: continue it; else fit [gap]/[[terms]] to the
                                   # oracle-labelled start structures
  training = ["train.xyz"]         # optional: the model's training data (allows refits)
  output = "otf_run"
  [oracle]
  calculator = "ase.calculators.emt:EMT"   # module:Class or module:factory
  arguments = {}
  [learning]
  threshold = 3.0                  # x the model's force sigma (threshold_unit = "eV/A": absolute),
                                   # compared with the std scaled by the errors met at the calls
                                   # (calibration = "errors"; "none": the std as it is)
  check_every = 1
  max_oracle_calls = 200
  [[stages]]
  ensemble = "nvt"                 # nvt, npt or nve
  temperature = 300.0              # K; also pressure (GPa), timestep (fs), friction (1/fs),
  steps = 1000                     # structure (index of a start structure to begin from)""",
}


# ----------------------------------------------------------------------------- parser
class UsageError(ValueError):
    """A bad value on the command line: reported like argparse's own errors (exit status 2)."""


def _number(above=None, at_least=None, integer=False, unit="", not_zero=False):
    """An argparse ``type``: a finite number (an integer if ``integer``) within the given bounds."""
    def parse(text):
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{'an integer' if integer else 'a number'} is needed, not {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"a finite number is needed, not {text!r}")
        if above is not None and not value > above:
            raise argparse.ArgumentTypeError(f"must be > {above}{unit}, not {text}")
        if at_least is not None and value < at_least:
            raise argparse.ArgumentTypeError(f"must be >= {at_least}{unit}, not {text}")
        if not_zero and value == 0:
            raise argparse.ArgumentTypeError("must not be 0 (1: this process; n > 1 or -1: workers)")
        return value
    parse.__name__ = "integer" if integer else "number"
    return parse


NON_NEGATIVE = _number(at_least=0)
FINITE = _number()
COUNT = _number(at_least=1, integer=True)
SEED = _number(at_least=0, integer=True)


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


def _subcommand(subparsers, name, handler, help, description):
    """The sub-parser of ``gapfit NAME``, run by ``handler(args)``; the examples of
    ``EXAMPLES[name]``, where there are some, stand after the options as written."""
    layout = {}
    if name in EXAMPLES:
        layout = dict(epilog=EXAMPLES[name], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser = subparsers.add_parser(name, help=help, description=description, **layout)
    parser.set_defaults(handler=handler)
    return parser


def _add_fit(subparsers):
    from .settings import term_classes
    parser = _subcommand(
        subparsers, "fit", command_fit,
        help="fit a GAP to labelled structures",
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
    model.add_argument("--energy-sigma", type=_number(above=0, unit=" eV/atom"),
                       help="expected energy error, eV/atom (default 0.002)")
    model.add_argument("--force-sigma", type=_number(above=0, unit=" eV/Å"),
                       help="expected force error, eV/Å (default 0.05)")
    model.add_argument("--virial-sigma", type=_number(above=0, unit=" eV/atom"),
                       help="expected virial error, eV/atom (default 0.05)")
    model.add_argument("--e0", help="isolated-atom energies: 'average', 'isolated', or SYMBOL=eV,... "
                                    "(default: average)")
    model.add_argument("--sparse-jitter", type=NON_NEGATIVE,
                       help="relative jitter on K_MM (default 1e-8)")
    model.add_argument("--no-forces", dest="fit_forces", action="store_false", default=None,
                       help="do not fit forces")
    model.add_argument("--no-virial", dest="fit_virial", action="store_false", default=None,
                       help="do not fit stresses/virials")
    model.add_argument("--seed", type=SEED, help="random seed of the sparse-point selection")
    model.add_argument("--n-jobs", type=_number(integer=True, not_zero=True),
                       help="worker processes (default: this process)")
    _common(parser)


def _add_eval(subparsers):
    parser = _subcommand(
        subparsers, "eval", command_eval,
        help="errors of a model on labelled data, with parity plots; physical properties",
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
    group.add_argument("--md-time", type=_number(above=0, unit=" ps"), default=2.0, metavar="PS",
                       help="length of the MD stability run, ps (default 2)")
    group.add_argument("--md-temperature", type=_number(above=0, unit=" K"), default=300.0,
                       metavar="K",
                       help="temperature of the MD stability run, K (default 300)")
    _read_options(parser)
    _common(parser)


def _add_md(subparsers):
    from ..md.dynamics import ENSEMBLES
    parser = _subcommand(
        subparsers, "md", command_md,
        help="molecular dynamics with a model",
        description="Run NVE (velocity Verlet), NVT (Langevin) or NPT (isotropic MTK barostat with "
                    "Nosé-Hoover chains) MD with ASE, writing an extended-XYZ trajectory and a log.")
    parser.add_argument("model", help="model file written by gapfit fit")
    parser.add_argument("structure", help="starting structure (any ASE-readable file)")
    parser.add_argument("--index", help="which configuration of the file (default: last; "
                                        "or give it as structure.xyz@INDEX)")
    parser.add_argument("--repeat", nargs=3, type=COUNT, metavar=("NA", "NB", "NC"),
                        help="replicate the structure into a supercell first")
    parser.add_argument("--ensemble", choices=ENSEMBLES, default="nvt", help="default: nvt")
    parser.add_argument("--steps", type=COUNT, default=1000, help="number of steps (default 1000)")
    parser.add_argument("--timestep", type=_number(above=0, unit=" fs"), default=1.0,
                        help="time step, fs (default 1)")
    parser.add_argument("--temperature", type=_number(at_least=0, unit=" K"), default=300.0,
                        help="thermostat target, K (default 300)")
    parser.add_argument("--init-temperature", type=_number(at_least=0, unit=" K"),
                        help="temperature of the initial velocities, K (default: --temperature)")
    parser.add_argument("--keep-velocities", action="store_true",
                        help="start from the momenta stored in the structure file, if any")
    parser.add_argument("--pressure", type=FINITE, default=0.0, help="NPT pressure, GPa (default 0)")
    parser.add_argument("--friction", type=_number(above=0, unit=" 1/fs"), default=0.01,
                        help="Langevin friction, 1/fs (default 0.01)")
    parser.add_argument("--tdamp", type=_number(above=0, unit=" fs"),
                        help="NPT thermostat time, fs (default 100 steps)")
    parser.add_argument("--pdamp", type=_number(above=0, unit=" fs"),
                        help="NPT barostat time, fs (default 1000 steps)")
    parser.add_argument("--interval", type=COUNT, default=10,
                        help="steps between log lines and trajectory frames (default 10)")
    parser.add_argument("--seed", type=SEED, help="random seed of the velocities and Langevin noise")
    parser.add_argument("--uncertainty", action="store_true",
                        help="also predict force uncertainties and log the largest (slower)")
    parser.add_argument("-o", "--trajectory", default="md.xyz",
                        help="extended-XYZ trajectory (default md.xyz)")
    parser.add_argument("--log", default="md.log", help="text log (default md.log)")
    _common(parser)


def _add_select(subparsers):
    parser = _subcommand(
        subparsers, "select", command_select,
        help="pick the most uncertain configurations of a pool",
        description="Choose the n configurations of a pool the model is least sure about "
                    "(gapfit.active.select) and write them for labelling.")
    parser.add_argument("model", help="model file written by gapfit fit")
    parser.add_argument("pool", help="candidate structures (extended XYZ, anything ASE reads, or "
                                     "mlearn JSON; file.xyz@:100 takes a slice)")
    parser.add_argument("-n", type=COUNT, required=True, help="how many configurations to pick")
    parser.add_argument("-o", "--output", default="selected.xyz",
                        help="extended XYZ of the chosen configurations (default selected.xyz)")
    parser.add_argument("--strategy", default="uncertainty",
                        help="uncertainty (the n largest scores), batch (greedy, near-duplicates of a "
                             "pick lose their score), coverage (greedy on the expected drop of the "
                             "whole pool's variance) or random (default: uncertainty)")
    parser.add_argument("--score", default="forces",
                        help="forces (largest force-component std) or energy (energy std per atom); "
                             "default: forces")
    parser.add_argument("--seed", type=SEED, help="random seed (strategy random)")
    _read_options(parser)
    _common(parser)


def _add_otf(subparsers):
    parser = _subcommand(
        subparsers, "otf", command_otf,
        help="on-the-fly learning along an MD schedule, calling an oracle when unsure",
        description="Drive MD with a GAP through a temperature/pressure schedule; label the frames "
                    "whose force uncertainty exceeds the threshold with the oracle (an ASE "
                    "calculator), learn them and go on (gapfit.on_the_fly). Writes the final model "
                    "(model.gap) and every labelled frame (labelled.xyz) to the run folder; after "
                    "an interruption the same command continues the run.")
    parser.add_argument("settings", help="settings file (TOML)")
    parser.add_argument("-o", "--output", help="run folder (default: the settings' output)")
    parser.add_argument("--max-calls", type=int, help="budget of oracle calls (overrides the file)")
    _common(parser)


def _add_export(subparsers):
    parser = _subcommand(
        subparsers, "export", command_export,
        help="write a model as a gap_fit XML file (quippy, LAMMPS pair_style quip)",
        description="Write a fitted model whose terms are QUIP-representable (QuipSOAP, "
                    "QuipDistance2b, QuipAngle3b, TwoBody) as a gap_fit XML file plus its "
                    "sparseX files, for quippy's Potential and LAMMPS pair_style quip.")
    parser.add_argument("model", help="model file written by gapfit fit (or a gap_fit XML)")
    parser.add_argument("-o", "--output", required=True, help="XML file to write")
    parser.add_argument("--label", help="GAP label (Potential xml_label=...); default GAP_gapfit")
    _common(parser)


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
    _add_otf(subparsers)
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
    try:
        e0 = _parse_e0(args.e0) if args.e0 is not None else None
    except ValueError as error:
        raise UsageError(str(error)) from None
    gap = {"energy_sigma": args.energy_sigma, "force_sigma": args.force_sigma,
           "virial_sigma": args.virial_sigma, "sparse_jitter": args.sparse_jitter,
           "fit_forces": args.fit_forces, "fit_virial": args.fit_virial,
           "random_state": args.seed, "n_jobs": args.n_jobs, "e0": e0}
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
            try:
                settings["terms"] = fs.set_term_parameters(
                    terms, name, fs.parse_assignments(assignments, f"--{name} setting"))
            except ValueError as error:  # a bad value typed on the command line
                raise UsageError(str(error)) from None
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


def _save_or_keep(model, output):
    """Save ``model`` to ``output``; if that fails, save it in the current folder or the temporary
    folder instead and raise an OSError that says where it is."""
    import tempfile
    try:
        model.save(output)
        return
    except OSError as error:
        problem = _one_line(error)
    for folder in (Path.cwd(), Path(tempfile.gettempdir())):
        kept = folder / Path(output).name
        if kept.resolve() == Path(output).resolve() or kept.exists():  # never overwrite a file
            kept = folder / f"{kept.stem}-{os.getpid()}{kept.suffix}"
        try:
            model.save(kept)
        except OSError:
            continue
        raise OSError(f"{problem}; the fitted model was saved to {kept} instead")
    raise OSError(f"{problem}; the fitted model could not be saved anywhere (tried the current and "
                  "the temporary folder)")


def command_fit(args):
    from ..structures.atomic_files import check_writable
    from .logging_setup import show_progress
    from .settings import explicit_settings, fit_from_settings, to_toml
    settings = fit_settings(args)
    if args.print_settings:
        sys.stdout.write(to_toml(explicit_settings(settings)))
        return 0
    check_writable(settings["output"])  # before any work, so a fit is never lost to a bad path
    model = fit_from_settings(settings, verbose=show_progress(args.quiet))
    model.set_params(verbose=False)
    if hasattr(model, "recipe_"):
        print(model.recipe_.format_table())
    _save_or_keep(model, settings["output"])
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
    from ..evaluate.errors import (QUANTITIES, describe_label_gaps, format_report, json_safe,
                                   label_gaps, parity_data, report)
    from ..evaluate.plots import evaluation_plots
    from .settings import read_structures
    from ..structures.atomic_files import check_writable
    if not args.data and args.properties is None:
        raise ValueError("nothing to evaluate: give labelled data files, --properties, or both")
    if args.json:
        check_writable(args.json)
    model = load(args.model)
    document = {"model": str(args.model)}
    if args.data:
        structures = []
        for path in args.data:
            found = read_structures([path], _read_only_settings(args), species=model.species_)
            gaps = describe_label_gaps(label_gaps(found), len(found))
            if gaps:
                log.warning("%s: %s; those labels are left out of the errors", path, gaps)
            structures += found
        data = parity_data(model, structures)
        if not any(data.series(q).reference.size for q in QUANTITIES):
            raise ValueError(f"{', '.join(args.data)}: nothing to evaluate: no configuration has a "
                             "usable reference energy, forces or stress (see the warnings above)")
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
        atoms, primitive = _starting_structure(args.properties, None, None), None
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
    from ..structures import io
    if index is None and io.split_selection(path)[1] is None:
        index = "-1"
    try:
        found = io.read(path, index=index)
    except IndexError as error:
        raise ValueError(f"{path}: no configuration {index} ({error})") from None
    if len(found) != 1:
        raise ValueError(f"{path}{'' if index is None else f' --index {index}'}: selects "
                         f"{len(found)} structures; give one index")
    atoms = found[0]
    atoms.calc = None
    return atoms.repeat(repeat) if repeat else atoms


def command_md(args):
    from tqdm.contrib.logging import logging_redirect_tqdm

    from .. import GAPCalculator, load
    from .logging_setup import show_progress
    from ..md.dynamics import run_md, summarise_md
    from ..structures.atomic_files import check_writable
    for output in (args.trajectory, args.log):
        check_writable(output)
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
    from ..structures.atomic_files import check_writable
    from .settings import read_structures
    check_writable(args.output)
    model = load(args.model)
    pool = read_structures([args.pool], _read_only_settings(args))
    if not 0 < args.n <= len(pool):
        raise ValueError(f"-n must be between 1 and the pool size ({len(pool)}), not {args.n}")
    indices = [int(i) for i in active.select(model, pool, args.n, strategy=args.strategy,
                                             score=args.score, random_state=args.seed)]
    chosen = [pool[i] for i in indices]
    print("selected configurations (index in the pool): " + " ".join(map(str, indices)))
    io.write(args.output, chosen)
    log.info("%d configurations written to %s", len(chosen), args.output)
    return 0


# ----------------------------------------------------------------------------- otf
def command_otf(args):
    from .otf_settings import build_run, read_otf_settings
    run = build_run(read_otf_settings(args.settings), output=args.output,
                    max_oracle_calls=args.max_calls)
    result = run.run()
    print(f"on the fly: {result.reason}; {result.oracle_calls} oracle calls, {result.refits} "
          f"refits; model {result.directory / 'model.gap'}, labelled frames "
          f"{result.directory / 'labelled.xyz'}")
    return 0


# ----------------------------------------------------------------------------- main
def _one_line(error):
    standard = {FileNotFoundError: "no such file or directory",
                IsADirectoryError: "is a directory, not a file", PermissionError: "permission denied"}
    if isinstance(error, OSError) and error.filename:
        reason = error.strerror
        if not reason or (error.errno is not None and reason == os.strerror(error.errno)):
            reason = standard.get(type(error), reason)  # the system's words, unless gapfit's own
        if reason:
            return f"{error.filename}: {reason}"
    return " ".join(str(error).split()) or type(error).__name__


def main(argv=None):
    """Run the ``gapfit`` command; returns the exit status (0 success, 1 error, 2 usage, 130 Ctrl-C)."""
    from .logging_setup import command_logging
    args = build_parser().parse_args(argv)
    with command_logging(args.verbose, args.quiet):
        return _run(args)


def _run(args):
    """The command's handler, with its errors (a ModelFileError is a ValueError) turned into
    one-line messages and exit codes."""
    try:
        return args.handler(args)
    except UsageError as error:
        print(f"gapfit {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gapfit: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as error:
        if args.verbose:
            log.exception("details")
        print(f"gapfit {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
