"""benchmarks/on_the_fly.py at CI size (EMT): every arm's oracle calls are accounted for, and the
fixed-interval arm is given the on-the-fly arm's budget."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import on_the_fly as benchmark  # noqa: E402
from gapfit.active.on_the_fly import Stage  # noqa: E402


def test_the_fixed_interval_matches_the_on_the_fly_calls():
    stages = [Stage(steps=500), Stage(steps=500), Stage(steps=500), Stage(steps=500, structure=1)]
    for calls in (5, 25, 60, 99):
        k = benchmark.matching_interval(stages, calls, new_structures=True)
        made = sum(stage.steps // k for stage in stages) + 1  # + the slab's label at its step 0
        others = [sum(stage.steps // j for stage in stages) + 1 for j in range(1, 501)]
        assert abs(made - calls) == min(abs(count - calls) for count in others)
    # without new-structure labels the slab costs nothing extra
    assert benchmark.matching_interval(stages, 40, new_structures=False) == 50


def test_a_ci_sized_emt_run_counts_every_oracle_call(tmp_path, capsys):
    args = benchmark.parser().parse_args(["--system", "emt", "--steps", "20", "--seeds", "0",
                                          "--counts", "3", "6", "--keep", str(tmp_path)])
    setup = benchmark.system_setup("emt", 54, 2500.0)
    stages = benchmark.make_stages(setup[2], setup[3], args.steps, args.timestep)
    row = benchmark.run_seed(0, args, setup, stages)
    # ab initio MD: every MD step of the schedule is an oracle call, plus the start label
    assert row["aimd"]["calls"] == 4 * 20 + 1
    assert row["aimd"]["best"] in (3, 6)
    # the model-driven arms: the start label plus every frame in their labelled.xyz
    for arm in ("otf", "fixed"):
        labelled = benchmark.read_labelled(tmp_path / "seed0" / arm)
        assert row[arm]["calls"] == 1 + len(labelled)
        assert len(row[arm]["errors"]) == 5 and all(np.isfinite(row[arm]["errors"]).ravel())
        assert row[arm]["largest_mae"] > 0 and row[arm]["unphysical"] is None
    # the slab (a new start structure) is labelled at its step 0 by both
    for arm in ("otf", "fixed"):
        steps = [(a.info["otf_stage"], a.info["otf_step"])
                 for a in benchmark.read_labelled(tmp_path / "seed0" / arm)]
        assert (3, 0) in steps
    benchmark.print_seed(row, stages)
    assert "ab initio MD (n=" in capsys.readouterr().out
