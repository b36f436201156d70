"""Research (issue 16, helper recipe4): the test errors of the recipe search's last-stage
options fitted to a FULL mlearn training set — a SOAP atom width and the virial sigma × 0.3
(``GAP.with_sigma_scales``: a re-solve, no refit) — beside the fixed default, per config_type.
It shows which of the search's choices moves which test group. Test set used for measuring only.

    python experiments/recipe4_options.py Mo 4.78 --widths 0.5 0.35
"""
import argparse
from pathlib import Path

import gapfit
from gapfit.evaluate.errors import error_table

MLEARN = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlearn"
OPTIONS = ({}, {"virial": 0.3})


def searched_terms(r_cut, width):
    """The search's cosine candidate at cutoff ``r_cut`` Å with SOAP atom width ``width`` Å."""
    return [gapfit.TwoBody(cutoff=r_cut),
            gapfit.SOAP(r_cut=r_cut, weighting="cosine", transition_width=1.0, sigma=width,
                        delta=0.5, n_sparse=1500)]


def print_rows(label, model, test):
    rows = error_table(gapfit.metrics.evaluate(model, test))
    groups = "  ".join(f"{r[0]} {r[1]:.2f}/{r[3]:.1f}/{r[5]:.3f}" for r in rows[1:])
    print(f"{label:34s} {rows[0][1]:5.2f} / {rows[0][3]:5.1f} / {rows[0][5]:.3f}   {groups}",
          flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("element")
    parser.add_argument("r_cut", type=float)
    parser.add_argument("--widths", type=float, nargs="+", default=[0.5, 0.35, 0.3])
    args = parser.parse_args()
    train = gapfit.io.read_mlearn(MLEARN / f"{args.element}_train.json")
    test = gapfit.io.read_mlearn(MLEARN / f"{args.element}_test.json")
    print(f"{args.element}: test E meV/atom / F meV/Å / S GPa, then per config_type")
    print_rows("default (fixed recipe)", gapfit.GAP(random_state=0).fit(train), test)
    for width in args.widths:
        model = gapfit.GAP(terms=searched_terms(args.r_cut, width), random_state=0).fit(train)
        for scales in OPTIONS:
            resolved = model.with_sigma_scales(scales) if scales else model
            print_rows(f"cosine {args.r_cut:g} a{width:g} {scales or ''}", resolved, test)


if __name__ == "__main__":
    main()
