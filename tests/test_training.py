import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from makemore_jax.errors import MakemoreError
from makemore_jax.models import bigram
from makemore_jax.models.counts import smoothed_probs
from makemore_jax.seeding import seed_key
from makemore_jax.training import steps as train_steps
from makemore_jax.training import trainer as train
from makemore_jax.training.config import TrainConfig

from conftest import fit_words


def fit_full_batch(counts, l2, steps, lr=50.0):
    params = bigram.init(seed_key(0, "init"), bigram.BigramConfig(counts.shape[0]))
    opt = optax.sgd(lr)
    params, _, losses = train_steps.run_steps(
        train_steps.full_batch_loss(bigram.loss_counts, l2), opt, params, opt.init(params), {"counts": counts}, 0, steps
    )
    return params, losses


def test_network_converges_to_the_counting_model(counts):
    """The lecture's point: with no penalty, gradient descent recovers the count table.

    After 20,000 full-batch steps (lr 50) every probability is within 1e-3 of the
    unsmoothed counting model, and the NLL within 1e-4 of its 2.4540.
    """
    params, losses = fit_full_batch(counts, 0.0, 20000)
    P_net = bigram.probs(params)
    P_counts = smoothed_probs(counts, 0.0)
    assert float(jnp.max(jnp.abs(P_net - P_counts))) < 1e-3
    assert float(losses[-1]) == pytest.approx(2.4540, abs=1e-4)
    assert float(losses[0]) > 3.0


def test_larger_l2_pulls_toward_uniform_like_larger_smoothing(counts):
    def entropy(P):
        return float(-(P * jnp.log(P)).sum(1).mean())

    ents = [entropy(bigram.probs(fit_full_batch(counts, l2, 3000)[0])) for l2 in (0.001, 0.01, 0.1, 1.0)]
    assert ents == sorted(ents) and ents[-1] - ents[0] > 0.5
    # λ = 0.01 sits between add-1 and add-10 smoothing in how flat it makes the rows
    e_k1, e_k10 = entropy(smoothed_probs(counts, 1.0)), entropy(smoothed_probs(counts, 10.0))
    assert e_k1 < ents[1] < e_k10


def test_run_steps_in_chunks_equals_one_run(counts):
    opt = optax.sgd(10.0)
    loss_fn = train_steps.full_batch_loss(bigram.loss_counts, 0.01)
    p0 = bigram.init(seed_key(1, "init"), bigram.BigramConfig(27))
    one, _, _ = train_steps.run_steps(loss_fn, opt, p0, opt.init(p0), {"counts": counts}, 0, 40)
    p, s = p0, opt.init(p0)
    for start in (0, 15, 30):
        p, s, _ = train_steps.run_steps(loss_fn, opt, p, s, {"counts": counts}, start, 15 if start < 30 else 10)
    np.testing.assert_array_equal(one["W"], p["W"])


@pytest.mark.parametrize("unroll", [7, train_steps.GPU_FULL_BATCH_UNROLL])
def test_unrolling_the_loop_gives_the_same_parameters(counts, unroll):
    # 40 steps: neither 7 nor 25 divides them, so the scan also runs a remainder, whose
    # loss values XLA may fuse differently (a float32 rounding apart); the updates are the same
    opt = optax.sgd(10.0)
    loss_fn = train_steps.full_batch_loss(bigram.loss_counts, 0.01)
    p0 = bigram.init(seed_key(1, "init"), bigram.BigramConfig(27))
    one, _, losses = train_steps.run_steps(loss_fn, opt, p0, opt.init(p0), {"counts": counts}, 0, 40)
    many, _, losses_u = train_steps.run_steps(loss_fn, opt, p0, opt.init(p0), {"counts": counts}, 0, 40, unroll)
    np.testing.assert_array_equal(one["W"], many["W"])
    np.testing.assert_allclose(losses, losses_u, rtol=1e-6, atol=0)
    assert float(losses[-1]) < float(losses[0])


