"""examples/lecture_bigram.py runs, and the numbers it prints are the lecture's and right.

Every number checked here is recomputed independently of the package: the
bigram counts with collections.Counter over the names file, the NLLs in
float64 NumPy. The script is run twice to check that its samples are seeded.
"""

import math
import os
import re
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "examples", "lecture_bigram.py")
NAMES = os.path.join(ROOT, "makemore_jax", "names.txt")
CHARS = "." + "abcdefghijklmnopqrstuvwxyz"  # '.' (id 0) is the start/end token
LECTURE_NLL = "2.4540"  # the lecture's numbers, without and with add-1 smoothing
LECTURE_NLL_SMOOTHED = "2.4546"


def run_script() -> str:
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def outputs():
    return run_script(), run_script()


@pytest.fixture(scope="module")
def out(outputs):
    return outputs[0]


@pytest.fixture(scope="module")
def words():
    with open(NAMES) as f:
        return [line.strip() for line in f if line.strip()]


@pytest.fixture(scope="module")
def N(words):
    """The 27×27 bigram counts, by Counter over '.w.' of every word."""
    pairs = Counter((a, b) for w in words for a, b in zip("." + w, w + "."))
    return np.array([[pairs[(a, b)] for b in CHARS] for a in CHARS], np.int64)


def grab(out: str, pattern: str) -> tuple[str, ...]:
    """The groups of the one line of out matching pattern (from its start)."""
    found = [m for m in (re.match(pattern, line) for line in out.splitlines()) if m]
    assert len(found) == 1, f"{len(found)} lines match {pattern!r}"
    return found[0].groups()


def ix(c: str) -> int:
    return CHARS.index(c)


def test_data_and_counts(out, words, N):
    n, shortest, longest = grab(out, r"words: ([\d,]+)  shortest: (\d+)  longest: (\d+)$")
    assert int(n.replace(",", "")) == len(words) == 32033
    assert (int(shortest), int(longest)) == (min(map(len, words)), max(map(len, words)))
    assert grab(out, r"bigrams of 'emma': (.*)$") == ("<S> e | e m | m m | m a | a <E>",)
    assert grab(out, r"'emma' alone: N\['m','m'\] = (\d+)  total pairs = (\d+)$") == ("1", "5")

    (pairs,) = grab(out, r"pairs: ([\d,]+)$")
    assert int(pairs.replace(",", "")) == sum(len(w) + 1 for w in words) == N.sum() == 228146
    assert grab(out, r"N by \.at\[xs, ys\]\.add\(1\) equals count_matrix: (\w+)$") == ("True",)
    em, starts = grab(out, r"N\['e','m'\] = (\d+)   N\[0\]\.sum\(\) \(names\) = (\d+)$")
    assert int(em) == N[ix("e"), ix("m")] and int(starts) == len(words)

    (common,) = grab(out, r"most common: (.*)$")
    order = np.argsort(-N.ravel(), kind="stable")[:3]
    assert common == ", ".join(f"{CHARS[k // 27]}{CHARS[k % 27]} {N.ravel()[k]}" for k in order)


def test_grid(out, N):
    lines = out.splitlines()
    top = lines.index("== 3. the grid N (row: first character, column: next), top-left corner")
    cols = lines[top + 1].split()
    assert cols == list(".abcdefghi")
    for line in lines[top + 2 : top + 2 + len(cols)]:
        row, *cells = line.split()
        assert [int(c) for c in cells] == [N[ix(row), ix(c)] for c in cols], row


def test_probabilities_and_sampling(out, N, outputs):
    (first,) = grab(out, r"p\(first char\): (.*) \.\.\.$")
    p = N[0] / N[0].sum()
    assert first == " ".join(f"{CHARS[i]}={p[i]:.4f}" for i in range(6))

    keep, wrong = grab(out, r"row '\.' sums to ([\d.]+) with keepdims, ([\d.]+) without$")
    assert keep == "1.0000"
    # without keepdims the (27,) row sums divide the columns: row 0 sums (N+1)[0, j] / Σ_k (N+1)[j, k]
    assert wrong == f"{((N + 1)[0] / (N + 1).sum(1)).sum():.4f}"

    sampled = [line for line in out.splitlines() if line.startswith("sampled: ")]
    assert len(sampled) == 5 and all(re.fullmatch(r"sampled: [a-z]*\.", s) for s in sampled)
    assert sampled == [line for line in outputs[1].splitlines() if line.startswith("sampled: ")]


