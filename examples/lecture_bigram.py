"""The spelled-out intro to language modeling: building makemore (part 1), in JAX.

A companion to Andrej Karpathy's lecture, step by step: read the names, count
the bigrams into N, turn the counts into probabilities P, sample from them,
measure the model by its negative log-likelihood, then learn the same table
with a one-layer network (one_hot(x) @ W, softmax) trained by jax.grad and
optax SGD. The lecture's steps are written out inline; where makemore_jax has
the same function, the script checks that both agree and uses the package's.

JAX arrays are immutable and randomness takes an explicit key, so the two
things that change from the PyTorch version are ``N.at[i, j].add(1)`` for
``N[i, j] += 1`` and a ``jax.random`` key split for every draw instead of a
torch.Generator. Run from the repository root:

    python examples/lecture_bigram.py
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from makemore_jax.data.words import Vocabulary, bigram_pairs, bundled_names_path, read_words
from makemore_jax.models import bigram
from makemore_jax.models.counts import count_matrix, smoothed_probs
from makemore_jax.models.losses import mean_nll
from makemore_jax.sampling import sample_names
from makemore_jax.training.steps import full_batch_loss, run_steps

SEED = 2147483647  # the lecture's torch.Generator seed, here a JAX key

# --- 1. The data -----------------------------------------------------------------------------
words = read_words(bundled_names_path())
print("== 1. names.txt")
print("first names:", words[:10])
print(f"words: {len(words):,}  shortest: {min(map(len, words))}  longest: {max(map(len, words))}")

# The bigrams of one word, with start and end tokens around it.
chs = ["<S>"] + list("emma") + ["<E>"]
print("bigrams of 'emma':", " | ".join(f"{a} {b}" for a, b in zip(chs, chs[1:])))

# --- 2. Counting: the 27x27 matrix N ------------------------------------------------------------
# One token '.' (id 0) stands for both start and end; the letters get ids 1..26.
chars = sorted(set("".join(words)))
stoi = {s: i + 1 for i, s in enumerate(chars)}
stoi["."] = 0
itos = {i: s for s, i in stoi.items()}
vocab = Vocabulary.from_words(words)  # the package's vocabulary: the same ids
assert all(vocab.itos(i) == s for i, s in itos.items())

# The lecture's loop, N[ix1, ix2] += 1, for "emma" alone (a JAX array is updated by .at[].add).
N_emma = jnp.zeros((27, 27), jnp.int32)
for ch1, ch2 in zip("." + "emma", "emma" + "."):
    N_emma = N_emma.at[stoi[ch1], stoi[ch2]].add(1)
print("\n== 2. counts")
print("'emma' alone: N['m','m'] =", int(N_emma[stoi["m"], stoi["m"]]), " total pairs =", int(N_emma.sum()))

# Every pair of every word: the names as one stream ". emma . olivia . ..." and its neighbours.
xs, ys = map(jnp.asarray, bigram_pairs(words, vocab))
num = xs.shape[0]
print(f"pairs: {num:,}")
N_literal = jnp.zeros((27, 27), jnp.int32).at[xs, ys].add(1)  # one scatter-add for all of them
N = count_matrix(xs, ys, 27)  # the package's (the same scatter, split over CPU threads)
print("N by .at[xs, ys].add(1) equals count_matrix:", bool((N_literal == N).all()))
print("N['e','m'] =", int(N[stoi["e"], stoi["m"]]), "  N[0].sum() (names) =", int(N[0].sum()))
flat = np.argsort(-np.asarray(N).ravel(), kind="stable")[:3]
print("most common:", ", ".join(f"{itos[int(k) // 27]}{itos[int(k) % 27]} {int(N.ravel()[k])}" for k in flat))

# --- 3. The grid ------------------------------------------------------------------------------
# The lecture draws N with plt.imshow; here the top-left corner as text.
corner = ".abcdefghi"
print("\n== 3. the grid N (row: first character, column: next), top-left corner")
print("    " + "".join(f"{c:>6}" for c in corner))
for r in corner:
    print(f"{r:>4}" + "".join(f"{int(N[stoi[r], stoi[c]]):6d}" for c in corner))

# --- 4. Probabilities, and sampling with explicit keys ----------------------------------------------
print("\n== 4. probabilities and sampling")
p = N[0].astype(jnp.float32)
p = p / p.sum()  # the first character of a name
print("p(first char):", " ".join(f"{itos[i]}={float(p[i]):.4f}" for i in range(6)), "...")
key = jax.random.key(SEED)
print("one draw from p:", itos[int(jax.random.categorical(key, jnp.log(p)))])

# Normalise every row at once. keepdims keeps the row sums a (27, 1) column, which broadcasts
# across each row; without it the (27,) sums line up as a row and divide the columns instead.
# (Here every character is followed exactly as often as it is preceded, so row and column sums
# agree and the wrong table even scores the same NLL: only its row sums show the bug.)
P = (N + 1).astype(jnp.float32)
P = P / P.sum(1, keepdims=True)
P_wrong = (N + 1) / (N + 1).sum(1)
print(f"row '.' sums to {float(P[0].sum()):.4f} with keepdims, {float(P_wrong[0].sum()):.4f} without")
assert jnp.allclose(P, smoothed_probs(N, 1.0))

key = jax.random.key(SEED)
for _ in range(5):
    out, ix = [], 0
    while True:
        key, subkey = jax.random.split(key)  # a fresh key for every draw, never one used twice
        ix = int(jax.random.categorical(subkey, jnp.log(P[ix])))
        out.append(itos[ix])
        if ix == 0:
            break
    print("sampled:", "".join(out))

# --- 5. The loss: negative log-likelihood ---------------------------------------------------
print("\n== 5. negative log-likelihood")
P0 = N.astype(jnp.float32) / N.sum(1, keepdims=True)  # maximum likelihood, no smoothing
for label, table in (("without smoothing, P = N/N.sum", P0), ("with add-1 smoothing, P = (N+1)/(N+1).sum", P)):
    log_likelihood = jnp.log(table[xs, ys]).sum()  # the lecture's loop over all pairs, in one gather
    nll = -log_likelihood
    print(f"log_likelihood={float(log_likelihood):.2f}  nll={float(nll):.2f}  n={num}")
    print(f"NLL {label}: {float(nll / num):.4f}")
    assert abs(nll / num - mean_nll(table, xs, ys)) < 1e-5
print(f"NLL of the uniform model (log 27): {float(jnp.log(27.0)):.4f}")

# One name, character by character: 'jq' never occurs in names.txt.
word = "andrejq"
pairs = list(zip("." + word, word + "."))
for ch1, ch2 in pairs:
    prob = P[stoi[ch1], stoi[ch2]]
    print(f"  {ch1}{ch2}: {float(prob):.4f} {float(jnp.log(prob)):.4f}")
wx = jnp.array([stoi[a] for a, _ in pairs])
wy = jnp.array([stoi[b] for _, b in pairs])
print(f"NLL of '{word}' with smoothing: {float(mean_nll(P, wx, wy)):.4f}")
print(
    f"NLL of '{word}' without smoothing: {float(mean_nll(P0, wx, wy))}"
    f"  (P0['j','q'] = {float(P0[stoi['j'], stoi['q']])})"
)

# --- 6. The neural bigram ---------------------------------------------------------------------
print("\n== 6. the neural bigram: one_hot(x) @ W, softmax")
W = jax.random.normal(jax.random.key(SEED), (27, 27))  # 27 neurons, 27 inputs each


def loss_fn(W, xs, ys):
    xenc = jax.nn.one_hot(xs, 27)  # (num, 27): the input to the network
    logits = xenc @ W  # log-counts
    counts = jnp.exp(logits)  # equivalent to N
    probs = counts / counts.sum(1, keepdims=True)  # softmax: probabilities for the next character
    return -jnp.log(probs[jnp.arange(xs.shape[0]), ys]).mean() + 0.01 * (W**2).mean()  # NLL + L2


loss0 = loss_fn(W, xs, ys)
print(
    f"loss at init: {float(loss0):.4f} (bigram.loss_onehot {float(bigram.loss_onehot({'W': W}, xs, ys, 0.01)):.4f},"
    f" bigram.loss_counts {float(bigram.loss_counts({'W': W}, N, 0.01)):.4f})"
)

optimizer = optax.sgd(50.0)  # W += -50 * W.grad


@jax.jit
def step(W, opt_state):
    loss, grad = jax.value_and_grad(loss_fn)(W, xs, ys)  # the backward pass: jax.grad
    updates, opt_state = optimizer.update(grad, opt_state)
    return optax.apply_updates(W, updates), opt_state, loss


# The lecture's loop as written: each step multiplies a (228146, 27) one-hot matrix by W.
W_slow, opt_state, slow_losses = W, optimizer.init(W), []
for _ in range(5):
    W_slow, opt_state, loss = step(W_slow, opt_state)
    slow_losses.append(float(loss))

# The full-batch loss depends on the data only through N (a one-hot row times W is a row of W),
# so the package trains the same W with 27x27 work per step: all the steps in one jitted scan.
STEPS = 1000
params = {"W": W}
params, _, losses = run_steps(
    full_batch_loss(bigram.loss_counts, 0.01),
    optimizer,
    params,
    optimizer.init(params),
    {"counts": N},
    jnp.int32(0),
    STEPS,
)
print(
    "first 5 losses, one-hot loop vs counts: max difference"
    f" {max(abs(a - float(b)) for a, b in zip(slow_losses, losses)):.1e}"
)
for k in (0, 1, 10, 100, 500, STEPS - 1):
    print(f"step {k:4d}: loss {float(losses[k]):.4f}")
P_net = bigram.probs(params)  # softmax(W)
print(
    f"network NLL after {STEPS} steps: {float(mean_nll(P_net, xs, ys)):.4f}"
    f"  (counting model: {float(mean_nll(P0, xs, ys)):.4f})"
)
print(
    f"max |P_net - P| over the table: {float(jnp.abs(P_net - P).max()):.4f} (add-1 counts), "
    f"{float(jnp.abs(P_net - P0).max()):.4f} (unsmoothed)"
)

# --- 7. Seeded samples --------------------------------------------------------------------------
# sample_names draws every name from its own key, fold_in(key, i): the same key, the same names.
print("\n== 7. samples")
key = jax.random.key(SEED)
from_counts = sample_names(key, jnp.log(P), vocab, 8)
from_net = sample_names(key, params["W"], vocab, 8)
print("samples from the counts: ", " ".join(from_counts))
print("samples from the network:", " ".join(from_net))
print("same key, same names:", sample_names(key, jnp.log(P), vocab, 8) == from_counts)
