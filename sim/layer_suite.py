"""Named CNN layers at the scale of the ``default`` build, for benchmarks and the demo.

Each entry is the keyword arguments of
:func:`convaccel.sim.benches.conv_core_bench.layer_from` (random data of the
given shape), so specs travel as JSON to the cocotb benchmark testcase.
:func:`fit_spec` scales a spec to a smaller build (and says so in its name);
:func:`spec_layer` builds the layer the benchmark will run, so the host can
check it against the build before any simulation starts.
"""

from __future__ import annotations

import numpy as np

from ..golden import as_padding4, as_pair
from .conv_driver import ConvLayer

__all__ = ["ALL_LAYERS", "BENCH_LAYERS", "SPEC_KEYS", "SWEEP_LAYERS", "fit_spec", "parse_layer_spec",
           "real_macs", "spec_layer"]

#: Seed of the random layer data in the layer benchmark (also used by spec_layer).
LAYER_DATA_SEED = 2024

#: ``key: layer_from keywords``; the README's main job runs ``lenet_conv1``.
BENCH_LAYERS = {
    "lenet_conv1": dict(name="LeNet-5 conv1 (1->6, 5x5, 32x32) + ReLU + 2x2 max-pool",
                        c=1, h=32, w=32, m=6, r=5, s=5, activation="relu", pool=["max", 2, 2]),
    "lenet_conv2": dict(name="LeNet-5 conv2 (6->16, 5x5, 14x14) + ReLU + 2x2 max-pool",
                        c=6, h=14, w=14, m=16, r=5, s=5, activation="relu", pool=["max", 2, 2]),
    "vgg_3x3": dict(name="VGG-style 3x3 same (64->64, 16x16) + ReLU",
                    c=64, h=16, w=16, m=64, r=3, s=3, padding=[1, 1, 1, 1], activation="relu"),
    "alexnet_7x7s4": dict(name="AlexNet-style 7x7/4 (3->64, 63x63) + ReLU + 3x3/2 max-pool",
                          c=3, h=63, w=63, m=64, r=7, s=7, stride=[4, 4], activation="relu",
                          pool=["max", 3, 2]),
    "mobilenet_dw": dict(name="MobileNet depthwise 3x3 (32 ch, 16x16) + ReLU6",
                         c=32, h=16, w=16, m=32, r=3, s=3, padding=[1, 1, 1, 1], groups=32,
                         activation="clamp", clamp_high=96),
    "mobilenet_pw": dict(name="MobileNet pointwise 1x1 (32->64, 16x16) + ReLU6",
                         c=32, h=16, w=16, m=64, r=1, s=1, activation="clamp", clamp_high=96),
    "fc_256x64": dict(name="fully connected 256->64 (a 4x4 conv over 16x4x4)",
                      c=16, h=4, w=4, m=64, r=4, s=4),
    "fc_256x64_b16": dict(name="fully connected 256->64, batch of 16 (16x4x4 inputs side by "
                               "side: a 4x4/(1,4) conv over 16x4x64)",
                          c=16, h=4, w=64, m=64, r=4, s=4, stride=[1, 4]),
}

#: A sweep of 3x3 same-padded layers (ReLU): channels at 16x16, then size at 32 channels.
SWEEP_LAYERS = {
    **{f"sweep_3x3_c{c}": dict(name=f"3x3 same, C=M={c}, 16x16", c=c, h=16, w=16, m=c, r=3, s=3,
                               padding=[1, 1, 1, 1], activation="relu")
       for c in (4, 8, 16, 32)},
    **{f"sweep_3x3_hw{hw}": dict(name=f"3x3 same, C=M=32, {hw}x{hw}", c=32, h=hw, w=hw, m=32,
                                 r=3, s=3, padding=[1, 1, 1, 1], activation="relu")
       for hw in (4, 8, 32, 64)},
}

#: Every layer ``convaccel bench layers`` knows.
ALL_LAYERS = {**BENCH_LAYERS, **SWEEP_LAYERS}


#: Keys of a typed layer spec (``convaccel bench layers --spec``) and what each takes.
SPEC_KEYS = {
    "c": "input channels", "h": "input height", "w": "input width", "m": "output channels",
    "k": "kernel size (both sides)", "r": "kernel height", "s": "kernel width",
    "stride": "N or HxW (default 1)", "dilation": "N or HxW (default 1)",
    "pad": "N, or TxBxLxR (default 0)", "groups": "N (default 1)",
    "pool": "max or avg, optionally :K[:U] (default none; K 2, U = K)",
    "act": "none, relu or clamp:HIGH (default none)",
}


