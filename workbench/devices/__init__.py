"""Latency devices: ONNX Runtime on this machine (``local``) or on another one through the device agent."""

from .base import BenchConfig, Device, LatencyReport, OpTime, device_from_dict, parse_device

__all__ = ["BenchConfig", "Device", "LatencyReport", "OpTime", "device_from_dict", "parse_device"]
