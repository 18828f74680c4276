"""Benchmark: peak memory and time of ``rlhf import`` as the file grows.

Run: ``python scripts/bench/import_memory.py [--pairs 50000 1000000] [--baseline REV]``

For each size, writes a JSON Lines file of labeled pairs (``prompt, chosen, rejected``,
prompts of about 60 characters, responses of about 100, every line a new pair) and imports
it with the CLI into a fresh data folder, in a child process whose peak resident memory
(``ru_maxrss``) is read when it exits. Target (issue 14): a million pairs in under 1 GB.
``--baseline REV`` runs the same import with the code of a git revision (checked out into a
temporary worktree) side by side, e.g. the commit before the streaming import.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORDS = "the a quick model answer short long clear helpful polite review movie plot actor scene story".split()


def write_file(path: Path, pairs: int, seed: int = 0) -> int:
    """A labeled JSON Lines file of ``pairs`` distinct pairs; its size in bytes."""
    import numpy as np

    rng = np.random.default_rng(seed)
    with path.open("w", encoding="utf-8") as out:
        for i in range(pairs):
            words = rng.integers(0, len(WORDS), size=40)
            text = [WORDS[w] for w in words]
            prompt = f"Question {i}: " + " ".join(text[:8])
            chosen = f"Answer {i}a: " + " ".join(text[8:24])
            rejected = f"Answer {i}b: " + " ".join(text[24:40])
            out.write(json.dumps({"prompt": prompt, "chosen": chosen, "rejected": rejected}) + "\n")
    return path.stat().st_size


def measure(root: Path, file: Path, data_dir: Path) -> tuple[float, float, str]:
    """Seconds and peak MiB of one import by the code under ``root``; the CLI's line."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from app.cli import main; "
        "sys.argv = ['rlhf', '--data-dir', sys.argv[2], 'import', '--project', 'big', sys.argv[3]]; main()"
    )
    env = {**os.environ, "PYTHONPATH": str(root)}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(root), str(data_dir), str(file)],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    out = proc.stdout.read() if proc.stdout else ""
    _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"import failed:\n{out}")
    return seconds, usage.ru_maxrss / 1024, out.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, nargs="+", default=[50_000, 1_000_000])
    parser.add_argument("--baseline", help="git revision to run side by side (a worktree in a temp folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        roots = {"ours": ROOT}
        if args.baseline:
            subprocess.run(
                ["git", "worktree", "add", "--detach", str(tmp / "base"), args.baseline], cwd=ROOT, check=True
            )
            roots["baseline"] = tmp / "base"
        try:
            print(f"{'pairs':>9} {'file MB':>8} {'code':>9} {'seconds':>8} {'peak MiB':>9}")
            for pairs in args.pairs:
                file = tmp / f"pairs-{pairs}.jsonl"
                size = write_file(file, pairs)
                for label, root in roots.items():
                    seconds, peak, line = measure(root, file, tmp / f"data-{label}-{pairs}")
                    print(
                        f"{pairs:>9} {size / 1e6:>8.1f} {label:>9} {seconds:>8.1f} {peak:>9.0f}   {line[:90]}",
                        flush=True,
                    )
        finally:
            if "baseline" in roots:
                subprocess.run(["git", "worktree", "remove", "--force", str(roots["baseline"])], cwd=ROOT, check=False)


if __name__ == "__main__":
    main()
