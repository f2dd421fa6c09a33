"""Statistics shared by ``finetune --compare`` and ``compare``: paired tests, Wilson
intervals, Holm's correction and the resolution a design can hope for.

Pure functions over numbers (scipy, no torch, nothing from ticketzoo), so both commands
judge a difference the same way.

* :func:`paired_test`: two conditions measured on the same (fold, seed) pairs. The
  per-pair differences get a two-sided paired t-test (``scipy.stats.ttest_rel``) and, as a
  check that does not assume normality, the Wilcoxon signed-rank test
  (``scipy.stats.wilcoxon``, zero differences dropped).
* :func:`mcnemar`: two networks scored on the same test images, one seed each: the exact
  McNemar test (a two-sided binomial test on the images only one of them got right).
* :func:`run_sd`: how far one training run's test accuracy can stray from its expected value
  through training noise alone, at most ``sqrt(acc (1 - acc) / N)`` when the errors of
  repeated runs are independent across test images (Jordan, "Calibrated Chaos", ICLR 2024:
  that assumption reproduces the spread of repeated CIFAR-10 trainings).
* :func:`wilson`: the Wilson score interval of a binomial proportion.
* :func:`min_detectable_difference`: the rough smallest difference a design detects with
  80% power at p < 0.05, from its test images alone: ``(t(1-α/2) + t(power)) *
  sqrt(2 p (1-p) / N)`` with ``N`` distinct test images, a planning accuracy ``p`` (80%)
  and independent errors of the two conditions (correlated errors make it smaller;
  training noise makes it larger).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import warnings
from dataclasses import dataclass

ALPHA = 0.05
PLANNING_ACCURACY = 0.8  # the accuracy the resolution line assumes (before anything is measured)
POWER = 0.8


@dataclass(frozen=True)
class PairedTest:
    """``a − b`` over paired measurements, in points (100 × accuracy)."""

    pairs: int
    delta: float  # mean of the per-pair differences
    se: float  # its standard error, sd / sqrt(pairs)
    ci95: float | None  # half-width of the t 95% interval of delta (None with one pair)
    p: float | None  # paired t-test, two-sided; None when it cannot be computed
    p_wilcoxon: float | None  # Wilcoxon signed-rank, two-sided; None when every difference is 0
    same_everywhere: bool = False  # every pair gave the same difference (no noise to test against)


def paired_test(a: list[float], b: list[float]) -> PairedTest:
    """Paired t and Wilcoxon tests of ``a[i] − b[i]`` (accuracies as fractions)."""
    from scipy.stats import t as t_dist
    from scipy.stats import ttest_rel, wilcoxon

    if len(a) != len(b) or not a:
        raise ValueError("paired_test needs two equally long, non-empty lists")
    d = [100 * (x - y) for x, y in zip(a, b)]
    m = len(d)
    delta = statistics.fmean(d)
    sd = statistics.stdev(d) if m >= 2 else 0.0
    se = sd / math.sqrt(m)
    same = m >= 2 and max(d) - min(d) < 1e-9
    if m < 2 or same:
        return PairedTest(m, delta, se, None, None, None, same)
    with warnings.catch_warnings():  # nearly equal samples: scipy warns, the p-values are still right
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(ttest_rel(a, b).pvalue)
        nonzero = [x for x in d if abs(x) > 1e-9]
        pw = float(wilcoxon(nonzero).pvalue) if nonzero else None
    ci = float(t_dist.ppf(1 - ALPHA / 2, m - 1)) * se
    return PairedTest(m, delta, se, ci, p, pw)


@dataclass(frozen=True)
class McNemar:
    """``a − b`` on the same test images, one run each."""

    images: int
    a_only: int  # images a got right and b wrong
    b_only: int
    delta: float  # points, 100 × (acc_a − acc_b)
    p: float | None  # exact McNemar, two-sided; None when no image tells them apart
    noise_sd: float  # points: run-to-run sd of the difference of two runs, at most (:func:`run_sd`)

    @property
    def beyond_noise(self) -> bool:
        """The difference passes the test and is over twice what two runs differ by alone."""
        return self.p is not None and self.p < ALPHA and abs(self.delta) > 2 * self.noise_sd

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "beyond_noise": self.beyond_noise}


def run_sd(accuracy: float, images: int) -> float:
    """Points: the upper bound on one run's training-noise sd (module docstring)."""
    return 100 * math.sqrt(accuracy * (1 - accuracy) / images) if images else math.inf


def mcnemar(a: list[bool], b: list[bool]) -> McNemar:
    """The exact McNemar test of two networks' per-image correctness on the same images."""
    from scipy.stats import binomtest

    if len(a) != len(b) or not a:
        raise ValueError("mcnemar needs two equally long, non-empty lists")
    n = len(a)
    a_only = sum(1 for x, y in zip(a, b) if x and not y)
    b_only = sum(1 for x, y in zip(a, b) if y and not x)
    acc_a, acc_b = sum(map(bool, a)) / n, sum(map(bool, b)) / n
    p = float(binomtest(a_only, a_only + b_only, 0.5).pvalue) if a_only + b_only else None
    noise = math.hypot(run_sd(acc_a, n), run_sd(acc_b, n))
    return McNemar(n, a_only, b_only, 100 * (acc_a - acc_b), p, noise)


