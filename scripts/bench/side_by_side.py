"""Benchmark: two studio jobs at once on the same cores, torch's fixed thread count against the choice.

Run: ``python scripts/bench/side_by_side.py [--pairs text+text clip+text clip+clip] [--sac-steps 3000]``

The app runs up to ``RLHF_MAX_JOBS`` (2) jobs at once, each in its own process, and torch gives
each process as many threads as the machine has cores. Two such processes on the same cores
wait for each other's threads at the end of every product (``rlhf_core.threads``). This runs
real CLI commands on a fresh data folder, each alone and in pairs side by side, twice:

- *before*: ``RLHF_THREADS`` set to torch's count (every loop on all cores, as the studio did);
- *after*: ``RLHF_THREADS`` unset (each loop's units choose: ``rlhf_core.threads``).

Commands: ``text`` (``train-reward`` on a text project: text-lora, MiniLM with LoRA), ``clip``
(``train-reward --fresh`` on the default MiniGrid demo: the ensemble on EfficientNet
features), ``sac`` (SAC on Pendulum-v1 with the true reward, ``--sac-steps`` steps). It prints each
command's wall time, the pair's slow-down against the command alone, and after's speed-up over
before. A separate row times ``train-reward --kind bt`` with its solver's BLAS on the libraries'
default threads (the code before) and on one (``rlhf_core.rewards.linear.one_blas_thread``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RLHF = [sys.executable, "-m", "app.cli"]
COMMANDS = {
    "text": ["train-reward", "--project", "{text}"],
    "clip": ["train-reward", "--project", "{clip}", "--fresh"],
    "sac": ["train-policy", "--project", "{pend}", "--reward", "true", "--steps", "{sac_steps}"],
}
#: The solver's BLAS on the libraries' own thread counts: the code before one_blas_thread.
BT_BEFORE = (
    "import contextlib, sys\n"
    "import rlhf_core.rewards.linear as linear\n"
    "linear.one_blas_thread = contextlib.nullcontext\n"
    "from app.cli import main\n"
    "sys.argv = ['rlhf'] + sys.argv[1:]\n"
    "main()\n"
)


def _log(data: Path, n: int) -> Path:
    """Where command ``n``'s progress bars and errors go (a file: a pipe nobody reads would fill)."""
    return data / f"command-{n}.log"


def _check(proc: subprocess.Popen, log: Path) -> None:
    if proc.wait() != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-5:])
        raise SystemExit(f"failed: {' '.join(map(str, proc.args))}\n{tail}")


def _rlhf(data: Path, *args: str) -> None:
    log = _log(data, 0)
    with log.open("w") as err:
        _check(subprocess.Popen([*RLHF, "--data-dir", str(data), *args], stdout=subprocess.DEVNULL, stderr=err), log)


def _prepare(data: Path) -> None:
    """Two projects of each kind (a pair of the same kind trains two), labeled by scripted teachers."""
    for i in (1, 2):
        _rlhf(data, "demo-text", "--project", f"text{i}")
        _rlhf(data, "label-synthetic", "--project", f"text{i}", "--teacher", "concise", "-n", "200")
        _rlhf(data, "demo", "--project", f"clip{i}")
        _rlhf(data, "label-synthetic", "--project", f"clip{i}", "--teacher", "oracle", "-n", "200")
        _rlhf(data, "demo", "--project", f"pend{i}", "--env", "Pendulum-v1", "--segments", "20", "--queries", "20")


def _command(kind: str, i: int, sac_steps: int) -> list[str]:
    fill = {"text": f"text{i}", "clip": f"clip{i}", "pend": f"pend{i}", "sac_steps": str(sac_steps)}
    return [part.format(**fill) for part in COMMANDS[kind]]


def _run_together(data: Path, commands: list[list[str]], env: dict[str, str]) -> list[float]:
    """Start every command at once; each one's wall time."""
    procs = []
    for n, args in enumerate(commands, 1):
        log = _log(data, n)
        with log.open("w") as err:
            command = [*RLHF, "--data-dir", str(data), *args]
            proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err)
        procs.append((time.perf_counter(), proc, log))
    ends: dict[int, float] = {}
    while len(ends) < len(procs):  # each one's end as it comes, whichever ends first
        for n, (_, proc, log) in enumerate(procs):
            if n not in ends and proc.poll() is not None:
                ends[n] = time.perf_counter()
                _check(proc, log)
        time.sleep(0.05)
    return [ends[n] - start for n, (start, _, _) in enumerate(procs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="+", default=["text+text", "clip+text", "sac+sac"])
    parser.add_argument("--sac-steps", type=int, default=3000)
    parser.add_argument("--no-bt", action="store_true", help="skip the linear BT row")
    args = parser.parse_args()
    import torch

    cores = torch.get_num_threads()
    data = Path(tempfile.mkdtemp(prefix="side-by-side-"))
    print(f"torch threads {cores}, usable CPUs {len(os.sched_getaffinity(0))}; data {data}", flush=True)
    try:
        _prepare(data)
        modes = {"before": {**os.environ, "RLHF_THREADS": str(cores)}, "after": dict(os.environ)}
        modes["after"].pop("RLHF_THREADS", None)
        for env in modes.values():
            env["RLHF_DEVICE"] = "cpu"
        kinds = sorted({k for pair in args.pairs for k in pair.split("+")})
        alone: dict[tuple[str, str], float] = {}
        for kind in kinds:
            for mode, env in modes.items():
                [alone[kind, mode]] = _run_together(data, [_command(kind, 1, args.sac_steps)], env)
                print(f"alone   {kind:5s} {mode:6s} {alone[kind, mode]:6.1f} s", flush=True)
        print("| pair | command | alone: before / after | side by side: before / after | slow-down: before / after "
              "| after's speed-up |")  # fmt: skip
        print("|---|---|---|---|---|---|")
        for pair in args.pairs:
            a, b = pair.split("+")
            together = {
                mode: _run_together(data, [_command(a, 1, args.sac_steps), _command(b, 2, args.sac_steps)], env)
                for mode, env in modes.items()
            }
            for j, kind in enumerate((a, b)):
                tb, ta = together["before"][j], together["after"][j]
                ab, aa = alone[kind, "before"], alone[kind, "after"]
                print(
                    f"| {pair} | {kind} | {ab:.1f} / {aa:.1f} s | {tb:.1f} / {ta:.1f} s "
                    f"| {tb / ab:.2f}x / {ta / aa:.2f}x | **{tb / ta:.2f}x** |",
                    flush=True,
                )
        if not args.no_bt:
            env = modes["after"]
            bt = ["--data-dir", str(data), "train-reward", "--project", "clip1", "--kind", "bt"]
            times = []
            for command in ([sys.executable, "-c", BT_BEFORE, *bt], [*RLHF, *bt]):
                with _log(data, 0).open("w") as err:
                    start = time.perf_counter()
                    _check(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err), _log(data, 0))
                    times.append(time.perf_counter() - start)
            before, after = times
            print(f"train-reward --kind bt alone: BLAS on its default threads {before:.1f} s, on one {after:.1f} s: "
                  f"**{before / after:.2f}x**")  # fmt: skip
    finally:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
