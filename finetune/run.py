"""The steps of a job, each callable alone (python -m finetune STEP) or all in one (`run`):
export -> train -> evaluate -> promote. Each step reports with progress.emit."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bot.adapters import LOSS_CURVE, Adapters
from bot.store import Adapter, Store
from finetune import export as exporting
from finetune.manifest import energy_estimate, plot_loss, update_manifest, write_manifest
from finetune.progress import emit
from finetune.settings import Settings

TOO_FEW = "too_few"


def with_adapters(settings: Settings, action: Callable[[Adapters], Awaitable[Any]]) -> Any:
    """Run `action` on the adapter registry, with the store open for just that long."""

    async def run() -> Any:
        store = await Store.open(settings.db)
        try:
            return await action(Adapters(store, settings.adapters_dir))
        finally:
            await store.close()

    return asyncio.run(run())


def do_export(settings: Settings) -> exporting.Dataset:
    data = asyncio.run(exporting.export(settings))
    emit(event="exported", **data.counts())
    return data


def enough_votes(settings: Settings, data: exporting.Dataset) -> bool:
    voted = len(data.kto) + len(data.heldout)
    if voted >= settings.options.min_votes:
        return True
    emit(event=TOO_FEW, votes=voted, needed=settings.options.min_votes,
         message=f"only {voted} voted replies, {settings.options.min_votes} needed: no adapter")
    return False


def do_train(settings: Settings, data: exporting.Dataset, job_id: int | None = None) -> str:
    """Train, save adapters/<id>/ with its manifest and loss curve; returns the id."""
    import torch

    from finetune import model as modeling
    from finetune.batches import Encoder
    from finetune.train import Trainer

    opts = settings.options
    device, dtype = modeling.choose_device(opts.device)
    threads = modeling.limit_threads(opts.threads)
    parent_id = with_adapters(settings, lambda a: a.active())
    parent = settings.folders.folder(parent_id) if opts.continue_from_active and parent_id else None
    base, tokenizer = modeling.load_base(settings, device, dtype)
    revision = modeling.base_revision(settings.model.model, base)
    torch.manual_seed(opts.seed)  # the fresh LoRA weights: the same votes, the same adapter
    model = modeling.with_lora(base, settings, parent)
    encoder = Encoder(tokenizer, settings.system_prompt, opts.max_tokens)
    result = Trainer(model, encoder, opts, device).run(data)
    adapter_id = settings.folders.new_id(job_id)
    tmp = settings.folders.partial(adapter_id)
    model.save_pretrained(tmp)
    write_manifest(tmp, {
        "id": adapter_id, "base_model": settings.model.model, "base_revision": revision,
        "parent": parent_id if parent else "", "job": job_id,
        "message_ids": data.message_ids(), "counts": data.counts(),
        "phases": [asdict(p) for p in result.phases],
        "hyperparameters": asdict(opts), "device": device, "dtype": str(dtype).split(".")[-1],
        "threads": threads if device == "cpu" else None,
        "duration_seconds": round(result.seconds, 2),
        "energy": energy_estimate(result.seconds, device, opts.cpu_watts, opts.gpu_watts),
        "metrics": {f"final_{p.name}_loss": result.final_loss(p.name) for p in result.phases},
    })
    if result.curve:
        plot_loss(result.curve, tmp / LOSS_CURVE, f"adapter {adapter_id}")
    settings.folders.publish(adapter_id)  # whole or not at all
    emit(event="trained", adapter=adapter_id, seconds=round(result.seconds, 1))
    return adapter_id


def do_evaluate(settings: Settings, data: exporting.Dataset, adapter_id: str) -> dict[str, Any]:
    """Compare with the active adapter on the held-out votes; record the verdict in the
    manifest and the store (as a candidate; `promote` makes it active)."""
    from finetune import evaluate
    from finetune import model as modeling
    from finetune.batches import Encoder

    opts = settings.options
    folder = settings.folders.folder(adapter_id)
    active_id = with_adapters(settings, lambda a: a.active())
    why_not = evaluate.can_judge(data.heldout)
    if why_not:
        verdict = {"promote": False, "reason": why_not, "new": {}, "active": {}}
    else:
        device, dtype = modeling.choose_device(opts.device)
        modeling.limit_threads(opts.threads)
        base, tokenizer = modeling.load_base(settings, device, dtype)
        active = settings.folders.folder(active_id) if active_id else None
        model = evaluate.load_for_eval(base, folder, active)
        encoder = Encoder(tokenizer, settings.system_prompt, opts.max_tokens)
        names = {"new": "candidate", "active": "active" if active else ""}
        scored = evaluate.compare(model, encoder, data.heldout, names, device, opts.batch_size)
        decision = evaluate.gate(scored["new"], scored["active"], opts.tolerance,
                                 opts.min_accuracy)
        verdict = {"promote": decision.promote, "reason": decision.reason} | scored
    verdict["compared_with"] = active_id or "base"
    manifest = update_manifest(folder, evaluation=verdict)
    status = "candidate" if verdict["promote"] else "rejected"
    adapter = Adapter(adapter_id, manifest["base_model"], str(folder), status,
                      manifest["metrics"] | {"evaluation": verdict}, manifest.get("job"))
    with_adapters(settings, lambda a: a.record(adapter))
    emit(event="evaluated", adapter=adapter_id, **verdict)
    return verdict


def do_promote(settings: Settings, adapter_id: str) -> None:
    with_adapters(settings, lambda a: a.promote(adapter_id))
    emit(event="promoted", adapter=adapter_id)


def do_rollback(settings: Settings) -> tuple[str, str]:
    retired, active = with_adapters(settings, lambda a: a.rollback())
    emit(event="rolled_back", retired=retired, active=active or "base")
    return retired, active


def do_run(settings: Settings, job_id: int | None) -> int:
    """The whole job; the last line says how it ended: {"event": "done", ...}."""
    data = do_export(settings)
    if not enough_votes(settings, data):
        emit(event="done", adapter="", promoted=False, reason=TOO_FEW)
        return 0
    adapter_id = do_train(settings, data, job_id)
    verdict = do_evaluate(settings, data, adapter_id)
    if verdict["promote"]:
        do_promote(settings, adapter_id)
    emit(event="done", adapter=adapter_id, promoted=verdict["promote"], reason=verdict["reason"],
         accuracy=verdict.get("new", {}).get("accuracy"))
    return 0


def remove_partial(settings: Settings) -> None:
    settings.folders.remove_partial()


def status(settings: Settings) -> list[dict[str, Any]]:
    adapters = with_adapters(settings, lambda a: a.all())
    return [{"id": a.id, "status": a.status, "accuracy": a.accuracy, "path": a.path,
             "lineage": settings.folders.lineage(a.id)} for a in adapters]


def dataset(settings: Settings) -> exporting.Dataset:
    return exporting.read(Path(settings.dataset_dir))
