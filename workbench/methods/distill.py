"""Knowledge distillation: train a student on a teacher's soft targets (Hinton et al.'s KD loss).

Two set-ups:

- ``student`` is a built-in architecture (``small_cnn``, ``mobilenet_v2``, …): it is built fresh, with the
  classes and input channels of the teacher, and learns from the input model (or from ``teacher`` when given);
- ``student = "input"``: the input model itself (say a pruned one) is trained further, with the model file named by
  ``teacher`` (say the model before pruning) as the teacher — a recovery step after compression.

The loss is ``alpha · T² · KL(softmax(teacher / T) ‖ softmax(student / T)) + (1 − alpha) · CE(student, y)``. The
teacher runs once over the training split before the first epoch (its logits are fixed: it is in eval mode and
the data is not augmented), in PyTorch or, for an ONNX teacher file, in ONNX Runtime. The training loop is the
fine-tune's (same optimizers, cosine learning rate, channels-last layout, per-epoch validation, seeding).

Checkpoints: after every epoch the student, the optimizer and the history go to ``work_dir/checkpoint.pt``
(through a temporary file and a rename). ``resume`` continues from that checkpoint when it exists and was made
with the same settings. A finished run deletes it. A run stopped (cancelled or failed) after at least one finished
epoch keeps it — that is what ``resume`` picks up — and removes its partial output; one stopped before the end of
the first epoch leaves no files at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Generator, Literal

from pydantic import Field

from ..core import architectures
from ..core.artifact import ModelArtifact
from ..core.data import check_training_data
from ..core.errors import WorkbenchError
from ..core.graph import LayerGraph
from ..core.methods import Estimate, Method, MethodParams, RunContext
from ..core.progress import Progress
from .finetune import PROGRESS_EVERY, FineTune, LossTally, cosine_lr
from .pruning import editable_module, example_inputs, remove_files, removed_unless_done, result_files, save_result

_TEACHER_BATCH = 256
_CACHE_BYTES = 512 << 20  # teacher logits of the whole training split are kept when they fit in this
CHECKPOINT = "checkpoint.pt"

StudentChoice = Literal[tuple(["input", *architectures.names()])]  # type: ignore[valid-type]


class DistillParams(MethodParams):
    student: StudentChoice = Field("small_cnn", description=(  # type: ignore[valid-type]
        "The model that learns. 'input': the input model itself (e.g. a pruned one), taught by the model file "
        "named in 'teacher'; or a built-in architecture, built fresh with the teacher's classes and input "
        "channels."))
    teacher: str = Field("", description=(
        "Path to the teacher model file (any PyTorch format the workbench opens, or ONNX). Empty: the input model "
        "is the teacher, and the student must be a built-in architecture."))
    architecture_options: str = Field("", description=(
        "Options of the built-in student as key=value,key=value, e.g. width_mult=0.5 for mobilenet_v2."))
    temperature: float = Field(4.0, ge=1.0, le=20.0, description=(
        "Softens both models' outputs before they are compared: higher values pass on more of how the teacher "
        "ranks the wrong classes."))
    alpha: float = Field(0.7, ge=0.0, le=1.0, description=(
        "Weight of the teacher's soft targets (KL divergence, scaled by T²); 1 − alpha goes to the "
        "cross-entropy on the true labels."))
    epochs: int = Field(5, ge=1, le=200, description="Passes over the training data.")
    learning_rate: float = Field(1e-3, ge=1e-6, le=1.0, description=(
        "Initial step size; it decays to zero along a cosine over the run (1e-3 suits adam/adamw, sgd usually "
        "needs about 1e-2)."))
    optimizer: Literal["adam", "adamw", "sgd"] = Field("adamw", description=(
        "adamw: Adam with decoupled weight decay; adam: weight decay added to the gradient; sgd: with momentum "
        "0.9."))
    batch_size: int = Field(64, ge=8, le=1024, description="Training samples per step.")
    weight_decay: float = Field(1e-4, ge=0.0, le=0.1, description="L2 penalty on the student's weights.")
    seed: int = Field(0, ge=0, description=(
        "Seeds the student's initial weights, the data order and dropout: the same seed gives the same model."))
    resume: bool = Field(False, description=(
        "Continue from the checkpoint a stopped run left in the work folder (same settings), instead of starting "
        "over."))


def _student_kwargs(options: str, in_channels: int, num_classes: int, side: int | None) -> tuple[dict, set[str]]:
    """Keyword arguments for a built-in student: the user's options over the inferred ones (which may be dropped)."""
    from ..core.readers.torch_readers import parse_arch

    _, user = parse_arch(":" + options) if options.strip() else ("", {})
    inferred: dict[str, Any] = {"num_classes": num_classes, "in_channels": in_channels}
    if side:
        inferred.update(input_size=side, image_size=side)
    return {**inferred, **user}, set(inferred) - set(user)


