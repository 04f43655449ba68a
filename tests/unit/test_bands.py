"""Tests for cnncourse.experiments.bands: bands per dataset and profile."""

from __future__ import annotations

import math

import pytest

from cnncourse.experiments import bands

TABLE = {"fashion_mnist": {"smoke": (0.3, 1.0), "cpu": (0.7, 0.95)}}


def test_band_is_looked_up_per_dataset_and_profile():
    assert bands.band(TABLE, "fashion_mnist", "cpu") == (0.7, 0.95)
    assert bands.band(TABLE, "fashion_mnist", "gpu") is None
    assert bands.band(TABLE, "mnist", "cpu") is None


def test_in_band_asserts_inside_and_fails_outside(capsys):
    assert bands.in_band(0.8, TABLE, "fashion_mnist", "cpu", what="test accuracy") is True
    with pytest.raises(AssertionError, match="outside the fashion_mnist/cpu band"):
        bands.in_band(0.6, TABLE, "fashion_mnist", "cpu", what="test accuracy")
    with pytest.raises(AssertionError):
        bands.in_band(math.nan, TABLE, "fashion_mnist", "cpu", what="test accuracy")
    assert capsys.readouterr().out == ""


def test_a_dataset_without_a_band_runs_and_says_so(capsys):
    assert bands.in_band(0.12, TABLE, "cifar10", "cpu", what="test accuracy") is False
    assert "no band known for cifar10 in the cpu profile" in capsys.readouterr().out


def test_malformed_tables_are_refused():
    with pytest.raises(ValueError, match="low <= high"):
        bands.band({"mnist": {"cpu": (0.9, 0.1)}}, "mnist", "cpu")
    with pytest.raises(ValueError, match="table"):
        bands.band({"mnist": (0.1, 0.9)}, "mnist", "cpu")
    with pytest.raises(ValueError, match="what"):
        bands.in_band(0.5, TABLE, "mnist", "cpu", what="")
