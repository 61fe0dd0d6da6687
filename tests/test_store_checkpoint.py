import io
import json
import os

import jax
import numpy as np
import optax
import pytest

from makemore_jax.data.words import Vocabulary
from makemore_jax.errors import MakemoreError
from makemore_jax.models import get_model
from makemore_jax.store import checkpoint
from makemore_jax.training.config import TrainConfig
from makemore_jax.training.fitted import Fitted

VOCAB = Vocabulary(tuple("abc"))


def make(kind="bigram", seed=0):
    cfg = TrainConfig.create(kind, n_layer=1, n_head=2, n_embd=4, n_embd2=6)
    model = Fitted(cfg, VOCAB, {}, block_size=6)
    if kind == "counts":
        model.params = {"counts": np.random.default_rng(seed).integers(0, 9, (4, 4)).astype(np.int32)}
    else:
        model.params = jax.tree_util.tree_map(
            np.asarray, get_model(kind).init(jax.random.key(seed), model.model_config)
        )
    return model


def save(d, model, **kw):
    checkpoint.save(
        str(d), "model", model, training={"max_word_len": 5}, metrics={"dev_nll": float("inf"), "test_nll": 2.5}, **kw
    )


def snapshot(d):
    return {name: open(os.path.join(d, name), "rb").read() for name in sorted(os.listdir(d))}


@pytest.mark.parametrize("kind", ["bigram", "counts", "transformer", "lstm"])
def test_round_trip(tmp_path, kind):
    model = make(kind)
    save(tmp_path, model, step=12, best_dev=2.25)
    back = checkpoint.load(str(tmp_path))
    assert back.fitted.type == kind and back.fitted.vocab == VOCAB and back.fitted.config == model.config
    assert (back.step, back.best_dev, back.fitted.block_size) == (12, 2.25, 6)
    flat, flat_back = checkpoint.flatten_params(model.params), checkpoint.flatten_params(back.fitted.params)
    assert flat.keys() == flat_back.keys()
    for name, arr in flat.items():
        np.testing.assert_array_equal(flat_back[name], arr)
        assert flat_back[name].dtype == arr.dtype
    assert back.metrics == {"dev_nll": "inf", "test_nll": 2.5}
    assert back.opt_leaves is None
    files = sorted(os.listdir(tmp_path))
    assert files[0] == "model-" + json.loads((tmp_path / "model.json").read_text())["arrays_sha256"][:16] + ".npz"
    assert files[1] == "model.json" and len(files) == 2  # no temporary files left behind


def test_optimizer_state_round_trip(tmp_path):
    model = make("mlp")
    opt = optax.adamw(1e-3)
    state = opt.init(model.params)
    grads = jax.tree_util.tree_map(lambda p: p * 0 + 0.5, model.params)
    _, state = opt.update(grads, state, model.params)
    checkpoint.save(str(tmp_path), "last", model, step=3, opt_state=state)
    back = checkpoint.load(str(tmp_path), "last")
    restored = checkpoint.restore_opt_state(back, opt.init(back.fitted.params), "last.json")
    for a, b in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(restored)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(MakemoreError, match="optimizer state does not fit"):
        checkpoint.restore_opt_state(back, optax.sgd(0.1, momentum=0.9).init(back.fitted.params), "last.json")


def test_metrics_lines(tmp_path):
    checkpoint.write_metrics(str(tmp_path), [{"step": 1, "loss": 3.0}, {"step": 2, "loss": float("nan")}])
    assert checkpoint.read_metrics(str(tmp_path)) == [{"step": 1, "loss": 3.0}, {"step": 2, "loss": "nan"}]
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "lo')
    assert len(checkpoint.read_metrics(str(tmp_path))) == 2


def test_saving_again_replaces_and_removes_the_old_arrays(tmp_path):
    save(tmp_path, make(seed=0))
    save(tmp_path, make(seed=1))
    assert len([f for f in os.listdir(tmp_path) if f.endswith(".npz")]) == 1
    np.testing.assert_array_equal(checkpoint.load(str(tmp_path)).fitted.params["W"], make(seed=1).params["W"])


