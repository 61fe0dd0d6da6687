"""Mixtures of trained models: weights by EM on dev, the mixed distribution, its decoder, the `mix` command."""

import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from makemore_jax.cli.commands import main
from makemore_jax.data.words import Dataset, encode_padded
from makemore_jax.errors import MakemoreError
from makemore_jax.models import get_model, mixture
from makemore_jax.sampling import generate
from makemore_jax.store import checkpoint
from makemore_jax.training.config import TrainConfig
from makemore_jax.training.fitted import Fitted

from conftest import run_inprocess as cli


def test_em_weights_maximise_the_dev_likelihood():
    rng = np.random.default_rng(0)
    # Two "models" of 4 outcomes; the data follow 0.7·A + 0.3·B, so EM should find about (0.7, 0.3).
    A, B = np.array([0.7, 0.1, 0.1, 0.1]), np.array([0.05, 0.05, 0.1, 0.8])
    truth = 0.7 * A + 0.3 * B
    xs = rng.choice(4, size=20000, p=truth)
    logp = np.log(np.stack([A[xs], B[xs]]))
    w = mixture.fit_weights(logp)
    np.testing.assert_allclose(w, [0.7, 0.3], atol=0.03)
    best = mixture.mixture_nll(logp, w)
    for other in ([0.5, 0.5], [0.9, 0.1], [0.6, 0.4], [1.0, 0.0], [0.0, 1.0]):
        assert best <= mixture.mixture_nll(logp, np.array(other)) + 1e-9


def untrained(kind, vocab, seed, block_size=16, **sizes):
    cfg = TrainConfig.create(kind, **sizes)
    model = Fitted(cfg, vocab, {}, block_size)
    model.params = jax.jit(get_model(kind).init, static_argnums=1)(
        jax.random.key(seed), model.model_config
    )  # op by op: seconds
    return model


@pytest.fixture(scope="module")
def mixed(vocab, counts):
    small = dict(n_layer=1, n_head=2, n_embd=16, n_embd2=16)
    members = (
        untrained("transformer", vocab, 1, **small),
        untrained("gru", vocab, 2, **small),
        Fitted(TrainConfig.create("counts"), vocab, {"counts": counts}, 16),
    )
    return mixture.Mixture(members, np.array([0.5, 0.3, 0.2]))


def test_apply_is_the_weighted_sum_of_the_members_distributions(mixed, names, vocab):
    tokens, _ = encode_padded(names[:40], vocab, 16)
    idx = jnp.asarray(tokens[:, :-1])
    # compiled, as evaluation runs them: op by op the two networks take seconds
    got = np.exp(np.asarray(jax.jit(mixed.runner.apply)(mixed.params, idx), np.float64))
    parts = [
        jax.nn.softmax(jax.jit(mixed.members[0].apply)(mixed.members[0].params, idx)),
        jax.nn.softmax(jax.jit(mixed.members[1].apply)(mixed.members[1].params, idx)),
        jax.nn.softmax(mixed.members[2].runner.table[idx]),
    ]
    expected = sum(w * np.asarray(p, np.float64) for w, p in zip(mixed.weights, parts))
    np.testing.assert_allclose(got, expected, atol=2e-6)
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=2e-6)


def test_the_mixed_decoder_draws_the_names_of_the_recompute_path(mixed):
    fast, fast_ended = generate(mixed, jax.random.key(4), 200)
    slow, slow_ended = generate(mixed, jax.random.key(4), 200, fast=False)
    assert fast == slow
    np.testing.assert_array_equal(fast_ended, slow_ended)
    assert len(set(fast)) > 100


def test_a_mixture_is_steered_like_any_model(mixed):
    from makemore_jax.sampling import steering

    steer = steering(mixed.vocab, "el", min_len=4, top_p=0.9)
    fast, _ = generate(mixed, jax.random.key(4), 100, steer=steer)
    assert fast == generate(mixed, jax.random.key(4), 100, steer=steer, fast=False)[0]
    assert all(n.startswith("el") and len(n) >= 4 for n in fast)


