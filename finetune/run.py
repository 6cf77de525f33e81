"""The steps of a job, each callable alone (python -m finetune STEP) or all in one (`run`):
export -> train -> evaluate -> promote. Each step reports with progress.emit."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bot import job_protocol as said
from bot.adapters import BASE, LOSS_CURVE, MANIFEST, Adapters, read_manifest
from bot.store import Adapter, Store
from finetune import export as exporting
from finetune import processes
from finetune.manifest import energy_estimate, plot_loss, update_manifest, write_manifest
from finetune.progress import emit
from finetune.settings import Settings

TOO_FEW = said.TOO_FEW
TRAINED = "trained"  # registered by `train`, not yet judged by `evaluate`
UNREGISTERED = "unregistered"  # a folder under adapters/ that the store does not know


class StepError(Exception):
    """A step that cannot be done as asked (an unknown adapter id): one line for the user."""


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
    counts = data.counts()
    emit(said.Exported(event=said.EXPORTED, sft=counts["sft"], kto=counts["kto"],
                       dpo=counts["dpo"], heldout=counts["heldout"],
                       cut=counts.get("cut", 0), bot_words=counts.get("bot_words", 0),
                       scrubbed=data.privacy.get("scrubbed", 0),
                       dropped=data.privacy.get("dropped", 0), privacy=data.privacy))
    return data


def enough_votes(settings: Settings, data: exporting.Dataset) -> bool:
    voted = len(data.kto) + len(data.heldout)
    if voted >= settings.options.min_votes:
        return True
    needed = settings.options.min_votes
    emit(said.TooFew(event=said.TOO_FEW, votes=voted, needed=needed,
                     message=f"only {voted} voted replies, {needed} needed: no adapter"))
    return False


def do_train(settings: Settings, data: exporting.Dataset, job_id: int | None = None) -> str:
    """Train, on this process and any others its launcher started; the main process saves
    adapters/<id>/ with its manifest and loss curve and returns the id (the others: "").
    Reads only the exported dataset (it names the adapter to continue from); registers the
    adapter as trained where the bot's database is (on a GPU host without it, `evaluate` or
    `promote` next to the bot will)."""
    accelerator, device, dtype = processes.start(settings.options.device)
    try:
        adapter_id = _train(settings, data, job_id, accelerator, device, dtype)
        # The processes leave together, once the adapter is saved: one that leaves early
        # closes its connections while the main process may still be reading from them.
        accelerator.wait_for_everyone()
        return adapter_id
    finally:
        processes.finish(accelerator)


def _train(settings: Settings, data: exporting.Dataset, job_id: int | None, accelerator: Any,
           device: str, dtype: Any) -> str:
    import torch
    from accelerate.utils import gather_object

    from finetune import model as modeling
    from finetune.batches import Encoder
    from finetune.train import Trainer

    opts = settings.options
    threads = modeling.limit_threads(opts.threads, processes.local_count())
    parent_id = data.active if opts.continue_from_active else ""
    parent = settings.folders.folder(parent_id) if parent_id else None
    base, tokenizer = modeling.load_base(settings, device, dtype)
    revision = modeling.base_revision(settings.model.model, base)
    torch.manual_seed(opts.seed)  # the fresh LoRA weights: the same votes, the same adapter
    model = modeling.with_lora(base, settings, parent)
    encoder = Encoder(tokenizer, settings.system_prompt, opts.max_tokens)
    trainer = Trainer(model, encoder, opts, accelerator)
    result = trainer.run(data)
    devices, cpu_seconds = zip(*gather_object([(device, result.cpu_seconds)]), strict=True)
    if not accelerator.is_main_process:
        return ""
    adapter_id = settings.folders.new_id(job_id)
    tmp = settings.folders.start(adapter_id)
    model.save_pretrained(tmp)
    batching = trainer.batching
    write_manifest(tmp, {
        "id": adapter_id, "base_model": settings.model.model, "base_revision": revision,
        "parent": parent_id if parent else "", "job": job_id,
        "message_ids": data.message_ids(), "counts": data.counts(), "privacy": data.privacy,
        "phases": [asdict(p) for p in result.phases],
        "hyperparameters": asdict(opts), "device": device, "dtype": str(dtype).split(".")[-1],
        "mixed_precision": accelerator.mixed_precision,
        "world_size": accelerator.num_processes, "devices": list(devices),
        "cpu_seconds": round(sum(cpu_seconds), 2),  # all processes, training loop only
        "global_batch": batching.size, "micro_batch": batching.micro,
        "accumulation_steps": batching.accumulation,
        "threads": threads if device == "cpu" else None,
        "duration_seconds": round(result.seconds, 2), "tokens": result.tokens,
        "tokens_per_second": round(result.tokens / max(result.seconds, 1e-9), 1),
        "energy": energy_estimate(result.seconds, device, opts.cpu_watts, opts.gpu_watts,
                                  accelerator.num_processes),
        "metrics": {f"final_{p.name}_loss": result.final_loss(p.name) for p in result.phases},
    })
    if result.curve:
        plot_loss(result.curve, tmp / LOSS_CURVE, f"adapter {adapter_id}")
    folder = settings.folders.publish(adapter_id)  # whole or not at all
    if settings.db.exists():  # registered at once, so `promote ID` and `status` know it
        trained = registered(folder, read_manifest(folder), TRAINED)
        with_adapters(settings, lambda a: a.register(trained))
    emit(said.Trained(event=said.TRAINED, adapter=adapter_id, seconds=round(result.seconds, 1)))
    return adapter_id


def registered(folder: Path, manifest: dict[str, Any], status: str,
               metrics: dict[str, Any] | None = None) -> Adapter:
    """The store's row for the adapter in `folder`, from its manifest."""
    return Adapter(folder.name, manifest.get("base_model", ""), str(folder), status,
                   manifest.get("metrics", {}) | (metrics or {}), manifest.get("job"))


