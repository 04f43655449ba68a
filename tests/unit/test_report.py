"""cnncourse.experiments.report: sentences about results are printed from numbers and asserted."""

import pytest

from cnncourse.experiments.report import ClaimFailed, claim, mean_std


def test_claim_prints_the_sentence_when_it_holds(capsys):
    text = claim("BN reaches {bn:.2f} vs {plain:.2f}.", bn=0.912, plain=0.853, holds=0.912 > 0.853)
    assert text == "BN reaches 0.91 vs 0.85." and capsys.readouterr().out == "BN reaches 0.91 vs 0.85.\n"


def test_claim_raises_when_the_numbers_contradict_it(capsys):
    with pytest.raises(ClaimFailed, match="BN reaches 0.80 vs 0.85"):
        claim("BN reaches {bn:.2f} vs {plain:.2f}.", bn=0.80, plain=0.853, holds=0.80 > 0.853)
    assert capsys.readouterr().out == ""  # nothing printed that the run does not support
    assert issubclass(ClaimFailed, AssertionError)


def test_claim_needs_a_comparison_and_all_its_values():
    with pytest.raises(ValueError, match="holds must be"):
        claim("x", holds="yes")
    with pytest.raises(ValueError, match="cannot format"):
        claim("{missing}", holds=True)


def test_mean_std_never_invents_a_spread_from_one_seed():
    assert mean_std([0.8]) == "0.8000 ± n/a (1 seed)"
    assert mean_std([0.8, 0.9]) == "0.8500 ± 0.0707 (2 seeds)"
    assert mean_std([0.8, 0.9], ".1f", percent=True) == "85.0 % ± 7.1 % (2 seeds)"
    assert mean_std([float("nan"), 0.5]) == "n/a (NaN)"
    assert mean_std([0.1, 0.1]) == "0.1000 ± 0 (2 seeds, identical)"
    assert mean_std([0.8, 0.80001]) == "0.8000 ± 7.1e-06 (2 seeds)"
    assert mean_std([0.1, 0.2], "+.2f") == "+0.15 ± 0.07 (2 seeds)"
    with pytest.raises(ValueError):
        mean_std([])
