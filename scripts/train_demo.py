"""Train the ``demo_digits`` network on workbench/resources/demo/digits.npz, deterministically.

Usage::

    python scripts/train_demo.py            # writes workbench/resources/demo/demo_digits.{pt,json}

Writes ``demo_digits.pt`` (a state_dict only, loadable with
``torch.load(path, weights_only=True)``) and ``demo_digits.json`` (input shape,
normalisation, classes, measured validation accuracy, training settings).
The same seed, thread count and torch version reproduce the same weights.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
# Allow running from a plain checkout, without the package being installed.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from workbench.core.architectures import (  # noqa: E402
    ARCHITECTURES, DEMO_CLASSES, DEMO_MEAN, DEMO_STD, build,
)

ARCH = "demo_digits"
DEMO_DIR = ROOT / "workbench" / "resources" / "demo"
MAX_SHIFT = 2  # pixels of random translation used as augmentation


def normalise(images: torch.Tensor) -> torch.Tensor:
    """Map uint8 (or 0..255 float) images (N, 28, 28) to normalised float32 (N, 1, 28, 28)."""
    x = images.to(torch.float32).div(255.0).unsqueeze(1)
    return (x - DEMO_MEAN) / DEMO_STD


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image of ``x`` (B, 1, H, W), already normalised, by its own
    random offset in [-max_shift, max_shift] on both axes; vacated pixels get
    the background value.  Returns a new tensor of the same shape."""
    b, _, h, w = x.shape
    background = (0.0 - DEMO_MEAN) / DEMO_STD  # a black pixel after normalisation
    padded = nn.functional.pad(x[:, 0], (max_shift,) * 4, value=background)
    oy, ox = torch.randint(0, 2 * max_shift + 1, (2, b, 1, 1), generator=generator)
    rows = torch.arange(h).view(1, h, 1) + oy
    cols = torch.arange(w).view(1, 1, w) + ox
    return padded[torch.arange(b).view(b, 1, 1), rows, cols].unsqueeze(1)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> float:
    """Top-1 accuracy (fraction) of ``model`` in eval mode on normalised ``x``."""
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += (model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum().item()
    return correct / len(x)


def train(args: argparse.Namespace) -> dict:
    """Train per ``args``, save the checkpoint and metadata; return the metadata dict."""
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.use_deterministic_algorithms(True)
    # A fixed thread count: CPU kernels may split reductions differently
    # (and so round differently) with another number of threads.
    torch.set_num_threads(args.threads)

    data = np.load(args.data)
    x_train, y_train = normalise(torch.from_numpy(data["x_train"])), torch.from_numpy(data["y_train"])
    x_val, y_val = normalise(torch.from_numpy(data["x_val"])), torch.from_numpy(data["y_val"])

    model = build(ARCH)
    gen = torch.Generator().manual_seed(args.seed)  # shuffling and augmentation
    steps_per_epoch = -(-len(x_train) // args.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch, pct_start=0.2)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)

    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(x_train), generator=gen)
        total_loss = 0.0
        for i in range(0, len(order), args.batch_size):
            idx = order[i:i + args.batch_size]
            xb = random_shift(x_train[idx], MAX_SHIFT, gen)
            loss = loss_fn(model(xb), y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() * len(idx)
        val_acc = accuracy(model, x_val, y_val)
        print(f"epoch {epoch:3d}  loss {total_loss / len(x_train):.4f}  val_acc {val_acc:.4f}  "
              f"{time.perf_counter() - start:6.1f}s", flush=True)
    train_seconds = time.perf_counter() - start

    args.out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = args.out_dir / f"{ARCH}.pt"
    torch.save({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}, ckpt)

    # Measure the accuracy we publish from the saved file, loaded the way the
    # application loads it, so the number describes the artefact itself.
    reloaded = build(ARCH)
    reloaded.load_state_dict(torch.load(ckpt, weights_only=True))
    val_acc = accuracy(reloaded, x_val, y_val)

    meta = {
        "architecture": ARCH,
        "input_shape": list(ARCHITECTURES[ARCH].default_input_shape),
        "mean": DEMO_MEAN,
        "std": DEMO_STD,
        "classes": DEMO_CLASSES,
        "val_accuracy": val_acc,
        "train_samples": len(x_train),
        "val_samples": len(x_val),
        "epochs": args.epochs,
        "seed": args.seed,
        "torch": torch.__version__,
    }
    (args.out_dir / f"{ARCH}.json").write_text(json.dumps(meta, indent=2) + "\n")
    n_params = sum(p.numel() for p in model.parameters())
    print(f"saved {ckpt} ({ckpt.stat().st_size / 1024:.0f} KiB, {n_params:,} params); "
          f"val_accuracy {val_acc:.4f}; training took {train_seconds:.0f}s")
    return meta


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the demo_digits network.")
    parser.add_argument("--data", type=Path, default=DEMO_DIR / "digits.npz")
    parser.add_argument("--out-dir", type=Path, default=DEMO_DIR)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=4e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    train(parser.parse_args(argv))


if __name__ == "__main__":
    main()
