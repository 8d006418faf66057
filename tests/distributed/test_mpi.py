"""Data-parallel training over MPI: 2 ranks (``mpirun -n 2``, 1 thread each) against one
process training on the global batch, the collectives, and failures that must end the
job in bounded time. Skipped where mpi4py or mpirun is missing (pip install
'nncompile[mpi]')."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from . import mpi_worker as worker

WORKER = pathlib.Path(worker.__file__)
MPIRUN = shutil.which("mpirun")
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mpi4py") is None or MPIRUN is None,
    reason="needs mpi4py and mpirun: pip install 'nncompile[mpi]'",
)


def launch(out: pathlib.Path, scenario: str, ranks: int | None = 2, timeout: float = 240, **env):
    """Run the worker under mpirun (``ranks=None``: as a plain single process)."""
    return run([sys.executable, str(WORKER), str(out), scenario], ranks, timeout, **env)


def run(command: list[str], ranks: int | None = 2, timeout: float = 240, **env):
    if ranks is not None:
        root = ["--allow-run-as-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
        command = [MPIRUN, *root, "--oversubscribe", "-n", str(ranks), *command]
    environment = {**os.environ, "NNCOMPILE_THREADS": "1", **env}
    start = time.monotonic()
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=timeout)
    return done, time.monotonic() - start


def load(out: pathlib.Path, rank: int) -> dict[str, np.ndarray]:
    with np.load(out / f"rank{rank}.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> tuple[pathlib.Path, list[dict]]:
    out = tmp_path_factory.mktemp("mpi")
    done, _ = launch(out, "all")
    assert done.returncode == 0, done.stdout + done.stderr
    return out, [load(out, 0), load(out, 1)]


def one_process(case: str, batch_size: int):
    """The reference: one process, no MPI, the whole global batch per step."""
    opt, shuffle, rows = worker.FIT_CASES[case]
    x, y = worker.data(rows)
    model = worker.compiled(worker.mlp(), worker.optimizer(opt), False)
    history = model.fit(
        x, y, batch_size=batch_size, epochs=worker.EPOCHS, shuffle=shuffle, seed=7, verbose=0
    )
    return model, history.history, model.evaluate(x, y, batch_size=50)


@pytest.mark.parametrize("case", sorted(worker.FIT_CASES))
def test_two_ranks_train_as_one_process_with_the_global_batch(two_ranks, case):
    _, ranks = two_ranks
    model, history, scores = one_process(case, 2 * worker.PER_RANK_BATCH)
    for i, expected in enumerate(model.get_weights()):
        got = ranks[0][f"{case}/w{i}"]
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        # the ranks never exchange weights after the first broadcast: they stay equal
        # because every rank applies the same averaged gradients
        assert np.array_equal(got, ranks[1][f"{case}/w{i}"])
    # one graph each for the gradient (a short last batch too), the update and evaluate
    assert ranks[0][f"{case}/compiles"] == ranks[1][f"{case}/compiles"] == 3
    for key, values in history.items():  # fit's figures are the global batch's
        np.testing.assert_allclose(ranks[0][f"{case}/history/{key}"], values, rtol=1e-5)
        assert np.array_equal(ranks[0][f"{case}/history/{key}"], ranks[1][f"{case}/history/{key}"])
    for key, value in scores.items():  # evaluate splits the rows and reduces
        np.testing.assert_allclose(ranks[0][f"{case}/eval/{key}"], value, rtol=1e-5)
        np.testing.assert_allclose(ranks[1][f"{case}/eval/{key}"], value, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(worker.BATCH_NORM_MODELS))
def test_batch_norm_statistics_equal_one_process_on_the_global_batch(two_ranks, name):
    """With the learning rate 0 the statistics depend on the data alone: the ranks return
    their batches' moments, and the moving mean and variance come out as one process's
    on the global batch (the last batch gives rank 0 32 rows and rank 1 12)."""
    _, ranks = two_ranks
    x, y = worker.data(300)
    model = worker.BATCH_NORM_MODELS[name]()
    reference = worker.compiled(model, worker.optimizer("sgd", 0.0), False)
    reference.fit(x, y, batch_size=2 * worker.PER_RANK_BATCH, epochs=1, shuffle=False, verbose=0)
    for i, expected in enumerate(reference.get_weights()):
        np.testing.assert_allclose(ranks[0][f"{name}/w{i}"], expected, rtol=1e-5, atol=1e-6)
        assert np.array_equal(ranks[0][f"{name}/w{i}"], ranks[1][f"{name}/w{i}"])


def test_validation_and_early_stopping_agree_with_one_process(two_ranks):
    _, ranks = two_ranks
    model, history = worker.early_stopping_fit(False, 2 * worker.PER_RANK_BATCH)
    assert len(history["val_loss"]) < 10  # it did stop early
    np.testing.assert_allclose(ranks[0]["early/val_loss"], history["val_loss"], rtol=1e-5)
    assert np.array_equal(ranks[0]["early/val_loss"], ranks[1]["early/val_loss"])
    for i, expected in enumerate(model.get_weights()):
        np.testing.assert_allclose(ranks[0][f"early/w{i}"], expected, rtol=1e-5, atol=1e-5)
        assert np.array_equal(ranks[0][f"early/w{i}"], ranks[1][f"early/w{i}"])


def test_only_rank_zero_writes_checkpoints(two_ranks):
    out, _ = two_ranks
    written = sorted(p.name for p in out.iterdir() if p.name.startswith("checkpoint"))
    assert written == ["checkpoint-written-by-rank0"]


def test_allreduce_and_broadcast_of_trees(two_ranks):
    _, ranks = two_ranks
    for r in ranks:
        np.testing.assert_array_equal(r["allreduce_sum/a"], np.full((3, 2), 3.0))
        np.testing.assert_array_equal(r["allreduce_sum/b0"], np.arange(4) * 3)
        assert r["allreduce_sum/b1"] == 2.5 and r["allreduce_min/b1"] == 0.0
        np.testing.assert_array_equal(r["allreduce_max/a"], np.full((3, 2), 2.0))
        np.testing.assert_array_equal(r["allreduce_min/b0"], np.arange(4))
        np.testing.assert_array_equal(r["allreduce_mean/a"], np.full((3, 2), 1.5))
        np.testing.assert_array_equal(r["broadcast/a"], np.full((3, 2), 2.0))  # rank 1's
        assert r["mismatch_raised"]  # differently shaped trees: both ranks raise


def test_a_failing_step_stops_every_rank_with_the_cause(two_ranks):
    _, ranks = two_ranks
    for r in ranks:
        message = str(r["failure/message"])
        assert "failed on rank 1" in message and "this loss refuses rank 1" in message
        assert r["failure/unchanged"]  # the epoch's weights were not taken


def test_an_uncaught_exception_on_one_rank_ends_the_job(tmp_path):
    done, seconds = launch(tmp_path, "uncaught", timeout=120)
    assert done.returncode != 0
    assert "rank 1 of 2 raised RuntimeError" in done.stderr
    assert "rank 1 gives up" in done.stderr
    assert seconds < 60


def test_a_rank_that_never_arrives_aborts_the_job_after_the_timeout(tmp_path):
    done, seconds = launch(tmp_path, "absent", timeout=120, NNCOMPILE_DIST_TIMEOUT="3")
    assert done.returncode != 0
    assert "rank 0 of 2 waited 3 s" in done.stderr
    assert seconds < 60


def test_without_mpirun_a_process_is_a_world_of_one(tmp_path):
    """The same script run directly: one rank, fit on batch 32 as without distributed."""
    done, _ = launch(tmp_path, "fit", ranks=None)
    assert done.returncode == 0, done.stdout + done.stderr
    got = load(tmp_path, 0)
    assert got["size"] == 1
    model, history, _ = one_process("adam_shuffled", worker.PER_RANK_BATCH)
    for i, expected in enumerate(model.get_weights()):
        np.testing.assert_allclose(got[f"adam_shuffled/w{i}"], expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got["adam_shuffled/history/loss"], history["loss"], rtol=1e-6)


def test_the_demo_trains_data_parallel():
    cli = "from nncompile.cli import main; raise SystemExit(main())"
    demo = [sys.executable, "-c", cli, "demo"]
    flags = ["--distributed", "--quiet", "--no-graph", "--epochs", "3", "--limit", "400"]
    done, _ = run(demo + flags)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("data-parallel: 2 ranks x 32 rows = global batch 64") == 1
    accuracy = float(done.stdout.split("accuracy ")[1].split(",")[0])
    assert accuracy > 0.5  # (three epochs on 400 digits; chance is 0.1)


def test_the_hand_written_data_parallel_example():
    example = WORKER.parents[2] / "examples" / "data_parallel.py"
    done, _ = run([sys.executable, str(example)])
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    sums = {line.split(": weights checksum ")[1] for line in lines if "checksum" in line}
    assert len(sums) == 1  # both ranks end with the same weights
    assert done.stdout.count("weights checksum") == 2
    last = [line for line in done.stdout.splitlines() if line.startswith("epoch 8")][0]
    assert float(last.split("loss ")[1]) < 0.01
