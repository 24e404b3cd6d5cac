"""Typed messages decoded by several threads at their type's first use (taskorg/protocol.py, `ready`).

msgspec 0.22.0 builds a Struct type's decoding information on first use; threads doing that at the
same moment crashed the process with a segfault. Each case runs in a fresh interpreter (the crash
kills it; the information is per process), many times, with the GIL handed over as often as it can."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROGRAM = """
import sys, threading
sys.setswitchinterval(1e-6)
from taskorg.protocol import StartOrder, decode, encode
from taskorg.spec import parse_spec_text
spec = parse_spec_text("name: s\\nimage: busybox\\ncommand: sleep 1\\nresources: {cpus: 0.5, memory: 8M}\\n").tasks[0]
data = encode(StartOrder(epoch=3, task_id="t-1", index=0, attempt=2, spec=spec, job="j-1", env={"A": "1"}))
from taskorg import protocol
protocol._READY.clear()  # as a fresh process that never decoded one (encoding built nothing for decoding)
gate = threading.Barrier(8)
def first_use():
    gate.wait()
    decode(data, StartOrder)
threads = [threading.Thread(target=first_use) for _ in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
"""


def test_eight_threads_decoding_their_first_start_order_together_never_crash() -> None:
    crashed = []
    for _ in range(12):
        run = subprocess.run([sys.executable, "-c", PROGRAM], cwd=REPO, capture_output=True, timeout=60)
        if run.returncode != 0:
            crashed.append((run.returncode, run.stderr.decode(errors="replace")[-300:]))
    assert not crashed, crashed