def parse_layer_spec(text: str) -> dict:
    """A layer typed as ``"c=1,h=28,w=28,m=3,k=5"``: the benchmark's spec of it.

    Keys: :data:`SPEC_KEYS`; ``c, h, w, m`` and either ``k`` or both ``r``
    and ``s`` are required, the rest default as in ``golden.conv_layer``
    (stride 1, dilation 1, no padding, one group, no pooling, no
    activation). Raises ``ValueError`` naming the bad key or value.
    """
    fields = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep or key not in SPEC_KEYS:
            raise ValueError(f"layer spec {text!r}: {item!r} is not KEY=VALUE with KEY one of "
                             f"{', '.join(SPEC_KEYS)}")
        if key in fields:
            raise ValueError(f"layer spec {text!r}: {key!r} given twice")
        fields[key] = value

    def number(key, value):
        try:
            result = int(value)
        except ValueError:
            raise ValueError(f"layer spec {text!r}: {key}={value!r} is not an integer") from None
        if result < (0 if key == "pad" else 1):
            raise ValueError(f"layer spec {text!r}: {key}={result} is out of range")
        return result

    def numbers(key, count):
        parts = fields[key].lower().split("x")
        if len(parts) not in (1, count):
            raise ValueError(f"layer spec {text!r}: {key}={fields[key]!r}: give 1 or {count} "
                             "numbers separated by 'x'")
        values = [number(key, part) for part in parts]
        return values * count if len(values) == 1 else values

    missing = [key for key in ("c", "h", "w", "m") if key not in fields]
    if "k" not in fields and not ("r" in fields and "s" in fields):
        missing.append("k (or r and s)")
    if missing:
        raise ValueError(f"layer spec {text!r}: missing {', '.join(missing)}")
    if "k" in fields and ("r" in fields or "s" in fields):
        raise ValueError(f"layer spec {text!r}: give k or r and s, not both")
    spec = {key: number(key, fields[key]) for key in ("c", "h", "w", "m")}
    if "k" in fields:
        spec["r"] = spec["s"] = number("k", fields["k"])
    else:
        spec["r"], spec["s"] = number("r", fields["r"]), number("s", fields["s"])
    for key in ("stride", "dilation"):
        if key in fields:
            spec[key] = numbers(key, 2)
    if "pad" in fields:
        spec["padding"] = numbers("pad", 4)
    if "groups" in fields:
        spec["groups"] = number("groups", fields["groups"])
    if "pool" in fields:
        mode, *sizes = fields["pool"].lower().split(":")
        if mode not in ("max", "avg") or len(sizes) > 2:
            raise ValueError(f"layer spec {text!r}: pool={fields['pool']!r}: use max or avg, "
                             "optionally :K or :K:U")
        kernel = number("pool", sizes[0]) if sizes else 2
        spec["pool"] = [mode, kernel, number("pool", sizes[1]) if len(sizes) > 1 else kernel]
    if "act" in fields:
        kind, _, high = fields["act"].lower().partition(":")
        if kind not in ("none", "relu", "clamp") or (kind == "clamp") != bool(high):
            raise ValueError(f"layer spec {text!r}: act={fields['act']!r}: use none, relu or "
                             "clamp:HIGH")
        spec["activation"] = kind
        if high:
            spec["clamp_high"] = number("act", high)
    spec["name"] = f"typed layer ({', '.join(f'{k}={v}' for k, v in fields.items())})"
    return spec


def real_macs(layer: ConvLayer) -> int:
    """Multiply-accumulates the layer really needs: ``P*Q*M*(C/groups)*R*S``."""
    p, q = layer.conv_size()
    m, c_per_group, r, s = layer.w.shape
    return p * q * m * c_per_group * r * s


def fit_spec(spec: dict, config) -> dict:
    """``spec`` scaled to ``config``: each size clipped to the build's maximum.

    Channels, image size, kernel, stride, dilation, padding and pooling are
    clipped; a depthwise layer stays depthwise. When anything changed, the
    name says what runs instead (``..., scaled to the build: 1->4, 3x3,
    12x12``), so reports never show a layer that did not run. Whether the
    result fits is :meth:`ConvLayer.check_fits`' business.
    """
    cfg = config
    fitted = dict(spec)
    depthwise = spec.get("groups", 1) == spec["c"] == spec["m"] and spec["c"] > 1
    fitted["c"] = min(spec["c"], cfg.max_in_channels)
    fitted["m"] = min(spec["m"], cfg.max_out_channels)
    if depthwise:
        fitted["c"] = fitted["m"] = fitted["groups"] = min(fitted["c"], fitted["m"])
    fitted["h"], fitted["w"] = min(spec["h"], cfg.max_height), min(spec["w"], cfg.max_width)
    fitted["r"], fitted["s"] = min(spec["r"], cfg.max_kernel), min(spec["s"], cfg.max_kernel)
    for key, limit in (("stride", cfg.max_stride), ("dilation", cfg.max_dilation)):
        if key in spec:
            fitted[key] = [min(v, limit) for v in as_pair(spec[key], key)]
    if "padding" in spec:
        fitted["padding"] = [min(v, cfg.max_padding) for v in as_padding4(spec["padding"])]
    if spec.get("pool"):
        mode, kernel, stride = spec["pool"]
        fitted["pool"] = [mode, min(kernel, cfg.max_pool_kernel), min(stride, cfg.max_pool_stride)]
    if fitted != spec:
        uh, uw = fitted.get("stride", (1, 1))
        shape = (f"{fitted['c']}->{fitted['m']}, {fitted['r']}x{fitted['s']}"
                 + (f"/{uh}" if (uh, uw) != (1, 1) else "") + f", {fitted['h']}x{fitted['w']}")
        if fitted.get("pool"):
            mode, kernel, stride = fitted["pool"]
            shape += f", {kernel}x{kernel}/{stride} {mode}-pool"
        fitted["name"] = f"{spec['name']}, scaled to the build: {shape}"
    return fitted


def spec_layer(spec: dict, config) -> ConvLayer:
    """The layer the layer benchmark runs for ``spec`` on ``config`` (same random data)."""
    from .benches.conv_core_bench import layer_from  # imports cocotb

    return layer_from(config, np.random.default_rng(LAYER_DATA_SEED), **spec)