def test_minibatch_training_is_seeded_and_learns(names):
    cfg = TrainConfig.create("bigram", steps=300, batch_size=64, lr=5.0, seed=3)
    a, state, _ = fit_words(names, cfg)
    b, _, _ = fit_words(names, cfg)
    c, _, _ = fit_words(names, TrainConfig.create("bigram", steps=300, batch_size=64, lr=5.0, seed=4))
    np.testing.assert_array_equal(a.params["W"], b.params["W"])
    assert not np.array_equal(a.params["W"], c.params["W"])
    devs = [r["dev_nll"] for r in state.history if "dev_nll" in r]
    assert devs[-1] < devs[0] < 3.5


def test_train_reports_every_split(names):
    from makemore_jax.training.evaluate import split_nll

    model, _, data = fit_words(names, TrainConfig.create("counts", smoothing=1.0))
    m = split_nll(model, data)
    assert 2.40 < m["train"] < m["test"] < 2.52
    assert int(model.params["counts"].sum()) == sum(len(w) + 1 for w in data.words["train"])


def test_unsmoothed_counts_can_be_infinite_on_dev(names):
    from makemore_jax.training.evaluate import split_nll

    model, _, data = fit_words(names[:2000], TrainConfig.create("counts", smoothing=0.0))
    assert split_nll(model, data)["dev"] == float("inf")


def test_default_bigram_trains_close_to_counting_model(names):
    from makemore_jax.training.evaluate import split_nll

    neural = split_nll(*fit_words(names, TrainConfig.create("bigram"))[::2])
    counting = split_nll(*fit_words(names, TrainConfig.create("counts"))[::2])
    assert abs(neural["test"] - counting["test"]) < 0.01


def test_bigram_init_scale_scales_the_lecture_init_and_zero_is_makemores(names):
    data = train.Dataset.build(names[:500], seed_key(0, "split"), (0.8, 0.1, 0.1))
    W = {
        s: np.asarray(train.new_model(TrainConfig.create("bigram", init_scale=s), data).params["W"])
        for s in (1.0, 0.5, 0.0)
    }
    np.testing.assert_allclose(W[0.5], 0.5 * W[1.0], rtol=1e-6)
    assert not W[0.0].any() and W[1.0].std() > 0.5
    # From zeros, makemore's AdamW recipe starts at the uniform log V and learns quickly.
    adamw = dict(optimizer="adamw", lr=5e-4, batch_size=32, l2=0.0, weight_decay=0.01, steps=300, eval_every=300)
    _, zero_state, _ = fit_words(names, TrainConfig.create("bigram", init_scale=0.0, **adamw))
    _, normal_state, _ = fit_words(names, TrainConfig.create("bigram", **adamw))
    assert zero_state.history[-1]["dev_nll"] < normal_state.history[-1]["dev_nll"] - 0.2


def test_init_scale_is_for_the_bigram_only():
    from makemore_jax.training.config import settings_for

    with pytest.raises(
        MakemoreError, match=r"init_scale: the mlp model does not take this setting \(only for bigram\)"
    ):
        settings_for("mlp", {"init_scale": 0.0})
    assert settings_for("bigram", {"init_scale": 0.0}).init_scale == 0.0


def test_type_defaults():
    assert TrainConfig.create("bigram").optimizer == "sgd" and TrainConfig.create("bigram").lr == 50.0
    t = TrainConfig.create("transformer", lr=1e-3)
    assert (t.optimizer, t.lr, t.weight_decay, t.batch_size, t.n_embd) == ("adamw", 1e-3, 0.01, 32, 64)


@pytest.mark.parametrize(
    "field,value",
    [
        ("lr", -1.0),
        ("l2", -0.1),
        ("smoothing", float("nan")),
        ("steps", -5),
        ("batch_size", -1),
        ("seed", -1),
        ("optimizer", "adam9"),
        ("n_head", 0),
        ("lr_schedule", "wiggly"),
    ],
)
def test_bad_config_is_refused(field, value):
    with pytest.raises(MakemoreError):
        TrainConfig.create("bigram", **{field: value}).validate()


def test_unknown_type_is_refused():
    with pytest.raises(MakemoreError, match="unknown model type 'mlp2'"):
        TrainConfig.create("mlp2")


