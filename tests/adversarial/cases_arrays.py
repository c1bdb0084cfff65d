"""Bad arrays and arguments to the forward pass and the explain API: dtypes, NaN, overflow, layer indices."""

from __future__ import annotations

import numpy as np
from files import tiny_model
from harness import Case, equals


def _x(batch=1, frames=4, size=32, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, frames, 3, size, size)).astype(dtype)


def forward_cases() -> list[Case]:
    def fwd(make_x=_x, **kwargs):
        def run(ctx):
            return tiny_model()(make_x(), **kwargs)

        return run

    bad = {
        "attention_dtype=bogus": (fwd(output_attentions="cls", attention_dtype="bogus"), "attention_dtype"),
        "attention_dtype=int8": (fwd(output_attentions="cls", attention_dtype=np.int8), "attention_dtype"),
        "attention_dtype=bool": (fwd(output_attentions="full", attention_dtype=bool), "attention_dtype"),
        "attention_dtype-without-attentions": (fwd(attention_dtype="bogus"), "attention_dtype"),
        "output_attentions=CLS": (fwd(output_attentions="CLS"), "output_attentions"),
        "output_attentions=1": (fwd(output_attentions=1), "output_attentions"),
        "pixels-1e38-overflow": (fwd(lambda: np.clip(_x(), -3, 3) * 1e38), r"overflow|inf|NaN"),
        "pixels-3e38-float32-max": (fwd(lambda: np.full((1, 4, 3, 32, 32), 3e38, np.float32)), r"overflow|inf|NaN"),
        "pixels-nan": (fwd(lambda: np.where(_x() > 2, np.nan, _x()).astype(np.float32)), "NaN"),
        "pixels-1e300-float64": (fwd(lambda: _x(dtype=np.float64) * 1e300), r"overflow|inf|float32"),
        "head_mask-nan": (fwd(head_mask=[np.nan, 1, 1]), "head_mask"),
        "head_mask-inf": (fwd(head_mask=[[1, 1, 1], [np.inf, 1, 1]]), "head_mask"),
        "head_mask-string": (fwd(head_mask="abc"), "head_mask"),
        "head_mask-wrong-shape": (fwd(head_mask=[1, 1]), "head_mask"),
        "head_mask-ragged": (fwd(head_mask=[[1, 1, 1], [1]]), "head_mask"),
        "attention_layers-0.5": (fwd(output_attentions="cls", attention_layers=[0.5]), "attention_layers"),
        "attention_layers-int": (fwd(output_attentions="cls", attention_layers=1), "attention_layers"),
        "attention_layers-str": (fwd(output_attentions="cls", attention_layers="0"), "attention_layers"),
        "attention_layers-99": (fwd(output_attentions="cls", attention_layers=[99]), "attention_layers|layer 99"),
        "pixels-int32": (fwd(lambda: _x().astype(np.int32)), "float"),
        "pixels-complex": (fwd(lambda: _x().astype(np.complex64)), "float"),
        "pixels-object": (fwd(lambda: _x().astype(object)), "float|dtype"),
        "pixels-ragged-list": (fwd(lambda: [[[[[0.0]]]], [[[[0.0, 1.0]]]]]), "pixel_values"),
        "pixels-strings": (fwd(lambda: np.full((1, 4, 3, 32, 32), "a")), "float|dtype"),
        "pixels-empty-batch": (fwd(lambda: np.zeros((0, 4, 3, 32, 32), np.float32)), "batch"),
        "pixels-4d": (fwd(lambda: _x()[0]), r"\[None\]|batch"),
        "pixels-channels-last": (fwd(lambda: _x().transpose(0, 1, 3, 4, 2).copy()), "transpose"),
        "pixels-wrong-frames": (fwd(lambda: _x(frames=8)), "interpolate_pos_encoding"),
        "pixels-smaller-than-a-tubelet": (fwd(lambda: _x(size=8), interpolate_pos_encoding=True), "tubelet"),
        "backend=torch": (fwd(backend="torch"), "backend"),
        "backend=None": (fwd(backend=None), "backend"),
        "pixels-torch-tensor-like": (fwd(lambda: type("T", (), {"detach": lambda s: s, "shape": (1,)})()), "torch|numpy"),
    }
    out = [Case(f"arrays/forward/{k}", run, match=m) for k, (run, m) in bad.items()]

    def f16_overflow(ctx):
        model = tiny_model().to(np.float16)
        return model(_x() * 6e4)

    out.append(Case("arrays/forward/float16-model-overflows", f16_overflow, match=r"overflow|inf|NaN"))

    def f16_input_ok(ctx):
        return tiny_model()(_x().astype(np.float16)).logits.dtype.name

    out.append(Case("arrays/forward/float16-pixels-are-cast", f16_input_ok, expect="ok", check=equals("float32")))

    def attention_f16_ok(ctx):
        out = tiny_model()(_x(), output_attentions="cls", attention_dtype=np.float16)
        return out.attentions[0].dtype.name

    out.append(Case("arrays/forward/attention_dtype-float16", attention_f16_ok, expect="ok", check=equals("float16")))

    def nan_params(ctx):  # weights changed in memory after loading: the output check still catches it
        model = tiny_model()
        model.params["blocks"][0]["mlp"]["fc2"]["w"][0, 0] = np.nan
        return model(_x())

    out.append(Case("arrays/forward/nan-weights-set-in-memory", nan_params, match=r"NaN|inf"))

    def params_of_another_config(ctx):  # a careless swap: weights of one config with another config
        import minivivit

        a, b = tiny_model(), tiny_model(hidden_size=48, num_attention_heads=4)
        return minivivit.Model(a.params, b.config)(_x())

    out.append(Case("arrays/forward/params-of-another-config", params_of_another_config, match=r"params.*shape"))

    def to_int(ctx):
        return tiny_model().to(np.int8)(_x())

    def to_bogus(ctx):
        return tiny_model().to("bogus")

    out += [Case("arrays/model/to-int8", to_int, match="floating point|float"),
            Case("arrays/model/to-bogus", to_bogus, match="dtype")]

    def compare_nan_tolerance(ctx):
        from minivivit import debug

        a = {"x": np.zeros(3, np.float32)}
        return debug.compare(a, a, atol=np.nan).ok

    out.append(Case("arrays/debug/compare-atol-nan", compare_nan_tolerance, match="atol"))
    return out


