"""Fit a GAP to one element of the mlearn DFT benchmark and print its test errors.

    python examples/mlearn_benchmark.py --element Mo                 # 2-body + SOAP, 1000 sparse points
    python examples/mlearn_benchmark.py --element Si --descriptor twobody --train-limit 50

Data: the mlearn JSON files (Zuo et al., J. Phys. Chem. A 124, 731 (2020)), {element}_train.json
and {element}_test.json in --data-dir (default: ../shared/data/mlearn beside the repository).
benchmarks/mlearn.py runs both elements in fresh processes and measures peak memory; this
script is the short version to read and to vary.
"""
import argparse
import sys
import time
from pathlib import Path

import gapfit
from gapfit.evaluate.errors import format_report, parity_data, report

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlearn"


def build_model(descriptor, n_sparse, seed):
    """2-body alone, or 2-body plus SOAP with ``n_sparse`` sparse environments."""
    terms = [gapfit.TwoBody()]
    if descriptor == "soap":
        terms.append(gapfit.SOAP(n_sparse=n_sparse))
    elif descriptor != "twobody":
        raise ValueError(f"unknown descriptor {descriptor!r}")
    return gapfit.GAP(terms=terms, random_state=seed)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--element", default="Mo", help="Mo or Si (any {element}_train.json present)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--descriptor", choices=["soap", "twobody"], default="soap")
    parser.add_argument("--n-sparse", type=int, default=1000, help="SOAP sparse points (default 1000)")
    parser.add_argument("--train-limit", type=int, help="use only the first N training configurations")
    parser.add_argument("--test-limit", type=int, help="use only the first N test configurations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", help="also write the fitted model to this file")
    args = parser.parse_args(argv)

    train_file = args.data_dir / f"{args.element}_train.json"
    if not train_file.is_file():
        print(f"skipped: {train_file} not found (the mlearn data are not part of the repository)")
        return 0
    train = gapfit.io.read_mlearn(train_file)[: args.train_limit]
    test = gapfit.io.read_mlearn(args.data_dir / f"{args.element}_test.json")[: args.test_limit]
    model = build_model(args.descriptor, args.n_sparse, args.seed)
    start = time.perf_counter()
    model.fit(train)
    seconds = time.perf_counter() - start
    print(f"{args.element}: fitted {args.descriptor} on {len(train)} configurations "
          f"({sum(map(len, train))} atoms) in {seconds:.1f} s")
    if args.save:
        model.save(args.save)
        print(f"model written to {args.save}")
    print(f"\ntest set ({len(test)} configurations)")
    print(format_report(report(parity_data(model, test))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
