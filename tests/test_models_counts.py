import jax
import jax.numpy as jnp
import numpy as np
import pytest

from makemore_jax.errors import MakemoreError
from makemore_jax.models.counts import count_matrix, smoothed_probs
from makemore_jax.models.losses import mean_nll, nll_from_counts
from makemore_jax.training.evaluate import split_nll


def test_count_matrix_equals_numpy_histogram(pairs, counts, vocab):
    xs, ys = pairs
    V = vocab.size
    expected = np.zeros((V, V), np.int64)
    np.add.at(expected, (xs, ys), 1)
    assert counts.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(counts), expected)
    assert int(counts.sum()) == 228146
    assert int(counts[0, 0]) == 0  # no empty word


@pytest.mark.parametrize("n,V", [(0, 3), (1, 3), (2, 5), (7, 27), (1001, 300)])
def test_count_matrix_of_any_length_split_in_parts(n, V):
    rng = np.random.default_rng(n)
    xs, ys = rng.integers(0, V, n).astype(np.int32), rng.integers(0, V, n).astype(np.int32)
    expected = np.zeros((V, V), np.int64)
    np.add.at(expected, (xs, ys), 1)
    got = count_matrix(jnp.asarray(xs), jnp.asarray(ys), V)
    assert got.dtype == jnp.int32 and got.shape == (V, V)
    np.testing.assert_array_equal(np.asarray(got), expected)


def test_count_matrix_is_a_scatter_add_not_a_loop():
    jaxpr = str(jax.make_jaxpr(count_matrix, static_argnums=2)(jnp.zeros(5, jnp.int32), jnp.zeros(5, jnp.int32), 3))
    assert "scatter-add" in jaxpr or "scatter_add" in jaxpr
    assert "while" not in jaxpr


@pytest.mark.parametrize("k", [0.0, 0.5, 1.0, 10.0])
def test_rows_sum_to_one(counts, k):
    P = smoothed_probs(counts, k)
    np.testing.assert_allclose(np.asarray(P.sum(1)), 1.0, rtol=1e-6)
    assert P.dtype == jnp.float32


def test_known_nll_facts(pairs, counts):
    xs, ys = pairs
    assert round(float(mean_nll(smoothed_probs(counts, 0.0), xs, ys)), 4) == 2.4540
    assert round(float(mean_nll(smoothed_probs(counts, 1.0), xs, ys)), 4) == 2.4546


def test_gather_and_count_forms_of_nll_agree(pairs, counts):
    xs, ys = pairs
    P = smoothed_probs(counts, 0.3)
    a = float(mean_nll(P, xs, ys))
    b = float(nll_from_counts(jnp.log(P), counts))
    assert a == pytest.approx(b, abs=2e-6)


def test_unseen_pair_is_infinite_without_smoothing_and_finite_with_it(counts):
    xs = jnp.array([0, 17], jnp.int32)  # '.q' occurs, 'qq' never does
    ys = jnp.array([17, 17], jnp.int32)
    assert int(counts[17, 17]) == 0
    unsmoothed = mean_nll(smoothed_probs(counts, 0.0), xs, ys)
    assert jnp.isposinf(unsmoothed)
    assert jnp.isposinf(
        nll_from_counts(jnp.log(smoothed_probs(counts, 0.0)), jnp.zeros((27, 27), jnp.int32).at[17, 17].set(1))
    )
    assert jnp.isfinite(mean_nll(smoothed_probs(counts, 0.01), xs, ys))


def test_empty_row_without_smoothing_is_uniform_not_nan():
    N = jnp.array([[0, 2], [0, 0]], jnp.int32)
    P = smoothed_probs(N, 0.0)
    np.testing.assert_allclose(np.asarray(P), [[0.0, 1.0], [0.5, 0.5]])


def test_more_smoothing_is_closer_to_uniform(counts):
    def entropy(P):
        return float(-(P * jnp.log(P)).sum(1).mean())

    ents = [entropy(smoothed_probs(counts, k)) for k in (0.01, 1, 10, 100, 1e7)]
    assert ents == sorted(ents)
    assert ents[-1] == pytest.approx(np.log(27), abs=1e-3)


@pytest.mark.parametrize("k", [-1.0, float("nan"), float("inf")])
def test_bad_smoothing_is_refused(counts, k):
    with pytest.raises(MakemoreError, match="smoothing"):
        smoothed_probs(counts, k)


def test_nll_of_nothing_is_an_error(counts, vocab):
    from makemore_jax.data.words import Dataset
    from makemore_jax.training.config import TrainConfig
    from makemore_jax.training.fitted import Fitted

    empty = jnp.zeros((0,), jnp.int32)
    with pytest.raises(MakemoreError, match="empty"):
        mean_nll(smoothed_probs(counts, 1.0), empty, empty)
    model = Fitted(TrainConfig.create("counts"), vocab, {"counts": counts}, 16)
    nothing = Dataset(vocab, {"train": [], "dev": [], "test": []})
    assert split_nll(model, nothing) == {"train": None, "dev": None, "test": None}  # an empty split has no mean