def build_student(name: str, options: str, in_channels: int, num_classes: int, side: int | None):
    """Build the built-in ``name``; inferred keywords the builder does not take are left out."""
    import re

    kwargs, optional = _student_kwargs(options, in_channels, num_classes, side)
    while True:
        try:
            return architectures.build(name, **kwargs), kwargs
        except TypeError as exc:
            bad = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
            if bad and bad.group(1) in optional:
                kwargs.pop(bad.group(1))
                optional.discard(bad.group(1))
                continue
            raise WorkbenchError(f"distill.kd: cannot build the student '{name}' with {kwargs}: {exc}",
                                 "check the architecture options") from None
        except (ValueError, AssertionError) as exc:
            raise WorkbenchError(f"distill.kd: cannot build the student '{name}': {exc}",
                                 "check the architecture options or pick another student") from None


def _square_side(shape) -> int | None:
    dims = [int(d) for d in shape]
    return dims[2] if len(dims) == 4 and dims[2] == dims[3] else None


class KnowledgeDistillation(Method):
    id = "distill.kd"
    label = "Knowledge distillation"
    kind = "distill"
    description = ("Trains a student model on the teacher's softened outputs and the true labels: a fresh "
                   "built-in architecture learns from the input model, or a compressed input model recovers "
                   "from the original.")
    Params = DistillParams
    needs_data = True
    input_formats = frozenset({"torch", "onnx"})  # ONNX is converted to PyTorch layers

    # ---- estimate --------------------------------------------------------------------------------------------
    def estimate(self, graph: LayerGraph, params: MethodParams) -> Estimate:
        p: DistillParams = params  # type: ignore[assignment]
        if p.student == "input":
            return Estimate(params=graph.params, macs=graph.macs, size_bytes=4 * graph.params, notes=[
                "estimated: the input model is trained further, its shapes stay (same parameters, MACs and size)",
                "accuracy is measured on the validation split after every epoch"])
        import torch

        shape = graph.inputs[0].shape if graph.inputs else [1, 3, 224, 224]
        classes = int(graph.outputs[0].shape[-1]) if graph.outputs and graph.outputs[0].shape else 1000
        with torch.device("meta"):
            student, _ = build_student(p.student, p.architecture_options, int(shape[1]), classes,
                                       _square_side(shape))
        count = sum(t.numel() for t in student.parameters())
        macs = int(round(graph.macs * count / max(1, graph.params)))
        return Estimate(params=count, macs=macs, size_bytes=4 * count, notes=[
            f"parameters counted on the {p.student} student built without weights; {classes} classes, "
            f"{shape[1]} input channel(s)",
            "MACs approximated as the teacher's scaled by the parameter ratio (a rough guess: convolutions "
            "on large images cost more per parameter than linear layers); measure after running",
            "accuracy is measured on the validation split after every epoch"])

    # ---- run -------------------------------------------------------------------------------------------------
    def run(self, artifact: ModelArtifact, params: MethodParams,
            ctx: RunContext) -> Generator[Progress, None, ModelArtifact]:
        p: DistillParams = params  # type: ignore[assignment]
        self.check_accepts(artifact)
        data = check_training_data(ctx.data, artifact.input_shapes[0], self.id)
        teacher_path = Path(p.teacher).expanduser() if p.teacher.strip() else None
        if teacher_path is None and p.student == "input":
            raise WorkbenchError("distill.kd: with student 'input' the input model is the student, so it needs a "
                                 "teacher", "name the teacher model file in 'teacher', or pick a built-in student")
        if teacher_path is not None and not teacher_path.is_file():
            raise WorkbenchError(f"distill.kd: the teacher model file {teacher_path} does not exist",
                                 "check the teacher path", teacher_path)

        checkpoint = ctx.work_dir / CHECKPOINT
        with removed_unless_done() as written:
            written.append(checkpoint.with_suffix(".part"))  # a checkpoint cut off mid-write (the last whole one stays)
            yield Progress(0.0, "loading the teacher")
            import numpy as np
            import torch
            import torch.nn.functional as F

            torch.manual_seed(p.seed)
            examples = example_inputs(artifact)
            teacher = self._teacher(artifact, teacher_path)
            ctx.check()
            probe = teacher(data.train.x[:2])
            classes = int(probe.shape[1]) if probe.ndim == 2 else 0
            if classes < (data.num_classes or 0) or probe.ndim != 2:
                raise WorkbenchError(f"distill.kd: the teacher returns {tuple(probe.shape)}; the labels need "
                                     f"(batch, {data.num_classes or '?'}) class logits", "use a classifier teacher",
                                     teacher_path or artifact.path)

            yield Progress(0.02, "building the student")
            if p.student == "input":
                student = editable_module(self.id, artifact)
                student_info: Any = "input"
            else:
                shape = artifact.input_shapes[0]
                student, kwargs = build_student(p.student, p.architecture_options, int(shape[1]), classes,
                                                _square_side(shape))
                student_info = {"architecture": p.student, "options": kwargs}
            FineTune._check_outputs(student, data, examples, self.id)
            with torch.no_grad():
                out = student(*examples)
            if out.shape[1] != classes:
                raise WorkbenchError(f"distill.kd: the student has {out.shape[1]} outputs but the teacher "
                                     f"{classes}", "distil between models with the same classes")
            layout = torch.channels_last if all(e.ndim == 4 for e in examples) else torch.contiguous_format
            student = student.to(memory_format=layout)
            optimizer = FineTune._optimizer(student, p, self.id)

            history: list[dict] = []
            start = 1
            key = {"student": p.student, "teacher": str(teacher_path or "input"), "seed": p.seed,
                   "architecture_options": p.architecture_options, "optimizer": p.optimizer,
                   "batch_size": p.batch_size, "input": artifact.sha256}
            if p.resume and checkpoint.is_file():
                state = torch.load(str(checkpoint), map_location="cpu", weights_only=False)
                if state.get("key") != key:
                    raise WorkbenchError("distill.kd: the checkpoint in the work folder was made with other "
                                         "settings or another model", "run without resume to start over",
                                         checkpoint)
                student.load_state_dict(state["student"])
                optimizer.load_state_dict(state["optimizer"])
                history = list(state["history"])
                start = int(state["epoch"]) + 1
                ctx.log(f"distill.kd: resuming after epoch {state['epoch']} from {checkpoint}")
            elif p.resume:
                ctx.log(f"distill.kd: no checkpoint in {ctx.work_dir}; starting from epoch 1")

            n = len(data.train)
            cached = None
            if n * classes * 4 <= _CACHE_BYTES and start <= p.epochs:
                cached = np.empty((n, classes), np.float32)
                for i in range(0, n, _TEACHER_BATCH):
                    ctx.check()
                    cached[i:i + _TEACHER_BATCH] = teacher(data.train.x[i:i + _TEACHER_BATCH])
                    yield Progress(0.05 * min(n, i + _TEACHER_BATCH) / n,
                                   f"teacher outputs {min(n, i + _TEACHER_BATCH)}/{n}")

            rng = np.random.default_rng(p.seed)
            batch = min(p.batch_size, n)
            # BatchNorm cannot train on a batch of one: a trailing single sample is left out of that epoch.
            steps_per_epoch = n // batch + (1 if n % batch >= 2 else 0)
            total_steps = p.epochs * steps_per_epoch
            step = (start - 1) * steps_per_epoch
            for _ in range(1, start):
                rng.permutation(n)  # the same data order as an uninterrupted run
            T, alpha = p.temperature, p.alpha
            last_val = f" · val acc {100 * history[-1]['val_accuracy']:.2f} %" \
                if history and history[-1].get("val_accuracy") is not None else ""

            def fraction() -> float:
                return 0.05 + 0.9 * step / total_steps

            for epoch in range(start, p.epochs + 1):
                student.train()
                order = rng.permutation(n)
                tally = LossTally()
                for b in range(steps_per_epoch):
                    ctx.check()
                    idx = np.sort(order[b * batch:(b + 1) * batch])
                    xs = np.ascontiguousarray(data.train.x[idx])
                    soft = torch.from_numpy(cached[idx] if cached is not None else teacher(xs))
                    x = torch.from_numpy(xs).contiguous(memory_format=layout)
                    y = torch.from_numpy(data.train.y[idx].astype(np.int64))
                    cosine_lr(optimizer, p.learning_rate, step, total_steps)
                    optimizer.zero_grad(set_to_none=True)
                    logits = student(x)
                    kd = F.kl_div(F.log_softmax(logits / T, 1), F.log_softmax(soft / T, 1), log_target=True,
                                  reduction="batchmean") * T * T
                    loss = alpha * kd + (1 - alpha) * F.cross_entropy(logits, y)
                    if not torch.isfinite(loss):
                        raise WorkbenchError(f"distill.kd: the loss became {loss.item()} in epoch {epoch}",
                                             "lower the learning rate or the temperature")
                    loss.backward()
                    optimizer.step()
                    tally.add(loss.item(), len(idx))
                    step += 1
                    if b % PROGRESS_EVERY == PROGRESS_EVERY - 1 or b == steps_per_epoch - 1:
                        yield Progress(fraction(), f"epoch {epoch}/{p.epochs} · loss {tally.mean:.3f}{last_val}",
                                       {"epoch": step / steps_per_epoch, "train loss": tally.take_window()})
                record: dict[str, Any] = {"epoch": epoch, "loss": tally.mean, "val_accuracy": None}
                val = yield from FineTune._validate(student, data.val, ctx, epoch, p.epochs, fraction())
                if val is not None:
                    record["val_accuracy"] = val[0]
                    last_val = f" · val acc {100 * val[0]:.2f} %"
                    ctx.log(f"distill.kd: epoch {epoch}/{p.epochs}: loss {record['loss']:.4f}, val accuracy "
                            f"{100 * val[0]:.2f} % ({len(data.val)} samples)")
                else:
                    ctx.log(f"distill.kd: epoch {epoch}/{p.epochs}: loss {record['loss']:.4f} "
                            "(validation split has no labels)")
                history.append(record)
                self._save_checkpoint(checkpoint, student, optimizer, epoch, history, key)

            student = student.to(memory_format=torch.contiguous_format).eval()
            ctx.check()
            yield Progress(0.96, "saving")
            meta = {"method": self.id, "params": p.model_dump(), "teacher": str(teacher_path or "input"),
                    "student": student_info, "history": history, "resumed_after_epoch": start - 1,
                    "epochs": p.epochs, "train_samples": n, "data": data.name,
                    "val_accuracy": [h["val_accuracy"] for h in history]}
            written += result_files(artifact, ctx, "student")
            result = save_result(student, examples, artifact, ctx, "student", meta)
            remove_files([checkpoint, checkpoint.with_suffix(".part")])
            final = history[-1]["val_accuracy"] if history else None
            yield Progress(1.0, "done" + (f" · val acc {100 * final:.2f} %" if final is not None else ""))
            return result

    # ---- parts -----------------------------------------------------------------------------------------------
    @staticmethod
    def _teacher(artifact: ModelArtifact, path: Path | None):
        """A function numpy batch → numpy logits (float32) of the teacher, in eval mode without gradients."""
        import numpy as np
        import torch

        if path is None:
            teacher = artifact
        else:
            from ..core.readers import open_model
            from ..core.readers.base import OpenRequest
            from ..core.shapes import ShapeRequest

            graph = open_model(OpenRequest(path=path, shapes=ShapeRequest(by_position=[artifact.input_shapes[0]])))
            teacher = ModelArtifact.from_graph(graph)
        if teacher.format == "onnx":
            import onnxruntime as ort

            from ..core.ort_rows import run_rows

            session = ort.InferenceSession(str(teacher.path), providers=["CPUExecutionProvider"])
            return lambda x: run_rows(session, x, batch=len(x))  # chunks of a fixed batch (often 1) when it has one
        if not teacher.is_torch:
            raise WorkbenchError(f"distill.kd: a {teacher.format} teacher cannot be run", "use a PyTorch or ONNX "
                                 "teacher", teacher.path)
        module = teacher.load_torch().eval()
        layout = torch.contiguous_format
        if len(teacher.input_shapes) == 1 and len(teacher.input_shapes[0]) == 4:
            try:  # about 2x faster for convolutions on the CPU
                module = module.to(memory_format=torch.channels_last)
                layout = torch.channels_last
            except Exception:  # noqa: BLE001 - compiled graphs may refuse; the ordinary layout still works
                pass

        def run(x):
            with torch.no_grad():
                out = module(torch.from_numpy(np.ascontiguousarray(x)).contiguous(memory_format=layout))
            return out.float().numpy() if isinstance(out, torch.Tensor) else np.asarray(out)

        return run

    @staticmethod
    def _save_checkpoint(path: Path, student, optimizer, epoch: int, history: list, key: dict) -> None:
        import torch

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        torch.save({"student": student.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                    "history": history, "key": key}, str(tmp))
        tmp.replace(path)
