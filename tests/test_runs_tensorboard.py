"""TensorBoard curves of a run, read back with TensorBoard's own event reader."""

import glob
import os

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # the test extra has it

import makemore_jax
from makemore_jax.errors import MakemoreError
from makemore_jax.store import checkpoint
from makemore_jax.training.steps import learning_rate

from conftest import first_names, run_inprocess, tiny_flags, tiny_settings

TAGS = ("Loss/train", "Loss/dev", "Loss/test", "learning_rate")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return first_names(tmp_path_factory, 400)


def curves(workdir):
    """Every scalar of every event file in the work directory: tag -> [(step, value)]."""
    out = {}
    for path in sorted(glob.glob(os.path.join(workdir, "events.out.tfevents.*"))):
        events = EventAccumulator(path)
        events.Reload()
        for tag in events.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in events.Scalars(tag))
    return {tag: sorted(points) for tag, points in out.items()}


def test_the_curves_hold_makemore_tags_at_the_steps_measured(tmp_path, capsys, small):
    d = str(tmp_path / "w")
    flags = tiny_flags("mlp", steps=40, lr_schedule="cosine", warmup_steps=10)
    code, _, err = run_inprocess(capsys, "train", "-i", small, "-o", d, "--type", "mlp", "--tensorboard", *flags)
    assert code == 0, err
    got = curves(d)
    assert set(got) == set(TAGS)
    evaluated = [r for r in checkpoint.read_metrics(d) if "dev_nll" in r]
    for tag, key in (("Loss/train", "train_nll"), ("Loss/dev", "dev_nll"), ("Loss/test", "test_nll")):
        assert [s for s, _ in got[tag]] == [r["step"] for r in evaluated]
        np.testing.assert_allclose([v for _, v in got[tag]], [r[key] for r in evaluated], rtol=1e-6)
    lr = dict(got["learning_rate"])
    schedule = learning_rate(makemore_jax.load(d).fitted.config)
    assert sorted(lr) == [10, 20, 30, 40]
    for step, value in lr.items():  # the rate the step's own update used (optax counts updates from 0)
        assert value == pytest.approx(float(schedule(step - 1)), rel=1e-6)
    assert lr[10] == pytest.approx(0.9 * 5e-4) and lr[40] < lr[20] < 5e-4  # warming up at 10, then cosine decay


def test_a_resumed_run_continues_the_curves_with_no_step_twice(tmp_path, capsys, small):
    whole, resumed = str(tmp_path / "whole"), str(tmp_path / "resumed")
    settings = tiny_settings("mlp")
    makemore_jax.train(small, workdir=whole, type="mlp", steps=40, tensorboard=True, **settings)
    makemore_jax.train(small, workdir=resumed, type="mlp", steps=20, tensorboard=True, **settings)
    code, _, err = run_inprocess(capsys, "train", "-o", resumed, "--resume", "--steps", "40", "--tensorboard")
    assert code == 0, err
    assert len(glob.glob(os.path.join(resumed, "events.out.tfevents.*"))) == 2
    a, b = curves(whole), curves(resumed)
    assert {t: [s for s, _ in p] for t, p in a.items()} == {t: [s for s, _ in p] for t, p in b.items()}
    for tag in TAGS:
        np.testing.assert_array_equal([v for _, v in a[tag]], [v for _, v in b[tag]])


def test_a_new_run_replaces_the_curves_of_the_run_it_replaces(tmp_path, capsys, small):
    d = str(tmp_path / "w")
    makemore_jax.train(small, workdir=d, type="mlp", steps=20, tensorboard=True, **tiny_settings("mlp"))
    makemore_jax.train(small, workdir=d, type="mlp", steps=10, tensorboard=True, **tiny_settings("mlp"))
    assert [s for s, _ in curves(d)["Loss/dev"]] == [10]
    makemore_jax.train(small, workdir=d, type="counts")
    assert not glob.glob(os.path.join(d, "events.out.tfevents.*"))


def test_curves_need_a_work_directory_and_a_trained_model(small, tmp_path):
    with pytest.raises(MakemoreError, match="give one"):
        makemore_jax.train(small, type="mlp", steps=10, tensorboard=True)
    with pytest.raises(MakemoreError, match="counted, not trained: no curves"):
        makemore_jax.train(small, workdir=str(tmp_path / "c"), type="counts", tensorboard=True)
    assert not (tmp_path / "c").exists()
