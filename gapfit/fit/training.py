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
from ..structures.voigt import virial_from_stress, voigt_from_matrix
from .noise import NoiseModel
from .baselines import merge_shortest, shortest_distances


@dataclass
class Chunk:
    """Configurations ``first_index .. first_index + n - 1`` of the training set.

    Either ``structures`` (a list of Atoms) or ``path`` + ``start``/``stop``/``step`` (the file
    positions ``range(start, stop, step)``) + ``read_options`` (keyword arguments of
    ``gapfit.io.read``) is set.
    """

    first_index: int
    structures: list = None
    path: str = None
    start: int = 0
    stop: int = 0
    read_options: dict = None
    step: int = 1

    def load(self):
        """The chunk's structures: positions ``range(start, stop, step)`` of the file."""
        if self.structures is not None:
            return self.structures
        from ..structures.io import read
        positions = range(self.start, self.stop, self.step)
        if self.step > 0:
            return read(self.path, index=f"{self.start}:{self.stop}:{self.step}",
                        **(self.read_options or {}))
        # a backward slice: read forwards, then reverse
        forward = read(self.path, index=f"{positions[-1]}:{self.start + 1}:{-self.step}",
                       **(self.read_options or {}))
        return forward[::-1]


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
    if chunk.path is not None:  # the position in the file, and the file
        message = re.sub(r"configuration (\d+)", lambda m: "configuration "
                         f"{chunk.start + int(m.group(1)) * chunk.step}", str(error))
        return type(error)(f"{chunk.path}: {message}")
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
    shortest: dict = None  # {(Z_i, Z_j): shortest distance Å} (``baselines.shortest_distances``)


def survey(chunk, need_forces=True, species=None):
    """Check a chunk and summarise it (step 1)."""
    structures = chunk.load()
    try:
        check_structures(structures, species=species)
        labels = check_labels(structures, need_forces=need_forces)
    except ValueError as error:
        raise _with_index(error, chunk) from None
    single = {int(a.numbers[0]): float(e) for a, e in zip(structures, labels.energies) if len(a) == 1}
    shortest = {}
    for atoms in structures:
        shortest = merge_shortest(shortest, shortest_distances(atoms))
    return Survey(np.array([len(a) for a in structures]), np.asarray(labels.energies, dtype=float),
                  {int(z) for a in structures for z in a.numbers}, single, shortest)


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
    (``gapfit.fit.noise.NoiseModel``), which kinds of label to fit, and the baseline: a
    fitted fixed baseline (``gapfit.fit.baselines.ZBL``) or None, whose energies, forces and
    virials are subtracted from the labels, so the terms fit what remains."""

    e0: dict
    noise: NoiseModel
    fit_forces: bool = True
    fit_virial: bool = True
    baseline: object = None

    def sigmas_of(self, atoms):
        """(energy eV, force eV/Å, virial eV) sigmas of one configuration."""
        return self.noise.sigmas_of(atoms)


def factors(terms, settings, chunk):
    """Lean R factors {"energy", "forces", "virial": (min(rows, M+1), M+1)} of one chunk
    (step 3; ``gapfit.gp.linalg.weighted_factor``)."""
    structures = chunk.load()
    labels = check_labels(structures, need_forces=settings.fit_forces)
    rows = design_rows(terms, structures)
    e0 = np.array([sum(settings.e0[int(z)] for z in atoms.numbers) for atoms in structures])
    sigmas = np.array([settings.sigmas_of(atoms) for atoms in structures])
    base = _baseline_labels(settings.baseline, structures)
    result = {"energy": gp.weighted_factor(rows.energy, np.asarray(labels.energies) - e0 - base[0],
                                           sigmas[:, 0])}
    if settings.fit_forces:
        forces = np.concatenate([np.asarray(f).reshape(-1) for f in labels.forces]) - base[1]
        force_sigmas = np.repeat(sigmas[:, 1], [3 * len(a) for a in structures])
        result["forces"] = gp.weighted_factor(rows.forces.reshape(len(forces), -1), forces,
                                              force_sigmas)
    if settings.fit_virial:
        with_stress = [k for k, s in enumerate(labels.stresses) if s is not None]
        if with_stress:
            virials = np.concatenate([virial_from_stress(labels.stresses[k],
                                                         structures[k].get_volume())
                                      for k in with_stress]) - base[2][with_stress].reshape(-1)
            rows_virial = rows.virial[with_stress].reshape(len(virials), -1)
            result["virial"] = gp.weighted_factor(rows_virial, virials,
                                                  settings.noise.voigt_sigmas(
                                                      sigmas[with_stress, 2]).reshape(-1))
    return result


def _baseline_labels(baseline, structures):
    """The baseline's (energies (n,) eV, forces (3 N_total,) eV/Å, Voigt virials (n, 6) eV)
    of the structures; zeros without a baseline."""
    n_atoms = sum(len(atoms) for atoms in structures)
    energies, forces = np.zeros(len(structures)), np.zeros((n_atoms, 3))
    virials = np.zeros((len(structures), 6))
    if baseline is not None:
        first = 0
        for index, atoms in enumerate(structures):
            local_energies, atom_forces, virial = baseline.predict(atoms)
            energies[index] = local_energies.sum()
            forces[first: first + len(atoms)] = atom_forces
            virials[index] = voigt_from_matrix(virial)
            first += len(atoms)
    return energies, forces.reshape(-1), virials


def combine_factors(a, b):
    """Pairwise merge of two chunks' factors results (R factor of the stack, per kind)."""
    return gp.combine_factor_dicts([a, b])


def chunks_of_structures(structures, max_atoms):
    """Chunks holding the Atoms themselves."""
    return [Chunk(first_index=group[0], structures=[structures[i] for i in group])
            for group in chunk_groups([len(a) for a in structures], max_atoms)]


def frame_sizes(path, format=None):
    """Atom count of every configuration in a file (those ``file.xyz@:5`` selects), without
    building Atoms for extended XYZ or mlearn JSON."""
    from ..structures.io import selected_positions, split_selection
    path, index = split_selection(path)
    sizes = _all_frame_sizes(path, format)
    return sizes if index is None else [sizes[i] for i in selected_positions(len(sizes), index)]


def _all_frame_sizes(path, format=None):
    from pathlib import Path
    from ..structures.io import is_mlearn_file
    if is_mlearn_file(path, format):
        import json
        return [len(entry["structure"]["sites"]) for entry in json.loads(Path(path).read_text())]
    if format in (None, "extxyz", "xyz") and Path(path).suffix.lower() in (".xyz", ".extxyz"):
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
    return [len(atoms) for atoms in ase.io.iread(path, index=":", format=format,
                                                 do_not_split_by_at_sign=True)]


def chunks_of_files(paths, max_atoms, read_options=None):
    """Chunks that name a slice of a file; workers read their own structures.

    A path in ASE's ``file.xyz@:5`` syntax contributes only the configurations it selects."""
    from ..structures.io import selected_positions, split_selection
    chunks, first = [], 0
    file_format = (read_options or {}).get("format")
    for path in paths:
        name, index = split_selection(path)
        every = _all_frame_sizes(name, file_format)
        positions = selected_positions(len(every), ":" if index is None else index)
        sizes = [every[i] for i in positions]
        for group in chunk_groups(sizes, max_atoms):
            chunks.append(Chunk(first_index=first + group[0], path=name, start=positions[group[0]],
                                stop=positions[group[-1]] + positions.step, step=positions.step,
                                read_options=read_options))
        first += len(sizes)
    return chunks
