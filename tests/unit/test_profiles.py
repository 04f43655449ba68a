import pytest

import cnncourse
from cnncourse.profiles import PROFILES, Experiment


def test_three_profiles_share_the_same_experiments():
    assert list(PROFILES) == ["smoke", "cpu", "gpu"]
    names = {name: set(p.experiments) for name, p in PROFILES.items()}
    assert names["smoke"] == names["cpu"] == names["gpu"]


def test_smoke_is_never_bigger_than_cpu():
    smoke, cpu = PROFILES["smoke"], PROFILES["cpu"]
    for name, small in smoke.experiments.items():
        big = cpu[name]
        assert small.epochs <= big.epochs, name
        assert small.seeds <= big.seeds, name
        if big.train_size is not None:
            assert small.train_size is not None and small.train_size <= big.train_size, name


def test_env_var_selects_profile(monkeypatch):
    monkeypatch.setenv("CNNCOURSE_PROFILE", "smoke")
    assert cnncourse.profile().name == "smoke"
    assert cnncourse.profile("gpu").name == "gpu"


def test_unknown_profile_lists_the_valid_ones(monkeypatch):
    with pytest.raises(ValueError, match="valid profiles: smoke, cpu, gpu"):
        cnncourse.profile("laptop")
    monkeypatch.setenv("CNNCOURSE_PROFILE", "fast")
    with pytest.raises(ValueError, match=r"'fast' \(from \$CNNCOURSE_PROFILE\)"):
        cnncourse.profile()


def test_unknown_experiment_is_a_clear_error():
    with pytest.raises(ValueError, match="known experiments: .*optimizers"):
        PROFILES["cpu"]["optimisers"]


def test_default_without_env_is_cpu_here(monkeypatch):
    monkeypatch.delenv("CNNCOURSE_PROFILE", raising=False)
    from cnncourse.profiles import default_profile_name, gpu_available

    assert default_profile_name() == ("gpu" if gpu_available() else "cpu")


@pytest.mark.parametrize("bad", [{"epochs": 0}, {"batch_size": -1}, {"train_size": 0}, {"seeds": 1.5}])
def test_experiment_rejects_bad_sizes(bad):
    kwargs = dict(train_size=10, test_size=10, epochs=1, batch_size=1) | bad
    with pytest.raises(ValueError):
        Experiment(**kwargs)


def test_experiment_options_are_read_only():
    exp = PROFILES["cpu"]["degradation"]
    depths = exp.option("depths")
    assert len(depths) == 2 and depths[0] < depths[1]
    assert exp.option("missing", "fallback") == "fallback"
    with pytest.raises(TypeError):
        exp.options["depths"] = (1,)


def test_setup_seeds_and_reports(capsys):
    import numpy as np

    cnncourse.setup(3)
    a = np.random.rand(3)
    cnncourse.setup(3)
    b = np.random.rand(3)
    np.testing.assert_array_equal(a, b)
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "Keras" in line and "profile:" in line and "seed: 3" in line


def test_setup_rejects_bad_seed():
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        cnncourse.setup(-1)
    with pytest.raises(ValueError, match="seed"):
        cnncourse.setup(True)


def test_sizes_computed_with_numpy_are_accepted(capsys):
    import numpy as np

    run = Experiment(np.int64(100), None, epochs=np.int32(2), batch_size=np.int64(32))
    assert run.train_size == 100 and type(run.epochs) is int and type(run.batch_size) is int
    cnncourse.setup(np.int64(0), quiet=True)


def test_setup_profile_argument_overrides_env(monkeypatch, capsys):
    monkeypatch.setenv("CNNCOURSE_PROFILE", "smoke")
    assert cnncourse.setup(0, "cpu").name == "cpu"
    assert cnncourse.profile().name == "cpu"
    assert "profile: cpu" in capsys.readouterr().out
    with pytest.raises(ValueError, match="valid profiles"):
        cnncourse.setup(0, "tpu")


def test_choosing_the_gpu_profile_without_a_gpu_warns_once(monkeypatch, capsys):
    """CNNCOURSE_PROFILE=gpu on a CPU machine used to start full-scale runs without a word."""
    from cnncourse import profiles

    monkeypatch.setattr(profiles, "gpu_available", lambda: False)
    monkeypatch.setattr(profiles, "_warned_no_gpu", False)
    monkeypatch.setenv("CNNCOURSE_PROFILE", "gpu")
    assert cnncourse.profile().name == "gpu" and cnncourse.profile().name == "gpu"
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "no GPU" in err[0] and "CNNCOURSE_PROFILE=cpu" in err[0]
    monkeypatch.setattr(profiles, "_warned_no_gpu", False)
    cnncourse.setup(0, "gpu", quiet=True)
    assert "no GPU" in capsys.readouterr().err
    monkeypatch.setattr(profiles, "_warned_no_gpu", False)
    assert cnncourse.profile("gpu").name == "gpu"  # looking a profile up by name is not choosing it
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(profiles, "gpu_available", lambda: True)
    assert cnncourse.profile().name == "gpu" and capsys.readouterr().err == ""


def test_device_kind_names_the_gpu_model_or_cpu(monkeypatch):
    from cnncourse import backend

    monkeypatch.setattr(backend, "gpu_names", lambda: [])
    assert backend.device_kind() == "cpu"
    monkeypatch.setattr(backend, "gpu_names", lambda: ["NVIDIA H200", "NVIDIA H200"])
    assert backend.device_kind() == "NVIDIA H200+NVIDIA H200"
