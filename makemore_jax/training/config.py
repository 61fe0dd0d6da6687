"""Training settings, each declared once: a field of TrainConfig with its kind, range, help and scope.

Everything about a setting derives from its field here: the command line's
flag and its help (with the real default of each model type), the Python
keywords of ``makemore_jax.train``, the keys of a ``--config`` TOML file, the
saved config and the checks. A setting's scope says which model types take
it: every type, the trained ones, or the types whose ModelDef lists it in its
``settings`` (a model answers for itself what it reads). The defaults are the
field's, or a model type's own (its ModelDef's ``defaults``): the neural bigram
follows the lecture (full-batch SGD, lr 50, λ 0.01); every other neural model
the PyTorch makemore (AdamW, lr 5e-4, weight decay 0.01, batch 32,
n_layer/n_head/n_embd/n_embd2 = 4/4/64/64).

Checks say the same whatever door a value came through:
``lr must be a finite number >= 0, got -3.0``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..data.words import validate_split
from ..errors import MakemoreError
from ..models import MODEL_TYPES, TRAINING_TYPES, ModelConfig, ModelDef, get_model, ngram
from ..seeding import MAX_SEED

INT32_LIMIT = 2**31 - 1  # step counters, array sizes and indices are int32 in JAX
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("constant", "cosine")
SMOOTHING_METHODS = ngram.METHODS

ALL, TRAINED, MODEL = "all", "trained", "model"  # scopes: every type, the trained types, the types that list it


class Kind:
    """What values a setting takes: parse (text of a flag -> value) and check (any value -> MakemoreError)."""

    what = ""

    def parse(self, text: str) -> Any:
        return text

    def check(self, name: str, value: object) -> None:
        raise NotImplementedError

    def refuse(self, name: str, value: object) -> MakemoreError:
        return MakemoreError(f"{name} must be {self.what}, got {value!r}")


@dataclass(frozen=True)
class Integer(Kind):
    low: int = 0
    high: int = INT32_LIMIT

    @property
    def what(self) -> str:  # type: ignore[override]
        return f"an integer >= {self.low}" if self.high == INT32_LIMIT else f"an integer in {self.low}..{self.high}"

    def parse(self, text: str) -> Any:
        try:
            return int(text)
        except ValueError:
            return text  # refused by check, with the text as given

    def check(self, name: str, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < self.low:
            raise self.refuse(name, value)
        if int(value) > self.high:
            if self.high != INT32_LIMIT:
                raise self.refuse(name, value)
            raise MakemoreError(
                f"{name} must be at most {self.high:,} (JAX counts steps and indexes arrays with int32), got {value:,}"
            )


class Order(Integer):
    """An n-gram order: an integer >= 1 that can be counted (at most ngram.MAX_ORDER), said so at once."""

    def check(self, name: str, value: object) -> None:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool) and ngram.order_too_large(int(value)):
            raise MakemoreError(ngram.order_too_large(int(value)))
        super().check(name, value)


@dataclass(frozen=True)
class Real(Kind):
    """A finite number in [low, high], or (low, high) where open; a number as the flag's text gives it."""

    low: float = 0.0
    high: float = math.inf
    open_low: bool = False
    open_high: bool = False

    @property
    def what(self) -> str:  # type: ignore[override]
        if self.high == math.inf:
            return f"a finite number {'>' if self.open_low else '>='} {self.low:g}"
        left, right = "(" if self.open_low else "[", ")" if self.open_high else "]"
        return f"a number in {left}{self.low:g}, {self.high:g}{right}"

    def parse(self, text: str) -> Any:
        try:
            return float(text)
        except ValueError:
            return text

    def ok(self, x: float) -> bool:
        above = x > self.low if self.open_low else x >= self.low
        below = x < self.high if self.open_high else x <= self.high
        return math.isfinite(x) and above and below

    def check(self, name: str, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not self.ok(float(value)):
            raise self.refuse(name, value)


@dataclass(frozen=True)
class Choice(Kind):
    options: tuple[str, ...] = ()

    @property
    def what(self) -> str:  # type: ignore[override]
        return f"one of {', '.join(self.options)}"

    def check(self, name: str, value: object) -> None:
        if not isinstance(value, str) or value not in self.options:
            raise self.refuse(name, value)


class Switch(Kind):
    what = "true or false"

    def check(self, name: str, value: object) -> None:
        if not isinstance(value, bool):
            raise self.refuse(name, value)


class Split(Kind):
    what = "three numbers >= 0 (train, dev, test; train > 0), like 80,10,10"

    def parse(self, text: str) -> Any:
        try:
            return tuple(float(p) for p in text.split(","))
        except ValueError:
            return text

    def check(self, name: str, value: object) -> None:
        parts = list(value) if isinstance(value, (tuple, list)) else None
        if (
            parts is None
            or len(parts) != 3
            or any(isinstance(p, bool) or not isinstance(p, numbers.Real) or not math.isfinite(p) for p in parts)
            or any(p < 0 for p in parts)
            or parts[0] <= 0
        ):
            raise self.refuse(name, value)


class Memory(Kind):
    what = 'a size like "512M", "2G" or "80%" (at least 1M), or "" for a quarter of physical memory'

    def check(self, name: str, value: object) -> None:
        if not isinstance(value, str):
            raise self.refuse(name, value)
        ngram.memory_bytes(value)


@dataclass(frozen=True)
class Spec:
    """How a setting is declared: its kind, one line of help, the types that take it, its command-line forms."""

    kind: Kind
    help: str
    scope: str = ALL
    aliases: tuple[str, ...] = ()  # more flags for it, e.g. --learning-rate
    shortcuts: tuple[tuple[str, object], ...] = ()  # flags that set one value, e.g. (--kn, "kn")
    metavar: str | None = None
    group: str = "model"
    saved: bool = True  # False: a resource of the machine (never saved, never compared with a saved run's)


def setting(default: Any, kind: Kind, help: str, **spec: Any) -> Any:
    """A TrainConfig field declared as a setting."""
    declared = Spec(kind, help, **spec)
    return field(default=default, compare=declared.saved, metadata={"setting": declared})


OPT, EVAL, SIZES, NGRAM = "optimizer", "evaluation", "sizes", "ngram"


@dataclass(frozen=True)
class TrainConfig:
    type: str = "bigram"
    seed: int = setting(0, Integer(0, MAX_SEED), "fixes split, init, batch order and samples")
    split: tuple[float, float, float] = setting(
        (0.8, 0.1, 0.1), Split(), "proportions of the words (train, dev, test)", metavar="TRAIN,DEV,TEST"
    )
    smoothing: float = setting(1.0, Real(), "add-k smoothing's k", scope=MODEL, metavar="K", group=NGRAM)
    optimizer: str = setting("sgd", Choice(OPTIMIZERS), "the optimizer", scope=TRAINED, group=OPT)
    lr: float = setting(50.0, Real(), "learning rate", scope=TRAINED, aliases=("--learning-rate",), group=OPT)
    weight_decay: float = setting(0.0, Real(), "AdamW's decoupled weight decay", scope=TRAINED, group=OPT)
    l2: float = setting(0.01, Real(), "penalty λ·mean(param²) added to the loss", scope=TRAINED, group=OPT)
    steps: int = setting(500, Integer(), "optimizer steps", scope=TRAINED, aliases=("--max-steps",), group=OPT)
    batch_size: int = setting(
        0,
        Integer(),
        "words per step, drawn with replacement; 0 = the whole training split",
        scope=TRAINED,
        aliases=("-b",),
        group=OPT,
    )
    warmup_steps: int = setting(0, Integer(), "linear learning-rate warmup", scope=TRAINED, group=OPT)
    lr_schedule: str = setting(
        "constant", Choice(SCHEDULES), "constant, or cosine decay to min_lr", scope=TRAINED, group=OPT
    )
    min_lr: float = setting(0.0, Real(), "where cosine decay ends", scope=TRAINED, group=OPT)
    grad_clip: float = setting(0.0, Real(), "clip gradients to this global norm; 0 = off", scope=TRAINED, group=OPT)
    dropout: float = setting(0.0, Real(0, 1, open_high=True), "training-time dropout rate", scope=MODEL, group=OPT)
    eval_every: int = setting(50, Integer(1), "steps between evaluations and checkpoints", scope=TRAINED, group=EVAL)
    eval_words: int = setting(
        40000,  # above names.txt's 32,033
        Integer(),
        "words of each split scored at each evaluation, a fixed seeded sample; 0 = whole splits "
        "(the figures at the end are of the whole splits)",
        scope=TRAINED,
        metavar="N",
        group=EVAL,
    )
    log_every: int = setting(
        50,
        Integer(1),
        "steps between progress lines (given on the command line: plain lines even on a terminal)",
        scope=TRAINED,
        group=EVAL,
    )
    n_layer: int = setting(4, Integer(1), "layers", scope=MODEL, group=SIZES)
    n_head: int = setting(4, Integer(1), "attention heads", scope=MODEL, group=SIZES)
    n_embd: int = setting(64, Integer(1), "embedding size", scope=MODEL, group=SIZES)
    n_embd2: int = setting(64, Integer(1), "hidden size", scope=MODEL, group=SIZES)
    block_size: int = setting(
        0,
        Integer(),
        "longest sequence; 0 = longest word + 1 (more only lengthens samples and costs memory)",
        group=SIZES,
    )
    order: int = setting(
        2,
        Order(1),
        f"characters per n-gram (the context is order − 1; at most {ngram.MAX_ORDER})",
        scope=MODEL,
        group=NGRAM,
        metavar="N",
    )
    smoothing_method: str = setting(
        "add-k",
        Choice(SMOOTHING_METHODS),
        "add-k (k = smoothing), kn (interpolated Kneser-Ney) or modified-kn (three discounts per order)",
        scope=MODEL,
        shortcuts=(("--kn", "kn"), ("--modified-kn", "modified-kn")),
        group=NGRAM,
    )
    discount: float = setting(
        0.0,
        Real(0, 1, open_high=True),
        "kn: one discount in (0, 1) at every order; 0 = n1/(n1+2n2) of each order",
        scope=MODEL,
        metavar="D",
        group=NGRAM,
    )
    discount_scale: float = setting(
        1.0,
        Real(0, open_low=True),
        "kn, modified-kn: factor on the count-of-counts discounts",
        scope=MODEL,
        metavar="S",
        group=NGRAM,
    )
    memory: str = setting(
        "",
        Memory(),
        'what counting may hold in memory before it spills sorted runs to TMPDIR: 512M, 2G, 80% or bytes; "" = 25%',
        scope=MODEL,
        metavar="SIZE",
        group=NGRAM,
        saved=False,
    )
    init_scale: float = setting(
        1.0,
        Real(),
        "W starts as this times N(0, 1) noise; 1 = the lecture's, 0 = zeros (the PyTorch makemore's)",
        scope=MODEL,
        metavar="S",
    )
    pack: bool = setting(
        True,
        Switch(),
        "pack each batch's words end to end instead of padding each to the block size (the same loss, less work)",
        scope=MODEL,
        group=OPT,
    )

    def __post_init__(self) -> None:
        self.validate()  # a config exists only valid: checked once, where it is made

    @classmethod
    def create(cls, type: str = "bigram", **given: Any) -> TrainConfig:
        """The type's defaults, overridden by the given fields (None means not given), checked.

        Lenient about scope (code may set any field); ``settings_for`` is the door users go through.
        """
        model_def = get_model(type)
        fields = {**dict(model_def.defaults), **{k: v for k, v in given.items() if v is not None}}
        unknown = set(fields) - set(SETTINGS)
        if unknown:
            raise MakemoreError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        split = fields.get("split")
        if isinstance(split, (list, tuple)) and all(isinstance(p, int) and not isinstance(p, bool) for p in split):
            fields["split"] = tuple(float(p) for p in split)  # 80,10,10 as the flag's parser reads it
        return cls(type=type, **fields)

    def validate(self) -> TrainConfig:
        """Every field in its range, and the rules between fields (run when a config is made)."""
        get_model(self.type)
        for name, spec in SETTINGS.items():
            spec.kind.check(name, getattr(self, name))
        validate_split(self.split)
        return self

    def model_config(self, vocab_size: int, block_size: int) -> ModelConfig:
        return ModelConfig(vocab_size, block_size, self.n_layer, self.n_head, self.n_embd, self.n_embd2)

    def to_json(self) -> dict:
        """The fields that make the model, for a checkpoint (not the machine's resources)."""
        saved = {k: v for k, v in dataclasses.asdict(self).items() if k not in NOT_SAVED}
        return {**saved, "split": list(self.split)}

    @classmethod
    def from_json(cls, obj: object) -> TrainConfig:
        """Exactly the fields of TrainConfig, validated; MakemoreError otherwise."""
        if not isinstance(obj, dict):
            raise MakemoreError("config must be an object")
        obj = {**{k: v for k, v in OLD_MEANING.items() if k not in obj}, **obj}
        names = {f.name for f in dataclasses.fields(cls)}
        missing, extra = names - set(obj) - ADDED_LATER - NOT_SAVED, set(obj) - names
        if missing or extra:
            parts = ([f"missing {', '.join(sorted(missing))}"] if missing else []) + (
                [f"unexpected {', '.join(sorted(extra))}"] if extra else []
            )
            raise MakemoreError(f"config fields: {'; '.join(parts)}")
        split = obj["split"]
        if not (isinstance(split, list) and len(split) == 3):
            raise MakemoreError("config split must be a list of three numbers")
        if obj.get("type") not in MODEL_TYPES:
            raise MakemoreError(f"unknown model type {obj.get('type')!r}")
        return cls(**{**obj, "split": tuple(split)})


SETTINGS: dict[str, Spec] = {
    f.name: f.metadata["setting"] for f in dataclasses.fields(TrainConfig) if "setting" in f.metadata
}
# Fields newer than the first checkpoints: a config without them gets their defaults.
ADDED_LATER = frozenset({"order", "smoothing_method", "discount", "discount_scale", "init_scale"})
# Fields newer still, whose absence means what the code that wrote the config did:
# runs saved before packing trained on padded batches, and before eval_words
# scored whole splits at every evaluation; they resume that way.
OLD_MEANING = {"pack": False, "eval_words": 0}
NOT_SAVED = frozenset(name for name, spec in SETTINGS.items() if not spec.saved)


def takes(model_def: ModelDef, name: str) -> bool:
    """Whether a model type takes the setting (its scope)."""
    scope = SETTINGS[name].scope
    return scope == ALL or (scope == TRAINED and model_def.trained) or name in model_def.settings


def default_of(model_def: ModelDef, name: str) -> object:
    """The setting's default for a model type: the type's own, else the field's."""
    own = dict(model_def.defaults)
    return own[name] if name in own else _FIELD_DEFAULTS[name]


_FIELD_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


def settings_for(model_type: object, given: Mapping[str, object], source: str = "") -> TrainConfig:
    """The config of a new run from the settings a user gave (flags, keywords or a file: the same checks).

    Refused in one line: an unknown model type or setting, a value of the wrong
    kind or out of range, a setting the model type does not take. source
    (e.g. "run.toml: ") prefixes the message of a file's mistakes.
    """
    try:
        if not isinstance(model_type, str) or model_type not in TRAINING_TYPES:
            raise MakemoreError(f"type must be one of {', '.join(TRAINING_TYPES)}, got {model_type!r}")
        model_def = get_model(model_type)
        unknown = sorted(set(given) - set(SETTINGS))
        if unknown:
            raise MakemoreError(f"unknown setting {unknown[0]!r} (settings: {', '.join(SETTINGS)})")
        for name in given:
            if not takes(model_def, name):
                raise MakemoreError(f"{name}: the {model_type} model does not take this setting ({takers(name)})")
        return TrainConfig.create(model_type, **model_def.resolve(dict(given)))  # checked once, as it is made
    except MakemoreError as err:
        raise MakemoreError(f"{source}{err}") from None


def takers(name: str) -> str:
    """'only for ngram', 'for the trained models', ... : who takes a setting, for messages and help."""
    scope = SETTINGS[name].scope
    if scope == TRAINED:
        return "only for the trained models, not counts or ngram"
    owners = [t for t in TRAINING_TYPES if name in get_model(t).settings]
    return f"only for {', '.join(owners)}"


def default_text(name: str) -> str:
    """Each type's default of a setting, e.g. 'bigram 50; others 0.0005' or '64', for the help."""
    by_value: dict[str, list[str]] = {}
    for t in TRAINING_TYPES:
        model_def = get_model(t)
        if takes(model_def, name):
            by_value.setdefault(show(default_of(model_def, name)), []).append(t)
    if len(by_value) == 1:
        return next(iter(by_value))
    most = max(by_value, key=lambda v: len(by_value[v]))
    parts = [f"{', '.join(ts)} {v}" for v, ts in by_value.items() if v != most]
    return "; ".join(parts + [f"others {most}"])


def show(value: object) -> str:
    """A default as a user writes it: 5e-4 as 0.0005, (0.8, 0.1, 0.1) as 80,10,10, "" as ''."""
    if isinstance(value, tuple):
        return ",".join(f"{100 * v:g}" for v in value)
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int):
        return f"{value:,}"
    return repr(value) if value == "" else str(value)


def read_config_file(path: str) -> tuple[object, dict[str, object]]:
    """(type or None, settings) of a TOML file whose keys are the setting names (and type).

    A file that is not TOML, a table where a value belongs, or an unknown key is refused in one line naming it.
    """
    import tomllib

    from ..data.words import read_bytes

    raw = read_bytes(path)
    try:
        table = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise MakemoreError(f"{path}: not a TOML file ({err})") from None
    model_type = table.pop("type", None)
    for key, value in table.items():
        if key not in SETTINGS:
            raise MakemoreError(f"{path}: unknown setting {key!r} (settings: type, {', '.join(SETTINGS)})")
        if isinstance(value, list):
            table[key] = tuple(value)
    return model_type, table