# ---- the command ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("mix")
    dirs = {}
    for name, flags in {
        "bigram": ["--steps", "100"],
        "ngram": ["--type", "ngram", "--order", "3"],
        "mlp": ["--type", "mlp", "--steps", "300", "--eval-every", "300", "--n-embd", "8", "--n-embd2", "32"],
        "other_seed": ["--type", "counts", "--seed", "5"],
    }.items():
        d = str(base / name)
        assert main(["train", "-o", d, "--quiet", "--num-samples", "0", *flags]) == 0
        dirs[name] = d
    return base, dirs


def test_mix_fits_beats_its_members_on_dev_and_saves_a_model_sample_and_eval_use(trained_dirs, capsys):
    base, d = trained_dirs
    out_dir = str(base / "mixed")
    code, out, err = cli(capsys, "mix", d["bigram"], d["ngram"], d["mlp"], "-o", out_dir, "--num-samples", "3")
    assert code == 0, err
    saved = json.load(open(os.path.join(out_dir, checkpoint.MIXTURE_FILE)))
    report = saved["report"]
    assert abs(sum(report["weights"]) - 1) < 1e-9 and min(report["weights"]) > 0
    assert report["mixture"]["dev"] < min(report["members"]["dev"])
    assert f"{report['mixture']['test']:.4f} ({math.exp(report['mixture']['test']):6.2f})" in out  # NLL and perplexity

    loaded = checkpoint.load(out_dir)
    assert loaded.fitted.type == "mixture" and [m.type for m in loaded.fitted.members] == ["bigram", "ngram", "mlp"]
    np.testing.assert_allclose(loaded.fitted.weights, report["weights"], rtol=1e-6)

    code, sample_out, err = cli(capsys, "sample", "-o", out_dir, "-n", "3", "--seed", "0")
    assert code == 0, err
    assert sample_out.split() == out.split("--seed 0):")[1].split()  # the names mix printed

    words_file = str(base / "few.txt")
    open(words_file, "w").write("emma\nolivia\nava\n")
    code, eval_out, err = cli(capsys, "eval", "-o", out_dir, "-i", words_file)
    assert code == 0, err
    model = loaded.fitted
    data = Dataset(model.vocab, {"train": [], "dev": [], "test": ["emma", "olivia", "ava"]})
    logp = mixture.member_logprobs(model.members, data, "test")
    assert f"{mixture.mixture_nll(logp, model.weights):.4f}" in eval_out

    # a loaded mixture saved as one checkpoint would be a model.json that load refuses: refused, nothing written
    import makemore_jax

    elsewhere = base / "saved-mixture"
    with pytest.raises(MakemoreError, match="a mixture is saved with its members"):
        makemore_jax.load(out_dir).save(str(elsewhere))
    assert not elsewhere.exists() or not os.listdir(elsewhere)


@pytest.mark.parametrize(
    "which,message",
    [
        (["bigram"], "at least two"),
        (["bigram", "other_seed"], "dev splits differ"),
        (["bigram", "OUT"], "is one of its models"),
    ],
)
def test_mix_refuses_what_cannot_be_mixed(trained_dirs, capsys, which, message):
    base, d = trained_dirs
    out_dir = str(base / "refused")
    dirs = [out_dir if w == "OUT" else d[w] for w in which]
    code, out, err = cli(capsys, "mix", *dirs, "-o", out_dir)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not os.path.exists(os.path.join(out_dir, checkpoint.MIXTURE_FILE))


def test_a_damaged_mixture_file_is_refused(trained_dirs, capsys):
    base, d = trained_dirs
    out_dir = str(base / "damaged")
    assert cli(capsys, "mix", d["bigram"], d["ngram"], "-o", out_dir, "--num-samples", "0")[0] == 0
    path = os.path.join(out_dir, checkpoint.MIXTURE_FILE)
    meta = json.load(open(path))
    meta["weights"] = meta["weights"][:1]
    json.dump(meta, open(path, "w"))
    code, out, err = cli(capsys, "sample", "-o", out_dir)
    assert code == 2 and "mixture.json" in err and "damaged" in err
    with pytest.raises(MakemoreError):
        checkpoint.load(out_dir)
