"""Transformer training throughput on real names.txt batches, in characters per second.

The padded-batch rows of ``model_training`` time the same work on both sides
(the systems comparison). This task times the work people run: batches of
BATCH_SIZE names drawn at random from the training split (seed 0's 80/10/10),
makemore's AdamW step, at makemore's sizes. Each side does what it does by
default: makemore pads every name to block_size (16) positions; makemore_jax
packs the drawn names end to end (``packing``) and skips the padding. Speed is
real positions per second: each name's characters and its end, what the loss
averages over; padding is excluded on both sides.

Every timed call runs the same STEPS steps from the same start, so each
candidate's work (characters) is fixed: PyTorch reseeds its batch generator,
makemore_jax starts ``run_steps`` at step 0 with the same batch key. The two
sides draw different batches from the same training words; the characters of
the batches each side drew are counted exactly.
"""

from __future__ import annotations

import copy
import time
from functools import partial

import jax
import numpy as np

from makemore_jax.data import words as data
from makemore_jax.models import get_model
from makemore_jax.seeding import seed_key
from makemore_jax.training import steps as train_steps
from makemore_jax.training.config import TrainConfig

from ..context import Context
from ..harness import Candidate, Target, TaskResult, check, measure, register, result
from ..step_profile import profile_by_kind, table
from . import makemore_torch

BLOCK_SIZE = 16
BATCH_SIZE = 32
SEED = 1337
TARGET = 2.0  # real characters/s, makemore_jax packed vs makemore's padded loop


def drawn_lengths(lengths: np.ndarray, key: jax.Array, batch_size: int, steps: int) -> np.ndarray:
    """The lengths of the words sequence_loss draws at steps 0..steps-1 (train_steps.drawn_rows).

    Shape (steps, batch_size).
    """
    draws = jax.jit(jax.vmap(partial(train_steps.drawn_rows, key, batch_size=batch_size, num_words=len(lengths))))
    return lengths[np.asarray(draws(np.arange(steps, dtype=np.int32)))]


def jax_candidate(ctx, cfg, config, tokens, lengths, steps: int, pack: bool):
    """run() -> losses of steps run_steps from step 0, its compile time, the drawn characters, the capacity."""
    model_def = get_model("transformer")
    params = model_def.init(seed_key(SEED, "init"), config)
    optimizer = train_steps.make_optimizer(cfg)
    opt_state = optimizer.init(params)
    capacity = train_steps.packing_capacity(
        cfg if pack else TrainConfig.create("transformer", pack=False), model_def, lengths, BLOCK_SIZE
    )
    loss_fn = train_steps.sequence_loss(
        model_def.apply, 0.0, cfg.batch_size, apply_packed=model_def.apply_packed, capacity=capacity
    )
    batch = {"tokens": ctx.to_jax(tokens), "lengths": ctx.to_jax(lengths), "key": seed_key(SEED, "batches")}
    t0 = time.perf_counter()
    compiled = train_steps.run_steps.lower(loss_fn, optimizer, params, opt_state, batch, 0, steps).compile()
    compile_s = time.perf_counter() - t0

    def run():
        return np.asarray(compiled(params, opt_state, batch, 0)[2])

    chars = int((drawn_lengths(lengths, batch["key"], cfg.batch_size, steps) + 1).sum())
    return run, compile_s, chars, capacity


