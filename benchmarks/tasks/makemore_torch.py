"""The model family as PyTorch modules, written the way makemore.py writes them.

The baseline of the model benchmarks: each model is an ``nn.Module`` whose
``forward(idx)`` returns (B, T, V) logits, trained with F.cross_entropy
(ignore_index=-1) and torch.optim.AdamW at makemore's settings. The structure
follows makemore.py (Bigram, MLP with a blank token, RNN/GRU cells with a
learned start state, BoW, Transformer) plus an LSTM cell in the same style and
the WaveNet of makemore lecture 5 (FlattenConsecutive + Linear + LayerNorm +
Tanh, LayerNorm as in makemore_jax.models.wavenet, so that both sides compute
the same function; the lecture's BatchNorm would make a position's output
depend on the rest of the batch).

These are plain, eager modules: no fused kernels, no torch.compile. The
``best`` flag of ``make_model`` switches the Transformer's attention to
F.scaled_dot_product_attention, PyTorch's fused kernel, and
``compiled_train_steps`` runs makemore's step under torch.compile.
"""

from __future__ import annotations

import math

import numpy as np

from makemore_jax.models import ModelConfig

WAVENET_CONTEXT = 8  # ids per window, fused pairwise 8 -> 4 -> 2 -> 1

LR, WEIGHT_DECAY, BETAS, EPS = 5e-4, 0.01, (0.9, 0.99), 1e-8  # makemore's AdamW


def torch_targets(tokens_BxL: np.ndarray, lengths_B: np.ndarray) -> np.ndarray:
    """makemore's targets from padded rows: row[1:], -1 after each word's end (ignored by the loss)."""
    targets = tokens_BxL[:, 1:].astype(np.int64)
    positions = np.arange(targets.shape[1])[None, :]
    return np.where(positions <= lengths_B[:, None], targets, -1)


