"""Settings of an on-the-fly run (``gapfit otf``): a TOML file read, checked and turned into an ``OnTheFlyRun``.

Layout (paths relative to the settings file)::

    start = "start.xyz"                 # start structures (any ASE-readable file, all frames)
    model = "model.gap"                 # optional: a model to continue; without it the
                                        # [gap] and [[terms]] recipe is fitted to the
                                        # oracle-labelled start structures
    training = ["train.xyz"]            # optional: the model's training data (allows refits)
    output = "otf_run"                  # run folder (default: otf_run)

    [oracle]                            # an importable ASE calculator and its arguments
    calculator = "ase.calculators.emt:EMT"   # module:Class, or module:factory function
    arguments = {}                      # keyword arguments of that call

    [learning]                          # every entry optional (OnTheFlyRun parameters)
    threshold = 3.0                     # in multiples of the model's force sigma ...
    threshold_unit = "sigma"            # ... or "eV/A" for an absolute force std
    calibration = "errors"              # scale the std by the errors met at the calls, or "none"
    score = "forces"                    # or "forces_rms"
    uncertainty = "full"                # or "local" (the calculator's cheap uncertainty)
    check_every = 1                     # MD steps between uncertainty checks
    max_oracle_calls = 200              # budget (start labels included)
    refit = "auto"                      # or "never"
    refit_growth = 2.0                  # also refit when the data doubled since the last fit
    min_call_interval = 1               # MD steps after an oracle call without a check
    label_new_structures = false        # label a stage's new start structure at its step 0
    label_start = true                  # default: only without a model
    checkpoint_every = 10
    trajectory_every = 10
    seed = 0

    [[stages]]                          # one table per stage, in order
    ensemble = "nvt"                    # nvt (Langevin), npt (MTK) or nve
    temperature = 300.0                 # K
    steps = 1000
    timestep = 1.0                      # fs (default 1)
    pressure = 0.0                      # GPa, npt only
    friction = 0.01                     # 1/fs, nvt only
    structure = 0                       # optional: begin from this start structure

    [gap]                               # the recipe when there is no model: as in gapfit fit
    force_sigma = 0.05
    [[terms]]
    type = "SOAP"
"""
import importlib
import tomllib
from pathlib import Path

TOP_LEVEL_KEYS = ("start", "model", "training", "output", "oracle", "learning", "stages", "gap",
                  "terms", "read")
ORACLE_KEYS = ("calculator", "arguments")
LEARNING_KEYS = ("threshold", "threshold_unit", "calibration", "score", "uncertainty",
                 "check_every", "max_oracle_calls", "refit", "label_start", "checkpoint_every",
                 "trajectory_every", "max_temperature_factor", "min_distance", "refit_growth",
                 "label_every", "min_call_interval", "label_new_structures", "seed")
STAGE_KEYS = {"ensemble": "ensemble", "temperature": "temperature_K", "steps": "steps",
              "timestep": "timestep_fs", "pressure": "pressure_GPa", "friction": "friction_per_fs",
              "structure": "structure"}
LEARNING_NAMES = {"min_distance": "min_distance_A", "seed": "random_state"}


def _unknown(table, known, where, source):
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ValueError(f"{source}: {where} has unknown setting{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(map(repr, unknown))} (known: {', '.join(known)})")


def read_otf_settings(path):
    """The checked settings of a TOML file, with paths made absolute (relative to its folder)."""
    path = Path(path)
    try:
        settings = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: not a valid TOML settings file ({error})") from None
    return check_otf_settings(settings, source=str(path), folder=path.resolve().parent)


