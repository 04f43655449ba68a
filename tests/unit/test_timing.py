"""inspection.timing: medians that ignore outliers, and a crossover that one noisy timing cannot create."""

from __future__ import annotations

import pytest

from cnncourse.inspection import timing


class FakeClock:
    """A clock that advances only when the timed function says so: deterministic timings."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_median_seconds_warms_up_and_takes_the_median():
    clock = FakeClock()
    costs = iter([5.0, 0.001, 0.5, 0.001])  # a slow first call, then one outlier among three
    calls = []

    def fn():
        calls.append(1)
        clock.now += next(costs)

    seconds = timing.median_seconds(fn, repeats=3, min_seconds=0.0, clock=clock)
    assert len(calls) == 1 + 3  # the warm-up, then one call per measurement
    assert seconds == pytest.approx(0.001)  # neither the warm-up nor a later outlier counts


def test_median_seconds_repeats_fast_calls_to_fill_a_measurement():
    clock = FakeClock()
    calls = []

    def fn():
        calls.append(1)
        clock.now += 0.001

    seconds = timing.median_seconds(fn, repeats=5, min_seconds=0.01, clock=clock)
    assert len(calls) == 1 + 5 * 10
    assert seconds == pytest.approx(0.001)


def test_median_seconds_passes_arguments():
    seen = []
    timing.median_seconds(lambda a, b: seen.append((a, b)), 1, 2, repeats=1, min_seconds=0.0)
    assert seen[0] == (1, 2)


@pytest.mark.parametrize("kwargs", [{"repeats": 0}, {"repeats": 1.5}, {"min_seconds": -1.0}])
def test_median_seconds_refuses_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        timing.median_seconds(lambda: None, **kwargs)


def test_median_seconds_refuses_a_non_callable():
    with pytest.raises(ValueError, match="callable"):
        timing.median_seconds(3)


SIZES = [3, 5, 7, 9, 13, 17, 25, 33]


def test_crossover_ignores_a_win_below_a_loss():
    # a spike in the fast method's time at the second size: the wins before it do not count
    assert timing.crossover([3, 5, 7, 9], [5.0, 5.0, 5.0, 5.0], [1.0, 6.0, 1.0, 1.0]) == 7


def test_crossover_on_the_old_notebook_timings():
    # the stored notebook's numbers: the FFT narrowly ahead at F = 3 (1.29 vs 1.68 ms), a 15.7 ms spike at F = 7
    direct = [1.68, 15.80, 21.68, 45.91, 109.63, 159.36, 328.82, 761.36]
    fft = [1.29, 1.49, 15.66, 1.46, 1.98, 1.27, 2.15, 1.70]
    assert timing.crossover(SIZES, direct, fft) == 3
    assert timing.crossover(SIZES, direct, fft, margin=1.5) == 9  # a clear win only from F = 9 on


def test_crossover_margin_demands_a_clear_win():
    slow = [1.0, 1.0, 1.0, 1.0]
    fast = [2.0, 0.9, 0.5, 0.4]
    assert timing.crossover([1, 2, 3, 4], slow, fast) == 2
    assert timing.crossover([1, 2, 3, 4], slow, fast, margin=1.5) == 3
    assert timing.crossover([1, 2, 3, 4], slow, fast, margin=3.0) is None


def test_crossover_everywhere_and_nowhere():
    assert timing.crossover([1, 2, 3], [5, 5, 5], [1, 1, 1]) == 1
    assert timing.crossover([1, 2, 3], [1, 1, 1], [0.5, 0.5, 2.0]) is None  # loses at the largest size


def test_crossover_returns_float_sizes_as_given():
    assert timing.crossover([0.5, 1.5], [1.0, 1.0], [2.0, 0.1]) == 1.5


@pytest.mark.parametrize(
    "sizes, slow, fast, kwargs",
    [
        ([3], [1.0], [1.0], {}),  # one size
        ([3, 3], [1.0, 1.0], [1.0, 1.0], {}),  # not increasing
        ([3, 5], [1.0], [1.0, 1.0], {}),  # length mismatch
        ([3, 5], [1.0, 0.0], [1.0, 1.0], {}),  # a zero time
        ([3, 5], [1.0, float("nan")], [1.0, 1.0], {}),
        ([3, 5], [1.0, 1.0], [1.0, 1.0], {"margin": 0.5}),
    ],
)
def test_crossover_refuses_bad_input(sizes, slow, fast, kwargs):
    with pytest.raises(ValueError):
        timing.crossover(sizes, slow, fast, **kwargs)


def test_growth_exponent_reads_the_power():
    sizes = [3, 5, 9, 17, 33]
    assert timing.growth_exponent(sizes, [2e-4 * f**2 for f in sizes]) == pytest.approx(2.0)
    assert timing.growth_exponent(sizes, [1e-3] * 5) == pytest.approx(0.0, abs=1e-12)


def test_growth_exponent_refuses_non_positive_sizes():
    with pytest.raises(ValueError):
        timing.growth_exponent([0, 1], [1.0, 1.0])