def test_nll(out, N, words):
    P0 = N / N.sum(1, keepdims=True)
    P = (N + 1) / (N + 1).sum(1, keepdims=True)
    xs = np.array([ix(a) for w in words for a in "." + w])
    ys = np.array([ix(b) for w in words for b in w + "."])

    (nll0,) = grab(out, r"NLL without smoothing, P = N/N\.sum: ([\d.]+)$")
    (nll1,) = grab(out, r"NLL with add-1 smoothing, P = \(N\+1\)/\(N\+1\)\.sum: ([\d.]+)$")
    assert (nll0, nll1) == (LECTURE_NLL, LECTURE_NLL_SMOOTHED)
    assert nll0 == f"{-np.log(P0[xs, ys]).mean():.4f}"
    assert nll1 == f"{-np.log(P[xs, ys]).mean():.4f}"

    sums = [m.groups() for m in re.finditer(r"^log_likelihood=(-[\d.]+)  nll=([\d.]+)  n=(\d+)$", out, re.M)]
    assert len(sums) == 2
    for (ll, nll, n), table in zip(sums, (P0, P)):
        exact = np.log(table[xs, ys]).sum()
        assert abs(float(ll) - exact) < 1.0 and float(nll) == -float(ll) and int(n) == len(xs)
    assert grab(out, r"NLL of the uniform model \(log 27\): ([\d.]+)$") == (f"{math.log(27):.4f}",)


def test_andrejq(out, N):
    P = (N + 1) / (N + 1).sum(1, keepdims=True)
    word = "andrejq"
    pairs = list(zip("." + word, word + "."))
    for a, b in pairs:
        prob = P[ix(a), ix(b)]
        assert grab(out, rf"  {re.escape(a + b)}: (.*)$") == (f"{prob:.4f} {np.log(prob):.4f}",)
    nll = -np.mean([np.log(P[ix(a), ix(b)]) for a, b in pairs])
    assert grab(out, r"NLL of 'andrejq' with smoothing: ([\d.]+)$") == (f"{nll:.4f}",)
    assert N[ix("j"), ix("q")] == 0  # so the unsmoothed model gives it probability 0
    assert grab(out, r"NLL of 'andrejq' without smoothing: (\S+)  ") == ("inf",)


def test_neural_bigram_converges_to_the_counts(out):
    literal, onehot, counts = grab(
        out, r"loss at init: ([\d.]+) \(bigram\.loss_onehot ([\d.]+), bigram\.loss_counts ([\d.]+)\)$"
    )
    assert literal == onehot == counts
    (diff,) = grab(out, r"first 5 losses, one-hot loop vs counts: max difference (\S+)$")
    assert float(diff) < 1e-4

    steps = [(int(k), float(v)) for k, v in re.findall(r"^step +(\d+): loss ([\d.]+)$", out, re.M)]
    assert len(steps) >= 4 and steps[0] == (0, float(literal))
    assert all(a[0] < b[0] and a[1] > b[1] for a, b in zip(steps, steps[1:])), steps  # decreasing

    net, counting = grab(out, r"network NLL after \d+ steps: ([\d.]+)  \(counting model: ([\d.]+)\)$")
    assert counting == LECTURE_NLL
    # the unsmoothed counts are the maximum-likelihood bigram: no W has a lower NLL
    assert float(counting) <= float(net) < float(counting) + 0.01
    assert float(net) < steps[-1][1]  # the final loss is the NLL plus a positive L2 penalty
    smoothed, plain = grab(
        out, r"max \|P_net - P\| over the table: ([\d.]+) \(add-1 counts\), ([\d.]+) \(unsmoothed\)$"
    )
    assert 0 < float(smoothed) < 0.05 and 0 < float(plain) < 0.15


def test_samples_are_seeded(outputs):
    first, second = outputs
    pattern = r"samples from the (counts|network): *(.*)$"
    lines = [m.groups() for m in re.finditer(pattern, first, re.M)]
    assert [kind for kind, _ in lines] == ["counts", "network"]
    for _, names in lines:
        assert len(names.split()) == 8 and re.fullmatch(r"[a-z ]+", names)
    assert lines == [m.groups() for m in re.finditer(pattern, second, re.M)]  # same key, same names
    assert grab(first, r"same key, same names: (\w+)$") == ("True",)