def whole_folder(settings: Settings, adapter_id: str) -> Path:
    """The folder of a finished adapter; StepError naming the known ones if there is none."""
    folder, known = settings.folders.folder(adapter_id), settings.folders.ids()
    if adapter_id in known and (folder / MANIFEST).is_file():
        return folder
    names = ", ".join(known) or "none yet"
    raise StepError(f"no adapter {adapter_id!r} in {settings.adapters_dir} (known: {names})")


def do_evaluate(settings: Settings, data: exporting.Dataset, adapter_id: str) -> dict[str, Any]:
    """Compare with the active adapter on the held-out votes, and with the base model on
    replies both sample to held-out prompts (finetune/judge.py); record the verdict in the
    manifest and the store (as a candidate; `promote` makes it active)."""
    folder = whole_folder(settings, adapter_id)
    active_id = with_adapters(settings, lambda a: a.active())
    why_not = _can_judge(data)
    if why_not:
        verdict = {"promote": False, "reason": why_not, "new": {}, "active": {}}
    else:
        active = settings.folders.folder(active_id) if active_id else None
        verdict = _judge(settings, data, folder, active)
    verdict["compared_with"] = active_id or "base"
    manifest = update_manifest(folder, evaluation=verdict)
    status = "candidate" if verdict["promote"] else "rejected"
    adapter = registered(folder, manifest, status, {"evaluation": verdict})
    with_adapters(settings, lambda a: a.register(adapter))
    emit({"event": said.EVALUATED, "adapter": adapter_id} | verdict)
    return verdict


def _can_judge(data: exporting.Dataset) -> str:
    from finetune import evaluate

    return evaluate.can_judge(data.heldout)


def _judge(settings: Settings, data: exporting.Dataset, folder: Path,
           active: Path | None) -> dict[str, Any]:
    from finetune import evaluate, ruling
    from finetune import model as modeling
    from finetune.batches import Encoder

    opts = settings.options
    device, dtype = modeling.choose_device(opts.device)
    modeling.limit_threads(opts.threads)
    base, tokenizer = modeling.load_base(settings, device, dtype)
    model = evaluate.load_for_eval(base, folder, active)
    encoder = Encoder(tokenizer, settings.system_prompt, opts.max_tokens)
    names = {"new": "candidate", "active": "active" if active else ""}
    scored = evaluate.compare(model, encoder, data.heldout, names, device, opts.batch_size)
    decision = evaluate.gate(scored["new"], scored["active"], opts.tolerance, opts.min_accuracy)
    verdict = {"promote": decision.promote, "reason": decision.reason,
               "decided_by": ruling.VOTES} | scored
    if opts.gate_prompts:
        judged = _sampled(settings, data, model, encoder, device, folder)
        ruled = ruling.rule(decision, scored, judged, opts)
        verdict |= judged | {"promote": ruled.promote, "reason": ruled.reason,
                             "decided_by": ruled.decided_by, "votes_reason": decision.reason}
    return verdict