def test_failed_write_leaves_previous_checkpoint(tmp_path, monkeypatch):
    save(tmp_path, make(seed=0))
    before = snapshot(tmp_path)
    real_replace = os.replace

    def failing_replace(src, dst):
        if dst.endswith("model.json"):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(MakemoreError, match="cannot write"):
        save(tmp_path, make(seed=1))
    monkeypatch.undo()
    loaded = checkpoint.load(str(tmp_path))
    np.testing.assert_array_equal(loaded.fitted.params["W"], make(seed=0).params["W"])
    assert snapshot(tmp_path)["model.json"] == before["model.json"]


def test_missing_workdir_and_missing_model(tmp_path):
    with pytest.raises(MakemoreError, match="no such work directory"):
        checkpoint.load(str(tmp_path / "nowhere"))
    with pytest.raises(MakemoreError, match="model.json is missing"):
        checkpoint.load(str(tmp_path))


def corrupt_json(d):
    (d / "model.json").write_text("{not json")


def truncate_params(d):
    p = next(d.glob("model-*.npz"))
    p.write_bytes(p.read_bytes()[:100])


def flip_bit(d):
    p = next(d.glob("model-*.npz"))
    raw = bytearray(p.read_bytes())
    raw[len(raw) // 2] ^= 1
    p.write_bytes(bytes(raw))


def edit_meta(**changes):
    def apply(d):
        meta = json.loads((d / "model.json").read_text())
        meta.update(changes)
        (d / "model.json").write_text(json.dumps(meta))

    return apply


def edit_config(drop=None, **changes):
    def apply(d):
        meta = json.loads((d / "model.json").read_text())
        meta["config"].update(changes)
        if drop:
            del meta["config"][drop]
        (d / "model.json").write_text(json.dumps(meta))

    return apply


def delete_params(d):
    next(d.glob("model-*.npz")).unlink()


def pickle_params(d):
    """Arrays that need pickle (an object array) under a checksum that matches."""
    import hashlib

    buf = io.BytesIO()
    np.savez(buf, **{"params/W": np.array([{"evil": 1}], dtype=object)})
    payload = buf.getvalue()
    p = next(d.glob("model-*.npz"))
    p.write_bytes(payload)
    edit_meta(arrays_sha256=hashlib.sha256(payload).hexdigest())(d)


def wrong_shape(d):
    import hashlib

    buf = io.BytesIO()
    np.savez(buf, **{"params/W": np.zeros((5, 5), np.float32)})
    payload = buf.getvalue()
    next(d.glob("model-*.npz")).write_bytes(payload)
    edit_meta(arrays_sha256=hashlib.sha256(payload).hexdigest())(d)


@pytest.mark.parametrize(
    "damage,message",
    [
        (corrupt_json, "unreadable JSON"),
        (truncate_params, "checksum"),
        (flip_bit, "checksum"),
        (delete_params, "cannot read its arrays"),
        (edit_meta(type="transformer9"), "does not match its config"),
        (edit_config(type="transformer9"), "unknown model type"),
        (edit_config(lr=-1), "lr must be"),
        (edit_config(lr=None, drop="lr"), "missing lr"),
        (edit_config(colour="red"), "unexpected colour"),
        (edit_config(type="counts"), "does not match its config"),
        (edit_meta(vocab=["b", "a"]), "sorted"),
        (edit_meta(vocab=list("abcd")), "expected float32[5, 5]"),
        (edit_meta(block_size="big"), "block_size"),
        (edit_meta(step=-3), "step"),
        (edit_meta(format="something"), "not a makemore-jax checkpoint"),
        (edit_meta(format_version=99), "format version"),
        (edit_meta(arrays_file="../elsewhere.npz"), "plain file name"),
        (edit_meta(training=None), "training"),
        (pickle_params, "unreadable arrays"),
        (wrong_shape, "expected float32[4, 4]"),
    ],
)
def test_damaged_checkpoints_are_refused_naming_the_file(tmp_path, damage, message):
    save(tmp_path, make())
    damage(tmp_path)
    with pytest.raises(MakemoreError, match=message.replace("[", r"\[").replace("]", r"\]")) as err:
        checkpoint.load(str(tmp_path))
    assert str(tmp_path) in str(err.value)


def test_checkpoint_of_another_model_type_is_refused(tmp_path):
    save(tmp_path, make("transformer"))
    meta = json.loads((tmp_path / "model.json").read_text())
    meta["type"] = meta["config"]["type"] = "gru"
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(MakemoreError, match="do not fit a gru model"):
        checkpoint.load(str(tmp_path))
