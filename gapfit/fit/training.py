"""The three map steps of a fit, as plain functions of one chunk so any backend can run them.

1. survey: check a chunk's structures and labels, report species, atom counts, energies;
2. sparse points, in two steps whose results merge pairwise (``gapfit.gp.sparse``):
   summarize_features (per-channel statistics) and propose_sparse (candidates);
   ``features`` (every descriptor vector of the chunk) serves in-memory selection;
3. factors: design rows of the chunk reduced to R factors (see ``gapfit.gp.linalg``),
   merged pairwise by combine_factors.
A chunk arrives as a payload: either the Atoms themselves or a file slice
that the worker reads, so a client need not ship the training set.
"""
from dataclasses import dataclass

import numpy as np

from ..gp import linalg as gp
from ..gp import sparse
from .assembly import design_rows, neighbor_lists
from ..structures.checks import check_labels, check_structures
from ..structures.voigt import virial_from_stress
from .noise import NoiseModel, voigt_sigmas


@dataclass
class Chunk:
    """Configurations ``first_index .. first_index + n - 1`` of the training set.

    Either ``structures`` (a list of Atoms) or ``path`` + ``start``/``stop`` +
    ``read_options`` (keyword arguments of ``gapfit.io.read``) is set.
    """

    first_index: int
    structures: list = None
    path: str = None
    start: int = 0
    stop: int = 0
    read_options: dict = None

    def load(self):
        if self.structures is not None:
            return self.structures
        from ..structures.io import read
        return read(self.path, index=f"{self.start}:{self.stop}", **(self.read_options or {}))


def chunk_groups(sizes, max_atoms):
    """Consecutive index groups whose atom counts add up to at most max_atoms (at least one each)."""
    groups, group, total = [], [], 0
    for index, size in enumerate(sizes):
        if group and total + size > max_atoms:
            groups.append(group)
            group, total = [], 0
        group.append(index)
        total += size
    if group:
        groups.append(group)
    return groups


def _with_index(error, chunk):
    """Re-raise a check's error with the configuration index of the whole training set."""
    import re
    message = re.sub(r"configuration (\d+)",
                     lambda m: f"configuration {int(m.group(1)) + chunk.first_index}", str(error))
    return type(error)(message)


@dataclass
class Survey:
    """What the client needs to know about a chunk before choosing sparse points."""

    n_atoms: np.ndarray
    energies: np.ndarray
    species: set
    single_atom_energies: dict


def survey(chunk, need_forces=True, species=None):
    """Check a chunk and summarise it (step 1)."""
    structures = chunk.load()
    try:
        check_structures(structures, species=species)
        labels = check_labels(structures, need_forces=need_forces)
    except ValueError as error:
        raise _with_index(error, chunk) from None
    single = {int(a.numbers[0]): float(e) for a, e in zip(structures, labels.energies) if len(a) == 1}
    return Survey(np.array([len(a) for a in structures]), np.asarray(labels.energies, dtype=float),
                  {int(z) for a in structures for z in a.numbers}, single)


def features(terms, chunk):
    """Per term: (selection features, channels) of every environment of the chunk (step 2)."""
    collected = [([], []) for _ in terms]
    for atoms in chunk.load():
        for term, nl, (values, channels) in zip(terms, neighbor_lists(terms, atoms), collected):
            environments = term.descriptor_.compute(atoms, nl, gradients=False)
            values.append(term.selection_features(environments.features))
            channels.append(environments.channels)
    return [(np.concatenate(v), np.concatenate(c)) for v, c in collected]


def _features_of(terms, indices, chunk):
    """{term index: (selection features, channels)} of the chunk, for the listed terms only."""
    chosen = [terms[i] for i in indices]
    return dict(zip(indices, features(chosen, chunk))) if chosen else {}


def summarize_features(terms, indices, chunk):
    """Per term (None where the index is not listed): {channel: ChannelSummary} of the
    chunk's selection features, with the Gram matrix for CUR terms (step 2a)."""
    found = _features_of(terms, list(indices), chunk)
    return [sparse.summarize(*found[i], with_gram=term.selection_method == "cur") if i in found
            else None for i, term in enumerate(terms)]


def merge_summary_lists(a, b):
    """Pairwise merge of two chunks' summarize_features results."""
    return [None if x is None else sparse.merge_summaries(x, y) for x, y in zip(a, b)]


