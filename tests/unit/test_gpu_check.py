"""The gpu profile kept ready: its code paths trained for two steps on CPU, its time estimates, gpu-check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cnncourse.course import course_map, gpu_check
from cnncourse.course.gpu_check import dry_run, estimate, notebook_experiments, work
from cnncourse.profiles import PROFILES, Experiment

GPU = PROFILES["gpu"]


def test_dry_run_keeps_batch_size_and_model_options_and_shrinks_the_counts():
    recipe = dry_run(GPU["recipe"], steps=3)
    assert recipe.batch_size == GPU["recipe"].batch_size
    assert (recipe.train_size, recipe.test_size, recipe.epochs, recipe.seeds) == (3 * recipe.batch_size, recipe.batch_size, 1, 1)
    assert recipe.option("target") == GPU["recipe"].option("target")  # not a count: kept
    assert recipe.option("ablation_train") == 3 * recipe.batch_size and recipe.option("dist_test") == recipe.batch_size
    assert recipe.option("budget_minutes") == pytest.approx(0.1) and recipe.option("ensemble") == 2
    ablation = dry_run(GPU["ablation"])
    for key in ("inception_width", "alexnet_width", "alexnet_lrn"):
        assert ablation.option(key) == GPU["ablation"].option(key)
    assert dry_run(GPU["inside"]).option("ascent_steps") == 2
    optimizers = dry_run(GPU["optimizers"])
    assert (optimizers.option("sweep_train"), optimizers.option("validation")) == (2 * optimizers.batch_size, optimizers.batch_size)
    assert optimizers.option("rate_factors") == GPU["optimizers"].option("rate_factors")
    assert dry_run(GPU["architectures"]).option("models") == GPU["architectures"].option("models")
    profile = gpu_check.dry_profile("gpu")
    assert profile.name == "gpu-dry" and set(profile.experiments) == set(GPU.experiments)
    with pytest.raises(ValueError, match="steps"):
        dry_run(GPU["recipe"], steps=0)
    with pytest.raises(ValueError, match="Experiment"):
        dry_run({"epochs": 1})
    with pytest.raises(ValueError, match="valid profiles"):
        gpu_check.dry_profile("tpu")


def test_notebook_experiments_are_read_from_the_code_cells(tmp_path):
    nb = tmp_path / "x.ipynb"
    nb.write_text(json.dumps({"cells": [
        {"cell_type": "markdown", "source": ['prof["memorization"] in prose']},
        {"cell_type": "code", "source": ['run = prof["degradation"]\n', "ex = profile()['exercises']\n"]},
        {"cell_type": "code", "source": 'again = prof["degradation"]'},
    ]}))
    assert notebook_experiments(nb) == ("degradation", "exercises")


def test_work_scales_with_images_widths_and_depths():
    base = Experiment(1_000, 100, epochs=2, batch_size=10)
    assert work(base) == 2_000
    assert work(Experiment(None, 100, epochs=1, batch_size=10, seeds=3)) == 3 * 60_000
    assert work(Experiment(1_000, 100, epochs=2, batch_size=10, options={"inception_width": 0.5})) == 500
    assert work(Experiment(1_000, 100, epochs=2, batch_size=10, options={"depths": (20, 44)})) == 2_000 * 64
    assert work(Experiment(1_000, 100, epochs=2, batch_size=10, options={"models": ("a", "b", "c")})) == 6_000


def test_cpu_rate_comes_from_the_throughput_table_and_a_missing_table_is_named(tmp_path):
    table = tmp_path / "throughput_cpu.md"
    table.write_text("| model | mode | ours (img/s) |\n|:--|:--|--:|\n| resnet50 | train | 10.0 | 11 |\n")
    assert gpu_check.cpu_flops_per_second(table) == 10.0 * 6 * gpu_check.RESNET50_64_MACS
    assert gpu_check.speedup(table) == pytest.approx(790e12 * 0.05 / (60 * gpu_check.RESNET50_64_MACS))
    with pytest.raises(ValueError, match="no 'resnet50 | train' row"):
        gpu_check.cpu_flops_per_second(tmp_path / "x.md" if (tmp_path / "x.md").write_text("| vgg16 | train | 3 |") else None)
    with pytest.raises(ValueError, match=r"missing\.md.*benchmarks/throughput\.py"):
        gpu_check.cpu_flops_per_second(tmp_path / "missing.md")


def test_resnet50_macs_constant_is_the_counted_one():
    from cnncourse import models
    from cnncourse.inspection.analysis import count_macs

    assert count_macs(models.build("resnet50", input_shape=(64, 64, 3), num_classes=1000)) == gpu_check.RESNET50_64_MACS


def test_estimate_scales_the_cpu_training_time_and_keeps_a_floor_per_step(tmp_path):
    table = tmp_path / "t.md"
    table.write_text("| resnet50 | train | 35.3 | 37 |\n")
    times = {"cpu": {"08_depth_and_residuals.ipynb": course_map.RunTime(12.0, True, "m")},
             "smoke": {"08_depth_and_residuals.ipynb": course_map.RunTime(2.0, True, "m")}}
    found = estimate("08_depth_and_residuals.ipynb", times=times, table=table)
    run_cpu, run_gpu = PROFILES["cpu"]["degradation"], GPU["degradation"]
    scaled = 10.0 * work(run_gpu) / work(run_cpu) / gpu_check.speedup(table)
    steps = -(-(run_gpu.train_size or 60_000) // run_gpu.batch_size) * run_gpu.epochs * run_gpu.seeds * len(run_gpu.option("depths"))
    assert found.experiments == ("degradation",) and found.steps == steps and found.overhead == 2.0
    assert found.training == pytest.approx(max(scaled, steps * gpu_check.STEP_SECONDS / 60))
    assert found.minutes == pytest.approx(2.0 + found.training, abs=0.01)
    assert estimate("08_depth_and_residuals.ipynb", times={"smoke": times["smoke"]}, table=table) is None
    # a notebook that trains nothing costs its smoke run
    times["cpu"]["01_convolution.ipynb"] = course_map.RunTime(1.3, True, "m")
    times["smoke"]["01_convolution.ipynb"] = course_map.RunTime(0.9, True, "m")
    nothing = estimate("01_convolution.ipynb", times=times, table=table)
    if not nothing.experiments:
        assert nothing.minutes == 0.9 and nothing.steps == 0


def test_gpu_check_refuses_a_machine_without_a_gpu_and_records_what_ran(tmp_path, monkeypatch):
    from cnncourse.course import runner

    with pytest.raises(ValueError, match="sees no GPU.*--allow-cpu"):
        gpu_check.check([], budget_minutes=1, out_dir=tmp_path, report_path=tmp_path / "r.md")
    with pytest.raises(ValueError, match="budget_minutes"):
        gpu_check.check([], budget_minutes=0, out_dir=tmp_path, allow_cpu=True)
    nb = tmp_path / "99_tiny.ipynb"
    nb.write_text(json.dumps({"cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                                          "source": "import os\nprint(os.environ['CNNCOURSE_PROFILE'])"}],
                              "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
                              "nbformat": 4, "nbformat_minor": 5}))
    bad = tmp_path / "98_bad.ipynb"
    bad.write_text(nb.read_text().replace("print(os.environ['CNNCOURSE_PROFILE'])", "1 / 0"))
    timings = tmp_path / "timings.json"
    monkeypatch.setattr(runner, "TIMINGS_FILE", timings)
    monkeypatch.setenv("CNNCOURSE_PROFILE", "cpu")
    rows = gpu_check.check([bad, nb], budget_minutes=5, out_dir=tmp_path / "out", allow_cpu=True,
                           report_path=tmp_path / "report.md")
    assert [r.status.split(":")[0] for r in rows] == ["failed", "ran"]
    assert "ZeroDivisionError" in rows[0].status
    assert set(json.loads(timings.read_text())["gpu"]) == {"99_tiny.ipynb"}
    executed = json.loads((tmp_path / "out" / "99_tiny.ipynb").read_text())
    assert "".join(executed["cells"][0]["outputs"][0]["text"]).strip() == "gpu"
    text = (tmp_path / "report.md").read_text()
    assert "| 99_tiny.ipynb | — |" in text and "| ran |" in text and "failed" in text


# ---------------------------------------------------------------------------------------------
# The code paths only the gpu profile takes, at its batch sizes and settings, for one step each:
# the models only its list names, the widths, LRN and depths only it uses, the recipe's mixed-
# precision branch. (What the cpu profile also runs is tested by the notebooks.) The GPU this
# course can borrow runs Keras on JAX, so the model zoos train on JAX only; the recipe's
# branch runs on both backends.


def _on_jax() -> bool:
    import keras

    return keras.backend.backend() == "jax"


jax_only = pytest.mark.skipif("not _on_jax()", reason="the gpu profile's GPU runs Keras on JAX")


@pytest.fixture(scope="module")
def tiny():
    from cnncourse import data

    return lambda run, **kw: data.load_split("fashion_mnist", train_size=run.train_size, test_size=run.test_size, **kw)


@jax_only
def test_gpu_architectures_train_one_step(tiny):
    from cnncourse.experiments import architectures

    run = dry_run(GPU["architectures"], steps=1)
    only_gpu = [m for m in run.option("models") if m not in PROFILES["cpu"]["architectures"].option("models")]
    assert only_gpu  # today zfnet_small and vgg16_small
    results = architectures.run_architectures(only_gpu, tiny(run), run, architectures.ArchitectureRecipe(),
                                              profile="gpu-dry", progress=False)
    for name in only_gpu:
        assert np.isfinite(results.comparison.mean(name, "loss")), name


@jax_only
def test_gpu_ablation_networks_train_one_step(tiny):
    from cnncourse.experiments import zhang

    run = dry_run(GPU["ablation"], steps=1)
    # one cell per architecture whose gpu options (width, LRN) differ from the cpu profile's
    widths = {k.split("_")[0] for k, v in run.options.items() if PROFILES["cpu"]["ablation"].option(k) != v}
    cells = {cell.arch: cell for cell in zhang.zhang_cells() if cell.arch in widths}
    assert cells
    grid = zhang.run_grid(tiny(run), run, cells=list(cells.values()), progress=False)
    assert len(grid.labels) == len(cells)
    for label in grid.labels:
        assert np.isfinite(grid.mean(label, "loss")), label


@jax_only
def test_gpu_degradation_networks_train_one_step(tiny):
    import keras

    from cnncourse.experiments import train
    from cnncourse.models.resnet import cifar_resnet

    run = dry_run(GPU["degradation"], steps=1)
    split = tiny(run, image_size=32)

    def maker(depth, shortcut):
        def make(seed):
            model = cifar_resnet(split.input_shape, split.num_classes, depth=depth, shortcut=shortcut)
            model.compile(keras.optimizers.SGD(0.02, momentum=0.9), "sparse_categorical_crossentropy", metrics=["accuracy"])
            return model
        return make

    makers = {f"{kind}-{d}": maker(d, None if kind == "plain" else "A")
              for kind in ("plain", "residual") for d in run.option("depths")
              if d not in PROFILES["cpu"]["degradation"].option("depths")}
    assert makers
    comparison = train.compare(makers, split, run, progress=False, validation=False)
    for label in makers:
        assert np.isfinite(comparison.mean(label, "loss")), label


def test_gpu_recipe_trains_one_step_in_mixed_precision(tiny, monkeypatch):
    from cnncourse.experiments import recipe

    # what backend.acceleration() chooses on a bfloat16 GPU, forced on this CPU
    monkeypatch.setenv("CNNCOURSE_PRECISION", "mixed_bfloat16")
    monkeypatch.setenv("CNNCOURSE_JIT_COMPILE", "1")
    run = dry_run(GPU["recipe"], steps=1)
    base = recipe.Recipe.for_run("fashion_mnist", run)
    assert base.width == 48  # the gpu profile's wider network, at its batch size
    result, model = recipe.train(base, tiny(run), run, seed=0)
    assert any("bfloat16" in str(layer.dtype_policy) for layer in model.layers)
    assert np.isfinite(result.history["loss"][-1]) and 0.0 <= result.reported_test_accuracy <= 1.0


def test_parallel_gpu_check_runs_longest_first_and_reports_in_course_order(tmp_path, monkeypatch):
    from cnncourse.course import runner

    assert gpu_check.makespan([5, 4, 3, 3, 3], 2) == 10  # longest first, greedily (the optimum, 5+4 | 3+3+3, is 9)
    assert gpu_check.makespan([2.0, 1.0], 1) == 3.0 and gpu_check.makespan([], 3) == 0.0
    with pytest.raises(ValueError, match="jobs"):
        gpu_check.makespan([1.0], 0)
    cell = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
            "source": "import os\nprint(os.environ['CNNCOURSE_PROFILE'], os.environ['XLA_PYTHON_CLIENT_PREALLOCATE'])"}
    paths = []
    for name in ("97_a.ipynb", "98_b.ipynb", "99_c.ipynb"):
        nb = tmp_path / name
        nb.write_text(json.dumps({"cells": [cell], "nbformat": 4, "nbformat_minor": 5, "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}}))
        paths.append(nb)
    monkeypatch.setattr(runner, "TIMINGS_FILE", tmp_path / "timings.json")
    monkeypatch.setenv("CNNCOURSE_PROFILE", "cpu")
    for var in ("XLA_PYTHON_CLIENT_PREALLOCATE", "TF_FORCE_GPU_ALLOW_GROWTH"):  # recorded, so restored afterwards
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)
    guesses = {"97_a.ipynb": 0.5, "98_b.ipynb": 99.0, "99_c.ipynb": None}
    monkeypatch.setattr(gpu_check, "estimate_minutes", lambda nb, **_: guesses[Path(nb).name])
    with pytest.raises(ValueError, match="jobs"):
        gpu_check.check(paths, budget_minutes=5, out_dir=tmp_path / "out", allow_cpu=True, jobs=0)
    rows = gpu_check.check(paths, budget_minutes=5, out_dir=tmp_path / "out", allow_cpu=True, jobs=2,
                           report_path=tmp_path / "report.md")
    assert [r.notebook for r in rows] == ["97_a.ipynb", "98_b.ipynb", "99_c.ipynb"]  # course order
    assert [r.status.split(":")[0] for r in rows] == ["ran", "skipped", "ran"]  # 99 min never fits 5
    assert set(json.loads((tmp_path / "timings.json").read_text())["gpu"]) == {"97_a.ipynb", "99_c.ipynb"}
    out = json.loads((tmp_path / "out" / "97_a.ipynb").read_text())["cells"][0]["outputs"][0]["text"]
    assert "".join(out).split() == ["gpu", "false"]  # the kernels share the GPU's memory
    assert "--jobs 2" in (tmp_path / "report.md").read_text()


def test_the_gpu_script_runs_every_benchmark_a_gpu_table_is_promised_for():
    root = Path(__file__).resolve().parents[2]
    script = (root / "scripts" / "gpu_check.sh").read_text()
    # input_pipeline.py compares TensorFlow and JAX side by side: the GPU machine has no TensorFlow
    not_on_the_gpu = {"input_pipeline.py"}
    for bench in sorted((root / "benchmarks").glob("*.py")):
        if bench.name not in not_on_the_gpu:
            assert f"benchmarks/{bench.name}" in script and "--write" in script, f"gpu_check.sh does not run {bench.name}"
    assert "--jobs" in script and "gpu-check" in script