def make_model(name: str, config: ModelConfig, best: bool = False):
    """An nn.Module for one model name of the family; forward(idx (B, T) int64) -> logits (B, T, V)."""
    import torch
    import torch.nn as nn
    from torch.nn import functional as F

    V, T, E, H = config.vocab_size, config.block_size, config.n_embd, config.n_embd2

    class NewGELU(nn.Module):
        """GELU with the tanh approximation, as in GPT-2 (Hendrycks & Gimpel 2016)."""

        def forward(self, x):
            return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))

    class CausalSelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = nn.Linear(E, 3 * E)
            self.c_proj = nn.Linear(E, E)
            self.register_buffer("bias", torch.tril(torch.ones(T, T)).view(1, 1, T, T))

        def forward(self, x):
            B, L, C = x.size()
            q, k, v = self.c_attn(x).split(E, dim=2)
            nh = config.n_head
            q, k, v = (z.view(B, L, nh, C // nh).transpose(1, 2) for z in (q, k, v))
            if best:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
                att = att.masked_fill(self.bias[:, :, :L, :L] == 0, float("-inf"))
                y = F.softmax(att, dim=-1) @ v
            return self.c_proj(y.transpose(1, 2).contiguous().view(B, L, C))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.ln_2 = nn.LayerNorm(E), nn.LayerNorm(E)
            self.attn = CausalSelfAttention()
            self.mlp = nn.ModuleDict(dict(c_fc=nn.Linear(E, 4 * E), c_proj=nn.Linear(4 * E, E), act=NewGELU()))

        def forward(self, x):
            m = self.mlp
            x = x + self.attn(self.ln_1(x))
            return x + m.c_proj(m.act(m.c_fc(self.ln_2(x))))

    class Transformer(nn.Module):
        """GPT-2 style decoder (Vaswani et al. 2017, pre-LN as in Radford et al. 2019)."""

        def __init__(self):
            super().__init__()
            self.transformer = nn.ModuleDict(
                dict(
                    wte=nn.Embedding(V, E),
                    wpe=nn.Embedding(T, E),
                    h=nn.ModuleList([Block() for _ in range(config.n_layer)]),
                    ln_f=nn.LayerNorm(E),
                )
            )
            self.lm_head = nn.Linear(E, V, bias=False)

        def forward(self, idx):
            tr = self.transformer
            pos = torch.arange(0, idx.size(1), dtype=torch.long, device=idx.device).unsqueeze(0)
            x = tr.wte(idx) + tr.wpe(pos)
            for block in tr.h:
                x = block(x)
            return self.lm_head(tr.ln_f(x))

    class CausalBoW(nn.Module):
        """Uniform average over the past, as masked attention with equal scores."""

        def __init__(self):
            super().__init__()
            self.register_buffer("bias", torch.tril(torch.ones(T, T)).view(1, T, T))

        def forward(self, x):
            B, L, C = x.size()
            att = torch.zeros((B, L, L), device=x.device).masked_fill(self.bias[:, :L, :L] == 0, float("-inf"))
            return F.softmax(att, dim=-1) @ x

    class BoW(nn.Module):
        """Bag of words: CausalBoW plus an MLP, each in a residual branch."""

        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(V, E), nn.Embedding(T, E)
            self.cbow = CausalBoW()
            self.mlp = nn.ModuleDict(dict(c_fc=nn.Linear(E, H), c_proj=nn.Linear(H, E)))
            self.lm_head = nn.Linear(E, V)

        def forward(self, idx):
            pos = torch.arange(0, idx.size(1), dtype=torch.long, device=idx.device).unsqueeze(0)
            x = self.wte(idx) + self.wpe(pos)
            x = x + self.cbow(x)
            x = x + self.mlp.c_proj(torch.tanh(self.mlp.c_fc(x)))
            return self.lm_head(x)

    class Bigram(nn.Module):
        """A (V, V) table of next-id logits."""

        def __init__(self):
            super().__init__()
            self.logits = nn.Parameter(torch.zeros((V, V)))

        def forward(self, idx):
            return self.logits[idx]

    class MLP(nn.Module):
        """Bengio et al. 2003 over the previous block_size ids, blank id V before the start."""

        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(V + 1, E)
            self.mlp = nn.Sequential(nn.Linear(T * E, H), nn.Tanh(), nn.Linear(H, V))

        def forward(self, idx):
            embs = []
            for _ in range(T):
                embs.append(self.wte(idx))
                idx = torch.roll(idx, 1, 1)
                idx[:, 0] = V
            return self.mlp(torch.cat(embs, -1))

    class RNNCell(nn.Module):
        """Mikolov et al. 2010: h_t = tanh(W [x_t, h_{t-1}] + b)."""

        def __init__(self):
            super().__init__()
            self.xh_to_h = nn.Linear(E + H, H)

        def forward(self, xt, state):
            (hprev,) = state
            return (torch.tanh(self.xh_to_h(torch.cat([xt, hprev], dim=1))),)

    class GRUCell(nn.Module):
        """Cho et al. 2014, as makemore writes it (z gates the new candidate)."""

        def __init__(self):
            super().__init__()
            self.xh_to_z, self.xh_to_r, self.xh_to_hbar = (nn.Linear(E + H, H) for _ in range(3))

        def forward(self, xt, state):
            (hprev,) = state
            xh = torch.cat([xt, hprev], dim=1)
            r = torch.sigmoid(self.xh_to_r(xh))
            hbar = torch.tanh(self.xh_to_hbar(torch.cat([xt, r * hprev], dim=1)))
            z = torch.sigmoid(self.xh_to_z(xh))
            return ((1 - z) * hprev + z * hbar,)

    class LSTMCell(nn.Module):
        """Hochreiter & Schmidhuber 1997 in Graves 2013's form, gates i, f, g, o from one Linear."""

        def __init__(self):
            super().__init__()
            self.xh_to_gates = nn.Linear(E + H, 4 * H)

        def forward(self, xt, state):
            hprev, cprev = state
            i, f, g, o = self.xh_to_gates(torch.cat([xt, hprev], dim=1)).chunk(4, dim=1)
            c = torch.sigmoid(f) * cprev + torch.sigmoid(i) * torch.tanh(g)
            return torch.sigmoid(o) * torch.tanh(c), c

    class RNN(nn.Module):
        """Embedding -> cell over time from a learned start state -> lm_head on every hidden state."""

        def __init__(self, cell, n_state):
            super().__init__()
            self.start = nn.ParameterList([nn.Parameter(torch.zeros(1, H)) for _ in range(n_state)])
            self.wte = nn.Embedding(V, E)
            self.cell = cell
            self.lm_head = nn.Linear(H, V)

        def forward(self, idx):
            b, t = idx.size()
            emb = self.wte(idx)
            state = tuple(s.expand((b, -1)) for s in self.start)
            hiddens = []
            for i in range(t):
                state = self.cell(emb[:, i, :], state)
                hiddens.append(state[0])
            return self.lm_head(torch.stack(hiddens, 1))

    class FlattenConsecutive(nn.Module):
        """(B, n, C) -> (B, n/2, 2C): consecutive pairs side by side (lecture 5)."""

        def forward(self, x):
            B, n, C = x.shape
            return x.view(B, n // 2, 2 * C)

    class WaveNet(nn.Module):
        """Lecture 5's hierarchical MLP (after van den Oord et al. 2016), one 8-id window per position."""

        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(V + 1, E)
            layers = []
            for fan_in in (2 * E, 2 * H, 2 * H):
                layers += [FlattenConsecutive(), nn.Linear(fan_in, H, bias=False), nn.LayerNorm(H), nn.Tanh()]
            self.tree = nn.Sequential(*layers)
            self.lm_head = nn.Linear(H, V)

        def forward(self, idx):
            B, L = idx.shape
            padded = F.pad(idx, (WAVENET_CONTEXT - 1, 0), value=V)
            windows = padded.unfold(1, WAVENET_CONTEXT, 1).reshape(B * L, WAVENET_CONTEXT)
            root = self.tree(self.wte(windows))  # (B*L, 1, H)
            return self.lm_head(root.view(B, L, H))

    builders = {
        "bigram": Bigram,
        "mlp": MLP,
        "bow": BoW,
        "transformer": Transformer,
        "wavenet": WaveNet,
        "rnn": lambda: RNN(RNNCell(), 1),
        "gru": lambda: RNN(GRUCell(), 1),
        "lstm": lambda: RNN(LSTMCell(), 2),
    }
    return builders[name]()


def load_jax_transformer(model, params: dict) -> None:
    """Copy makemore_jax Transformer parameters into ``make_model("transformer")``'s module, in place.

    The layouts map one to one (see makemore_jax.models.transformer): a JAX
    (fan_in, fan_out) matrix is nn.Linear's weight transposed, and the per-head
    shapes of c_attn and c_proj flatten to PyTorch's (C, 3C) and (C, C).
    """
    import torch

    def t(x):
        return torch.from_numpy(np.array(x, dtype=np.float32))

    blocks = params["blocks"]
    n_layer, C = blocks["ln_1"]["scale"].shape
    state = {
        "transformer.wte.weight": t(params["wte"]),
        "transformer.wpe.weight": t(params["wpe"]),
        "transformer.ln_f.weight": t(params["ln_f"]["scale"]),
        "transformer.ln_f.bias": t(params["ln_f"]["bias"]),
        "lm_head.weight": t(params["lm_head"]["w"]).T,
    }
    for layer in range(n_layer):
        h = f"transformer.h.{layer}."
        for ln in ("ln_1", "ln_2"):
            state[h + ln + ".weight"], state[h + ln + ".bias"] = (
                t(blocks[ln]["scale"][layer]),
                t(blocks[ln]["bias"][layer]),
            )
        attn, mlp = blocks["attn"], blocks["mlp"]
        state[h + "attn.c_attn.weight"] = t(attn["c_attn"]["w"][layer]).reshape(C, 3 * C).T
        state[h + "attn.c_attn.bias"] = t(attn["c_attn"]["b"][layer]).reshape(3 * C)
        state[h + "attn.c_proj.weight"] = t(attn["c_proj"]["w"][layer]).reshape(C, C).T
        state[h + "attn.c_proj.bias"] = t(attn["c_proj"]["b"][layer])
        for name in ("c_fc", "c_proj"):
            state[h + f"mlp.{name}.weight"] = t(mlp[name]["w"][layer]).T
            state[h + f"mlp.{name}.bias"] = t(mlp[name]["b"][layer])
    full = model.state_dict()
    missing = set(k for k in full if not k.endswith(".attn.bias")) - set(state)  # .attn.bias: the causal mask
    if missing:
        raise ValueError(f"no JAX parameter for {sorted(missing)}")
    full.update({k: v.to(full[k].device) for k, v in state.items()})
    model.load_state_dict(full)


def make_optimizer(model, fused: bool = False):
    """torch.optim.AdamW at makemore's settings; fused=True for PyTorch's single-kernel version."""
    import torch

    extra = {"fused": True} if fused else {}
    return torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY, betas=BETAS, eps=EPS, **extra)


def loss_of(model, idx, targets):
    from torch.nn import functional as F

    logits = model(idx)
    return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)


def train_steps(model, optimizer, idx, targets, steps: int) -> list[float]:
    """makemore's inner loop on one batch: zero_grad, forward, backward, step; the losses (synced once)."""
    return _loop(lambda i, t: loss_of(model, i, t), optimizer, idx, targets, steps)


def compiled_loss(model):
    """loss_of(model, idx, targets) under torch.compile: forward and cross-entropy as one graph.

    AOTAutograd compiles the backward of that graph too, so loss.backward()
    runs generated code as well. The optimizer stays eager: compiling
    AdamW's step too (or the whole step function) was no faster for the
    Transformer at batch 32 on the 2-core CPU, and costs another compilation.
    Static shapes: compiles in its first call, for that call's shapes (one
    graph with a dynamic batch was as slow to compile as two static ones, and
    ran 3-8% slower).
    """
    import torch

    return torch.compile(lambda idx, targets: loss_of(model, idx, targets), dynamic=False)


def compiled_train_steps(model, optimizer):
    """train_steps with compiled_loss: steps(idx, targets, n) -> the n losses."""
    loss_fn = compiled_loss(model)
    return lambda idx, targets, steps: _loop(loss_fn, optimizer, idx, targets, steps)


def _loop(loss_fn, optimizer, idx, targets, steps: int) -> list[float]:
    import torch

    losses = []
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(idx, targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    return torch.stack(losses).tolist()
