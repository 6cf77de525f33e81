"""The processes a training step runs as: one (`python -m finetune train`), or several that a
launcher started (`torchrun`, `accelerate launch`), which put RANK, WORLD_SIZE, LOCAL_RANK and
the rendezvous address in each one's environment. accelerate reads that environment, joins the
processes with torch.distributed (gloo on CPUs, NCCL on GPUs) and wraps the model in DDP;
this file only decides what it is given: the device and whether it computes in bf16.

Everything but training (export, evaluate, promote: the steps that touch the bot's database,
and every progress line) is done by the main process alone.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_count() -> int:
    """The processes on this machine (they share its cores)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size())))


def device_for(wanted: str) -> tuple[str, torch.dtype]:
    """[finetune] device for this process: under a launcher each process on a machine takes
    its own GPU (LOCAL_RANK); bf16 where the GPU computes it natively, else fp32."""
    from finetune.model import choose_device

    device, dtype = choose_device(wanted)
    if device.startswith("cuda") and world_size() > 1:
        device = f"cuda:{_local_gpu(wanted)}"
    return device, dtype


def _local_gpu(wanted: str) -> int:
    """This process's GPU under a launcher; ModelUnavailable (one line) where processes would
    share a GPU or ask for one that is not there ("invalid device ordinal", said plainly)."""
    import torch

    from engines.transformer.loading import ModelUnavailable

    if wanted.startswith("cuda:"):
        raise ModelUnavailable(
            f'[finetune] device = "{wanted}" names one GPU, but a launcher started '
            f"{world_size()} processes and each takes its own GPU: set device = \"cuda\"")
    local, visible = int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count()
    if local >= visible:
        raise ModelUnavailable(
            f"{local_count()} training processes on this machine but {visible} visible "
            f"GPU{'s' * (visible != 1)}: start at most {visible} (torchrun --nproc-per-node "
            f'{visible}), or train on the CPU ([finetune] device = "cpu")')
    return local


def start(wanted: str) -> tuple[Any, str, torch.dtype]:
    """The accelerate.Accelerator of this process (joined to the others, if any), its device
    and the dtype the base model is loaded in. bf16 models train under bf16 autocast
    (accelerate's mixed precision); the LoRA weights and AdamW's state stay fp32."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    device, dtype = device_for(wanted)
    if device.startswith("cuda:"):
        torch.cuda.set_device(device)  # accelerate's device for a single process: the current one
    # Buffers (rotary tables) are constants here; DDP broadcasting them at each forward would
    # add a collective to every forward, and a hang if processes ever did unequal forwards.
    ddp = DistributedDataParallelKwargs(broadcast_buffers=False)
    accelerator = Accelerator(cpu=not device.startswith("cuda"), kwargs_handlers=[ddp],
                              mixed_precision="bf16" if dtype == torch.bfloat16 else "no")
    return accelerator, device, dtype


def wait_for_main(wanted: str) -> None:
    """Let the main process finish what it alone does (the export) before the others go on."""
    if world_size() > 1:
        from accelerate import PartialState

        device, _ = device_for(wanted)
        PartialState(cpu=not device.startswith("cuda")).wait_for_everyone()


def finish(accelerator: Any) -> None:
    """After training: leave the process group; one process forgets accelerate's state, so the
    next job in this process (tests, a bench) may choose another device."""
    from accelerate.state import AcceleratorState

    if accelerator.num_processes > 1:
        accelerator.end_training()
    else:
        AcceleratorState._reset_state(reset_partial_state=True)