def wilson(successes: float, n: float, z: float = 1.959963984540054) -> tuple[float, float] | None:
    """The Wilson score interval (95% by default) of ``successes / n``; None when n is 0."""
    if n <= 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def holm(p_values: list[float], alpha: float = ALPHA) -> int:
    """How many of ``p_values`` stay below ``alpha`` after Holm's step-down correction."""
    passed = 0
    for i, p in enumerate(sorted(p_values)):
        if p >= alpha / (len(p_values) - i):
            break
        passed += 1
    return passed


def min_detectable_difference(images: int, df: int, accuracy: float = PLANNING_ACCURACY,
                              alpha: float = ALPHA, power: float = POWER) -> float | None:
    """Points of accuracy a design with ``images`` distinct test images and a test with
    ``df`` degrees of freedom detects with ``power`` at ``alpha`` (module docstring);
    None when nothing can be tested (``df < 1`` or no test image)."""
    from scipy.stats import t as t_dist

    if images <= 0 or df < 1:
        return None
    factor = float(t_dist.ppf(1 - alpha / 2, df) + t_dist.ppf(power, df))
    return 100 * factor * math.sqrt(2 * accuracy * (1 - accuracy) / images)


WARN_POINTS = 5.0  # a design that cannot resolve this many points gets a warning


@dataclass(frozen=True)
class Resolution:
    """What a design can resolve, said before anything trains."""

    folds: int
    seeds: int
    test_per_evaluation: tuple[int, ...]  # test images of each evaluation (one per fold)
    images: int  # distinct test images every condition is scored on, per seed
    df: int  # degrees of freedom of the test the design's differences get
    mdd: float | None  # rough minimum detectable difference, points (None: nothing testable)
    mdd_with_folds: float | None = None  # the same with 5 folds (one split only)
    folder_images: int | None = None  # every image of the folder (folds possible), else None

    def to_dict(self) -> dict:
        return {"folds": self.folds, "seeds": self.seeds, "test_per_evaluation": list(self.test_per_evaluation),
                "test_images": self.images, "df": self.df, "min_detectable_difference_points": self.mdd,
                "planning_accuracy": PLANNING_ACCURACY, "power": POWER, "alpha": ALPHA}

    @property
    def warn(self) -> bool:
        return self.mdd is None or self.mdd > WARN_POINTS

    def lines(self) -> list[str]:
        """The resolution line, and a warning when it is coarse (fields as `field`)."""
        if not self.images:
            return ["resolution: no test images, so nothing will be measured: give `split` a test fraction"]
        per = sorted(set(self.test_per_evaluation))
        per_text = "-".join(str(n) for n in (per[0], per[-1])) if len(per) > 1 else str(per[0])
        one = 100 / max(1, min(self.test_per_evaluation))
        if self.folds > 1:
            head = (f"resolution: {self.folds} folds x {self.seeds} seed(s); each evaluation tests {per_text} "
                    f"images (one image = {one:.1f} points); over the folds every one of the {self.images} "
                    f"images is tested once per seed (one image = {100 / self.images:.2f} points)")
        else:
            head = (f"resolution: one split x {self.seeds} seed(s); each evaluation tests the same {per_text} "
                    f"images (one image = {one:.1f} points)")
        if self.mdd is None:
            text = head + "; one run per condition: no difference can be tested"
        else:
            text = head + (f"; smallest difference resolved with 80% power at p < 0.05: about {self.mdd:.0f} "
                           f"points (rough: ~{100 * PLANNING_ACCURACY:.0f}% accuracy, independent errors)")
        out = [text]
        if self.warn:
            if self.folds == 1 and self.folder_images:
                better = (f"; `folds` 5 tests all {self.folder_images} images"
                          + (f" (about {self.mdd_with_folds:.0f} points)" if self.mdd_with_folds else ""))
                out.append("warning: this design cannot resolve differences of a few points" + better)
            elif self.folds == 1:
                out.append("warning: this design cannot resolve differences of a few points; "
                           "more test images or `seeds` would help")
            else:
                out.append("warning: this design cannot resolve differences of a few points; only more "
                           "images would help much (more folds or seeds add little)")
        return out


def resolution(folds: int, seeds: int, test_per_evaluation: list[int], *,
               folder_images: int | None = None) -> Resolution:
    """The design's :class:`Resolution`. One split: the same test images every time and a
    Welch test over seeds (``2 seeds − 2`` df); K folds: every image once per seed and a
    paired test over the ``K × seeds`` pairs (``K × seeds − 1`` df). ``folder_images``:
    the folder's image count when folds are possible (for the suggestion)."""
    if folds > 1:
        images, df = sum(test_per_evaluation), folds * seeds - 1
    else:
        images, df = test_per_evaluation[0], 2 * seeds - 2
    with_folds = min_detectable_difference(folder_images, 5 * seeds - 1) if folds == 1 and folder_images else None
    return Resolution(folds, seeds, tuple(test_per_evaluation), images, df,
                      min_detectable_difference(images, df), with_folds, folder_images)
