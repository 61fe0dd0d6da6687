import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from makemore_jax.data.words import Vocabulary
from makemore_jax.errors import MakemoreError
from makemore_jax.models import bigram
from makemore_jax.models.counts import smoothed_probs
from makemore_jax.sampling import pick, sample_ids, sample_names


@pytest.fixture(scope="module")
def table(counts):
    return jnp.log(smoothed_probs(counts, 1.0))


def test_same_key_same_names_other_key_other_names(table, vocab):
    a = sample_names(jax.random.key(5), table, vocab, 50)
    b = sample_names(jax.random.key(5), table, vocab, 50)
    c = sample_names(jax.random.key(6), table, vocab, 50)
    assert a == b
    assert a != c
    assert all(set(name) <= set(vocab.chars) for name in a)


def test_first_names_do_not_depend_on_how_many_are_drawn(table, vocab):
    many = sample_names(jax.random.key(1), table, vocab, 40)
    few = sample_names(jax.random.key(1), table, vocab, 7)
    assert few == many[:7]


SCRIPT = """
import json, sys, jax, jax.numpy as jnp
from makemore_jax.data.words import read_words, Vocabulary, bigram_pairs
from makemore_jax.models.counts import count_matrix, smoothed_probs
from makemore_jax.sampling import sample_names
words = read_words(sys.argv[1]); vocab = Vocabulary.from_words(words)
xs, ys = bigram_pairs(words, vocab)
table = jnp.log(smoothed_probs(count_matrix(xs, ys, vocab.size), 1.0))
print(json.dumps(sample_names(jax.random.key(123), table, vocab, 30)))
"""


