"""makemore.py's checkpoints both ways: the same function on each side, and refusals in one line.

The torch modules below are makemore.py's models rewritten from reading it:
the same parameter and buffer names (its state_dict) and the same forward
passes, so that a state_dict they load with strict=True is one makemore.py loads.
"""

import math
import os
import pickle
import sys

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from makemore_jax.data.words import Vocabulary  # noqa: E402
from makemore_jax.errors import MakemoreError  # noqa: E402
from makemore_jax.models import get_model  # noqa: E402
from makemore_jax.seeding import seed_key  # noqa: E402
from makemore_jax.store.makemore import from_state_dict, read_pt, to_state_dict, write_pt  # noqa: E402
from makemore_jax.training.config import TrainConfig, takes  # noqa: E402
from makemore_jax.training.evaluate import word_nll  # noqa: E402
from makemore_jax.training.fitted import Fitted  # noqa: E402

from conftest import NAMES  # noqa: E402

SIZES = {"n_layer": 2, "n_head": 2, "n_embd": 8, "n_embd2": 16}
TYPES = ("bigram", "mlp", "rnn", "gru", "bow", "transformer")


class Shape:
    def __init__(self, vocab_size, block_size, n_layer, n_head, n_embd, n_embd2):
        self.vocab_size, self.block_size = vocab_size, block_size
        self.n_layer, self.n_head, self.n_embd, self.n_embd2 = n_layer, n_head, n_embd, n_embd2


# --- makemore.py's models, as torch modules ---------------------------------------


def causal_ones(T, *lead):
    return torch.tril(torch.ones(T, T)).view(*lead, T, T)


class CausalSelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_attn = nn.Linear(c.n_embd, 3 * c.n_embd)
        self.c_proj = nn.Linear(c.n_embd, c.n_embd)
        self.register_buffer("bias", causal_ones(c.block_size, 1, 1))
        self.n_head, self.n_embd = c.n_head, c.n_embd

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q, k, v = (a.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for a in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = F.softmax(att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf")), dim=-1)
        return self.c_proj((att @ v).transpose(1, 2).contiguous().view(B, T, C))


def new_gelu(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.ln_1 = nn.LayerNorm(c.n_embd)
        self.attn = CausalSelfAttention(c)
        self.ln_2 = nn.LayerNorm(c.n_embd)
        self.mlp = nn.ModuleDict(
            {"c_fc": nn.Linear(c.n_embd, 4 * c.n_embd), "c_proj": nn.Linear(4 * c.n_embd, c.n_embd)}
        )

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp.c_proj(new_gelu(self.mlp.c_fc(self.ln_2(x))))


class Transformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.transformer = nn.ModuleDict(
            {
                "wte": nn.Embedding(c.vocab_size, c.n_embd),
                "wpe": nn.Embedding(c.block_size, c.n_embd),
                "h": nn.ModuleList([Block(c) for _ in range(c.n_layer)]),
                "ln_f": nn.LayerNorm(c.n_embd),
            }
        )
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)

    def forward(self, idx):
        x = self.transformer.wte(idx) + self.transformer.wpe(torch.arange(idx.size(1)).unsqueeze(0))
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


class CausalBoW(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.register_buffer("bias", causal_ones(c.block_size, 1))

    def forward(self, x):
        B, T, C = x.size()
        att = torch.zeros((B, T, T)).masked_fill(self.bias[:, :T, :T] == 0, float("-inf"))
        return F.softmax(att, dim=-1) @ x


class BoWBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.cbow = CausalBoW(c)
        self.mlp = nn.ModuleDict({"c_fc": nn.Linear(c.n_embd, c.n_embd2), "c_proj": nn.Linear(c.n_embd2, c.n_embd)})

    def forward(self, x):
        x = x + self.cbow(x)
        return x + self.mlp.c_proj(F.tanh(self.mlp.c_fc(x)))


class BoW(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)
        self.wpe = nn.Embedding(c.block_size, c.n_embd)
        self.context_block = BoWBlock(c)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.size(1)).unsqueeze(0))
        return self.lm_head(self.context_block(x))


class RNNCell(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.xh_to_h = nn.Linear(c.n_embd + c.n_embd2, c.n_embd2)

    def forward(self, xt, hprev):
        return F.tanh(self.xh_to_h(torch.cat([xt, hprev], dim=1)))


class GRUCell(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.xh_to_z = nn.Linear(c.n_embd + c.n_embd2, c.n_embd2)
        self.xh_to_r = nn.Linear(c.n_embd + c.n_embd2, c.n_embd2)
        self.xh_to_hbar = nn.Linear(c.n_embd + c.n_embd2, c.n_embd2)

    def forward(self, xt, hprev):
        xh = torch.cat([xt, hprev], dim=1)
        r = F.sigmoid(self.xh_to_r(xh))
        hbar = F.tanh(self.xh_to_hbar(torch.cat([xt, r * hprev], dim=1)))
        z = F.sigmoid(self.xh_to_z(xh))
        return (1 - z) * hprev + z * hbar


class RNN(nn.Module):
    def __init__(self, c, cell_type):
        super().__init__()
        self.start = nn.Parameter(torch.zeros(1, c.n_embd2))
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)
        self.cell = RNNCell(c) if cell_type == "rnn" else GRUCell(c)
        self.lm_head = nn.Linear(c.n_embd2, c.vocab_size)

    def forward(self, idx):
        emb = self.wte(idx)
        h = self.start.expand((idx.size(0), -1))
        hiddens = []
        for i in range(idx.size(1)):
            h = self.cell(emb[:, i, :], h)
            hiddens.append(h)
        return self.lm_head(torch.stack(hiddens, 1))


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.block_size, self.vocab_size = c.block_size, c.vocab_size
        self.wte = nn.Embedding(c.vocab_size + 1, c.n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(c.block_size * c.n_embd, c.n_embd2), nn.Tanh(), nn.Linear(c.n_embd2, c.vocab_size)
        )

    def forward(self, idx):
        embs = []
        for _ in range(self.block_size):
            embs.append(self.wte(idx))
            idx = torch.roll(idx, 1, 1)
            idx[:, 0] = self.vocab_size  # the blank before the start
        return self.mlp(torch.cat(embs, -1))


class Bigram(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros((c.vocab_size, c.vocab_size)))

    def forward(self, idx):
        return self.logits[idx]


MODULES = {
    "bigram": Bigram,
    "mlp": MLP,
    "rnn": lambda c: RNN(c, "rnn"),
    "gru": lambda c: RNN(c, "gru"),
    "bow": BoW,
    "transformer": Transformer,
}


# --- data and scoring ----------------------------------------------------------------


@pytest.fixture(scope="module")
def words():
    with open(NAMES) as f:
        return [f.readline().strip() for _ in range(200)]


@pytest.fixture(scope="module")
def vocab(words):
    return Vocabulary.from_words(words)


@pytest.fixture(scope="module")
def block_size(words):
    return max(len(w) for w in words) + 1


def makemore_batch(words, vocab, block_size):
    """makemore.py's CharDataset rows: x = 0 then the ids; y = the ids, 0, then -1 (ignored)."""
    x = torch.zeros((len(words), block_size), dtype=torch.long)
    y = torch.zeros((len(words), block_size), dtype=torch.long)
    for row, word in enumerate(words):
        ids = torch.tensor([vocab.chars.index(ch) + 1 for ch in word], dtype=torch.long)
        x[row, 1 : 1 + len(ids)] = ids
        y[row, : len(ids)] = ids
        y[row, len(ids) + 1 :] = -1
    return x, y


def torch_nll(module, words, vocab, block_size):
    x, y = makemore_batch(words, vocab, block_size)
    with torch.no_grad():
        logits = module(x)
        return float(F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1), ignore_index=-1))


def our_nll(fitted, words):
    return float(word_nll(fitted, words).sum() / sum(len(w) + 1 for w in words))


def torch_module(model_type, vocab, block_size):
    """makemore.py's model of the type, initialised from a fixed torch seed."""
    torch.manual_seed(1337)
    return MODULES[model_type](Shape(vocab.size, block_size, **SIZES))


def train_torch(module, words, vocab, block_size, steps=3):
    """A few AdamW steps on makemore-style batches of 32 words."""
    x, y = makemore_batch(words, vocab, block_size)
    opt = torch.optim.AdamW(module.parameters(), lr=1e-2, weight_decay=0.01)
    for step in range(steps):
        rows = torch.arange(step * 32, (step + 1) * 32) % len(words)
        logits = module(x[rows])
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y[rows].view(-1), ignore_index=-1)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return module


