"""The pure parts of bench/overoptimization.py: Gao's fit, peak and drop, the summary's keys. Seconds."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "overoptimization.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("overoptimization", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_gao_fit_recovers_known_alpha_beta(bench):
    d = np.linspace(0.05, 6.0, 80)
    gain = d * (1.3 - 0.45 * np.log(d))
    fit = bench.gao_fit(d, gain)
    assert fit["alpha"] == pytest.approx(1.3, abs=1e-9) and fit["beta"] == pytest.approx(0.45, abs=1e-9)
    assert fit["r2"] == pytest.approx(1.0)
    noisy = gain + np.random.default_rng(0).normal(0, 0.05, len(d))
    fit = bench.gao_fit(np.concatenate([[0.0], d]), np.concatenate([[0.0], noisy]))  # d = 0 is dropped
    assert fit["alpha"] == pytest.approx(1.3, abs=0.05) and fit["beta"] == pytest.approx(0.45, abs=0.03)
    assert 0.9 < fit["r2"] < 1.0
    assert bench.gao_fit([0.0, 1.0], [0.0, 1.0]) == {"alpha": None, "beta": None, "r2": None}


def test_peak_and_drop(bench):
    gold = [1.0, 2.0, 3.0, 5.0, 4.0, 3.0, 2.0]
    out = bench.peak_and_drop(gold, window=1)
    assert (out["gold_start"], out["gold_peak"], out["gold_final"]) == (1.0, 5.0, 2.0)
    assert out["gold_drop_from_peak"] == pytest.approx(0.75)  # 3 of the 4 gained lost
    assert out["gold_peak_step"] == 4
    smoothed = bench.peak_and_drop(gold, window=2)  # means of full windows: 1.5, 2.5, 4, 4.5, 3.5, 2.5
    assert smoothed["gold_start"] == pytest.approx(1.5) and smoothed["gold_peak"] == pytest.approx(4.5)
    assert smoothed["gold_final"] == pytest.approx(2.5) and smoothed["gold_peak_step"] == pytest.approx(4.5)
    assert smoothed["gold_drop_from_peak"] == pytest.approx(2.0 / 3.0)
    assert bench.peak_and_drop([1.0, 2.0, 3.0], 1)["gold_drop_from_peak"] == 0.0
    assert bench.peak_and_drop([3.0, 2.0, 1.0], 1)["gold_drop_from_peak"] is None  # no gain, nothing to lose
    # a run that falls after its first step: the first window is the best (a trailing mean over the first steps
    # would put a peak above the start where there is none)
    assert bench.peak_and_drop([1.0, 3.0, 0.0, 0.5, 0.5, 0.0, 0.0], window=3)["gold_drop_from_peak"] is None
    # the standard error of a gain: step-to-step noise sigma = std(diff) / sqrt 2, a difference of two means of w
    rng = np.random.default_rng(0)
    flat = rng.normal(0.0, 1.0, 4000).tolist()
    assert bench.peak_and_drop(flat, window=10)["gold_gain_se"] == pytest.approx(math.sqrt(2 / 10), rel=0.05)


def test_spread_and_run_summary_keys(bench):
    rows = [{"step": i + 1, "proxy": 0.1 * i, "gold": g, "kl": 0.5 * i}
            for i, g in enumerate([0.0, 0.5, 0.8, 0.9, 0.7, 0.4])]
    one = bench.run_summary(rows, window=1)
    assert set(one) == set(bench.MAIN_KEYS)
    assert one["kl_final"] == pytest.approx(2.5) and one["proxy_final"] == pytest.approx(0.5)
    assert one["gold_drop_from_peak"] == pytest.approx(0.5 / 0.9)
    out = bench.spread([{"a": 1.0, "b": None}, {"a": 3.0, "b": 2.0}], ["a", "b"])
    assert out["a"] == 2.0 and out["a_std"] == pytest.approx(math.sqrt(2)) and "a_n" not in out
    assert out["b"] == 2.0 and out["b_std"] == 0.0 and out["b_n"] == 1


def test_overoptimised_needs_a_real_rise_a_fifth_of_it_lost_and_a_rising_proxy(bench):
    run = {"gold_start": 0.0, "gold_peak": 1.0, "gold_final": 0.7, "gold_drop_from_peak": 0.3, "gold_gain_se": 0.1,
           "proxy_start": 0.0, "proxy_final": 1.0}
    assert bench.overoptimised(run)
    assert not bench.overoptimised({**run, "gold_final": 0.9, "gold_drop_from_peak": 0.1})  # a tenth lost
    assert not bench.overoptimised({**run, "gold_gain_se": 0.6})  # the rise is within twice its standard error
    assert not bench.overoptimised({**run, "proxy_final": -0.5})  # the proxy fell too
    assert not bench.overoptimised({**run, "gold_drop_from_peak": None})  # never gained


def test_summary_has_every_key_per_setting_and_form(bench):
    """summarise over fake seeds: per setting and form the issue's keys, the sweep, DPO, hybrid and claims."""
    cfg = bench.BenchConfig(**{**bench.QUICK, "seeds": 2})
    rng = np.random.default_rng(1)

    def rows():
        # gold rises for 15 steps and falls far below the start: overoptimised well beyond its noise
        return [{"step": i + 1, "proxy": 0.2 * i, "gold": float(rng.normal(i * (30 - i) / 100, 0.05)),
                 "kl": 0.3 * i} for i in range(40)]

    names = [bench.kl_label(c) for c in cfg.kl_fixed] + [bench.kl_label(target=t) for t in cfg.kl_targets]

    def setting():
        return {"proxies": {"single_heldout_accuracy": 0.7, "ens_min_heldout_accuracy": 0.72,
                            "member_heldout_accuracy": [0.7] * 5},
                "runs": {f: ({n: rows() for n in names} if f in bench.SWEEP_FORMS
                             else {bench.kl_label(cfg.weak_kl): rows()}) for f in bench.FORMS},
                "dpo": [{"step": s, "own_accuracy": 0.8 - 0.1 * s, "heldout_accuracy": 0.6, "own_gold": 0.0}
                        for s in (0, 3, 6)],
                "hybrid": rows(),
                "bon": {"n": [1, 2, 4], "kl": [bench.bon_kl(n) for n in (1, 2, 4)], "oracle": [0.0, 1.0, 1.5],
                        "gold": {f: [0.0, 0.5, 0.2] for f in bench.FORMS},
                        "proxy": {f: [0.0, 0.4, 0.9] for f in bench.FORMS}}}

    seeds = [{"seed": s, "settings": {name: setting() for name in bench.SETTINGS}} for s in range(2)]
    summary = bench.summarise(cfg, seeds)
    line = bench.one_line(cfg, summary, 1.0)
    for s in bench.SETTINGS:
        for f in bench.FORMS:
            for key in ("gold_peak", "gold_final", "gold_drop_from_peak", "proxy_final", "kl_final", "gao_alpha",
                        "gao_beta", "gao_r2"):
                assert line["main"][s][f][key] is not None and f"{key}_std" in line["main"][s][f]
        assert set(line["kl_sweep"][s]) == set(bench.SWEEP_FORMS) and set(line["kl_sweep"][s]["single"]) == set(names)
        assert line["dpo"][s]["last_own_accuracy"] == pytest.approx(0.2)
        assert line["claims"][s]["dpo_implicit_worse_on_own_samples"] is True
        assert line["claims"][s]["single_weak_kl_peak_gain"] > 0
        assert line["claims"][s]["single_weak_kl_seeds_visible"] == 2 and line["claims"][s]["seeds"] == 2
        assert set(line["hybrid"][s]) >= {"kl", "gold_rl_from_sft", "gold_dpo_then_rl"}
        assert line["bon"][s]["single"]["gold_drop_from_peak"] == pytest.approx(0.6)
        assert line["bon"][s]["single"]["peak_n"] == 2 and line["claims"][s]["bon_overoptimisation_visible"] is True
    assert "ensembles_help_more_against_noise" in line["claims"]
    html = bench.report_html(cfg, seeds, summary, 1.0)
    assert html.count("<svg") >= 2 * (2 * len(bench.FORMS) + 5) and "<script" not in html and "src=" not in html


def test_best_of_n_expected_matches_brute_force_over_subsets(bench):
    """The exact best-of-n estimator equals the mean over every n-subset of the gold of the proxy's pick; n = 1 is
    the plain mean, n = K the proxy's top sample; and the KL of best-of-n is log n - (n-1)/n."""
    import itertools

    rng = np.random.default_rng(0)
    proxy, gold = rng.normal(size=(5, 6)), rng.normal(size=(5, 6))
    for n in (1, 2, 3, 6):
        brute = np.mean([[gold[i, max(sub, key=lambda j: proxy[i, j])] for sub in itertools.combinations(range(6), n)]
                         for i in range(5)])
        assert bench.best_of_n_expected(proxy, gold, n)[0] == pytest.approx(brute)
    assert bench.best_of_n_expected(proxy, gold, 1)[0] == pytest.approx(gold.mean())
    assert bench.best_of_n_expected(proxy, proxy, 6)[1] == pytest.approx(proxy.max(1).mean())
    assert bench.bon_kl(1) == 0 and bench.bon_kl(16) == pytest.approx(math.log(16) - 15 / 16)
