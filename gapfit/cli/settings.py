"""Fit settings as data: read from TOML or YAML, merged with overrides, turned into a GAP.

A settings file makes a fit reproducible. It holds up to six entries (all optional)::

    train = ["cu_train.xyz"]      # training files; relative paths are relative to this file
    validate = ["cu_test.xyz"]    # files whose errors are printed after the fit
    output = "cu.gap"             # model file to write

    [read]                        # how labels are read (see gapfit.io.read)
    energy_key = "energy"         # also forces_key, stress_key, virial_key,
    format = "extxyz"             # and format: any ASE format name, or "mlearn" (JSON)

    [gap]                         # parameters of gapfit.GAP other than terms
    energy_sigma = 0.002          # eV/atom
    force_sigma = 0.05            # eV/Å
    random_state = 0

    [[terms]]                     # one table per term, in order; type names a class
    type = "TwoBody"              # of gapfit.model.terms, the other keys its parameters
    cutoff = 5.0

    [[terms]]
    type = "SOAP"
    n_sparse = 500

YAML files (``.yaml``/``.yml``, read when PyYAML is installed) hold the same
structure. ``merge_settings`` applies overrides (as given on a command line),
``build_model`` makes the estimator, ``to_toml`` writes settings back as TOML.
"""
import math
import tomllib
from pathlib import Path

TOP_LEVEL_KEYS = ("train", "validate", "output", "read", "gap", "terms")
READ_KEYS = ("energy_key", "forces_key", "stress_key", "virial_key", "format")
PATH_KEYS = ("train", "validate", "output")


def term_classes():
    """{lower-case name: class} of every term that ``gapfit.model.terms`` defines."""
    from ..model import quip_terms  # noqa: F401  (importing it registers QUIP's terms)
    from ..model.terms import TERM_CLASSES
    return {name.lower(): cls for name, cls in TERM_CLASSES.items()}


def term_class(name):
    """The term class called ``name`` (case-insensitive), else ValueError listing the known ones."""
    classes = term_classes()
    cls = classes.get(str(name).lower())
    if cls is None:
        known = ", ".join(cls.__name__ for cls in classes.values())
        raise ValueError(f"unknown term type {name!r} (known: {known})")
    return cls


def gap_parameter_names():
    """Parameters of ``gapfit.GAP`` a settings file may set (all but ``terms``)."""
    from ..model.estimator import GAP
    return sorted(name for name in GAP().get_params(deep=False) if name != "terms")


# ----------------------------------------------------------------------------- reading
def read_settings(path):
    """Settings of a TOML (or, with PyYAML, YAML) file, validated, paths made absolute.

    Relative paths under ``train``, ``validate`` and ``output`` are taken relative
    to the file's folder, so a fit reads the same data from any working directory.
    Raises FileNotFoundError, or ValueError naming the file and the problem.
    """
    path = Path(path)
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        settings = _parse_yaml(text, path)
    else:
        try:
            settings = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"{path}: not a valid TOML settings file ({error})") from None
    settings = validate_settings(settings or {}, source=str(path))
    return _resolve_paths(settings, path.resolve().parent)


def _parse_yaml(text, path):
    try:
        import yaml
    except ImportError:
        raise ValueError(f"{path}: YAML settings need PyYAML (pip install pyyaml), or use TOML") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        problem = " ".join(str(error).split())
        raise ValueError(f"{path}: not a valid YAML settings file ({problem})") from None


def _resolve_paths(settings, folder):
    resolved = dict(settings)
    for key in ("train", "validate"):
        if key in resolved:
            resolved[key] = [str(folder / item) for item in resolved[key]]
    if "output" in resolved:
        resolved["output"] = str(folder / resolved["output"])
    return resolved


def _unknown(keys, known, where, source):
    unknown = sorted(set(keys) - set(known))
    if unknown:
        raise ValueError(f"{source}: {where} has unknown setting{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(map(repr, unknown))} (known: {', '.join(known)})")


def _as_path_list(value, key, source):
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    raise ValueError(f"{source}: {key} must be a file name or a list of file names, not {value!r}")


def validate_settings(settings, source="settings"):
    """A checked copy of a settings mapping (see the module docstring for its layout).

    Unknown keys, unknown term types and unknown term parameters raise
    ValueError naming ``source`` and the offending key.
    """
    if not isinstance(settings, dict):
        raise ValueError(f"{source}: settings must be a table (mapping), not {type(settings).__name__}")
    _unknown(settings, TOP_LEVEL_KEYS, "the top level", source)
    checked = {}
    for key in ("train", "validate"):
        if key in settings:
            checked[key] = _as_path_list(settings[key], key, source)
    if "output" in settings:
        if not isinstance(settings["output"], str):
            raise ValueError(f"{source}: output must be a file name, not {settings['output']!r}")
        checked["output"] = settings["output"]
    for key, known in (("read", READ_KEYS), ("gap", gap_parameter_names())):
        if key in settings:
            table = settings[key]
            if not isinstance(table, dict):
                raise ValueError(f"{source}: [{key}] must be a table, not {table!r}")
            _unknown(table, known, f"[{key}]", source)
            checked[key] = dict(table)
    if "terms" in settings:
        terms = settings["terms"]
        if not isinstance(terms, list) or not all(isinstance(t, dict) for t in terms):
            raise ValueError(f"{source}: terms must be a list of tables ([[terms]] in TOML)")
        checked["terms"] = [_checked_term(term, index, source) for index, term in enumerate(terms)]
    return checked


