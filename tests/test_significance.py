"""ticketzoo.significance: the one-seed tests a ResNet-50 family's cards rest on."""

from __future__ import annotations

import math

import pytest

from ticketzoo.significance import mcnemar, run_sd


def test_mcnemar_tests_the_images_only_one_network_got_right():
    # 1000 images: both right on 700, only a on 60, only b on 30, both wrong on 210.
    a = [True] * 700 + [True] * 60 + [False] * 30 + [False] * 210
    b = [True] * 700 + [False] * 60 + [True] * 30 + [False] * 210
    t = mcnemar(a, b)
    assert (t.images, t.a_only, t.b_only) == (1000, 60, 30)
    assert t.delta == pytest.approx(3.0)  # 76.0% - 73.0%
    from scipy.stats import binomtest

    assert t.p == pytest.approx(binomtest(60, 90, 0.5).pvalue) and 0.001 < t.p < 0.01
    assert t.noise_sd == pytest.approx(math.hypot(run_sd(0.76, 1000), run_sd(0.73, 1000)))
    assert 1.9 < t.noise_sd < 2.0  # 1000 images: two runs can differ by ~2 points from noise alone
    assert not t.beyond_noise  # p < 0.05, but 3 points is under twice that sd
    big = mcnemar(a * 10, b * 10)  # the same rates on 10,000 images
    assert big.p < 1e-10 and big.noise_sd == pytest.approx(t.noise_sd / math.sqrt(10)) and big.beyond_noise
    assert big.to_dict()["beyond_noise"] is True


def test_mcnemar_without_a_disagreement_has_no_p_and_bad_input_is_refused():
    same = mcnemar([True, False, True], [True, False, True])
    assert same.p is None and same.delta == 0.0 and not same.beyond_noise
    with pytest.raises(ValueError):
        mcnemar([True], [True, False])
    with pytest.raises(ValueError):
        mcnemar([], [])


def test_run_sd_is_the_binomial_bound():
    assert run_sd(0.8, 10_000) == pytest.approx(0.4)  # points
    assert run_sd(1.0, 100) == 0.0 and run_sd(0.5, 0) == math.inf
