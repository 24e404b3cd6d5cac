"""Where an idle cluster's CPU goes: py-spy on every running service of a 3-node local cluster.

Samples each process of the active master's node and of the DNS node with
`py-spy record` (sampling, from outside: the service is not slowed or
changed) for a window, and prints per service the functions that were on the
CPU (own samples, idle threads excluded) and the taskorg functions below
which the time was spent (inclusive). `--pending N` first submits N tasks
that fit no node, to see what the master does with work it cannot place.

    .venv/bin/python bench/profile.py [--seconds 20] [--pending 1000] [--top 8]

Needs py-spy (requirements-dev.txt) and root (ptrace of the services).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import BenchCluster, bench_cluster, log  # noqa: E402
from bench.footprint import unplaceable_job  # noqa: E402


def record(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """py-spy in the background: collapsed stacks ("frame;frame;frame count" lines), idle threads left out."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return subprocess.Popen([py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200",
                             "--format", "raw", "--output", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def breakdown(raw: str, top: int) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    """Samples in all; the leaf functions by own samples; taskorg functions by inclusive samples."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[_short(frames[-1])] += count
        for frame in {_short(f) for f in frames if "taskorg/" in f}:
            inclusive[frame] += count
    return total, own.most_common(top), inclusive.most_common(top)


def _short(frame: str) -> str:
    """'tick (taskorg/master/engine.py:240)' -> 'tick (master/engine.py)'."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("taskorg/", "site-packages/", "python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


def profile(cluster: BenchCluster, seconds: float, top: int) -> None:
    master = cluster.index_of(cluster.wait_master())
    targets = {name: pid for name, pid in cluster.pids.items() if name.startswith(f"node{master}/")}
    targets["dns node/dns"] = cluster.pids["dns"]
    folder = Path(tempfile.mkdtemp(prefix="taskorg-profile-"))
    running = {name: (record(pid, seconds, folder / f"{name.replace('/', '_')}.txt"), pid)
               for name, pid in targets.items()}
    for name, (process, _) in running.items():
        try:
            process.wait(timeout=seconds + 60)
        except subprocess.TimeoutExpired:
            process.kill()  # py-spy stuck on a process: report it without a profile
            log(f"py-spy did not finish on {name}")
    for name, (_, pid) in running.items():
        path = folder / f"{name.replace('/', '_')}.txt"
        raw = path.read_text() if path.exists() else ""
        total, own, inclusive = breakdown(raw, top)
        print(f"\n{name} (pid {pid}): {total} samples on the CPU in {seconds:g} s at 200 Hz "
              f"(= {100 * total / (200 * seconds):.2f} % of a core, sampled)")
        print("  own time:")
        for frame, count in own:
            print(f"    {100 * count / max(total, 1):5.1f} %  {frame}")
        print("  below (taskorg functions, inclusive):")
        for frame, count in inclusive:
            print(f"    {100 * count / max(total, 1):5.1f} %  {frame}")
    log(f"raw profiles kept in {folder}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="sampling window per service (default 20)")
    parser.add_argument("--pending", type=int, default=0, help="submit this many tasks that fit no node first")
    parser.add_argument("--top", type=int, default=8, help="functions shown per list (default 8)")
    args = parser.parse_args()
    if args.seconds <= 0 or args.pending < 0 or args.top <= 0:
        parser.error("--seconds and --top must be positive, --pending not negative")
    with bench_cluster(nodes=3, webview=True) as cluster:
        client = cluster.client()
        for number in range((args.pending + 49) // 50):
            client.submit(unplaceable_job(number, min(50, args.pending - 50 * number)), source=f"pending-{number}.yaml")
        time.sleep(5.0)  # start-up work (first reports, the speed probe) is not idle
        profile(cluster, args.seconds, args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
