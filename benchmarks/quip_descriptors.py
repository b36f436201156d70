"""Speed of gapfit's QUIP SOAP descriptor against quippy's ``Descriptor``, µs per atom.

    python benchmarks/quip_descriptors.py                 # 128 and 1,024 atoms, one thread
    python benchmarks/quip_descriptors.py --sizes 2 --threads 2

Structure: rattled cubic bcc Mo supercells (a = 3.16 Å); descriptor: soap cutoff 5 Å,
n_max 8, l_max 6, atom_sigma 0.5 Å (the ANCHORS recipe), default QUIP settings otherwise.
Rows: gapfit features only, features with pair gradients, backward (∂E/∂q → ∂E/∂pair
vector, the MD path: features + backward), and quippy ``Descriptor.calc`` without and
with gradients on the same structure. The largest difference between the two codes'
features and gradients is printed too. Neighbour-list time is included for both. Times are
CPU seconds of this process (both codes on one thread), robust to a busy machine.
"""
import argparse
import time

import numpy as np
from ase.build import bulk

from gapfit.descriptors.quip_soap import QuipSOAPDescriptor
from gapfit.structures.neighbors import build_neighbor_list


def bcc_supercell(repeat, seed=0):
    atoms = bulk("Mo", "bcc", a=3.16, cubic=True).repeat(repeat)
    atoms.rattle(stdev=0.02, seed=seed)
    return atoms


def limit_threads(threads):
    import numba
    from threadpoolctl import threadpool_limits
    try:
        import quippy.descriptors  # noqa: F401  (load its libraries before limiting)
    except ImportError:
        pass
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    return threadpool_limits(limits=threads)


def per_atom(call, n_atoms, repeats):
    """Best-of-repeats CPU time of call() in µs per atom (after one warm-up call).

    CPU time of this process (one thread each), not wall time: on a shared machine the
    wall time mostly measures the other processes."""
    call()
    best = np.inf
    for _ in range(repeats):
        start = time.process_time()
        call()
        best = min(best, time.process_time() - start)
    return best / n_atoms * 1e6


def largest_differences(descriptor, atoms, reference):
    """Max |Δ| of features and of summed per-atom gradients, relative to the largest value."""
    nl = build_neighbor_list(atoms, descriptor.cutoff)
    env = descriptor.compute(atoms, nl, gradients=True)
    result = reference.calc(atoms, grad=True)
    feature_error = np.abs(env.features - result["data"]).max() / np.abs(result["data"]).max()
    mine = np.zeros((env.n_envs, len(atoms), 3, descriptor.n_features))
    np.add.at(mine, (env.pair_envs, env.pair_neighbors), env.pair_gradients)
    np.add.at(mine, (env.pair_envs, env.center_atoms[env.pair_envs]), -env.pair_gradients)
    theirs = np.zeros_like(mine)
    index = result["grad_index_0based"]
    np.add.at(theirs, (index[:, 0], index[:, 1]), result["grad_data"])
    gradient_error = np.abs(mine - theirs).max() / np.abs(theirs).max()
    return feature_error, gradient_error


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 8],
                        help="supercell repeats (2 n³ atoms)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    limits = limit_threads(args.threads)  # noqa: F841  (kept for the run)
    descriptor = QuipSOAPDescriptor(["Mo"], cutoff=5.0, n_max=8, l_max=6, atom_sigma=0.5)
    try:
        from quippy.descriptors import Descriptor
        reference = Descriptor(descriptor.quip_string())
    except ImportError:
        reference = None
        print("quippy-ase not installed: gapfit rows only")
    print(f"QUIP soap, cutoff 5 Å, n_max 8, l_max 6, atom_sigma 0.5 Å, {args.threads} thread(s)")
    header = (f"{'atoms':>6} {'gapfit q':>9} {'q+grad':>9} {'backward':>9} {'q+backward':>10}"
              f" {'quippy q':>9} {'q+grad':>9} {'grad ratio':>10} {'max rel diff q / dq':>20}")
    print(header + "\n" + "-" * len(header))
    for repeat in args.sizes:
        atoms = bcc_supercell(repeat)
        n = len(atoms)
        n_env = n
        upstream = np.random.default_rng(0).normal(size=(n_env, descriptor.n_features))

        def features():
            descriptor.compute(atoms, build_neighbor_list(atoms, descriptor.cutoff))

        def gradients():
            descriptor.compute(atoms, build_neighbor_list(atoms, descriptor.cutoff),
                               gradients=True)

        def backward():
            descriptor.backward(atoms, build_neighbor_list(atoms, descriptor.cutoff), upstream)

        t_q = per_atom(features, n, args.repeats)
        t_grad = per_atom(gradients, n, args.repeats)
        t_back = per_atom(backward, n, args.repeats)
        row = f"{n:>6} {t_q:>9.1f} {t_grad:>9.1f} {t_back:>9.1f} {t_q + t_back:>10.1f}"
        if reference is not None:
            quip_q = per_atom(lambda: reference.calc(atoms), n, 2)
            quip_grad = per_atom(lambda: reference.calc(atoms, grad=True), n, 2)
            errors = largest_differences(descriptor, atoms, reference) if n <= 256 else None
            diff = "" if errors is None else f"{errors[0]:.1e} / {errors[1]:.1e}"
            row += (f" {quip_q:>9.1f} {quip_grad:>9.1f} {t_grad / quip_grad:>10.3f}"
                    f" {diff:>20}")
        print(row)
    print("CPU µs per atom (best of repeats); 'grad ratio' = gapfit q+grad / quippy q+grad")


if __name__ == "__main__":
    main()