# term parameters that may be 0 (all other numeric ones must be > 0)
_MAY_BE_ZERO = {"l_max", "transition_width"}


def check_term_values(cls, params, where):
    """ValueError naming ``where`` and the parameter unless each numeric parameter of a term is a
    finite number of its default's type (an integer where the default is one), > 0 (>= 0 for
    l_max and transition_width). Other parameters are checked by the term itself."""
    defaults = cls().get_params(deep=False)
    for key, value in params.items():
        default = defaults.get(key)
        if value is None or key not in defaults:
            continue
        numeric = isinstance(default, (int, float)) and not isinstance(default, bool)
        if default is None and key.endswith("r_cut"):
            numeric = True
        if numeric:
            wants_int = isinstance(default, int)
            is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not is_number or (wants_int and not isinstance(value, int)):
                raise ValueError(f"{where}: {cls.__name__} {key} must be "
                                 f"{'an integer' if wants_int else 'a number'}, not {value!r}")
            if not math.isfinite(value) or value < 0 or (value == 0 and key not in _MAY_BE_ZERO):
                bound = ">= 0" if key in _MAY_BE_ZERO else "> 0"
                raise ValueError(f"{where}: {cls.__name__} {key} must be a finite number {bound}, "
                                 f"not {value!r}")


def _checked_term(term, index, source):
    if "type" not in term:
        raise ValueError(f"{source}: terms[{index}] has no type (e.g. type = \"SOAP\")")
    try:
        cls = term_class(term["type"])
    except ValueError as error:
        raise ValueError(f"{source}: terms[{index}]: {error}") from None
    known = sorted(cls().get_params(deep=False))
    params = {key: value for key, value in term.items() if key != "type"}
    _unknown(params, known, f"terms[{index}] ({cls.__name__})", source)
    check_term_values(cls, params, f"{source}: terms[{index}]")
    return {"type": cls.__name__, **params}


# ----------------------------------------------------------------------------- overrides
def parse_value(text):
    """A command-line value as TOML reads it (number, bool, string, list), else the bare string."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def parse_assignments(items, what="setting"):
    """{key: value} of ``KEY=VALUE`` strings (values through ``parse_value``)."""
    result = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{what} {item!r} is not of the form KEY=VALUE")
        result[key.strip()] = parse_value(value.strip())
    return result


def merge_settings(base, overrides):
    """Settings ``base`` with ``overrides`` applied (both validated mappings).

    ``train``, ``validate``, ``output`` and ``terms`` in ``overrides`` replace
    the base's; ``read`` and ``gap`` tables are updated key by key.
    Returns a new mapping.
    """
    merged = {key: (dict(value) if isinstance(value, dict) else
                    [dict(t) if isinstance(t, dict) else t for t in value] if isinstance(value, list)
                    else value)
              for key, value in base.items()}
    for key, value in overrides.items():
        if key in ("read", "gap"):
            merged[key] = {**merged.get(key, {}), **value}
        else:
            merged[key] = value
    return merged


def select_terms(settings, names):
    """Term tables for the term types ``names`` (in that order), keeping settings of types already there."""
    existing = {term["type"].lower(): term for term in settings.get("terms", default_term_tables())}
    tables = []
    for name in names:
        cls = term_class(name)
        tables.append(dict(existing.get(cls.__name__.lower(), {"type": cls.__name__})))
    return tables


def set_term_parameters(terms, type_name, parameters):
    """Term tables with ``parameters`` set on the term of type ``type_name`` (which must be present)."""
    cls = term_class(type_name)
    matching = [term for term in terms if term["type"].lower() == cls.__name__.lower()]
    if not matching:
        present = ", ".join(term["type"] for term in terms) or "none"
        raise ValueError(f"settings given for {cls.__name__} but the fit has no {cls.__name__} term "
                         f"(terms: {present})")
    known = sorted(cls().get_params(deep=False))
    _unknown(parameters, known, cls.__name__, "command line")
    check_term_values(cls, parameters, f"--{cls.__name__.lower()}")
    return [{**term, **parameters} if any(term is m for m in matching) else dict(term)
            for term in terms]


def default_term_tables():
    """Term tables of the library's default recipe (``gapfit.model.terms.default_terms``)."""
    from ..model.terms import default_terms
    return [{"type": type(term).__name__} for term in default_terms()]


# ----------------------------------------------------------------------------- building
def build_terms(term_tables):
    """Term objects of a list of term tables."""
    return [term_class(table["type"])(**{k: v for k, v in table.items() if k != "type"})
            for table in term_tables]