def test_same_key_same_names_in_another_process(table, vocab):
    from conftest import NAMES

    expected = sample_names(jax.random.key(123), table, vocab, 30)
    out = subprocess.run([sys.executable, "-c", SCRIPT, NAMES], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == expected


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_pick_is_the_inverse_cdf_of_the_tempered_softmax(table, temperature):
    rows = np.asarray(table)[[0, 1, 13, 26]].astype(np.float64)
    u = np.linspace(0, 1, 997, endpoint=False)
    for row in rows:
        z = (row - row.max()) / temperature
        cdf = np.cumsum(np.exp(z)) / np.exp(z).sum()
        expected = np.searchsorted(cdf, u, side="right")
        away = np.abs(u[:, None] - cdf[None, :]).min(axis=1) > 1e-5  # float32 may round at a boundary
        got = np.asarray(
            pick(
                jnp.tile(jnp.asarray(row, jnp.float32), (len(u), 1)),
                jnp.asarray(u, jnp.float32),
                jnp.float32(temperature),
            )
        )
        np.testing.assert_array_equal(got[away], expected[away])
        assert away.mean() > 0.9


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_first_letters_follow_the_tempered_table(table, vocab, temperature):
    names = sample_names(jax.random.key(3), table, vocab, 20000, temperature=temperature, max_len=1)
    first = np.bincount([vocab.chars.index(n[0]) + 1 if n else 0 for n in names], minlength=vocab.size)
    np.testing.assert_allclose(first / len(names), np.asarray(jax.nn.softmax(table[0] / temperature)), atol=0.01)


def test_the_table_path_draws_what_the_generic_path_draws(table):
    """Tables invert each row once; any other model inverts its logits at every step: same names."""
    args = (jax.random.key(8), 500, 30, jnp.float32(0.7))
    fast, fast_ended = sample_ids(bigram.DECODER, None, {"W": table}, *args, top_k=5)
    plain = bigram.DECODER._replace(table=None)
    slow, slow_ended = sample_ids(plain, None, {"W": table}, *args, top_k=5)
    np.testing.assert_array_equal(fast, slow)
    np.testing.assert_array_equal(fast_ended, slow_ended)


def test_a_longer_max_len_extends_the_same_names(table):
    short, _ = sample_ids(bigram.DECODER, None, {"W": table}, jax.random.key(2), 300, 5, jnp.float32(1.0))
    long, _ = sample_ids(bigram.DECODER, None, {"W": table}, jax.random.key(2), 300, 40, jnp.float32(1.0))
    np.testing.assert_array_equal(short, np.asarray(long)[:, :5])


def test_large_vocabularies_sum_by_cumsum_to_the_same_draws(monkeypatch):
    import makemore_jax.sampling as sampling

    logits = jax.random.normal(jax.random.key(3), (64, 40)) * 2
    u = jax.random.uniform(jax.random.key(4), (64,))
    by_triangle = np.asarray(pick(logits, u, jnp.float32(0.8)))
    monkeypatch.setattr(sampling, "TRIANGLE_MAX_V", 8)
    by_cumsum = np.asarray(jax.jit(pick)(logits, u, jnp.float32(0.8)))
    assert (by_triangle == by_cumsum).mean() > 0.98  # the same draws but for float rounding at a boundary


def test_ids_of_probability_zero_are_never_picked():
    logits = jnp.array([[0.0, 1.0, -jnp.inf, -jnp.inf]] * 4)
    u = jnp.array(
        [0.0, 0.5, np.nextafter(np.float32(1), np.float32(0)), 1.0], jnp.float32
    )  # 1.0: rounding's worst case
    assert np.asarray(pick(logits, u, jnp.float32(1.0))).tolist() == [0, 1, 1, 1]
    tiny = jnp.array([[0.0, 1.0, 0.5]])
    assert int(pick(tiny, jnp.array([0.999]), jnp.float32(1e-30))[0]) == 1  # tiny T: the max, no overflow


def greedy_chain(table, vocab, max_len):
    out, cur = [], 0
    for _ in range(max_len):
        cur = int(jnp.argmax(table[cur]))
        if cur == 0:
            break
        out.append(vocab.chars[cur - 1])
    return "".join(out)


@pytest.mark.parametrize("temperature", [0.0, 1e-30])
def test_zero_temperature_is_greedy(table, vocab, temperature):
    names = sample_names(jax.random.key(0), table, vocab, 4, temperature=temperature)
    assert names == [greedy_chain(table, vocab, 50)] * 4


def test_high_temperature_flattens(table, vocab):
    cold = sample_names(jax.random.key(0), table, vocab, 2000, temperature=0.3)
    hot = sample_names(jax.random.key(0), table, vocab, 2000, temperature=3.0, max_len=15)
    assert len(set(n[:1] for n in hot)) > len(set(n[:1] for n in cold))


def test_first_letters_follow_the_table(table, vocab):
    names = sample_names(jax.random.key(2), table, vocab, 20000)
    first = np.zeros(vocab.size)
    for n in names:
        first[vocab.chars.index(n[0]) + 1 if n else 0] += 1
    np.testing.assert_allclose(first / len(names), np.exp(np.asarray(table[0])), atol=0.01)


def test_max_len_cuts_names_that_never_end():
    vocab = Vocabulary(("a",))
    never_ends = jnp.log(jnp.array([[0.0, 1.0], [0.0, 1.0]]))
    ids, ended = sample_ids(bigram.DECODER, None, {"W": never_ends}, jax.random.key(0), 3, 6, jnp.float32(1.0))
    assert not bool(ended.any())
    assert sample_names(jax.random.key(0), never_ends, vocab, 3, max_len=6) == ["aaaaaa"] * 3


def test_rows_stay_ended(table):
    ids, ended = sample_ids(bigram.DECODER, None, {"W": table}, jax.random.key(4), 200, 80, jnp.float32(1.0))
    ids = np.asarray(ids)
    assert ids.shape == (200, 80)
    assert bool(ended.all())
    for row in ids:
        end = int(np.argmax(row == 0))
        assert (row[end:] == 0).all()


def staged_and_single(monkeypatch, make_decoder, params, n, max_len, temperature, top_k=0, config=None, single=True):
    """sample_ids with stages shrinking 8-fold down to 8 names, and in one stage (the loop without compaction)."""
    import makemore_jax.sampling as sampling

    out = []
    monkeypatch.setattr(sampling, "STAGE_SHRINK", 8)
    for stage_min in (8, 10**9) if single else (8,):
        monkeypatch.setattr(sampling, "STAGE_MIN", stage_min)
        # a new decoder each time: jit's cache must not hand back the program of the other setting
        ids, ended = sample_ids(
            make_decoder(), config, params, jax.random.key(9), n, max_len, jnp.float32(temperature), top_k
        )
        out.append((np.asarray(ids), np.asarray(ended)))
    return out


def running_per_step(ids_NxL) -> np.ndarray:
    """How many names are still running at each step t (the step that draws id t)."""
    lengths = np.where((ids_NxL == 0).any(axis=1), (ids_NxL == 0).argmax(axis=1), ids_NxL.shape[1])
    return np.array([(lengths >= t).sum() for t in range(ids_NxL.shape[1] + 1)])


def compacted(ids_NxL, size: int) -> bool:
    """Whether the names still running fell to `size` or fewer (so moved into a stage that small) before all ended."""
    running = running_per_step(ids_NxL)
    return bool(((running > 0) & (running <= size)).any())


@pytest.mark.parametrize("temperature,top_k,partitionable", [(0.6, 4, True), (1.8, 0, True), (1.0, 0, False)])
def test_stages_of_shrinking_batches_change_no_name(monkeypatch, table, temperature, top_k, partitionable):
    from makemore_jax.sampling import FIRST_HORIZON

    with jax.threefry_partitionable(partitionable):  # without it a short draw is not a long one's start
        (staged, staged_ended), (single, single_ended) = staged_and_single(
            monkeypatch,
            lambda: bigram.DECODER._replace(table=lambda p: p["W"]),
            {"W": table},
            1200,
            25,
            temperature,
            top_k,
        )
    np.testing.assert_array_equal(staged, single)
    np.testing.assert_array_equal(staged_ended, single_ended)
    if temperature > 1:  # long names: more than the 150 of the next stage run past the first stage's 16 uniforms
        assert running_per_step(staged)[FIRST_HORIZON] > 150 and compacted(staged, 150) and not staged_ended.all()
    else:
        assert compacted(staged, 19)  # 1200 -> 150 -> 19


def test_names_are_compacted_along_each_state_leafs_batch_axis(monkeypatch, table):
    from makemore_jax.models import bigram
    from makemore_jax.sampling import Decoder, batch_axes

    def decoder_with(state_of):
        def step(params, state, token_B, t):  # carries the state through, counting steps in the batch leaf
            logits, _ = bigram.decode_step(params, (), token_B, t)
            return logits, {**state, "steps": state["steps"] + 1}

        return lambda: Decoder(lambda params, config, n: state_of(n), step)

    along_1 = decoder_with(lambda n: {"steps": jnp.zeros((3, n)), "shared": jnp.zeros((5,))})
    folded = decoder_with(lambda n: {"steps": jnp.zeros((2 * n,)), "shared": jnp.zeros((5,))})
    assert batch_axes(along_1(), None, {"W": table}) == (None, 1)  # leaves in key order: shared, steps
    assert batch_axes(folded(), None, {"W": table}) is None  # batch × 2 in one axis: not compacted
    reference, _ = sample_ids(bigram.DECODER, None, {"W": table}, jax.random.key(9), 600, 25, jnp.float32(1.0))
    assert compacted(np.asarray(reference), 9)  # 600 -> 75 -> 10
    for make in (along_1, folded):
        ((staged, _),) = staged_and_single(monkeypatch, make, {"W": table}, 600, 25, 1.0, single=False)
        np.testing.assert_array_equal(staged, reference)


@pytest.mark.parametrize("kwargs", [{"n": -1}, {"temperature": -0.1}, {"temperature": float("nan")}, {"max_len": 0}])
def test_bad_sampling_arguments(table, vocab, kwargs):
    args = {"n": 3, **kwargs}
    n = args.pop("n")
    with pytest.raises(MakemoreError):
        sample_names(jax.random.key(0), table, vocab, n, **args)


def test_zero_names():
    assert sample_names(jax.random.key(0), jnp.zeros((2, 2)), Vocabulary(("a",)), 0) == []


# ---- every model through the one sampler ---------------------------------------

from makemore_jax.models import MODEL_NAMES, get_model  # noqa: E402
from makemore_jax.sampling import generate  # noqa: E402
from makemore_jax.training.config import TrainConfig  # noqa: E402
from makemore_jax.training.fitted import Fitted  # noqa: E402

SMALL = dict(n_layer=2, n_head=2, n_embd=16, n_embd2=24)


def untrained(kind, vocab, block_size=12, seed=0):
    cfg = TrainConfig.create(kind, **SMALL)
    model = Fitted(cfg, vocab, {}, block_size)
    model.params = get_model(kind).init(jax.random.key(seed), model.model_config)
    return model


@pytest.mark.parametrize("kind", [k for k in MODEL_NAMES if get_model(k).decode_step is not None])
def test_fast_decoder_gives_exactly_the_names_of_the_recompute_path_plain_and_steered(kind, vocab):
    model = untrained(kind, vocab)
    fast, fast_ended = generate(model, jax.random.key(11), 300, temperature=1.0)
    slow, slow_ended = generate(model, jax.random.key(11), 300, temperature=1.0, fast=False)
    assert fast == slow
    np.testing.assert_array_equal(fast_ended, slow_ended)
    assert len(set(fast)) > 200  # an untrained model babbles: real, varied draws were compared
    steer = steering(vocab, "ab", min_len=4, top_p=0.9)
    steered, _ = generate(model, jax.random.key(11), 300, steer=steer)
    assert steered == generate(model, jax.random.key(11), 300, steer=steer, fast=False)[0]
    assert all(n.startswith("ab") and len(n) >= 4 for n in steered)
    assert steered != fast  # the steering changed the draws


@pytest.mark.parametrize("kind", MODEL_NAMES)
def test_every_model_samples_reproducibly_within_its_block(kind, vocab):
    model = untrained(kind, vocab, block_size=8)
    a, _ = generate(model, jax.random.key(3), 50)
    b, _ = generate(model, jax.random.key(3), 50)
    limit = (
        7 if model.runner.table is None else 2 * 7
    )  # tables are not tied to a block; they get twice the longest word
    assert a == b and all(len(n) <= limit for n in a)


def test_top_k_one_is_greedy(vocab, counts):
    model = Fitted(TrainConfig.create("counts"), vocab, {"counts": counts}, 16)
    top1, _ = generate(model, jax.random.key(0), 5, top_k=1)
    greedy, _ = generate(model, jax.random.key(0), 5, temperature=0.0)
    assert top1 == greedy


def test_top_k_limits_the_choices(vocab, counts):
    model = Fitted(TrainConfig.create("counts"), vocab, {"counts": counts}, 16)
    names, _ = generate(model, jax.random.key(0), 3000, top_k=3)
    table = np.asarray(model.runner.table)
    allowed_first = {vocab.chars[i - 1] for i in np.argsort(table[0])[-3:] if i}
    assert {n[0] for n in names if n} <= allowed_first


@pytest.mark.parametrize("kind", ["transformer", "mlp", "gru"])
@pytest.mark.parametrize("fast", [True, False])
def test_every_product_in_the_sampler_asks_for_full_float32_precision(kind, fast, vocab):
    # A GPU's default float32 product is TF32 (~1e-3 off), which moves a name wherever a uniform
    # falls between the two machines' running sums; the CPU cannot show the flip, the program can.
    from makemore_jax.sampling import plan

    decoder, config, params, max_len = plan(untrained(kind, vocab), None, fast)
    text = sample_ids.lower(decoder, config, params, jax.random.key(0), 4, max_len, jnp.float32(1.0)).as_text()
    products = [line for line in text.splitlines() if "dot_general" in line]
    assert products, "the sampler has no matrix product to check"
    assert all("HIGHEST" in line for line in products), next(line for line in products if "HIGHEST" not in line)


def test_a_decoder_state_moves_into_smaller_stages_unchanged(monkeypatch, vocab):
    from makemore_jax.sampling import Decoder, plan

    # the Transformer's state: key and value caches, the batch on axis 1
    cfg = TrainConfig.create("transformer", n_layer=1, n_head=2, n_embd=16)
    model = Fitted(cfg, vocab, {}, 12)
    shapes = jax.eval_shape(lambda key: get_model("transformer").init(key, model.model_config), jax.random.key(0))
    rng = np.random.default_rng(0)  # random weights without compiling init (seconds on this CPU)
    model.params = jax.tree_util.tree_map(lambda x: jnp.asarray(rng.normal(0, 0.02, x.shape), x.dtype), shapes)
    decoder, config, params, max_len = plan(model, None)

    def ending_often():  # untrained names rarely end; a raised end logit makes most end within a few steps
        def step(params, state, token_B, t):
            logits_BxV, state = decoder.step(params, state, token_B, t)
            return logits_BxV.at[:, 0].add(2.5), state

        return Decoder(decoder.init, step)

    (staged, staged_ended), (single, single_ended) = staged_and_single(
        monkeypatch, ending_often, params, 300, max_len, 1.0, config=config
    )
    np.testing.assert_array_equal(staged, single)
    np.testing.assert_array_equal(staged_ended, single_ended)
    assert compacted(staged, 38)  # 300 -> 38


# ---- steering: a prefix, a shortest length, top-p, unique and new names ----------------

from makemore_jax.sampling import NotEnough, sample_stream, steering  # noqa: E402


def test_a_prefix_is_followed_by_the_table_row_of_its_last_character(vocab, counts):
    model = Fitted(TrainConfig.create("counts"), vocab, {"counts": counts}, 16)
    n = 20000
    names, _ = generate(model, jax.random.key(5), n, steer=steering(vocab, "ma"))
    assert all(name.startswith("ma") for name in names)
    after = np.bincount([vocab.encode_stream([name[2:3]])[1] for name in names], minlength=vocab.size) / n
    row = np.asarray(jnp.exp(model.runner.table))[vocab.encode_stream(["a"])[1]]  # p(next | 'a'), the end at index 0
    row = row / row.sum()
    # the first character after "ma" is drawn from the row of 'a' (not from what starts a name)
    assert np.max(np.abs(after - row)) < 4 * np.sqrt(row.max() / n) + 1e-3
    first = np.asarray(jnp.exp(model.runner.table))[0] / np.asarray(jnp.exp(model.runner.table))[0].sum()
    assert np.max(np.abs(after - first)) > 0.05  # what ignoring the prefix would give instead


@pytest.mark.parametrize("kind", ["counts", "transformer"])
def test_top_p_keeps_the_most_likely_characters_until_p(kind, vocab, counts):
    model = (
        Fitted(TrainConfig.create("counts"), vocab, {"counts": counts}, 16)
        if kind == "counts"
        else untrained(kind, vocab)
    )
    tiny, _ = generate(model, jax.random.key(0), 20, steer=steering(vocab, top_p=1e-6))
    greedy, _ = generate(model, jax.random.key(0), 20, temperature=0.0)
    assert tiny == greedy  # only the most likely character survives
    assert (
        generate(model, jax.random.key(0), 20, steer=steering(vocab, top_p=1.0))[0]
        == generate(model, jax.random.key(0), 20)[0]
    )


def test_top_p_filter_keeps_the_smallest_set_reaching_p():
    from makemore_jax.sampling import keep_top_p

    logits = jnp.log(jnp.array([[0.5, 0.3, 0.15, 0.05], [0.05, 0.15, 0.3, 0.5]]))
    kept = np.isfinite(np.asarray(keep_top_p(logits, 0.75, jnp.float32(1.0))))
    np.testing.assert_array_equal(kept, [[True, True, False, False], [False, False, True, True]])
    kept = np.isfinite(np.asarray(keep_top_p(logits, 0.8001, jnp.float32(1.0))))
    np.testing.assert_array_equal(kept, [[True, True, True, False], [False, True, True, True]])


def generate_distinct(model, key, n, **options):
    """The names of ``sample_stream`` in one list; NotEnough's .names has those found."""
    found = []
    try:
        for names in sample_stream(model, key, n, **options):
            found += names
    except NotEnough as short:
        raise NotEnough(str(short), found) from None
    return found


def test_unique_and_new_names_are_redrawn_within_bounds(vocab, counts, names):
    model = Fitted(TrainConfig.create("counts"), vocab, {"counts": counts}, 16)
    key = jax.random.key(9)
    got = generate_distinct(model, key, 300, unique=True, exclude=frozenset(names))
    assert len(set(got)) == 300 and not set(got) & set(names)
    assert got == generate_distinct(
        model, key, 300, unique=True, exclude=frozenset(names)
    )  # the same seed, the same names
    # the 26 letters and '' are all there is; '' (p = 1/32,060: a name of no letter) first comes at position
    # 144,864 of this seed's stream, and the walk stops 20,000 draws after the last new name
    with pytest.raises(NotEnough, match=r"found only 26 unique names in [\d,]+ draws \(asked for 1,000\)") as err:
        generate_distinct(model, key, 1000, unique=True, max_len=1)
    assert len(set(err.value.names)) == 26 and all(len(name) == 1 for name in err.value.names)


def test_steering_refuses_what_cannot_be(vocab, counts):
    model = Fitted(TrainConfig.create("counts"), vocab, {"counts": counts}, 16)
    for steer, message in [
        (lambda: steering(vocab, "zoë"), "not in the model's vocabulary"),
        (
            lambda: generate(model, jax.random.key(0), 3, max_len=2, steer=steering(vocab, "abc")),
            "more than the maximum length",
        ),
        (
            lambda: generate(model, jax.random.key(0), 3, max_len=2, steer=steering(vocab, min_len=3)),
            "more than the maximum length",
        ),
        (lambda: generate(model, jax.random.key(0), 3, steer=steering(vocab, top_p=0.0)), "top-p must be in"),
    ]:
        with pytest.raises(MakemoreError, match=message):
            steer()
