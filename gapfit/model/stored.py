"""What a model file holds for a GAP: its settings, species, e0, noise model, fitted terms,
recipe and arrays, and the GAP rebuilt from them (the file format itself is ``model_file``)."""
import numpy as np

from ..fit.baselines import ZBL, make_repulsion
from ..fit.noise import NoiseModel
from .model_file import ModelFileError
from .recipe import RecipeReport
from .terms import term_class, term_from_record, term_record


def repulsion_record(setting):
    """The JSON form of a ``GAP(repulsion=...)`` setting: a name, None, or a ZBL record."""
    if isinstance(setting, ZBL):
        return {"class": "ZBL", "params": setting.get_params(deep=False)}
    return setting


def repulsion_from_record(record):
    """The ``repulsion`` setting of a ``repulsion_record``."""
    if isinstance(record, dict):
        if record.get("class") != "ZBL":
            raise ModelFileError(f"unknown repulsion class {record.get('class')!r} in model file")
        return ZBL(**record["params"])
    return record


def model_arrays(model):
    """{name: ndarray} of a fitted model: coefficients, R factor, sparse points, term state."""
    arrays = {"alpha": model.alpha_, "factor": model.factor_}
    for index, term in enumerate(model.terms_):
        arrays[f"term{index}_sparse_points"] = term.sparse_points_
        arrays[f"term{index}_sparse_channels"] = term.sparse_channels_
        for name, value in term.state_arrays().items():
            arrays[f"term{index}_state_{name}"] = value
    # what ``update`` needs to add data later (on the fly): the per-kind data R factors
    for kind, factor in getattr(model, "data_factors_", {}).items():
        arrays.update(factor_arrays(kind, factor))
    return arrays


def factor_arrays(kind, factor):
    """A square upper-triangular R factor as its packed upper triangle (half the bytes),
    any other as it is."""
    factor = np.asarray(factor)
    if factor.ndim == 2 and factor.shape[0] == factor.shape[1] and not np.tril(factor, -1).any():
        return {f"data_triangle_{kind}": factor[np.triu_indices(len(factor))]}
    return {f"data_factor_{kind}": factor}


def stored_factors(arrays):
    """{kind: R factor} of the arrays ``factor_arrays`` wrote, in their stored order."""
    factors = {}
    for name, value in arrays.items():
        if name.startswith("data_factor_"):
            factors[name[len("data_factor_"):]] = value
        elif name.startswith("data_triangle_"):
            size = int(round((np.sqrt(8 * len(value) + 1) - 1) / 2))
            factor = np.zeros((size, size))
            factor[np.triu_indices(size)] = value
            factors[name[len("data_triangle_"):]] = factor
    return factors


def model_header(model):
    """The JSON-ready header of a fitted model: settings, species, e0 and the fitted record."""
    params = model.get_params(deep=False)
    params["terms"] = (None if model.terms is None
                       else [term_record(term) for term in model.terms])
    params["repulsion"] = repulsion_record(params.get("repulsion"))
    if not isinstance(params.get("random_state"), (int, type(None))):
        params["random_state"] = None
    return {
        "settings": params, "species": model.species_,
        "e0": {str(z): value for z, value in model.e0_.items()},
        "noise": model.noise_.to_dict(),
        "fitted_terms": [term_record(term) for term in model.terms_],
        "fitted_deltas": [term.delta_ for term in model.terms_],
        "force_score_scale": getattr(model, "force_score_scale_", None),
        "recipe": model.recipe_.to_dict() if hasattr(model, "recipe_") else None,
        "n_training_structures": model.n_training_structures_,
        "shortest_distances": [[z_i, z_j, r] for (z_i, z_j), r in
                               sorted(getattr(model, "shortest_distances_", {}).items())],
    }


def check_known_settings(estimator_class, path, header, settings):
    """ModelFileError naming the writer's gapfit version and any setting this version lacks."""
    from .. import __version__
    unknown = sorted(set(settings) - set(estimator_class().get_params(deep=False)))
    for record in (settings.get("terms") or []) + header.get("fitted_terms", []):
        cls = term_class(record.get("class", ""))
        if cls is None:
            unknown.append(f"term type {record.get('class')}")
        else:
            unknown += [f"{cls.__name__}.{name}" for name in sorted(
                set(record.get("params", {})) - set(cls().get_params(deep=False)))]
    unknown = list(dict.fromkeys(unknown))
    if unknown:
        plural = "s" if len(unknown) > 1 else ""
        raise ModelFileError(
            f"{path}: written by gapfit {header.get('gapfit_version', 'of unknown version')} with "
            f"setting{plural} {', '.join(map(repr, unknown))} that this gapfit ({__version__}) does "
            "not know; upgrade gapfit to read it")


def model_from_file_contents(estimator_class, path, header, arrays):
    """A fitted ``estimator_class`` (``GAP``) from a model file's checked header and arrays."""
    settings = dict(header["settings"])
    check_known_settings(estimator_class, path, header, settings)
    if settings["terms"] is not None:
        settings["terms"] = [term_from_record(record) for record in settings["terms"]]
    # files written before the repulsion setting existed were fitted without one
    settings["repulsion"] = repulsion_from_record(settings.get("repulsion"))
    model = estimator_class(**settings)
    model.species_ = [int(z) for z in header["species"]]
    model.e0_ = {int(z): float(v) for z, v in header["e0"].items()}
    # files before fitted terms were stored separately: the settings' terms were the fitted ones
    fitted = [term_from_record(record)
              for record in header.get("fitted_terms", header["settings"]["terms"])]
    model.terms_ = [term.build(model.species_) for term in fitted]
    # files before the noise model and fitted deltas were stored: the settings are the fit
    model.noise_ = (NoiseModel.from_dict(header["noise"]) if "noise" in header else
                    NoiseModel(model.energy_sigma, model.force_sigma, model.virial_sigma,
                               model.config_type_sigma))
    for term, delta in zip(model.terms_, header.get("fitted_deltas", [])):
        term.delta_ = float(delta)
    if header.get("recipe"):
        model.recipe_ = RecipeReport.from_dict(header["recipe"])
    for index, term in enumerate(model.terms_):
        term.set_sparse(arrays[f"term{index}_sparse_points"], arrays[f"term{index}_sparse_channels"])
        prefix = f"term{index}_state_"
        state = {name[len(prefix):]: value for name, value in arrays.items() if name.startswith(prefix)}
        if state:
            term.restore_state(state)
    model.alpha_ = arrays["alpha"]
    model.factor_ = arrays["factor"]
    model.n_training_structures_ = header["n_training_structures"]
    if header.get("force_score_scale") is not None:
        model.force_score_scale_ = float(header["force_score_scale"])
    factors = stored_factors(arrays)
    if factors:  # files before they were stored load as predict-only models
        model.data_factors_ = factors
    model.shortest_distances_ = {(int(z_i), int(z_j)): float(r)
                                 for z_i, z_j, r in header.get("shortest_distances", [])}
    if not model.shortest_distances_:
        if model.repulsion not in (None, False, "none"):
            raise ModelFileError(f"{path}: the model has a repulsion baseline but no shortest "
                                 "training distances")
        model.repulsion_ = None
    else:
        model.repulsion_ = make_repulsion(model.repulsion, model.shortest_distances_)
    return model
