import jax
import jax.numpy as jnp
import numpy as np
import pytest

from makemore_jax.models import bigram


@pytest.fixture(scope="module")
def params():
    return bigram.init(jax.random.key(3), bigram.BigramConfig(27))


def test_init_is_seeded(params):
    again = bigram.init(jax.random.key(3), bigram.BigramConfig(27))
    other = bigram.init(jax.random.key(4), bigram.BigramConfig(27))
    assert params["W"].shape == (27, 27) and params["W"].dtype == jnp.float32
    np.testing.assert_array_equal(params["W"], again["W"])
    assert not np.array_equal(params["W"], other["W"])


def test_apply_is_row_indexing(params):
    idx = jnp.array([[0, 5, 26], [1, 1, 2]], jnp.int32)
    out = bigram.apply(params, idx)
    assert out.shape == (2, 3, 27)
    np.testing.assert_array_equal(out[0, 1], params["W"][5])


@pytest.mark.parametrize("l2", [0.0, 0.01, 1.0])
def test_three_forward_paths_agree_on_loss_and_gradient(params, pairs, counts, l2):
    xs, ys = pairs
    xs, ys = jnp.asarray(xs), jnp.asarray(ys)
    paths = {
        "onehot": lambda p: bigram.loss_onehot(p, xs, ys, l2),
        "gather": lambda p: bigram.loss_gather(p, xs, ys, l2),
        "counts": lambda p: bigram.loss_counts(p, counts, l2),
    }
    results = {name: jax.jit(jax.value_and_grad(f))(params) for name, f in paths.items()}
    ref_loss, ref_grad = results["onehot"]
    assert float(ref_loss) > 3.0  # a random W is far from trained, so this compares real work
    for name, (loss, grad) in results.items():
        assert float(loss) == pytest.approx(float(ref_loss), rel=1e-5, abs=1e-5), name
        np.testing.assert_allclose(grad["W"], ref_grad["W"], rtol=1e-4, atol=1e-6, err_msg=name)


def test_l2_term_is_lambda_times_mean_square(params, counts):
    base = bigram.loss_counts(params, counts, 0.0)
    with_l2 = bigram.loss_counts(params, counts, 0.5)
    assert float(with_l2 - base) == pytest.approx(0.5 * float(jnp.mean(params["W"] ** 2)), rel=1e-5)


def test_probs_rows_sum_to_one(params):
    np.testing.assert_allclose(bigram.probs(params).sum(1), 1.0, rtol=1e-6)
