"""ViViTConfig: the one frozen dataclass that describes a ViViT model.

Field names and defaults are those of HF `transformers.VivitConfig` for the checkpoint
`google/vivit-b-16x2-kinetics400` (ViViT-B, 16x2 tubelets, Kinetics-400 head). `from_hf_dict` and
`to_hf_dict` read and write HF's `config.json`.

The last five fields select the paper's other models (Arnab et al. 2021, Section 3.3), which HF does not
implement; they are named after Scenic's config (scenic/projects/vivit) and default to HF's Model 1, so
they are written to config.json only when they differ from these defaults (see minivivit/factorized/).
Every field is validated by one rule in FIELD_RULES (types and ranges), then RELATIONS (fields together).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from . import checks
from .checks import FieldError
from .fileio import read_json_file
from .layers import ACTIVATIONS
from .tokens import tubelet_grid

ATTENTION_TYPES = {  # Scenic's attention_config.type -> the paper's model (Section 3.3)
    "spacetime": "Model 1: spatio-temporal attention",
    "factorized_encoder": "Model 2: factorised encoder",
    "factorized_self_attention_block": "Model 3: factorised self-attention",
    "factorized_dot_product_attention": "Model 4: factorised dot-product attention",
}
VARIANT_DEFAULTS = {"attention_type": "spacetime", "classifier": "token", "temporal_num_layers": 4,
                    "attention_order": "time_space", "representation_size": None}
MAX_TOKENS = 65536  # sequence length (CLS included) above which one attention map is 16 GiB per head and batch
MAX_SIDE = 16384  # pixels per frame side, frames per clip


class ConfigError(ValueError):
    """A config field with a wrong type or value, or fields that do not fit together."""


@dataclass(frozen=True)
class ViViTConfig:
    image_size: int | tuple[int, int] = 224  # frame height = width in pixels (or (height, width))
    num_frames: int = 32  # frames per clip
    tubelet_size: tuple[int, int, int] = (2, 16, 16)  # (frames, rows, cols) of one tubelet
    num_channels: int = 3  # RGB
    hidden_size: int = 768  # D, the width of every token
    num_hidden_layers: int = 12  # L, encoder blocks
    num_attention_heads: int = 12  # heads per block; head_dim = D / heads
    intermediate_size: int = 3072  # MLP hidden width
    hidden_act: str = "gelu_fast"  # MLP activation (see layers.ACTIVATIONS)
    hidden_dropout_prob: float = 0.0  # training only; ignored at inference
    attention_probs_dropout_prob: float = 0.0  # training only; ignored at inference
    initializer_range: float = 0.02  # training only; kept so config.json round-trips
    layer_norm_eps: float = 1e-6  # epsilon of every LayerNorm
    qkv_bias: bool = True  # whether the Q/K/V projections have a bias
    pooler_output_size: int | None = None  # pooler width (VivitModel only); None means hidden_size
    pooler_act: str = "tanh"  # pooler activation (HF v5 field; v4 always used tanh)
    num_labels: int = 400  # classifier outputs (Kinetics-400)
    id2label: dict[int, str] | None = field(default=None, compare=False)  # None -> LABEL_i
    label2id: dict[str, int] | None = field(default=None, compare=False)  # None -> inverse of id2label
    attention_type: str = "spacetime"  # Scenic attention_config.type: one of ATTENTION_TYPES (Models 1-4)
    classifier: str = "token"  # Scenic model.classifier: 'token' classifies the CLS token, 'gap' the token mean
    temporal_num_layers: int = 4  # Model 2: temporal encoder layers (num_hidden_layers = the spatial encoder's)
    attention_order: str = "time_space"  # Model 3: 'time_space' or 'space_time', which attention comes first
    representation_size: int | None = None  # Scenic pre_logits: dense + tanh of this width before the head

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)
        try:
            for f in fields(self):  # every field through its rule (FIELD_RULES below): types and ranges
                set_(f.name, FIELD_RULES[f.name](f.name, getattr(self, f.name)))
        except FieldError as e:
            raise ConfigError(f"invalid ViViT config: {e}") from None
        if self.pooler_output_size is None:
            set_("pooler_output_size", self.hidden_size)
        if self.id2label is None:
            set_("id2label", {i: f"LABEL_{i}" for i in range(self.num_labels)})
        if self.label2id is None:
            set_("label2id", {v: k for k, v in self.id2label.items()})
        self.validate()

    def validate(self):
        """Raise ConfigError (a ValueError) if the fields, each valid, cannot describe a ViViT together."""
        for relation in RELATIONS:
            problem = relation(self)
            if problem:
                raise ConfigError(f"invalid ViViT config: {problem}")

    # ---- derived sizes -------------------------------------------------------------------
    @property
    def image_hw(self) -> tuple[int, int]:
        """(height, width) of a frame."""
        s = self.image_size
        return (s, s) if isinstance(s, int) else (s[0], s[1])

    @property
    def grid(self) -> tuple[int, int, int]:
        """(t, h, w): tubelets along time, rows and columns. ViViT-B: (16, 14, 14)."""
        return tubelet_grid((self.num_frames, *self.image_hw), self.tubelet_size)

    @property
    def num_patches(self) -> int:
        """Number of tubelet tokens, t*h*w (3136 for ViViT-B); the sequence has one more (CLS)."""
        t, h, w = self.grid
        return t * h * w

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def is_hf_model(self) -> bool:
        """True for what HF's VivitModel computes: Model 1 with a CLS token and no pre-logits layer."""
        return all(getattr(self, k) == v for k, v in VARIANT_DEFAULTS.items())

    @property
    def model_number(self) -> int:
        """The paper's model number (1-4) of attention_type."""
        return list(ATTENTION_TYPES).index(self.attention_type) + 1

    # ---- HF config.json ------------------------------------------------------------------
    @classmethod
    def from_hf_dict(cls, d: dict) -> ViViTConfig:
        """Build from an HF `config.json` dict; unknown HF keys (architectures, dtype, ...) are ignored."""
        if not isinstance(d, dict):
            raise ConfigError(f"a ViViT config must be a JSON object {{field: value}}; got a {type(d).__name__}")
        d = dict(d)
        if d.get("model_type", "vivit") != "vivit":
            raise ConfigError(f"model_type={d['model_type']!r}; expected 'vivit' (this is not a ViViT config)")
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in names}
        if "num_labels" not in kwargs:  # as HF's PretrainedConfig: len(id2label), else 2
            labels = kwargs.get("id2label")
            kwargs["num_labels"] = len(labels) if isinstance(labels, dict) and labels else 2
        return cls(**kwargs)

    def to_hf_dict(self) -> dict:
        """The dict HF `VivitConfig(**d)` accepts and `config.json` stores (id2label keys as str).

        The variant fields (attention_type, classifier, ...) appear only when they differ from HF's Model 1,
        so a Model-1 dict is exactly what it always was."""
        d = asdict(self)
        d["tubelet_size"] = list(self.tubelet_size)
        if isinstance(self.image_size, tuple):
            d["image_size"] = list(self.image_size)
        d["id2label"] = {str(k): v for k, v in self.id2label.items()}
        d["model_type"] = "vivit"
        for k, default in VARIANT_DEFAULTS.items():  # Models 2-4 fields: only when not HF's Model 1 defaults
            if d[k] == default:
                del d[k]
        return d

    @classmethod
    def from_json_file(cls, path: str | Path) -> ViViTConfig:
        """Read an HF config.json; every error names the file (and the line / column of broken JSON)."""
        d = read_json_file(path, "a ViViT config.json")
        try:
            return cls.from_hf_dict(d)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None

    def to_json_string(self) -> str:
        return json.dumps(self.to_hf_dict(), indent=2, sort_keys=True)

    def replace(self, **changes) -> ViViTConfig:
        """A copy with some fields changed (the dataclass is frozen)."""
        if "num_labels" in changes and "id2label" not in changes:
            changes.update(id2label=None, label2id=None)
        return replace(self, **changes)