def propose_sparse(terms, plans, seed, chunk):
    """Per term (None where the plan is None): the chunk's sparse-point candidates (step 2b).

    The generator of term i in this chunk is seeded by (seed, i, chunk.first_index)."""
    indices = [i for i, plan in enumerate(plans) if plan is not None]
    found = _features_of(terms, indices, chunk)
    return [sparse.propose(*found[i], plan, sparse.chunk_rng(seed, i, chunk.first_index),
                           chunk.first_index) if i in found else None
            for i, plan in enumerate(plans)]


def merge_candidate_lists(plans, a, b):
    """Pairwise merge of two chunks' propose_sparse results."""
    return [None if plan is None else sparse.merge_candidates(x, y, plan)
            for plan, x, y in zip(plans, a, b)]


@dataclass
class TargetSettings:
    """How labels become weighted targets: e0 per atomic number (eV), the noise model
    (``gapfit.fit.noise.NoiseModel``) and which kinds of label to fit."""

    e0: dict
    noise: NoiseModel
    fit_forces: bool = True
    fit_virial: bool = True

    def sigmas_of(self, atoms):
        """(energy eV, force eV/Å, virial eV) sigmas of one configuration."""
        return self.noise.sigmas_of(atoms)


def factors(terms, settings, chunk):
    """R factors {"energy", "forces", "virial": (M+1, M+1)} of one chunk (step 3)."""
    structures = chunk.load()
    labels = check_labels(structures, need_forces=settings.fit_forces)
    rows = design_rows(terms, structures)
    e0 = np.array([sum(settings.e0[int(z)] for z in atoms.numbers) for atoms in structures])
    sigmas = np.array([settings.sigmas_of(atoms) for atoms in structures])
    result = {"energy": gp.weighted_factor(rows.energy, np.asarray(labels.energies) - e0,
                                           sigmas[:, 0])}
    if settings.fit_forces:
        forces = np.concatenate([np.asarray(f).reshape(-1) for f in labels.forces])
        force_sigmas = np.repeat(sigmas[:, 1], [3 * len(a) for a in structures])
        result["forces"] = gp.weighted_factor(rows.forces.reshape(len(forces), -1), forces,
                                              force_sigmas)
    if settings.fit_virial:
        with_stress = [k for k, s in enumerate(labels.stresses) if s is not None]
        if with_stress:
            virials = np.concatenate([virial_from_stress(labels.stresses[k],
                                                         structures[k].get_volume())
                                      for k in with_stress])
            rows_virial = rows.virial[with_stress].reshape(len(virials), -1)
            result["virial"] = gp.weighted_factor(rows_virial, virials,
                                                  voigt_sigmas(sigmas[with_stress, 2]).reshape(-1))
    return result


def combine_factors(a, b):
    """Pairwise merge of two chunks' factors results (R factor of the stack, per kind)."""
    return gp.combine_factor_dicts([a, b])


def chunks_of_structures(structures, max_atoms):
    """Chunks holding the Atoms themselves."""
    return [Chunk(first_index=group[0], structures=[structures[i] for i in group])
            for group in chunk_groups([len(a) for a in structures], max_atoms)]


def frame_sizes(path):
    """Atom count of every configuration in a file, without building Atoms for extended XYZ."""
    from pathlib import Path
    if Path(path).suffix.lower() in (".xyz", ".extxyz"):
        sizes = []
        with open(path) as stream:
            for line in stream:
                if not line.strip():
                    continue
                try:
                    count = int(line.split()[0])
                except ValueError:
                    raise ValueError(f"{path}: configuration {len(sizes)}: expected an atom count,"
                                     f" found {line.strip()[:40]!r}") from None
                sizes.append(count)
                for _ in range(count + 1):
                    next(stream, None)
        return sizes
    import ase.io
    return [len(atoms) for atoms in ase.io.iread(path)]


def chunks_of_files(paths, max_atoms, read_options=None):
    """Chunks that name a slice of a file; workers read their own structures."""
    chunks, first = [], 0
    for path in paths:
        sizes = frame_sizes(str(path))
        for group in chunk_groups(sizes, max_atoms):
            chunks.append(Chunk(first_index=first + group[0], path=str(path), start=group[0],
                                stop=group[-1] + 1, read_options=read_options))
        first += len(sizes)
    return chunks