def test_config_json_round_trip_and_strictness():
    cfg = TrainConfig.create("transformer", steps=7)
    assert TrainConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(MakemoreError, match="missing lr"):
        TrainConfig.from_json({k: v for k, v in cfg.to_json().items() if k != "lr"})
    with pytest.raises(MakemoreError, match="unexpected colour"):
        TrainConfig.from_json({**cfg.to_json(), "colour": "red"})


def test_divergence_is_reported_with_the_step(names):
    with pytest.raises(MakemoreError, match="at step"):
        fit_words(names[:300], TrainConfig.create("bigram", lr=1e30, steps=20))


# ---- the family trainer: masking, resume, interruption, numerics -------------

from makemore_jax.data.words import Dataset, Vocabulary, encode_padded  # noqa: E402
from makemore_jax.store import checkpoint  # noqa: E402
from makemore_jax.training.evaluate import masked_nll_sum, split_nll, word_nlls  # noqa: E402


def small(names):
    return names[:3000]


def family_cfg(kind="bigram", **kw):
    base = dict(
        optimizer="adamw",
        lr=1e-2,
        batch_size=16,
        steps=60,
        eval_every=20,
        log_every=10,
        n_layer=1,
        n_head=2,
        n_embd=8,
        n_embd2=16,
    )
    return TrainConfig.create(kind, **{**base, **kw})


def test_padding_positions_do_not_count():
    vocab = Vocabulary(tuple("ab"))
    tokens, lengths = encode_padded(["ab", "b"], vocab, 5)
    logits = jax.random.normal(jax.random.key(0), (2, 5, 3))
    total, count = masked_nll_sum(logits, jnp.asarray(tokens[:, 1:]), jnp.asarray(lengths))
    assert int(count) == 3 + 2
    garbage = logits.at[0, 3:].set(1e6).at[1, 2:].set(-1e6)  # change only padded positions
    assert float(masked_nll_sum(garbage, jnp.asarray(tokens[:, 1:]), jnp.asarray(lengths))[0]) == pytest.approx(
        float(total)
    )


def test_sequence_nll_of_bigram_equals_table_nll(names):
    model, _, data = fit_words(small(names), TrainConfig.create("bigram", steps=30))
    tokens, lengths = data.padded("dev", model.block_size)
    via_words = float(word_nlls(model.apply, model.params, tokens, lengths, chunk=100).sum() / (lengths + 1).sum())
    assert via_words == pytest.approx(split_nll(model, data, ["dev"])["dev"], abs=1e-5)


def test_family_trainer_learns(names):
    model, state, data = fit_words(small(names), family_cfg(steps=200, batch_size=32))
    assert state.step == 200
    devs = [r["dev_nll"] for r in state.history if "dev_nll" in r]
    assert len(devs) == 10 and devs[-1] < devs[0] - 0.3
    assert [r["step"] for r in state.history] == list(range(10, 201, 10))


def _run_in(workdir, names, cfg, stop_at=None):
    """Train like the CLI does (last + best checkpoints); optionally Ctrl-C after step stop_at."""
    data = Dataset.build(small(names), seed_key(cfg.seed, "split"), cfg.split)
    model = train.new_model(cfg, data)

    def save(m, st, is_best):
        checkpoint.save(workdir, "last", m, step=st.step, best_dev=st.best_dev, opt_state=st.opt_state)
        if is_best:
            checkpoint.save(workdir, "model", m, step=st.step, best_dev=st.best_dev)

    def record(r):
        if stop_at is not None and r["step"] == stop_at:
            raise KeyboardInterrupt

    return train.fit(model, data, None, record, save), data


def _resume(workdir, data, steps=None):
    loaded = checkpoint.load(workdir, "last")
    model = loaded.fitted
    if steps:
        from dataclasses import replace

        model.config = replace(model.config, steps=steps)
    opt_state = checkpoint.restore_opt_state(
        loaded, train_steps.make_optimizer(model.config).init(model.params), workdir
    )
    state = train.TrainState(model.params, opt_state, loaded.step, loaded.best_dev)
    return train.fit(model, data, state)


