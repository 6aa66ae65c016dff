""""Will int8 be faster here?" — from the device's CPU features and the quantized graph's integer-kernel coverage.

Two things decide it (FIELD.md, complaint 2): whether the CPU has 8-bit dot-product instructions that ONNX Runtime's
integer kernels use, and whether the quantized layers actually run as integer kernels rather than falling back to
float. The coverage counts come from the int8 methods (``quantize_int8.integer_coverage``, stored in the quantized
artifact's ``meta``); the CPU features from the device's description (``isa_flags``, ``arch``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Ordered from best to worst; "slower" is only reached through the graph.
LEVELS = ["faster", "modest", "unlikely", "slower"]
_FLOAT_SHARE_DOWNGRADE = 0.5


@dataclass
class Int8Verdict:
    """``verdict``: faster | modest | unlikely | slower | unknown; ``reasons`` say why, in words for the user.

    This is an estimate from CPU features and graph structure; only a benchmark on the device measures it.
    """

    verdict: str
    reasons: list[str] = field(default_factory=list)
    reduce_range: bool | None = None  # advice: quantize weights to 7 bits (x86 without VNNI)

    @property
    def summary(self) -> str:
        words = {"faster": "int8 should be clearly faster here", "modest": "int8 should be somewhat faster here",
                 "unlikely": "int8 is unlikely to be faster here", "slower": "int8 will probably be slower here",
                 "unknown": "cannot tell whether int8 will be faster here"}[self.verdict]
        return f"{words} (estimated; measure to be sure)"


def _is_x86(arch: str) -> bool:
    return arch.lower() in ("x86_64", "amd64", "i386", "i686", "x86")


def _is_arm(arch: str) -> bool:
    return arch.lower().startswith(("arm", "aarch64"))


def isa_level(info: dict[str, Any]) -> tuple[str, list[str], bool | None]:
    """(level, reasons, reduce_range advice) from the CPU features alone."""
    flags = set(info.get("isa_flags") or [])
    arch = str(info.get("arch") or "")
    if _is_x86(arch) or flags & {"avx2", "avx512f", "sse4_2"}:
        if "amx_int8" in flags:
            return "faster", ["the CPU has AMX int8 tiles and VNNI: ONNX Runtime's U8S8 integer kernels are fast"], \
                False
        vnni = sorted(flags & {"avx512_vnni", "avx_vnni"})
        if vnni:
            return "faster", [f"the CPU has {' and '.join(f.upper() for f in vnni)}: 8-bit dot products in one "
                              "instruction, so U8S8 integer kernels are fast and reduce_range is not needed"], False
        if "avx2" in flags:
            return "modest", ["the CPU has AVX2 but no VNNI: integer kernels multiply in 16 bits first, so the gain "
                              "is modest (often 1.1-1.5x on conv nets)",
                              "without VNNI, U8S8 products can saturate: quantize with reduce_range on (7-bit "
                              "weights) to keep accuracy"], True
        return "unlikely", ["the CPU has neither AVX2 nor VNNI: ONNX Runtime's integer kernels have little to gain "
                            "over float"], True
    if _is_arm(arch) or flags & {"neon", "asimd"}:
        if "i8mm" in flags:
            return "faster", ["the CPU has the Armv8.6 int8 matrix-multiply extension (i8mm) and dot products: "
                              "integer kernels are fast"], False
        if "dotprod" in flags or "asimddp" in flags:
            return "faster", ["the CPU has NEON dot-product instructions (dotprod): 8-bit dot products in one "
                              "instruction, so integer kernels are fast"], False
        if "neon" in flags or "asimd" in flags:
            return "modest", ["the CPU has NEON but no dot-product instructions: integer kernels widen to 16 bits, "
                              "so the gain is modest"], False
        return "unlikely", ["the ARM CPU reports no NEON: integer kernels have little to gain"], False
    return "unknown", [f"no CPU feature flags known for architecture '{arch or '?'}'"], None


def int8_verdict(info: dict[str, Any], coverage: dict[str, Any] | None = None) -> Int8Verdict:
    """Combine the device's features (``info``: a device description) with the quantized graph's coverage.

    ``coverage`` holds ``integer_ops`` and ``float_compute_ops`` (and optionally ``float_op_names``,
    ``activation_type``, ``reduce_range``, ``method``, ``conv_mac_share``) — an int8 artifact's ``meta`` has them.
    """
    level, reasons, reduce_range = isa_level(info)
    if coverage is None or "integer_ops" not in coverage:
        reasons.append("the graph's integer-kernel coverage is unknown: quantize the model to see which layers run "
                       "as integer kernels")
        return Int8Verdict(level, reasons, reduce_range)
    integer, floats = int(coverage["integer_ops"]), int(coverage.get("float_compute_ops", 0))
    if integer == 0:
        return Int8Verdict("slower", reasons + ["no compute layer runs as an integer kernel: every quantized layer "
                                                "converts back to float, which only adds work"], reduce_range)
    share = floats / (integer + floats)
    reasons.append(f"{integer} of {integer + floats} compute layers run as integer kernels")
    if floats:
        names = ", ".join(list(coverage.get("float_op_names") or [])[:5])
        reasons.append(f"{floats} stay in float{f' ({names})' if names else ''}; each adds quantize/dequantize work")
    if level != "unknown" and share >= _FLOAT_SHARE_DOWNGRADE:
        level = LEVELS[min(LEVELS.index(level) + 1, len(LEVELS) - 1)]
        reasons.append(f"{100 * share:.0f} % of the compute layers stay in float, which eats most of the gain")
    if "dynamic" in str(coverage.get("method", "")) and float(coverage.get("conv_mac_share", 0)) > 0.5:
        level = "slower"
        reasons.append("dynamic quantization of a convolution net runs through ConvInteger, measured about 10x "
                       "slower than float; use static int8")
    if str(coverage.get("activation_type")) == "int8" and _is_x86(str(info.get("arch") or "")):
        reasons.append("int8 activations (S8S8) ran 1.6-2.3x slower than uint8 (U8S8) on x86; prefer uint8")
    if reduce_range and coverage.get("reduce_range") is False:
        reasons.append("this model was quantized without reduce_range; on this CPU that risks saturation")
    return Int8Verdict(level, reasons, reduce_range)
