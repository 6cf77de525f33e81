"""What an adapter folder says about itself: manifest.json, README.md and loss_curve.png.

The manifest carries everything needed to tell where an adapter came from: the base model and
its revision, the parent adapter, which stored messages it was trained on, the counts, the
hyper-parameters, the metrics, how long it took on what device, and an energy estimate.
README.md is the model card that Hugging Face shows, written from the manifest each time the
manifest changes (finetune/model_card.md is its template), in place of PEFT's blank one.
"""

from __future__ import annotations

import string
import time
from pathlib import Path
from typing import Any

from bot import adapters


def energy_estimate(seconds: float, device: str, cpu_watts: float, gpu_watts: float,
                    processes: int = 1) -> dict:
    """Assumed device power × training time (× the processes, one device each): an
    estimate, nothing was measured."""
    watts = (gpu_watts if device.startswith("cuda") else cpu_watts) * processes
    return {
        "watt_hours": round(watts * seconds / 3600, 4),
        "assumed_watts": watts,
        "seconds": round(seconds, 2),
        "note": "estimate: assumed device power × training time, not a measurement",
    }


CARD = Path(__file__).with_name("model_card.md")


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """A new adapter's manifest, and its model card."""
    manifest = {"created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())} | manifest
    adapters.save_manifest(folder, manifest)
    _write_card(folder, manifest)


def update_manifest(folder: Path, **changes: Any) -> dict[str, Any]:
    """Merge `changes` into the manifest (as the bot's notes do), and write the card anew."""
    manifest = adapters.update_manifest(folder, **changes)
    _write_card(folder, manifest)
    return manifest


def _write_card(folder: Path, manifest: dict[str, Any]) -> None:
    (folder / "README.md").write_text(model_card(manifest), encoding="utf-8")


def model_card(manifest: dict[str, Any]) -> str:
    """The manifest as a Hugging Face model card."""
    hp, counts = manifest.get("hyperparameters", {}), manifest.get("counts", {})
    phases = [p["name"].upper() for p in manifest.get("phases", [])]
    energy = manifest.get("energy", {})
    return string.Template(CARD.read_text(encoding="utf-8")).safe_substitute(
        id=manifest.get("id", ""), base_model=manifest.get("base_model", ""),
        base_revision=manifest.get("base_revision") or "unknown",
        parent=f"adapter `{manifest['parent']}`" if manifest.get("parent") else "the base model",
        method=" then ".join(phases) or "no training step", method_tag="-".join(phases).lower(),
        steps=sum(p.get("steps", 0) for p in manifest.get("phases", [])),
        learning_rate=hp.get("learning_rate"), batch_size=hp.get("batch_size"),
        lora_r=hp.get("lora_r"), lora_alpha=hp.get("lora_alpha"),
        lora_targets=", ".join(hp.get("lora_targets", [])),
        device=manifest.get("device", ""), dtype=manifest.get("dtype", ""),
        duration=f"{manifest.get('duration_seconds', 0)} s",
        trained_replies=len(manifest.get("message_ids", {}).get("trained", [])),
        heldout=counts.get("heldout", 0), sft=counts.get("sft", 0), kto=counts.get("kto", 0),
        dpo=counts.get("dpo", 0), evaluation=_verdict(manifest.get("evaluation")),
        energy=(f"About {energy.get('watt_hours')} Wh; {energy.get('note')}."
                if energy else "Not recorded."))


def _verdict(evaluation: dict[str, Any] | None) -> str:
    if not evaluation:
        return "Not judged yet (`python -m finetune evaluate ID`)."
    new = evaluation.get("new", {})
    verdict = "promoted" if evaluation.get("promote") else "not promoted"
    scores = (f"Held-out preference accuracy {new['accuracy']:.2f} (95% lower bound "
              f"{new['accuracy_low']:.2f}), compared with {evaluation.get('compared_with')}. "
              if "accuracy" in new else "")
    return f"{scores}Verdict: {verdict}: {evaluation.get('reason', '')}."


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