# ---------------------------------------------------------------------------------------------
# Validation: one rule per field (types and ranges), then the relations between fields.
# A new field is one entry in FIELD_RULES (tests/core/test_config_validation.py checks that every field has one).
# ---------------------------------------------------------------------------------------------

FIELD_RULES = {
    "image_size": checks.int_or_pair(1, MAX_SIDE),
    "num_frames": checks.integer(1, MAX_SIDE),
    "tubelet_size": checks.int_tuple(3, 1, MAX_SIDE, "[frames, rows, cols]"),
    "num_channels": checks.integer(1, 1024),
    "hidden_size": checks.integer(1, 65536),
    "num_hidden_layers": checks.integer(1, 1024),
    "num_attention_heads": checks.integer(1, 1024),
    "intermediate_size": checks.integer(1, 262144),
    "hidden_act": checks.choice(ACTIVATIONS),
    "hidden_dropout_prob": checks.number(0, 1),
    "attention_probs_dropout_prob": checks.number(0, 1),
    "initializer_range": checks.number(0, math.inf, hi_open=True),
    "layer_norm_eps": checks.number(0, 1, lo_open=True),
    "qkv_bias": checks.boolean(),
    "pooler_output_size": checks.optional(checks.integer(1, 65536)),
    "pooler_act": checks.choice(ACTIVATIONS),
    "num_labels": checks.integer(1, 1_000_000),
    "id2label": checks.optional(checks.label_names()),
    "label2id": checks.optional(checks.label_ids()),
    "attention_type": checks.choice(ATTENTION_TYPES),
    "classifier": checks.choice(("token", "gap")),
    "temporal_num_layers": checks.integer(1, 1024),
    "attention_order": checks.choice(("time_space", "space_time")),
    "representation_size": checks.optional(checks.integer(1, 65536)),
}


