"""What an adapter folder says about itself: manifest.json and loss_curve.png.

The manifest carries everything needed to tell where an adapter came from: the base model and
its revision, the parent adapter, which stored messages it was trained on, the counts, the
hyper-parameters, the metrics, how long it took on what device, and an energy estimate.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from bot.adapters import MANIFEST, read_manifest


def energy_estimate(seconds: float, device: str, cpu_watts: float, gpu_watts: float) -> dict:
    """Assumed device power × training time: an estimate, nothing was measured."""
    watts = gpu_watts if device.startswith("cuda") else cpu_watts
    return {
        "watt_hours": round(watts * seconds / 3600, 4),
        "assumed_watts": watts,
        "seconds": round(seconds, 2),
        "note": "estimate: assumed device power × training time, not a measurement",
    }


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    manifest = {"created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())} | manifest
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n",
                                   encoding="utf-8")


def update_manifest(folder: Path, **changes: Any) -> dict[str, Any]:
    manifest = read_manifest(folder) | changes
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n",
                                   encoding="utf-8")
    return manifest


def plot_loss(curve: list[dict[str, Any]], path: Path, title: str) -> None:
    """The training loss per step, one line per phase (SFT, KTO/DPO), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display: a job runs headless
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for phase in dict.fromkeys(p["phase"] for p in curve):
        points = [p for p in curve if p["phase"] == phase]
        ax.plot([p["step"] for p in points], [p["loss"] for p in points], label=phase.upper())
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
