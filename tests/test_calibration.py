"""Calibrated words: Platt maps, per-word thresholds at 80 % precision, exclusions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from phototag.calibration import Calibration, Platt, fit_platt, fit_threshold


def test_threshold_is_where_precision_reaches_the_target() -> None:
    # ten photos by score: right, right, ..., then wrong ones below 0.6
    probs = [0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5]
    truth = [True, True, True, True, True, True, False, False, False, False]
    # at 0.65, 6 of 7 tags are right (0.86; with the two pseudo-photos 0.84); at 0.6, 6 of 8
    t = fit_threshold(probs, truth)
    assert t == pytest.approx(0.65)


def test_a_word_that_is_mostly_wrong_has_no_threshold() -> None:
    assert fit_threshold([0.9, 0.8, 0.7, 0.6], [False, True, False, False]) is None


def test_threshold_never_below_one_half() -> None:
    assert fit_threshold([0.3, 0.2], [True, True]) == 0.5


def test_platt_fits_a_separable_score() -> None:
    rng = np.random.default_rng(0)
    raw = np.concatenate([rng.normal(0.7, 0.05, 50), rng.normal(0.3, 0.05, 50)])
    truth = [True] * 50 + [False] * 50
    platt = fit_platt(raw, truth)
    assert platt(0.75) > 0.9 and platt(0.25) < 0.1
    # a prior with strength pulls a word with little data towards its stage
    prior = Platt(1.0, 0.0)
    pulled = fit_platt([0.8, 0.2], [True, False], prior=prior, strength=100.0)
    assert abs(pulled.slope - 1.0) < 0.2


def test_round_trip_and_exclusions(tmp_path: Path) -> None:
    cal = Calibration(
        maps={("detector", "person"): Platt(10, -3), ("detector", "people"): Platt(10, -3)},
        defaults={"detector": Platt(5, -2)},
        thresholds={"person": 0.6, "people": 0.6},
        dropped={"parachute"},
        excludes={"people": ["person"]},
    )
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(cal.as_json()))
    back = Calibration.load(path)
    probs = back.combine({("detector", "person"): 0.9, ("detector", "people"): 0.8,
                          ("taxonomy", "parachute"): 0.99})  # fmt: skip
    kept = back.listed(probs)
    assert set(kept) == {"people"}  # two people: not also "person"; parachute is dropped
    one = back.listed(back.combine({("detector", "person"): 0.9}))
    assert set(one) == {"person"}
    assert back.writable("person", 0.62) and not back.writable("person", 0.58)
    assert not back.writable("parachute", 0.99)
    assert back.list_threshold < back.threshold("person")  # the catalog lists more


def test_a_stack_gives_a_stage_that_says_nothing_no_weight(tmp_path: Path) -> None:
    """The taxonomy proposes "sky" for every photo with a score unrelated to it: its own
    map would list sky everywhere at the base rate; the stack learns to ignore it."""
    from phototag.calibration import Stack, fit_logistic

    rng = np.random.default_rng(1)
    truth = rng.random(400) < 0.3
    head = np.where(truth, rng.normal(0.45, 0.08, 400), rng.normal(0.05, 0.08, 400))
    noise = rng.uniform(0.0, 0.1, 400)
    base = fit_platt(noise, truth)
    assert base(0.05) == pytest.approx(truth.mean(), abs=0.05)  # the base rate, everywhere
    theta = fit_logistic(np.stack([head, noise], axis=1), truth, centre=np.array([10.0, 0.0, -4.0]),
                         strength=4.0)  # fmt: skip
    stack = Stack({"head": float(theta[0]), "taxonomy": float(theta[1])}, float(theta[2]))
    cal = Calibration(maps={("taxonomy", "sky"): base}, stacks={"sky": stack},
                      defaults={"head": Platt(10, -4), "taxonomy": Platt(5, -2)})  # fmt: skip
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(cal.as_json()))
    back = Calibration.load(path)
    cup = back.combine({("head", "sky"): -0.04, ("taxonomy", "sky"): 0.05})["sky"]
    beach = back.combine({("head", "sky"): 0.5, ("taxonomy", "sky"): 0.05})["sky"]
    assert cup < base(0.05) / 2 and beach > 0.9  # the stage's map alone: 0.3 for both
    assert abs(stack.weights["taxonomy"]) < stack.weights["head"] / 5
    # a word without a stack still takes its best stage
    assert back.combine({("taxonomy", "cup"): 0.9})["cup"] == pytest.approx(Platt(5, -2)(0.9))