def build_model(settings):
    """A ``gapfit.GAP`` (not fitted) with the ``gap`` parameters and ``terms`` of ``settings``.

    Without ``terms`` the library's default recipe is used.
    """
    from ..model.estimator import GAP
    parameters = dict(settings.get("gap", {}))
    if isinstance(parameters.get("config_type_sigma"), dict):
        parameters["config_type_sigma"] = {key: tuple(value) for key, value
                                           in parameters["config_type_sigma"].items()}
    terms = build_terms(settings["terms"]) if "terms" in settings else None
    return GAP(terms=terms, **parameters)


def read_options(settings):
    """Keyword arguments of ``gapfit.io.read`` from the ``read`` table (``format`` excluded)."""
    table = settings.get("read", {})
    return {key: table[key] for key in READ_KEYS if key != "format" and table.get(key) is not None}


def read_structures(paths, settings=None, species=None):
    """Labelled structures of all ``paths``, in order, read as the ``read`` table says.

    Every path goes through ``gapfit.io.read`` (format "mlearn", or a ``.json`` file holding a
    list with no format given, is mlearn JSON; ``file.xyz@:5`` selects configurations).
    species : atomic numbers or symbols a model knows; if given, every file's
    structures are checked (``gapfit.checks.check_structures``) and a problem
    raises ValueError naming the file and the configuration.
    """
    from ..structures import io
    from ..structures.checks import check_structures
    settings = settings or {}
    file_format = settings.get("read", {}).get("format")
    structures = []
    for path in paths:
        found = io.read(path, format=file_format, **read_options(settings))
        if species is not None:
            try:
                check_structures(found, species=species)
            except ValueError as error:
                raise ValueError(f"{path}: {error}") from None
        structures += found
    return structures


def settings_of_model(model):
    """Settings (``gap`` and ``terms`` tables) that rebuild an estimator like ``model``."""
    parameters = model.get_params(deep=False)
    terms = parameters.pop("terms")
    settings = {"gap": {key: value for key, value in parameters.items() if value is not None}}
    if terms is not None:
        settings["terms"] = [{"type": type(term).__name__, **term.get_params(deep=False)}
                             for term in terms]
    return settings


def explicit_settings(settings):
    """``settings`` with every GAP and term parameter written out (library defaults filled in).

    A file written from this does not depend on the defaults of a later gapfit version.
    ``verbose`` is left out (it changes messages, not the fit).
    """
    model = build_model(settings)
    if model.terms is None:
        model.set_params(terms=build_terms(default_term_tables()))
    filled = {key: value for key, value in settings.items() if key not in ("gap", "terms")}
    filled.update(settings_of_model(model))
    filled["gap"].pop("verbose", None)
    return filled


# ----------------------------------------------------------------------------- writing
def _toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return ("-" if value < 0 else "") + ("nan" if math.isnan(value) else "inf")
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise ValueError(f"cannot write {value!r} ({type(value).__name__}) to TOML")


def _toml_key(key):
    key = str(key)
    if key and all(c.isalnum() or c in "_-" for c in key):
        return key
    return _toml_value(key)


def to_toml(settings):
    """TOML text of a settings mapping (``None`` values are left out); ``tomllib`` reads it back."""
    lines = []
    for key in ("train", "validate", "output"):
        if settings.get(key) is not None:
            lines.append(f"{key} = {_toml_value(settings[key])}")
    for table in ("read", "gap"):
        entries = {k: v for k, v in settings.get(table, {}).items() if v is not None}
        if entries:
            lines += ["", f"[{table}]"] + [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in entries.items()]
    for term in settings.get("terms", []):
        defaults = term_class(term["type"])().get_params(deep=False)
        for key, value in term.items():
            if value is None and defaults.get(key) is not None:
                raise ValueError(f"{term['type']}.{key} = None cannot be written to TOML (it has no "
                                 f"null, and leaving it out would mean the default {defaults[key]!r})")
        lines += ["", "[[terms]]"] + [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in term.items()
                                      if v is not None]
    return "\n".join(lines).lstrip("\n") + "\n"


# ----------------------------------------------------------------------------- fitting
def fit_from_settings(settings, verbose=False):
    """Read the ``train`` files, build the model of ``settings`` and fit it; returns the fitted GAP.

    verbose : progress bars during the fit (the model's ``verbose`` parameter).
    """
    import logging
    import time
    log = logging.getLogger(__name__)
    if not settings.get("train"):
        raise ValueError("no training files given (on the command line or as train = [...] in the "
                         "settings file)")
    from ..structures.checks import check_labels
    model = build_model(settings)
    structures = []
    for path in settings["train"]:
        found = read_structures([path], settings)
        try:
            check_labels(found, need_forces=model.fit_forces)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
        structures += found
    log.info("read %d configurations (%d atoms) from %s", len(structures),
             sum(len(atoms) for atoms in structures), ", ".join(map(str, settings["train"])))
    model.set_params(verbose=bool(verbose))
    start = time.perf_counter()
    model.fit(structures)
    log.info("fitted %s in %.1f s", ", ".join(f"{type(t).__name__} ({t.n_sparse_points} sparse points)"
                                               for t in model.terms_), time.perf_counter() - start)
    return model
