"""ViViTConfig: the one frozen dataclass that describes a ViViT model.

Field names and defaults are those of HF `transformers.VivitConfig` for the checkpoint
`google/vivit-b-16x2-kinetics400` (ViViT-B, 16x2 tubelets, Kinetics-400 head). `from_hf_dict` and
`to_hf_dict` read and write HF's `config.json`.

The last five fields select the paper's other models (Arnab et al. 2021, Section 3.3), which HF does not
implement; they are named after Scenic's config (scenic/projects/vivit) and default to HF's Model 1, so
they are written to config.json only when they differ from these defaults (see minivivit/factorized/).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

ATTENTION_TYPES = {  # Scenic's attention_config.type -> the paper's model (Section 3.3)
    "spacetime": "Model 1: spatio-temporal attention",
    "factorized_encoder": "Model 2: factorised encoder",
    "factorized_self_attention_block": "Model 3: factorised self-attention",
    "factorized_dot_product_attention": "Model 4: factorised dot-product attention",
}
VARIANT_DEFAULTS = {"attention_type": "spacetime", "classifier": "token", "temporal_num_layers": 4,
                    "attention_order": "time_space", "representation_size": None}


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
    # ---- the paper's Models 2-4 and Scenic's options (not in HF; defaults = HF's Model 1) -----------
    attention_type: str = "spacetime"  # Scenic attention_config.type: one of ATTENTION_TYPES (Models 1-4)
    classifier: str = "token"  # Scenic model.classifier: 'token' classifies the CLS token, 'gap' the token mean
    temporal_num_layers: int = 4  # Model 2: temporal encoder layers (num_hidden_layers = the spatial encoder's)
    attention_order: str = "time_space"  # Model 3: 'time_space' or 'space_time', which attention comes first
    representation_size: int | None = None  # Scenic pre_logits: dense + tanh of this width before the head

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)
        set_("tubelet_size", tuple(int(s) for s in self.tubelet_size))
        if isinstance(self.image_size, (list, tuple)):
            set_("image_size", tuple(int(s) for s in self.image_size))
        if self.pooler_output_size is None:
            set_("pooler_output_size", self.hidden_size)
        id2label = self.id2label
        if id2label is None:
            id2label = {i: f"LABEL_{i}" for i in range(self.num_labels)}
        id2label = {int(k): str(v) for k, v in id2label.items()}
        set_("id2label", id2label)
        if self.label2id is None:
            set_("label2id", {v: k for k, v in id2label.items()})
        self.validate()

    def validate(self):
        """Raise ValueError with a clear message if the numbers cannot describe a ViViT."""
        if len(self.tubelet_size) != 3 or min(self.tubelet_size) < 1:
            raise ValueError(f"tubelet_size must be 3 positive ints (frames, rows, cols); got {self.tubelet_size}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size={self.hidden_size} must be divisible by num_attention_heads="
                f"{self.num_attention_heads} (head_dim = hidden_size / heads)"
            )
        h, w = self.image_hw
        tt, ph, pw = self.tubelet_size
        if self.num_frames < tt or h < ph or w < pw:
            raise ValueError(
                f"a clip of {self.num_frames}x{h}x{w} is smaller than one tubelet {self.tubelet_size}"
            )
        self._validate_variant()

    def _validate_variant(self):
        """The fields of Models 2-4: each combination Scenic does not build gets a message saying what to do."""
        kind = self.attention_type
        if kind not in ATTENTION_TYPES:
            raise ValueError(f"attention_type must be one of {sorted(ATTENTION_TYPES)} (Models 1-4 of the paper); "
                             f"got {kind!r}")
        if self.classifier not in ("token", "gap"):
            raise ValueError(f"classifier must be 'token' (classify the CLS token) or 'gap' (global average pooling "
                             f"of the output tokens); got {self.classifier!r}")
        if kind in ("factorized_self_attention_block", "factorized_dot_product_attention") and self.classifier != "gap":
            raise ValueError(f"attention_type={kind!r} has no CLS token (the paper and Scenic use global average "
                             f"pooling, to avoid reshaping a CLS token between space and time); pass classifier='gap'")
        if kind == "factorized_dot_product_attention" and self.num_attention_heads % 2:
            raise ValueError(f"attention_type='factorized_dot_product_attention' gives half of the heads to time and "
                             f"half to space, so num_attention_heads must be even; got {self.num_attention_heads}")
        if self.attention_order not in ("time_space", "space_time"):
            raise ValueError(f"attention_order must be 'time_space' or 'space_time'; got {self.attention_order!r}")
        if kind != "factorized_self_attention_block" and self.attention_order != VARIANT_DEFAULTS["attention_order"]:
            raise ValueError(f"attention_order only applies to attention_type='factorized_self_attention_block' "
                             f"(Model 3); this config has attention_type={kind!r}")
        if not isinstance(self.temporal_num_layers, int) or self.temporal_num_layers < 1:
            raise ValueError(f"temporal_num_layers must be a positive int; got {self.temporal_num_layers!r}")
        if kind != "factorized_encoder" and self.temporal_num_layers != VARIANT_DEFAULTS["temporal_num_layers"]:
            raise ValueError(f"temporal_num_layers only applies to attention_type='factorized_encoder' (Model 2); "
                             f"this config has attention_type={kind!r}")
        r = self.representation_size
        if r is not None and (not isinstance(r, int) or isinstance(r, bool) or r < 1):
            raise ValueError(f"representation_size must be None (no pre-logits layer) or a positive int; got {r!r}")

    # ---- derived sizes -------------------------------------------------------------------
    @property
    def image_hw(self) -> tuple[int, int]:
        """(height, width) of a frame."""
        s = self.image_size
        return (s, s) if isinstance(s, int) else (s[0], s[1])

    @property
    def grid(self) -> tuple[int, int, int]:
        """(t, h, w): tubelets along time, rows and columns. ViViT-B: (16, 14, 14)."""
        tt, ph, pw = self.tubelet_size
        h, w = self.image_hw
        return (self.num_frames // tt, h // ph, w // pw)

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
        d = dict(d)
        if d.get("model_type", "vivit") != "vivit":
            raise ValueError(f"config.json has model_type={d['model_type']!r}; expected 'vivit'")
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in names}
        if "num_labels" not in kwargs:  # as HF's PretrainedConfig: len(id2label), else 2
            kwargs["num_labels"] = len(kwargs["id2label"]) if kwargs.get("id2label") else 2
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
        with open(path, encoding="utf-8") as f:
            return cls.from_hf_dict(json.load(f))

    def to_json_string(self) -> str:
        return json.dumps(self.to_hf_dict(), indent=2, sort_keys=True)

    def replace(self, **changes) -> ViViTConfig:
        """A copy with some fields changed (the dataclass is frozen)."""
        if "num_labels" in changes and "id2label" not in changes:
            changes.update(id2label=None, label2id=None)
        return replace(self, **changes)