@register("names_training")
def names_training(ctx: Context) -> TaskResult:
    import torch

    words = data.read_words(data.bundled_names_path())
    if ctx.quick:
        words = words[:400]
    d = data.Dataset.build(words, seed_key(0, "split"))
    tokens, lengths = d.padded("train", BLOCK_SIZE)
    steps, rounds = ctx.size(100, 3), ctx.size(5, 1)
    cfg = TrainConfig.create(
        "transformer", batch_size=BATCH_SIZE, **({} if not ctx.quick else {"n_layer": 1, "n_head": 2, "n_embd": 8})
    )
    config = cfg.model_config(d.vocab.size, BLOCK_SIZE)

    packed_run, packed_compile, jax_chars, capacity = jax_candidate(ctx, cfg, config, tokens, lengths, steps, True)
    padded_run, padded_compile, _, _ = jax_candidate(ctx, cfg, config, tokens, lengths, steps, False)

    X = ctx.to_torch(tokens[:, :-1].astype(np.int64))
    Y = ctx.to_torch(makemore_torch.torch_targets(tokens, lengths))
    torch_lengths = torch.from_numpy(lengths.astype(np.int64))
    gen = torch.Generator(device=ctx.torch_device)

    def torch_side(best: bool):
        torch.manual_seed(SEED)
        model = makemore_torch.make_model("transformer", config, best=best).to(ctx.torch_device)
        optimizer = makemore_torch.make_optimizer(model, fused=best)
        # every call trains from the same start, as the JAX calls do (the tensors copied: state_dict shares them)
        start = ({k: v.clone() for k, v in model.state_dict().items()}, copy.deepcopy(optimizer.state_dict()))

        def run():
            model.load_state_dict(start[0])
            optimizer.load_state_dict(start[1])
            gen.manual_seed(SEED)
            losses = []
            for _ in range(steps):
                ix = torch.randint(0, X.size(0), (cfg.batch_size,), device=ctx.torch_device, generator=gen)
                optimizer.zero_grad(set_to_none=True)
                loss = makemore_torch.loss_of(model, X[ix], Y[ix])
                loss.backward()
                optimizer.step()
                losses.append(loss.detach())
            return torch.stack(losses).tolist()

        return run

    gen.manual_seed(SEED)
    torch_chars = sum(
        int(
            (
                torch_lengths[
                    torch.randint(0, X.size(0), (cfg.batch_size,), device=ctx.torch_device, generator=gen).cpu()
                ]
                + 1
            ).sum()
        )
        for _ in range(steps)
    )
    cands = [
        Candidate(
            "torch",
            f"makemore's loop: {BATCH_SIZE} names per step padded to {BLOCK_SIZE} positions",
            "torch",
            "lecture",
            ctx.torch_synced(torch_side(False)),
            work=torch_chars,
        ),
        Candidate(
            "torch_best",
            "the same, fused AdamW + SDPA",
            "torch",
            "best_effort",
            ctx.torch_synced(torch_side(True)),
            work=torch_chars,
        ),
        Candidate(
            "jax_packed",
            f"makemore_jax run_steps, names packed end to end ({capacity} slots per batch)",
            "jax",
            "package",
            packed_run,
            work=jax_chars,
            first_call_s=packed_compile,
        ),
        Candidate(
            "jax_padded",
            "probe: makemore_jax run_steps, padded like makemore (--no-pack)",
            "jax",
            "probe",
            padded_run,
            work=jax_chars,
            first_call_s=padded_compile,
        ),
    ]
    timings = measure(cands, rounds, ctx.log)
    packed_losses, padded_losses = timings["jax_packed"].output, timings["jax_padded"].output
    checks = [
        check(
            "packed and padded makemore_jax train alike (same batches)",
            np.allclose(packed_losses, padded_losses, atol=1e-3),
            f"max |Δ loss| {np.abs(np.asarray(packed_losses) - np.asarray(padded_losses)).max():.2e}"
            f" over {steps} steps",
        ),
        check(
            "PyTorch loss falls",
            timings["torch"].output[-1] < timings["torch"].output[0],
            f"{timings['torch'].output[0]:.4f} -> {timings['torch'].output[-1]:.4f}",
        ),
    ]
    targets = [
        Target("JAX packed vs makemore PyTorch (real characters/s)", "jax_packed", ("torch",), TARGET),
        Target("JAX packed vs PyTorch best effort (real characters/s)", "jax_packed", ("torch_best",)),
        Target("probe: JAX padded vs makemore PyTorch (real characters/s)", "jax_padded", ("torch",)),
        Target("packing's own gain: JAX packed vs JAX padded", "jax_packed", ("jax_padded",)),
    ]
    padded_slots = steps * cfg.batch_size * BLOCK_SIZE
    profiles = {
        "packed step": profile_by_kind(packed_run, 2, steps),
        "padded step": profile_by_kind(padded_run, 2, steps),
    }
    res = result(
        "Transformer training on names (real characters/s)",
        f"{steps} AdamW steps of the Transformer (makemore sizes) on {BATCH_SIZE} names drawn per step from the "
        f"training split; work = characters plus ends of the drawn names (padding excluded)",
        "character",
        cands,
        timings,
        targets,
        checks,
        rounds,
        extra={
            "capacity": capacity,
            "jax_chars": jax_chars,
            "torch_chars": torch_chars,
            "padded_slots": padded_slots,
            "profiles": profiles,
        },
    )
    res.notes = [
        f"A padded step computes {cfg.batch_size} × {BLOCK_SIZE} = {cfg.batch_size * BLOCK_SIZE} positions; the drawn "
        f"names hold {jax_chars / steps:.0f} real ones on average ({jax_chars / padded_slots:.0%}). makemore_jax packs "
        f"them into {capacity} slots ({capacity // BLOCK_SIZE} rows of {BLOCK_SIZE}; a batch that needs more runs "
        "padded) and each row attends over itself and the row before, masked to each name's own earlier positions.",
        "The two sides draw different random batches of the same training words; each side's characters are "
        "counted from its own draws.",
        "Where makemore_jax's step time goes (jax.profiler trace of 2 calls of "
        f"{steps} steps, XLA's thunks grouped by kind, thread time summed over XLA's worker threads):\n\n  "
        + "\n  ".join(table(profiles)),
    ]
    return res
