"""Active learning loop: label only the configurations the model is least sure about.

    python examples/active_learning.py                       # 5 rounds of 4 from a 60-configuration pool
    python examples/active_learning.py --rounds 2 --batch 3 --n-sparse 40   # a quick look

The pool is data/cu_train.xyz with its labels hidden (EMT plays the DFT code: it labels
what the model asks for). Each round: predict force uncertainties on the unlabelled pool,
pick a batch with ``gapfit.active.select`` (strategy "batch" avoids near-duplicates),
label the batch with EMT, add it with ``GAP.update`` (no refit: the new rows join the stored
QR factors) and print the test errors on data/cu_test.xyz. The same number of random picks
is run alongside for comparison.
"""
import argparse
import sys
from pathlib import Path

import numpy as np
from ase.calculators.emt import EMT

import gapfit

DATA = Path(__file__).resolve().parents[1] / "data"


def unlabelled(structures):
    pool = []
    for atoms in structures:
        bare = atoms.copy()
        bare.calc = None
        pool.append(bare)
    return pool


def new_model(n_sparse, seed):
    return gapfit.GAP(terms=[gapfit.TwoBody(n_sparse=15),
                             gapfit.SOAP(r_cut=4.5, n_max=6, l_max=4, n_sparse=n_sparse)],
                      energy_sigma=0.001, force_sigma=0.03, virial_sigma=0.02, random_state=seed)


def force_mae(model, test):
    """Test force MAE, meV/Å."""
    return 1e3 * gapfit.metrics.evaluate(model, test)["forces"]["mae"]


def run(pool, test, start, rounds, batch, n_sparse, seed, strategy):
    """Fit on ``start`` pool indices, then ``rounds`` rounds of ``batch`` picks; MAE per round."""
    labelled = [gapfit.active.label(pool[i], EMT()) for i in start]
    remaining = [i for i in range(len(pool)) if i not in set(start)]
    model = new_model(n_sparse, seed).fit(labelled)
    history = [(len(labelled), force_mae(model, test))]
    for step in range(rounds):
        candidates = [pool[i] for i in remaining]
        picks = gapfit.active.select(model, candidates, batch, strategy=strategy,
                                     random_state=seed + step)
        chosen = [remaining[k] for k in picks]
        remaining = [i for i in remaining if i not in set(chosen)]
        new = [gapfit.active.label(pool[i], EMT()) for i in chosen]
        labelled += new
        model.update(new)
        history.append((len(labelled), force_mae(model, test)))
    return history


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=int, default=4, help="labelled configurations to begin with")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4, help="configurations labelled per round")
    parser.add_argument("--n-sparse", type=int, default=100, help="SOAP sparse points")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    pool = unlabelled(gapfit.io.read(DATA / "cu_train.xyz"))
    test = gapfit.io.read(DATA / "cu_test.xyz")
    start = np.random.default_rng(args.seed).choice(len(pool), size=args.start, replace=False)
    results = {strategy: run(pool, test, list(start), args.rounds, args.batch, args.n_sparse,
                             args.seed, strategy)
               for strategy in ("batch", "random")}
    print(f"pool {len(pool)} configurations, test {len(test)}; force MAE on the test set (meV/Å)")
    print(f"{'labelled':>9}{'uncertainty':>13}{'random':>9}")
    for (size, active), (_, random) in zip(results["batch"], results["random"]):
        print(f"{size:>9}{active:>13.2f}{random:>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
