"""Research (issue 16, helper recipe3): peak memory and test MAEs of a fit with more sparse
points, for several chunk sizes, one fit per process (the process's RSS before the fit is
printed too, so the fit's own share is visible).

    python experiments/memory_sparse.py Mo cos+ns2500 --chunk-atoms 256

Test set used for measuring only. The R factors are lean (trapezoidal) in gapfit.gp.linalg since
recipe4; the monkeypatch of recipe3's "--lean" runs is gone (its results: docs/recipe_research.md).
"""
import argparse
import sys
import time
from pathlib import Path

import gapfit
from gapfit.evaluate.errors import error_table
from gapfit.fit.memory import current_rss_mb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stress_fits import MLEARN, make_model  # noqa: E402


def left_fold():
    """Monkeypatch gapfit.fit.parallel.tree_reduce (serial path) into a left fold: two partial
    results alive instead of ~log2(chunks); changes the grouping (rounding) only."""
    from gapfit.fit import parallel

    def fold(items, combine):
        value = None
        for item in items:
            value = item if value is None else combine(value, item)
        if value is None:
            raise ValueError("nothing to reduce: no chunks")
        return value

    parallel.tree_reduce = fold


def main():
    p = argparse.ArgumentParser()
    p.add_argument("element")
    p.add_argument("name")
    p.add_argument("--chunk-atoms", type=int, default=512)
    p.add_argument("--fold", action="store_true", help="serial left fold (left_fold)")
    a = p.parse_args()
    if a.fold:
        left_fold()
    train = gapfit.io.read_mlearn(MLEARN / f"{a.element}_train.json")
    test = gapfit.io.read_mlearn(MLEARN / f"{a.element}_test.json")
    before = current_rss_mb()
    cpu = time.process_time()
    model = make_model(a.name, chunk_atoms=a.chunk_atoms).fit(train)
    cpu = time.process_time() - cpu
    rows = error_table(gapfit.metrics.evaluate(model, test))
    print(f"{a.element} {a.name} chunk {a.chunk_atoms} fold {a.fold}: rss before {before:.0f} MB, peak "
          f"{model.peak_memory_mb_:.0f} MB, fit CPU {cpu:.0f} s")
    for r in rows:
        print(f"  {r[0]}: E {r[1]:.2f} F {r[3]:.1f} S {r[5]:.3f}")


if __name__ == "__main__":
    main()