def _sampled(settings: Settings, data: exporting.Dataset, model: Any, encoder: Any,
             device: str, folder: Path) -> dict[str, Any]:
    """The reward model (trained, checked, saved beside the adapter) and the sampled replies'
    KL, fluency and rewards."""
    from finetune import judge
    from finetune import reward as rewarding

    opts, engine = settings.options, settings.model
    with model.disable_adapter():
        reward_model, check = rewarding.train(model, encoder, data, device,
                                              opts.reward_min_heldout)
    if reward_model is not None:
        reward_model.save(folder / rewarding.FILE)
    how = judge.Sampling(engine.temperature, engine.top_k, engine.top_p,
                         engine.repetition_penalty, opts.gate_max_new_tokens)
    prompts = judge.gate_prompts(data.heldout, opts.gate_prompts, opts.seed)
    sampled = judge.measure(model, encoder, prompts, how, reward_model, device, opts.seed)
    emit(said.Judged(event=said.JUDGED, kl=sampled["kl"], fluency=sampled["fluency"],
                     reward_model=check["accuracy"], gain=sampled.get("reward", {}).get("gain")))
    return {"sampled": sampled, "reward_model": check}


SHELL = "python -m finetune"  # who promotes or rolls back, when a shell command does


def do_promote(settings: Settings, adapter_id: str, by: str = f"{SHELL} promote") -> None:
    """Make any trained adapter the active one, judged or not; a folder the store does not
    know yet (copied in, say) is registered first. As the bot does it (bot/adapters.py), but
    with no engines here: the running bot notices the change and swaps it in."""

    async def promote(adapters: Adapters) -> None:
        if await adapters.find(adapter_id) is None:
            folder = whole_folder(settings, adapter_id)
            await adapters.register(registered(folder, read_manifest(folder), TRAINED))
        await adapters.promote(adapter_id, by)

    with_adapters(settings, promote)
    emit(said.Promoted(event=said.PROMOTED, adapter=adapter_id))


def do_rollback(settings: Settings) -> tuple[str, str]:
    """Back to the adapter active before, as the bot's /rollback does it."""
    done = with_adapters(settings, lambda a: a.rollback("", f"{SHELL} rollback"))
    if not done.retired:  # as the bot's /rollback says it: nothing happened
        emit(said.NothingToRollBack(
            event=said.NOTHING_TO_ROLL_BACK, active=BASE,
            message="there is no adapter to roll back: the base model is active"))
    else:
        emit(said.RolledBack(event=said.ROLLED_BACK, retired=done.retired,
                             active=done.active or BASE))
    return done.retired, done.active


def do_run(settings: Settings, job_id: int | None) -> int:
    """The whole job; the last line says how it ended: {"event": "done", ...}. The exported
    text exists only while the job runs."""
    try:
        return _run(settings, job_id)
    finally:
        if processes.is_main():
            shutil.rmtree(settings.dataset_dir, ignore_errors=True)


def _run(settings: Settings, job_id: int | None) -> int:
    """Under a launcher every process runs this: the main one alone exports, evaluates and
    promotes (the steps that touch the database); all of them train."""
    data = do_export(settings) if processes.is_main() else None
    processes.wait_for_main(settings.options.device)
    data = data or dataset(settings)
    if not enough_votes(settings, data):
        emit(said.Done(event=said.DONE, adapter="", promoted=False, reason=TOO_FEW,
                       accuracy=None))
        return 0
    adapter_id = do_train(settings, data, job_id)
    if not processes.is_main():
        return 0
    verdict = do_evaluate(settings, data, adapter_id)
    if verdict["promote"]:
        do_promote(settings, adapter_id, by=f"job {job_id}" if job_id else f"{SHELL} run")
    emit(said.Done(event=said.DONE, adapter=adapter_id, promoted=verdict["promote"],
                   reason=verdict["reason"],
                   accuracy=said.held_out_accuracy({"evaluation": verdict})))
    return 0


def remove_partial(settings: Settings) -> None:
    settings.folders.remove_partial()


def status(settings: Settings) -> list[dict[str, Any]]:
    """Every adapter the store knows, newest first, then every folder it does not know."""

    async def read(adapters: Adapters) -> tuple[list[Adapter], list[str]]:
        return await adapters.all(), await adapters.unregistered()

    known, loose = with_adapters(settings, read)
    folders = settings.folders
    rows = [{"id": a.id, "status": a.status, "accuracy": a.accuracy, "path": a.path,
             "lineage": folders.lineage(a.id)} for a in known]
    return rows + [{"id": i, "status": UNREGISTERED, "accuracy": None,
                    "path": str(folders.folder(i)), "lineage": folders.lineage(i)} for i in loose]


def dataset(settings: Settings) -> exporting.Dataset:
    return exporting.read(Path(settings.dataset_dir))
