"""Research (issue 16, helper recipe4): run GAP(recipe="search") on a full mlearn training set
and print every screened candidate's CV errors per config_type and the groups the guard flags
(``recipe.worse_groups``), to compare with the test set's per-group errors.

    python experiments/recipe4_search_groups.py Mo
"""
import sys
from pathlib import Path

import gapfit
from gapfit.model import recipe

MLEARN = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlearn"


def main(element):
    train = gapfit.io.read_mlearn(MLEARN / f"{element}_train.json")
    model = gapfit.GAP(random_state=0, recipe="search").fit(train)
    reference = model.recipe_.candidates[0]
    print(f"{element}: chosen {model.recipe_.chosen}; CV E meV/atom / F meV/Å per group")
    for candidate in model.recipe_.candidates:
        if not candidate.cv_mae:
            continue
        groups = "  ".join(f"{g} {e:.2f}/{f:.1f}" for g, (e, f) in sorted(candidate.cv_groups.items()))
        print(f"{candidate.name:42s} {groups}  worse: {recipe.worse_groups(candidate, reference)}")


if __name__ == "__main__":
    main(sys.argv[1])
