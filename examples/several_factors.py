"""Several grouping factors: children nested in schools, students crossed with lecturers.
======================================================================================

1. Nested (``math ~ year + (year | schoolid/childid)``): mathematics achievement of
   1,721 children followed over school years in 60 Chicago schools (Bryk &
   Raudenbush; mlmRev's ``egsingle``).  Children's and schools' growth both vary.
   A new child in a known school is predicted with that school's effect; a new
   school uses the population for both.
2. Crossed (``y ~ service + (1 | s) + (1 | d)``): 73,421 ratings of 1,128 lecturers
   by 2,972 students at ETH Zurich (lme4's ``InstEval``).  Every student rates
   several lecturers: the factors are crossed, and a lecturer's effect is estimated
   net of which students happened to rate them.

Run::

      python examples/several_factors.py          (about a minute)
      python examples/several_factors.py --fast   (smoke test)
"""

import sys

import pandas as pd

from skhier import HierarchicalRegressor
from skhier.datasets import load_egsingle, load_insteval


def nested(settings):
    data = load_egsingle()
    # about 4 years per child barely separate a child's growth from the noise: the
    # chain explores that ridge slowly, so it runs longer than the default
    settings = {"draws": 3000, **settings}
    est = HierarchicalRegressor(nested=[("schoolid", "childid")], random_state=0, **settings)
    est.fit(data[["year"]], data["math"], groups=data[["schoolid", "childid"]])
    print("Nested: math ~ year + (year | schoolid/childid)")
    print(est.summary(group_level=False).round(3).to_string())
    school = data["schoolid"].iloc[0]
    new = pd.DataFrame({"schoolid": [school, "new school"], "childid": ["new child"] * 2})
    mean, sd = est.set_params(unseen_groups="population").predict(
        pd.DataFrame({"year": [0.5, 0.5]}), groups=new, return_std=True
    )
    print(f"\nA new child in school {school} at year 0.5: {mean[0]:.2f} (sd {sd[0]:.2f})")
    print(f"A new child in a new school at year 0.5: {mean[1]:.2f} (sd {sd[1]:.2f})\n")
    return est


def crossed(settings):
    data = load_insteval()
    est = HierarchicalRegressor(nested=False, random_slopes=None, random_state=0, **settings)
    est.fit(data[["service"]], data["y"], groups=data[["s", "d"]])
    print("Crossed: y ~ service + (1 | s) + (1 | d), students s x lecturers d")
    print(est.summary(group_level=False).round(3).to_string())
    lecturers = est.group_effects_["d"]
    best = lecturers.intercept.argsort()[-3:][::-1]
    print("\nLecturers rated highest, net of their students (effect and 95% interval):")
    for j in best:
        lo, hi = lecturers.intercept_interval[j]
        mean = lecturers.intercept[j]
        print(f"  lecturer {lecturers.levels[j]}: {mean:+.2f} [{lo:+.2f}, {hi:+.2f}]")
    print(f"convergence: {est.convergence_}")
    return est


def main(fast=False):
    settings = {"draws": 100, "tune": 100, "chains": 2} if fast else {}
    nested(settings)
    return crossed(settings)


if __name__ == "__main__":
    main(fast="--fast" in sys.argv)
