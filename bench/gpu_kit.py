"""`make gpu-kit`: what the first GPU run (bench/gpu_first_run.sh) needs that the GPU machine
lacks, built here where there is a network: wheels in `.whl/` and a pre-trained tiny model in
`scratch/tiny`, together under the 64 MiB that may travel with the working tree.

    python -m bench.gpu_kit [--steps 200]

The GPU machine's image has no network, Python 3.12, torch, transformers 5.17, accelerate and
some 200 packages more (bench/gpu_image.txt). Which distributions the run needs is not written
down by hand: the modules it runs are imported here, and each imported module is traced to the
distribution it came from. Those the image lacks are carried, and so are the ones whose version
we pin and the image may not have (PINNED); each at the version installed here, as a cp312
manylinux or pure-Python wheel, without dependencies (the list is the closure already).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata as metadata
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHEELS = ROOT / ".whl"
TINY = ROOT / "scratch" / "tiny"
LIMIT = 64 * 2**20
# What bench/gpu_first_run.sh runs: the CUDA tests (with their conftest and pytest-asyncio), the
# transformer bench, a fine-tuning job, and the engine serving its adapter.
RUNS = ["pytest", "pytest_asyncio", "tests.conftest", "tests.test_cuda", "tests.finetune_helpers",
        "tests.tiny_model", "bench.transformer", "finetune.__main__", "finetune.run",
        "finetune.train", "finetune.evaluate", "engines.transformer.engine", "bot.store",
        "bot.adapters", "peft"]
PINNED = {"transformers", "peft", "regex", "pytest", "pytest-asyncio"}  # ours, not the image's
NOT_WHEELS = {"eliza2llm", "torch"}  # the checkout itself; the image's CUDA build


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_distributions() -> set[str]:
    """The distributions whose modules importing RUNS loads, in a fresh interpreter."""
    probe = ("import importlib, importlib.metadata as m, json, sys\n"
             f"for name in {RUNS!r}: importlib.import_module(name)\n"
             "found = m.packages_distributions()\n"
             "tops = {n.split('.')[0] for n in sys.modules}\n"
             "print(json.dumps(sorted({d for t in tops for d in found.get(t, [])})))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    return {canonical(d) for d in json.loads(out.splitlines()[-1])}


def on_the_image() -> set[str]:
    lines = (ROOT / "bench" / "gpu_image.txt").read_text().splitlines()
    return {canonical(x) for x in lines if x and not x.startswith("#")}


def to_carry() -> list[str]:
    needed = imported_distributions() - {canonical(n) for n in NOT_WHEELS}
    carry = sorted((needed - on_the_image()) | (needed & {canonical(p) for p in PINNED}))
    return [f"{name}=={metadata.version(name)}" for name in carry]


def download(requirements: list[str]) -> None:
    WHEELS.mkdir(exist_ok=True)
    for old in WHEELS.glob("*.whl"):
        old.unlink()
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                    "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
                    "--abi", "cp312", "--abi", "abi3", "--abi", "none",
                    "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
                    "--platform", "manylinux2014_x86_64", "--platform", "any",
                    "-d", str(WHEELS), *requirements], check=True)


def build_tiny(steps: int) -> None:
    if not (TINY / "config.json").is_file():
        subprocess.run([sys.executable, "-m", "engines.transformer", "make-tiny", str(TINY),
                        "--pretrain-steps", str(steps)], cwd=ROOT, check=True)


def size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="the tiny model's pre-training")
    args = parser.parse_args()
    requirements = to_carry()
    print("carrying:", " ".join(requirements))
    download(requirements)
    build_tiny(args.steps)
    wheels, tiny = size(WHEELS), size(TINY)
    for wheel in sorted(WHEELS.glob("*.whl")):
        print(f"  {wheel.stat().st_size / 2**20:6.2f} MiB  {wheel.name}")
    print(f".whl/ {wheels / 2**20:.1f} MiB + scratch/tiny {tiny / 2**20:.1f} MiB = "
          f"{(wheels + tiny) / 2**20:.1f} MiB of the 64 MiB that may travel")
    if wheels + tiny > LIMIT:
        sys.exit("over the limit: the device tool would refuse the working tree")


if __name__ == "__main__":
    importlib.invalidate_caches()
    main()
