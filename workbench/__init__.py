"""Model Workbench: inspect, compress and measure neural networks."""

__version__ = "0.1.0"
