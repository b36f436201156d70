"""``gapfit.load``: a fitted GAP from a gapfit model file or from a gap_fit XML model.

Files whose name ends in ``.xml`` (or that start with ``<``) are gap_fit models, read by
``gapfit.model.quip_xml.read_gap_xml`` (md5-checked sparseX files) into QUIP terms; anything
else is a gapfit model file (``gapfit.model.model_file``).
"""
from pathlib import Path

from .estimator import GAP, load_model
from .quip_model import fitted_terms_from_record
from .quip_xml import read_gap_xml


def is_gap_xml(path):
    """True for a gap_fit XML model: ``.xml`` suffix, or a file that starts with '<'."""
    path = Path(path)
    if path.suffix.lower() == ".xml":
        return True
    try:
        with open(path, "rb") as stream:
            return stream.read(64).lstrip().startswith(b"<")
    except OSError:
        return False


def load_gap_xml(path):
    """A fitted ``GAP`` of a gap_fit XML model (raises ``QuipModelError`` on what it cannot
    represent). The model predicts energies, forces and stresses as quippy does; it has no
    posterior (the file carries none) and cannot be updated."""
    record = read_gap_xml(path)
    terms, fitted, alpha, species, e0 = fitted_terms_from_record(record, path)
    model = GAP(terms=terms, e0=e0)
    model.species_ = species
    model.e0_ = e0
    model.terms_ = fitted
    model.alpha_ = alpha
    model.n_training_structures_ = 0
    model.quip_label_ = record.label
    model.quip_gap_version_ = record.gap_version
    model.quip_command_line_ = record.command_line
    model.source_ = str(path)
    return model


def load(path):
    """A fitted ``GAP`` from ``path``: a gapfit model file or a gap_fit XML model."""
    if is_gap_xml(path):
        return load_gap_xml(path)
    return load_model(path)
