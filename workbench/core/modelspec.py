"""Which model a project or recipe starts from: the bundled demo or a file, with shapes and an expected sha256."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from .errors import WorkbenchError
from .fileio import file_sha256

DEMO = "demo"


class ModelSpec(BaseModel):
    """A model reference that survives a save: ``path`` ``demo`` means the bundled checkpoint.

    A relative ``path`` resolves against the folder of the file that names it (the project or the recipe).
    """

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="model file, or 'demo' for the bundled digits model")
    input_shape: list[int] | None = Field(None, description="input shape, e.g. [1, 3, 224, 224]; binds dynamic axes")
    architecture: str | None = Field(None, description="built-in architecture of a state_dict (see workbench archs)")
    sha256: str | None = Field(None, description="expected sha256 of the file; a mismatch is an error")
    trust_code: bool = Field(False, description="allow formats that run code when loaded (pickled modules)")

    @classmethod
    def demo(cls) -> "ModelSpec":
        return cls(path=DEMO)

    @property
    def is_demo(self) -> bool:
        return self.path == DEMO

    def resolve(self, base_dir: Path | None = None) -> Path:
        if self.is_demo:
            from .demo import demo_model_path

            return demo_model_path()
        path = Path(self.path).expanduser()
        return path if path.is_absolute() or base_dir is None else Path(base_dir) / path


_opened: dict[tuple, tuple] = {}  # a few recently opened models: the runner needs the base model at every step


def open_spec(spec: ModelSpec, base_dir: Path | None = None):
    """Open the model a spec names: returns (LayerGraph, ModelArtifact); checks the sha256 when one is given.

    Results are reused while the file is unchanged (same size and modification time); treat them as read-only.
    """
    path = spec.resolve(base_dir)
    from .readers import split_factory

    file = split_factory(str(path))[0]
    stat = file.stat() if file.exists() else None
    key = (spec.model_dump_json(), str(path), stat and (stat.st_size, stat.st_mtime_ns))
    if stat is None or key not in _opened:
        opened = _open_spec(spec, base_dir)
        if len(_opened) >= 4:
            _opened.pop(next(iter(_opened)))
        _opened[key] = opened
    return _opened[key]


def _open_spec(spec: ModelSpec, base_dir: Path | None):
    from .artifact import ModelArtifact
    from .readers import open_model, split_factory
    from .readers.base import OpenRequest
    from .shapes import ShapeRequest

    path, factory = split_factory(str(spec.resolve(base_dir)))
    if not spec.is_demo and not path.exists():
        raise WorkbenchError("the model file does not exist", "fix the model path (relative paths start at the "
                             "folder of the recipe or project)", path)
    if spec.sha256 and path.is_file():
        actual = file_sha256(path)
        if actual.lower() != spec.sha256.lower():
            raise WorkbenchError(f"the model's sha256 is {actual[:16]}…, not the expected {spec.sha256[:16]}…",
                                 "use the file the recipe was made with, or update (or remove) its sha256", path)
    shapes = ShapeRequest(by_position=[tuple(spec.input_shape)]) if spec.input_shape else ShapeRequest()
    if spec.is_demo:
        from .demo import demo_request

        request = demo_request()
        request.shapes = shapes
    else:
        request = OpenRequest(path=path, shapes=shapes, trust_code=spec.trust_code, architecture=spec.architecture,
                              factory=factory)
    graph = open_model(request)
    return graph, ModelArtifact.from_graph(graph)
