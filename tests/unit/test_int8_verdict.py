"""'Will int8 be faster here?': CPU features of a device combined with the real integer-kernel coverage of a model."""

from __future__ import annotations

import pytest

from workbench.core.artifact import export_onnx
from workbench.core.methods import RunContext, run_to_end
from workbench.devices.int8_verdict import int8_verdict, isa_level
from workbench.methods.quantize_int8 import StaticInt8, integer_coverage

VNNI = {"arch": "x86_64", "isa_flags": ["avx2", "avx512f", "avx512_vnni", "fma"]}
AVX2 = {"arch": "x86_64", "isa_flags": ["avx", "avx2", "fma", "sse4_2"]}
OLD_X86 = {"arch": "x86_64", "isa_flags": ["sse4_2"]}
PI5 = {"arch": "aarch64", "isa_flags": ["asimd", "asimddp", "dotprod", "neon"]}
PI3 = {"arch": "aarch64", "isa_flags": ["asimd", "neon"]}
GRAVITON3 = {"arch": "aarch64", "isa_flags": ["asimd", "asimddp", "dotprod", "i8mm", "neon"]}


@pytest.fixture(scope="module")
def coverage(demo_setup, tmp_path_factory):
    """(int8 artifact meta, fp32 coverage) of the demo model, counted by the int8 method's own code."""
    _, artifact, data = demo_setup
    root = tmp_path_factory.mktemp("verdict")
    method = StaticInt8()
    ctx = RunContext(work_dir=root, data=data, log=lambda message: None)
    int8 = run_to_end(method.run(artifact, method.parse_params({"calibration_samples": 32}), ctx))
    fp32 = export_onnx(artifact, root / "fp32.onnx")
    return int8.meta, integer_coverage(fp32.path, root)


@pytest.mark.parametrize("info, level, reduce_range", [(VNNI, "faster", False), (AVX2, "modest", True),
                                                       (OLD_X86, "unlikely", True), (PI5, "faster", False),
                                                       (GRAVITON3, "faster", False), (PI3, "modest", False)])
def test_cpu_features_alone(info, level, reduce_range):
    got, reasons, advice = isa_level(info)
    assert (got, advice) == (level, reduce_range) and reasons


def test_the_quantized_demo_on_a_vnni_cpu_is_faster_with_its_coverage_in_words(coverage):
    meta, _ = coverage
    verdict = int8_verdict(VNNI, meta)
    total = meta["integer_ops"] + meta["float_compute_ops"]
    assert meta["integer_ops"] > 0 and verdict.verdict == "faster"
    assert any(f"{meta['integer_ops']} of {total} compute layers run as integer kernels" in r for r in verdict.reasons)
    assert "VNNI" in verdict.reasons[0] and "estimated" in verdict.summary


def test_avx2_without_vnni_advises_reduce_range(coverage):
    meta, _ = coverage
    verdict = int8_verdict(AVX2, {**meta, "reduce_range": False})
    assert verdict.verdict == "modest" and verdict.reduce_range is True
    assert any("reduce_range" in r and "saturat" in r for r in verdict.reasons)


def test_a_graph_without_integer_kernels_is_slower_anywhere(coverage):
    _, fp32 = coverage
    assert fp32["integer_ops"] == 0 and fp32["float_compute_ops"] > 0
    for info in (VNNI, PI5):
        verdict = int8_verdict(info, fp32)
        assert verdict.verdict == "slower" and "no compute layer runs as an integer kernel" in verdict.reasons[-1]


def test_mostly_float_graphs_drop_a_level_and_dynamic_conv_nets_are_slower():
    half = {"integer_ops": 2, "float_compute_ops": 6, "float_op_names": ["stem", "head"]}
    verdict = int8_verdict(PI5, half)
    assert verdict.verdict == "modest" and any("stem, head" in r for r in verdict.reasons)
    dynamic = {"integer_ops": 8, "float_compute_ops": 0, "method": "quantize.int8_dynamic", "conv_mac_share": 0.9}
    assert int8_verdict(VNNI, dynamic).verdict == "slower"


def test_unknown_coverage_and_unknown_cpus_say_so():
    assert "coverage is unknown" in int8_verdict(PI5).reasons[-1]
    assert int8_verdict({"arch": "riscv64", "isa_flags": []}).verdict == "unknown"


def test_this_machines_description_feeds_the_verdict():
    from workbench.devices.local import LocalDevice

    info = LocalDevice().describe()
    verdict = int8_verdict(info, {"integer_ops": 10, "float_compute_ops": 0})
    expected = isa_level(info)[0]
    assert verdict.verdict == expected and info["arch"] and isinstance(info["isa_flags"], list)
