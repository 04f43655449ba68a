"""cnncourse.checks: one set of argument rules for the whole package."""

import numpy as np
import pytest

from cnncourse import checks


def test_numpy_numbers_are_accepted_and_returned_as_python_values():
    assert checks.positive_int("n", np.int64(3)) == 3 and type(checks.positive_int("n", np.int32(3))) is int
    assert checks.integer("n", np.uint8(0), minimum=0) == 0
    assert type(checks.number("x", np.float32(0.5), minimum=0, maximum=1)) is float
    assert checks.positive_float("lr", np.float64(1e-3)) == pytest.approx(1e-3)
    assert checks.rate("p", np.float16(0.25)) == 0.25
    assert checks.pair("kernel", np.int64(3)) == (3, 3) and checks.pair("s", (np.int8(1), 2)) == (1, 2)
    assert checks.input_shape((np.int64(28), 28, np.int64(1))) == (28, 28, 1)
    assert checks.boolean("flag", np.bool_(True)) is True


@pytest.mark.parametrize("value", [True, False, np.bool_(True), 1.0, "3", None, float("nan")])
def test_booleans_floats_and_strings_are_not_integers(value):
    with pytest.raises(ValueError, match="n must be a positive integer"):
        checks.positive_int("n", value)


@pytest.mark.parametrize("value", [True, "0.1", None, float("nan"), float("inf"), -0.1, 1.0])
def test_rates_are_finite_numbers_in_zero_one(value):
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0.0, 1.0\)"):
        checks.rate("dropout", value)


def test_messages_say_what_is_allowed():
    with pytest.raises(ValueError, match=r"epochs must be an integer >= 1, got 0"):
        checks.integer("epochs", 0, minimum=1)
    with pytest.raises(ValueError, match=r"k must be an integer in \[0, 3\], got 4"):
        checks.integer("k", 4, minimum=0, maximum=3)
    with pytest.raises(ValueError, match="mode must be one of 'a', 'b'; got 'c'"):
        checks.choice("mode", "c", ("a", "b"))
    with pytest.raises(ValueError, match="must be True or False"):
        checks.boolean("flag", 1)
    with pytest.raises(ValueError, match="height and width >= 8"):
        checks.input_shape((4, 4, 1), min_size=8)
    with pytest.raises(ValueError, match="input_shape must be"):
        checks.input_shape((28.0, 28, 1))
    with pytest.raises(ValueError, match="a positive integer or a pair"):
        checks.pair("stride", (1, 2, 3))
    with pytest.raises(ValueError, match="non-negative finite"):
        checks.non_negative_float("wd", float("inf"))
    assert checks.choice("x", [1], ([1], [2])) == [1]  # unhashable values compare with ==