def check_otf_settings(settings, source="settings", folder="."):
    """A checked copy of an on-the-fly settings mapping (see the module docstring)."""
    from ..active.on_the_fly import Stage
    from .settings import validate_settings
    folder = Path(folder)
    _unknown(settings, TOP_LEVEL_KEYS, "the top level", source)
    if "start" not in settings:
        raise ValueError(f"{source}: no start structures (start = \"file\")")
    oracle = settings.get("oracle")
    if not isinstance(oracle, dict) or "calculator" not in oracle:
        raise ValueError(f"{source}: no oracle ([oracle] with calculator = \"module:Class\")")
    _unknown(oracle, ORACLE_KEYS, "[oracle]", source)
    if not isinstance(oracle.get("arguments", {}), dict):
        raise ValueError(f"{source}: [oracle] arguments must be a table of keyword arguments")
    learning = settings.get("learning", {})
    _unknown(learning, LEARNING_KEYS, "[learning]", source)
    stages = settings.get("stages")
    if not isinstance(stages, list) or not stages or not all(isinstance(s, dict) for s in stages):
        raise ValueError(f"{source}: no schedule ([[stages]] tables with temperature and steps)")
    checked_stages = []
    for index, stage in enumerate(stages):
        _unknown(stage, STAGE_KEYS, f"stage {index}", source)
        if "steps" not in stage:
            raise ValueError(f"{source}: stage {index} has no steps")
        try:
            checked_stages.append(Stage(**{STAGE_KEYS[key]: value for key, value in stage.items()}))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{source}: stage {index}: {error}") from None
    fit = validate_settings({key: settings[key] for key in ("gap", "terms", "read")
                             if key in settings}, source=source)
    training = settings.get("training")
    if isinstance(training, str):
        training = [training]
    return {"start": str(folder / settings["start"]),
            "model": str(folder / settings["model"]) if settings.get("model") else None,
            "training": [str(folder / item) for item in training] if training else None,
            "output": str(folder / settings.get("output", "otf_run")),
            "oracle": {"calculator": oracle["calculator"],
                       "arguments": dict(oracle.get("arguments", {}))},
            "learning": {LEARNING_NAMES.get(key, key): value for key, value in learning.items()},
            "stages": checked_stages, "fit": fit}


def import_object(spec, what="oracle calculator"):
    """The object named by "module:attribute" (attribute may be dotted)."""
    module_name, _, attribute = str(spec).partition(":")
    if not module_name or not attribute:
        raise ValueError(f"{what} {spec!r}: give it as module:Class or module:function")
    try:
        target = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"{what} {spec!r}: cannot import {module_name} ({error})") from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ValueError(f"{what} {spec!r}: {module_name} has no {attribute}")
        target = getattr(target, part)
    return target


def make_oracle(spec, arguments):
    """The ASE calculator that ``spec`` (module:Class or module:factory) returns for ``arguments``."""
    factory = import_object(spec)
    try:
        oracle = factory(**arguments)
    except TypeError as error:
        raise ValueError(f"oracle {spec}: bad arguments {arguments} ({error})") from None
    if not (hasattr(oracle, "get_potential_energy") and hasattr(oracle, "get_forces")):
        raise ValueError(f"oracle {spec}: {type(oracle).__name__} is not an ASE calculator")
    return oracle


def build_run(settings, output=None, max_oracle_calls=None):
    """The ``OnTheFlyRun`` of checked settings; ``output`` and ``max_oracle_calls`` override."""
    from .. import load
    from ..active.on_the_fly import OnTheFlyRun
    from .settings import build_model, read_structures
    import ase.io
    try:
        start = ase.io.read(settings["start"], index=":")
    except (FileNotFoundError, IsADirectoryError):
        raise
    except Exception as error:  # ASE raises many kinds for a malformed file
        raise ValueError(f"{settings['start']}: cannot read start structures "
                         f"({type(error).__name__}: {error})") from None
    for atoms in start:
        atoms.calc = None
    model = load(settings["model"]) if settings["model"] else None
    training = (read_structures(settings["training"], settings["fit"])
                if settings["training"] else None)
    learning = dict(settings["learning"])
    if max_oracle_calls is not None:
        learning["max_oracle_calls"] = max_oracle_calls
    oracle = make_oracle(settings["oracle"]["calculator"], settings["oracle"]["arguments"])
    recipe = build_model(settings["fit"]) if model is None else None
    return OnTheFlyRun(oracle, start, settings["stages"], output or settings["output"], model=model,
                       recipe=recipe, training=training, **learning)