def _heads_divide_width(c: ViViTConfig):
    if c.hidden_size % c.num_attention_heads:
        return (f"hidden_size={c.hidden_size} must be divisible by num_attention_heads={c.num_attention_heads} "
                f"(head_dim = hidden_size / num_attention_heads)")


def _tubelet_fits_clip(c: ViViTConfig):
    (h, w), (tt, ph, pw) = c.image_hw, c.tubelet_size
    if c.num_frames < tt or h < ph or w < pw:
        return (f"a clip of num_frames={c.num_frames} x image_size {h}x{w} is smaller than one tubelet "
                f"tubelet_size={list(c.tubelet_size)} (frames, rows, cols)")


def _tokens_fit(c: ViViTConfig):
    (h, w), (tt, ph, pw) = c.image_hw, c.tubelet_size
    grid = (c.num_frames // tt, h // ph, w // pw)  # tokens.tubelet_grid, without its remainder warning
    n = 1 + grid[0] * grid[1] * grid[2]
    if n > MAX_TOKENS:
        return (f"{n} tokens (1 + {grid[0]}*{grid[1]}*{grid[2]} tubelets of {list(c.tubelet_size)} from "
                f"{c.num_frames}x{h}x{w}) is above the limit of {MAX_TOKENS}: one attention map would need "
                f"{n * n * 4 / 2**30:.0f} GiB per head and clip. Use a larger tubelet_size or a smaller clip")


def _labels_fit(c: ViViTConfig):
    if set(c.id2label) != set(range(c.num_labels)):
        keys = sorted(c.id2label)
        shown = keys if len(keys) <= 6 else keys[:3] + ["..."] + keys[-2:]
        return (f"id2label has {len(keys)} label(s) with keys {shown} but num_labels={c.num_labels}; they must "
                f"agree (keys 0..num_labels-1)")
    outside = [k for k, v in c.label2id.items() if not 0 <= v < c.num_labels]
    if outside:
        return f"label2id maps {outside[0]!r} to {c.label2id[outside[0]]}, outside 0..num_labels-1 = 0..{c.num_labels - 1}"


def _variant_fits(c: ViViTConfig):
    """The fields of Models 2-4: each combination Scenic does not build, with what to do."""
    kind = c.attention_type
    if kind in ("factorized_self_attention_block", "factorized_dot_product_attention") and c.classifier != "gap":
        return (f"attention_type={kind!r} has no CLS token (the paper and Scenic use global average pooling, to "
                f"avoid reshaping a CLS token between space and time); pass classifier='gap'")
    if kind == "factorized_dot_product_attention" and c.num_attention_heads % 2:
        return (f"attention_type='factorized_dot_product_attention' gives half of the heads to time and half to "
                f"space, so num_attention_heads must be even; got {c.num_attention_heads}")
    if kind != "factorized_self_attention_block" and c.attention_order != VARIANT_DEFAULTS["attention_order"]:
        return (f"attention_order only applies to attention_type='factorized_self_attention_block' (Model 3); "
                f"this config has attention_type={kind!r}")
    if kind != "factorized_encoder" and c.temporal_num_layers != VARIANT_DEFAULTS["temporal_num_layers"]:
        return (f"temporal_num_layers only applies to attention_type='factorized_encoder' (Model 2); this config "
                f"has attention_type={kind!r}")


RELATIONS = [_heads_divide_width, _tubelet_fits_clip, _tokens_fit, _labels_fit, _variant_fits]
