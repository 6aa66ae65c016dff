"""workbench-lowrank: an example Model Workbench plugin that factorizes layers by truncated SVD.

The method lives in :mod:`workbench_lowrank.method`; the workbench finds it through the entry point declared in this
package's pyproject.toml (group ``workbench.methods``). Importing this package does not import torch.
"""

__version__ = "0.1.0"
