"""A search's settings and results as plain data: what the GUI shows and the journal keeps (see search.py)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .progress import Progress
from .project import ROOT_ID
from .search_space import SearchSpace, describe

SEARCH_DIR = "search"
JOURNAL_VERSION = 1
OBJECTIVES = {"size": "bytes of the deployed ONNX file (measured)", "macs": "multiply-accumulates (counted)",
              "params": "parameters (counted)", "latency": "p50 latency in ms on this machine (measured)"}


class SearchConfig(BaseModel):
    """What to search, how, and the constraint. Everything but ``workers`` and ``trials`` (and ``max_drop`` for a
    grid, whose figures do not depend on it) must stay the same for a search to resume under its name."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="names search/NAME.json and .db")
    space: SearchSpace
    parent: str = Field(ROOT_ID, description="the variant every candidate starts from")
    strategy: Literal["grid", "optuna"] = "grid"
    sampler: Literal["tpe", "nsga2"] = Field("tpe", description="optuna's multi-objective sampler")
    trials: int = Field(20, ge=1, le=100000, description="optuna: trials in the study in all (a resume adds the rest)")
    minimise: Literal["size", "macs", "params", "latency"] = "size"
    max_drop: float = Field(1.0, ge=0, description="top-1 points a candidate may lose against the parent")
    workers: int = Field(1, ge=1, le=64, description="worker processes evaluating candidates")
    latency_runs: int = Field(0, ge=0, le=100000, description="timed runs of local latency per candidate (0: none)")

    @model_validator(mode="after")
    def _latency_when_minimised(self) -> "SearchConfig":
        if self.minimise == "latency" and self.latency_runs == 0:
            self.latency_runs = 100
        return self

    def identity(self) -> dict:
        skip = {"workers", "trials"} | ({"max_drop"} if self.strategy == "grid" else set())
        return self.model_dump(mode="json", exclude=skip)


@dataclass
class CandidateResult:
    """One finished candidate. ``variant_id`` is its final variant (the parent itself when it has no steps);
    ``chain`` the variants its steps made or reused; ``steps_run`` how many steps workers ran for it in this run
    (0: everything was reused). ``drop`` is in top-1 points against the parent."""

    key: str
    values: dict[str, Any]
    steps: list[dict]
    status: str = "done"  # done | failed
    variant_id: str | None = None
    chain: list[str] = field(default_factory=list)
    size_bytes: int | None = None
    params: int | None = None
    macs: int | None = None
    latency_p50: float | None = None
    top1: float | None = None
    drop: float | None = None
    feasible: bool = False
    pareto: bool = False
    steps_run: int = 0
    trial: int | None = None
    error: str = ""

    @property
    def label(self) -> str:
        return describe(self.values)

    def cost(self, minimise: str) -> float | None:
        return {"size": self.size_bytes, "macs": self.macs, "params": self.params,
                "latency": self.latency_p50}[minimise]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CandidateResult":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class SearchProgress(Progress):
    """Progress with the candidate that just finished (None for other messages), for live tables and charts."""

    candidate: CandidateResult | None = None
    done: int = 0
    total: int = 0


@dataclass
class SearchResult:
    config: SearchConfig
    parent: CandidateResult
    candidates: list[CandidateResult]
    best: CandidateResult | None
    steps_run: int = 0

    @property
    def pareto(self) -> list[CandidateResult]:
        return [c for c in self.candidates if c.pareto]

    def to_json(self) -> dict:
        c = self.config
        return {"name": c.name, "strategy": c.strategy, "space": c.space.to_doc(), "parent": self.parent.to_dict(),
                "minimise": c.minimise, "objective": OBJECTIVES[c.minimise], "max_drop": c.max_drop,
                "candidates": [x.to_dict() for x in self.candidates], "pareto": [x.key for x in self.pareto],
                "best": self.best.to_dict() if self.best else None, "steps_run": self.steps_run}