@pytest.mark.parametrize(
    "kind,extra", [("bigram", {}), ("bigram", {"lr_schedule": "cosine", "warmup_steps": 10, "grad_clip": 1.0})]
)
def test_interrupted_and_resumed_run_equals_uninterrupted(names, tmp_path, kind, extra):
    cfg = family_cfg(kind, **extra)
    full, _ = _run_in(str(tmp_path / "full"), names, cfg)
    with pytest.raises(train.Interrupted) as stop:
        _run_in(str(tmp_path / "cut"), names, cfg, stop_at=30)
    assert stop.value.step == 30
    assert checkpoint.load(str(tmp_path / "cut"), "last").step == 30
    _, data = _run_in(str(tmp_path / "probe"), names, family_cfg(kind, steps=0))
    resumed = _resume(str(tmp_path / "cut"), data)
    assert resumed.step == full.step == 60
    for a, b in zip(jax.tree_util.tree_leaves(full.params), jax.tree_util.tree_leaves(resumed.params)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(jax.tree_util.tree_leaves(full.opt_state), jax.tree_util.tree_leaves(resumed.opt_state)):
        np.testing.assert_array_equal(a, b)


def test_nan_loss_stops_naming_the_step_and_keeps_last_good_checkpoint(names, tmp_path):
    from dataclasses import replace

    _, data = _run_in(str(tmp_path), names, family_cfg(steps=20))
    good = checkpoint.load(str(tmp_path), "last")
    before = checkpoint.flatten_params(good.fitted.params)
    model = good.fitted
    model.config = replace(model.config, optimizer="sgd", lr=1e38, steps=200)

    def save(m, st, is_best):
        checkpoint.save(str(tmp_path), "last", m, step=st.step, opt_state=st.opt_state)

    state = train.TrainState(model.params, train_steps.make_optimizer(model.config).init(model.params), good.step)
    with pytest.raises(MakemoreError, match=r"loss became \w+ at step \d+"):
        train.fit(model, data, state, None, save)
    after = checkpoint.load(str(tmp_path), "last")
    assert after.step == 20
    for k, v in checkpoint.flatten_params(after.fitted.params).items():
        np.testing.assert_array_equal(v, before[k])


def test_block_size_below_longest_word_is_refused(names):
    with pytest.raises(MakemoreError, match="block size 5 is too small"):
        fit_words(small(names), family_cfg(block_size=5))


# ---- evaluation during training: a fixed, seeded sample of each split ------------------


def test_a_dataset_sample_is_fixed_bounded_and_whole_where_small(names):
    data = Dataset.build(names[:3000], seed_key(0, "split"), (0.8, 0.1, 0.1))
    key = seed_key(0, "eval")
    part = data.sample(500, key)
    assert part.sizes == {"train": 500, "dev": 300, "test": 300}  # dev and test hold 300: kept whole
    assert part.words["dev"] == data.words["dev"] and set(part.words["train"]) <= set(data.words["train"])
    assert part.words["train"] == data.sample(500, key).words["train"]  # the same words every time
    assert part.words["train"] != data.sample(500, seed_key(1, "eval")).words["train"]
    assert data.sample(0, key) is data and part.vocab == data.vocab


def test_evaluations_during_training_score_the_sample_and_the_end_scores_whole_splits(names):
    cfg = TrainConfig.create("mlp", steps=40, eval_every=20, log_every=20, eval_words=120, n_embd=8, n_embd2=16)
    model, state, data = fit_words(names[:3000], cfg)
    sample = train.evaluation_words(data, cfg)
    assert sample.sizes == {"train": 120, "dev": 120, "test": 120}
    last = state.history[-1]
    on_sample = split_nll(model, sample)
    assert last["dev_nll"] == pytest.approx(on_sample["dev"], rel=1e-6)  # what the record holds
    assert last["dev_ppl"] == pytest.approx(np.exp(last["dev_nll"]))
    whole = split_nll(model, data)
    assert whole["dev"] != pytest.approx(on_sample["dev"], rel=1e-6)  # the sample is not the split
    whole_cfg = TrainConfig.create("mlp", steps=40, eval_every=20, log_every=20, eval_words=0, n_embd=8, n_embd2=16)
    assert train.evaluation_words(data, whole_cfg) is data
    old = json.loads(json.dumps(cfg.to_json()))
    del old["eval_words"]  # a checkpoint written before eval_words existed scored whole splits, and resumes so
    assert TrainConfig.from_json(old).eval_words == 0
