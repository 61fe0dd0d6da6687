import io
import json
import os

import numpy as np
import pytest

from makemore_jax import checkpoint
from makemore_jax.data import Vocabulary
from makemore_jax.errors import MakemoreError

VOCAB = Vocabulary(tuple("abc"))


def make(kind="bigram", seed=0):
    rng = np.random.default_rng(seed)
    params = {"W": rng.standard_normal((4, 4)).astype(np.float32)} if kind == "bigram" else {"counts": rng.integers(0, 9, (4, 4)).astype(np.int32)}
    hparams = {"l2": 0.01} if kind == "bigram" else {"smoothing": 1.0}
    return checkpoint.Checkpoint(kind, VOCAB, params, hparams, {"max_word_len": 5}, {"dev_nll": float("inf"), "test_nll": 2.5})


def snapshot(d):
    return {name: open(os.path.join(d, name), "rb").read() for name in sorted(os.listdir(d))}


@pytest.mark.parametrize("kind", ["bigram", "counts"])
def test_round_trip(tmp_path, kind):
    ckpt = make(kind)
    checkpoint.save(str(tmp_path), ckpt, [{"step": 1, "loss": 3.0}])
    back = checkpoint.load(str(tmp_path))
    assert back.type == kind and back.vocab == VOCAB and back.hparams == ckpt.hparams
    for name, arr in ckpt.params.items():
        np.testing.assert_array_equal(back.params[name], arr)
        assert back.params[name].dtype == arr.dtype
    assert back.metrics == {"dev_nll": "inf", "test_nll": 2.5}
    files = sorted(os.listdir(tmp_path))
    assert files[0] == "metrics.jsonl" and files[1] == "model.json" and files[2].startswith("params-")
    assert len(files) == 3  # no temporary files left behind
    assert json.loads(open(tmp_path / "metrics.jsonl").read()) == {"step": 1, "loss": 3.0}


def test_saving_again_replaces_and_removes_the_old_params(tmp_path):
    checkpoint.save(str(tmp_path), make(seed=0))
    checkpoint.save(str(tmp_path), make(seed=1))
    assert len([f for f in os.listdir(tmp_path) if f.startswith("params-")]) == 1
    np.testing.assert_array_equal(checkpoint.load(str(tmp_path)).params["W"], make(seed=1).params["W"])


def test_failed_write_leaves_previous_checkpoint(tmp_path, monkeypatch):
    checkpoint.save(str(tmp_path), make(seed=0))
    before = snapshot(tmp_path)
    real_replace = os.replace

    def failing_replace(src, dst):
        if dst.endswith("model.json"):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(MakemoreError, match="cannot write"):
        checkpoint.save(str(tmp_path), make(seed=1))
    monkeypatch.undo()
    loaded = checkpoint.load(str(tmp_path))
    np.testing.assert_array_equal(loaded.params["W"], make(seed=0).params["W"])
    assert snapshot(tmp_path)["model.json"] == before["model.json"]


def test_missing_workdir_and_missing_model(tmp_path):
    with pytest.raises(MakemoreError, match="no such work directory"):
        checkpoint.load(str(tmp_path / "nowhere"))
    with pytest.raises(MakemoreError, match="model.json is missing"):
        checkpoint.load(str(tmp_path))


def corrupt_json(d):
    (d / "model.json").write_text("{not json")


def truncate_params(d):
    p = next(d.glob("params-*.npz"))
    p.write_bytes(p.read_bytes()[:100])


def flip_bit(d):
    p = next(d.glob("params-*.npz"))
    raw = bytearray(p.read_bytes())
    raw[len(raw) // 2] ^= 1
    p.write_bytes(bytes(raw))


def edit_meta(**changes):
    def apply(d):
        meta = json.loads((d / "model.json").read_text())
        meta.update(changes)
        (d / "model.json").write_text(json.dumps(meta))

    return apply


def delete_params(d):
    next(d.glob("params-*.npz")).unlink()


def pickle_params(d):
    """Arrays that need pickle (an object array) under a checksum that matches."""
    import hashlib

    buf = io.BytesIO()
    np.savez(buf, W=np.array([{"evil": 1}], dtype=object))
    payload = buf.getvalue()
    p = next(d.glob("params-*.npz"))
    p.write_bytes(payload)
    edit_meta(params_sha256=hashlib.sha256(payload).hexdigest())(d)


def wrong_shape(d):
    import hashlib

    buf = io.BytesIO()
    np.savez(buf, W=np.zeros((5, 5), np.float32))
    payload = buf.getvalue()
    next(d.glob("params-*.npz")).write_bytes(payload)
    edit_meta(params_sha256=hashlib.sha256(payload).hexdigest())(d)


@pytest.mark.parametrize(
    "damage,message",
    [
        (corrupt_json, "unreadable JSON"),
        (truncate_params, "checksum"),
        (flip_bit, "checksum"),
        (delete_params, "cannot read its parameters"),
        (edit_meta(type="transformer9"), "unknown model type"),
        (edit_meta(type="counts", hparams={"smoothing": 1.0}), "holds arrays"),
        (edit_meta(vocab=["b", "a"]), "sorted"),
        (edit_meta(vocab=list("abcd")), "expected float32"),
        (edit_meta(format="something"), "not a makemore-jax model"),
        (edit_meta(format_version=99), "format version"),
        (edit_meta(params_file="../elsewhere.npz"), "plain file name"),
        (edit_meta(hparams=None), "hparams"),
        (pickle_params, "unreadable arrays"),
        (wrong_shape, "expected float32"),
    ],
)
def test_damaged_checkpoints_are_refused_naming_the_file(tmp_path, damage, message):
    checkpoint.save(str(tmp_path), make())
    damage(tmp_path)
    with pytest.raises(MakemoreError, match=message) as err:
        checkpoint.load(str(tmp_path))
    assert str(tmp_path) in str(err.value)


def test_counts_checkpoint_needs_valid_smoothing(tmp_path):
    checkpoint.save(str(tmp_path), make("counts"))
    edit_meta(hparams={"smoothing": -2})(tmp_path)
    with pytest.raises(MakemoreError, match="smoothing"):
        checkpoint.load(str(tmp_path))