def numpy_state(module):
    return {name: t.detach().numpy().copy() for name, t in module.state_dict().items()}


def our_model(model_type, vocab, block_size):
    model_def = get_model(model_type)
    config = TrainConfig.create(model_type, **{k: v for k, v in SIZES.items() if takes(model_def, k)})
    params = model_def.init(seed_key(7, "init"), config.model_config(vocab.size, block_size))
    return Fitted(config, vocab, params, block_size)


# --- the same function both ways ---------------------------------------------------------


@pytest.mark.parametrize("model_type", TYPES)
def test_a_makemore_state_dict_scores_the_same_here(model_type, words, vocab, block_size):
    module = train_torch(torch_module(model_type, vocab, block_size), words, vocab, block_size)
    ours = from_state_dict(numpy_state(module), model_type, vocab, block_size, SIZES)
    assert our_nll(ours, words) == pytest.approx(torch_nll(module, words, vocab, block_size), abs=1e-5)


@pytest.mark.parametrize("model_type", TYPES)
def test_ours_loads_into_makemore_strictly_and_scores_the_same(model_type, words, vocab, block_size):
    ours = our_model(model_type, vocab, block_size)
    state = to_state_dict(ours)
    assert all(a.dtype == np.float32 for a in state.values())
    module = torch_module(model_type, vocab, block_size)
    module.load_state_dict({k: torch.tensor(v) for k, v in state.items()}, strict=True)
    assert torch_nll(module, words, vocab, block_size) == pytest.approx(our_nll(ours, words), abs=1e-5)
    back = from_state_dict(state, model_type, vocab, block_size, SIZES)
    flat_ours, tree = jax.tree_util.tree_flatten(ours.params)
    flat_back, tree_back = jax.tree_util.tree_flatten(back.params)
    assert tree == tree_back
    for a, b in zip(flat_ours, flat_back, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# --- refusals --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def transformer_state(vocab, block_size):
    return numpy_state(torch_module("transformer", vocab, block_size))


def refusal(arrays, vocab, block_size, sizes=SIZES, model_type="transformer"):
    with pytest.raises(MakemoreError) as caught:
        from_state_dict(arrays, model_type, vocab, block_size, sizes)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_missing_entry_is_named(transformer_state, vocab, block_size):
    state = dict(transformer_state)
    del state["transformer.h.1.ln_1.weight"]
    assert "missing transformer.h.1.ln_1.weight" in refusal(state, vocab, block_size)


def test_too_few_layers_name_the_first_missing(transformer_state, vocab, block_size):
    message = refusal(transformer_state, vocab, block_size, {**SIZES, "n_layer": 3})
    assert "missing transformer.h.2.ln_1.weight" in message


def test_an_extra_entry_is_named(transformer_state, vocab, block_size):
    state = {**transformer_state, "transformer.h.9.ln_1.weight": np.ones(8, np.float32)}
    assert "unexpected transformer.h.9.ln_1.weight" in refusal(state, vocab, block_size)


def test_a_misshaped_entry_is_named(transformer_state, vocab, block_size):
    state = {**transformer_state, "transformer.h.0.mlp.c_fc.bias": np.zeros(31, np.float32)}
    message = refusal(state, vocab, block_size)
    assert "transformer.h.0.mlp.c_fc.bias is (31,), expected (32,): the sizes are" in message


def test_another_vocabulary_is_named(transformer_state, vocab, block_size):
    smaller = Vocabulary(vocab.chars[:-1])
    message = refusal(transformer_state, smaller, block_size)
    V = vocab.size
    assert f"transformer.wte.weight is ({V}, 8), expected ({V - 1}, 8): the vocabulary has {V - 1} ids" in message


def test_another_block_size_is_named(transformer_state, vocab, block_size):
    message = refusal(transformer_state, vocab, block_size + 1)
    assert f"transformer.wpe.weight is ({block_size}, 8), expected ({block_size + 1}, 8): the block size" in message


def test_a_mask_that_is_not_causal_is_refused(transformer_state, vocab, block_size):
    state = {**transformer_state, "transformer.h.0.attn.bias": np.ones((1, 1, block_size, block_size), np.float32)}
    assert "transformer.h.0.attn.bias is not makemore.py's causal mask" in refusal(state, vocab, block_size)


@pytest.mark.parametrize("model_type", ["counts", "ngram", "lstm", "wavenet"])
def test_types_makemore_lacks_are_refused(model_type, vocab, block_size):
    message = refusal({}, vocab, block_size, model_type=model_type)
    assert message.startswith(f"makemore.py has no {model_type} model")
    with pytest.raises(MakemoreError, match=f"makemore.py has no {model_type} model"):
        to_state_dict(Fitted(TrainConfig.create(model_type), vocab, {}, block_size))


# --- .pt files ----------------------------------------------------------------------------


def test_write_pt_then_read_pt_gives_the_arrays_back(transformer_state, tmp_path):
    path = str(tmp_path / "model.pt")
    write_pt(path, transformer_state)
    back = read_pt(path)
    assert list(back) == list(transformer_state)
    for name, a in transformer_state.items():
        np.testing.assert_array_equal(back[name], a)
    assert isinstance(torch.load(path, weights_only=True), dict)  # what makemore.py's load_state_dict takes


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_read_pt_refuses_a_file_that_would_run_code(tmp_path):
    path, marker = str(tmp_path / "evil.pt"), str(tmp_path / "ran")
    torch.save({"w": RunsCode(marker)}, path)
    with pytest.raises(MakemoreError, match="not a PyTorch checkpoint of plain tensors") as caught:
        read_pt(path)
    assert "\n" not in str(caught.value)
    assert not os.path.exists(marker)


def test_read_pt_refuses_something_else_than_a_state_dict(tmp_path):
    path = str(tmp_path / "other.pt")
    torch.save({"name": "emma"}, path)
    with pytest.raises(MakemoreError, match="does not hold a state_dict"):
        read_pt(path)
    with open(path, "wb") as f:
        pickle.dump([1, 2], f, protocol=2)
    with pytest.raises(MakemoreError):
        read_pt(path)


def test_without_pytorch_pt_files_are_refused_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    for call in (lambda: read_pt(str(tmp_path / "a.pt")), lambda: write_pt(str(tmp_path / "a.pt"), {})):
        with pytest.raises(MakemoreError, match="needs PyTorch: pip install"):
            call()


def test_an_integer_entry_is_refused(transformer_state, vocab, block_size):
    state = {**transformer_state, "transformer.ln_f.bias": np.zeros(8, np.int64)}
    assert "transformer.ln_f.bias holds int64, expected floating point" in refusal(state, vocab, block_size)


def test_the_commands_take_a_makemore_checkpoint_in_and_out(tmp_path, capsys, words):
    """makemore export --format makemore, then makemore import of that model.pt: the same names and NLL."""
    from conftest import run_inprocess

    small = str(tmp_path / "words.txt")
    with open(small, "w") as f:
        f.write("".join(w + "\n" for w in words))

    a, b, pt = str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "model.pt")
    sizes = ["--n-layer", "1", "--n-head", "2", "--n-embd", "8"]
    flags = [*sizes, "--steps", "10", "--batch-size", "8", "--eval-every", "10", "--num-samples", "0"]
    assert run_inprocess(capsys, "train", "-i", small, "-o", a, "--type", "transformer", *flags)[0] == 0
    code, out, err = run_inprocess(capsys, "export", "-o", a, "--format", "makemore", pt)
    assert code == 0 and "a makemore.py state_dict of its transformer" in out, err
    code, out, err = run_inprocess(
        capsys, "import", "--format", "makemore", "--type", "transformer", "-i", small, *sizes, "-o", b, pt
    )
    assert code == 0, err
    for command in (["sample", "-n", "6", "--seed", "2"], ["eval", "-i", small]):
        assert (
            run_inprocess(capsys, command[0], "-o", a, *command[1:])[1:]
            == run_inprocess(capsys, command[0], "-o", b, *command[1:])[1:]
        )
    code, _, err = run_inprocess(capsys, "import", "--format", "makemore", "--type", "mlp", "-i", small, "-o", b, pt)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "missing" in err
    code, _, err = run_inprocess(capsys, "export", "-o", str(tmp_path / "c"), "--format", "makemore", pt)
    assert code == 2 and "no such work directory" in err