def explain_cases() -> list[Case]:
    def rollout(**kwargs):
        def run(ctx):
            from minivivit import explain

            return explain.cls_rollout(tiny_model(), _x(), **kwargs)

        return run

    bad = {
        "start_layer=99": (dict(start_layer=99), "start_layer"),
        "start_layer=-99": (dict(start_layer=-99), "start_layer"),
        "end_layer=99": (dict(end_layer=99), "end_layer"),
        "end_layer-before-start": (dict(start_layer=1, end_layer=0), "start_layer|end_layer"),
        "alpha=nan": (dict(alpha=np.nan), "alpha"),
        "alpha=2": (dict(alpha=2.0), "alpha"),
        "discard_ratio=1.5": (dict(discard_ratio=1.5), "discard"),
        "discard_ratio=nan": (dict(discard_ratio=np.nan), "discard"),
        "head_fusion=median": (dict(head_fusion="median"), "head_fusion|mean"),
        "head_fusion=99": (dict(head_fusion=99), "head"),
    }
    out = [Case(f"arrays/rollout/{k}", rollout(**kw), match=m) for k, (kw, m) in bad.items()]

    def capture(**kwargs):
        def run(ctx):
            from minivivit import explain

            return explain.capture(tiny_model(), _x(), **kwargs)

        return run

    out += [Case("arrays/capture/layers=[99]", capture(layers=[99]), match="layer"),
            Case("arrays/capture/output_attentions=none", capture(output_attentions=None), match="output_attentions"),
            Case("arrays/capture/dtype=int8", capture(dtype=np.int8), match="dtype"),
            Case("arrays/capture/dtype=bogus", capture(dtype="bogus"), match="dtype"),
            Case("arrays/capture/4d-input", lambda ctx: __import__("minivivit").explain.capture(tiny_model(), _x()[0]),
                 match=r"\[B, T, C, H, W\]|batch")]

    def token_map(fn, match, name):
        def run(ctx):
            from minivivit.tokens import TokenMap

            return fn(TokenMap((2, 2, 2), (2, 16, 16)))

        return Case(f"arrays/tokens/{name}", run, match=match)

    out += [token_map(lambda t: t.coords(0), "CLS", "coords-of-cls"),
            token_map(lambda t: t.coords(99), "tokens", "coords-past-end"),
            token_map(lambda t: t.to_grid(np.zeros(5)), "token values", "to_grid-wrong-length"),
            token_map(lambda t: t.cell_at(99, 0, 0), "outside", "cell_at-outside")]
    return out


def classify_cases() -> list[Case]:
    def cls(**kwargs):
        def run(ctx):
            from files import frames

            import minivivit

            return minivivit.classify(minivivit.load(), frames(16, 64, 64), **kwargs)

        return run

    return [Case("arrays/classify/views=0x1", cls(views="0x1"), match="views"),
            Case("arrays/classify/views-tuple-of-str", cls(views=("a", "b")), match="views"),
            Case("arrays/classify/stride=0", cls(views="2x1", stride=0), match="stride"),
            Case("arrays/classify/seed=-1", cls(sampling="hf", seed=-1), match="seed"),
            Case("arrays/classify/top_k=0", cls(top_k=0), match="top_k"),
            Case("arrays/classify/top_k-above-labels-gives-all", lambda c: len(cls(top_k=99)(c).labels), expect="ok",
                 check=equals(4), note="top_k larger than the number of labels gives every label")]


def cases() -> list[Case]:
    return forward_cases() + explain_cases() + classify_cases()
