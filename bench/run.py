"""Run every taskorg benchmark, print one table, write the results as JSON and Markdown.

    .venv/bin/python bench/run.py --quick     # under 5 minutes: fewer rounds, smaller counts, no testbed
    .venv/bin/python bench/run.py --full      # the counts the issue asks for, testbed and Docker Swarm included

--full writes bench/results.json and bench/RESULTS.md (the figures we quote);
--quick writes bench/results-quick.json and bench/RESULTS-quick.md.

Benchmarks (each also runs alone: `bench/<name>.py --help`):
  footprint   memory and idle CPU of a regular node's services and of the DNS node
  throughput  acknowledged submissions per second, 1 / 10 / 50 tasks per request, 1 and 4 clients
  failover    master killed -> submission acknowledged; node killed -> tasks running again (local cluster;
              --full adds the multi-host testbed)
  speedup     a job of 12 CPU-bound chunks + merge on 1, 2, 3, 4 nodes of 0.3 CPU each
  scale       10,000 tasks on 30 nodes at the default timings, master memory (--quick: 2,000 on 20)
  steadiness  no false failover: 10 idle minutes, then 10 with both cores busy (--full, or --only steadiness)
  peer        Docker Swarm and taskorg on the same testbed hosts: same failure, creation rate one at a time,
              control-plane idle CPU and PSS, each with its ratio (--full, or --peer)

Every figure comes with the machine's load while it was measured: on two cores
our own clusters are most of it, and anything else running shows there too. Exit code 0 when every benchmark ran (whether or
not every target was met), 1 when one could not run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402
from bench.common import figure, fmt, log, verdict  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
ORDER = ("footprint", "throughput", "failover", "speedup", "scale", "steadiness", "failover_testbed", "peer")
TITLES = {
    "footprint": "Footprint (idle 3-node local cluster, default settings)",
    "throughput": "Throughput (3-node local cluster, acknowledged = durable and replicated)",
    "failover": "Failover (3-node local cluster, default settings)",
    "speedup": "Speed-up (4-node local cluster, each node 0.3 CPU)",
    "scale": "Scale (3 full nodes + light nodes: real node and slave services, standby masters on the full nodes; "
             "stand-in runner by setting: no container)",
    "steadiness": "No false failover (3-node local cluster, default timings; idle, then both cores busy)",
    "failover_testbed": "Failover (multi-host testbed, playbook defaults)",
    "peer": "Peer: Docker Swarm and taskorg on the same testbed hosts",
}


def benchmarks(args: argparse.Namespace) -> list[tuple[str, Callable[[], dict[str, Any]]]]:
    from bench import failover, footprint, scale, speedup, steadiness, throughput

    quick = args.quick
    chosen: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("footprint", lambda: footprint.run(quick)),
        ("throughput", lambda: throughput.run(quick)),
        ("failover", lambda: failover.run(quick)),
        ("speedup", lambda: speedup.run(quick)),
        ("scale", lambda: scale.run(quick)),
    ]
    only = set(args.only or ())
    if not quick or "steadiness" in only:
        chosen.append(("steadiness", lambda: steadiness.run(quick)))
    if not quick or args.peer or only & {"peer", "failover_testbed"}:
        # Quick mode runs the testbed failover only when asked by name (`--only failover_testbed`).
        failover_rounds = (5 if "failover_testbed" in only else 0) if quick else \
            (20 if not only or "failover_testbed" in only else 0)
        with_peer = not only or "peer" in only
        chosen.append(("testbed", lambda: testbed_suite(quick, failover_rounds, with_peer)))
    return [(name, fn) for name, fn in chosen if not args.only or name in args.only
            or (name == "testbed" and ({"peer", "failover_testbed"} & set(args.only)))]


def testbed_suite(quick: bool, failover_rounds: int, with_peer: bool) -> dict[str, Any]:
    """One testbed for the testbed failover rounds and the Swarm comparison (provisioning takes minutes)."""
    from bench import failover, peer_swarm, tbcluster

    results: dict[str, Any] = {}
    started = time.monotonic()
    try:
        with tbcluster.provisioned_testbed() as bed:
            if failover_rounds:
                results["failover_testbed"] = _guarded("failover_testbed",
                                                       lambda: failover.run_testbed(bed, failover_rounds))
            if with_peer:
                results["peer"] = _guarded("peer", lambda: peer_swarm.run(quick, bed=bed))
    except Exception as exc:  # the testbed itself did not come up (or not down): say why
        log(f"testbed: {type(exc).__name__}: {exc}")
        results.setdefault("peer", peer_swarm.unavailable(f"the testbed could not be brought up: "
                                                          f"{type(exc).__name__}: {exc}"))
        results["peer"].setdefault("error", traceback.format_exc())
    for result in results.values():
        result.setdefault("seconds", round(time.monotonic() - started, 1))
    return results


def _guarded(name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    started = time.monotonic()
    try:
        result = fn()
    except Exception as exc:
        log(f"{name} failed: {exc}")
        result = {"figures": [figure(f"{name}: the benchmark ran", None, "", "runs", False,
                                     f"{type(exc).__name__}: {exc}"[:300])],
                  "error": traceback.format_exc()}
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def skipped_testbed(quick: bool) -> dict[str, Any]:
    why = ("not run in quick mode: the testbed alone takes several minutes (4 hosts boot, the playbook "
           "provisions them, then Swarm is set up, measured idle and fails over); `bench/run.py --full`, `--quick --peer`, "
           "or `bench/peer_swarm.py`")
    return {"figures": [figure("peer: Docker Swarm side by side", None, "", "runs in --full", None, why)],
            "skipped": why}


# ---- output --------------------------------------------------------------------------------------
def print_table(results: dict[str, Any], file: Any = None) -> None:
    file = file or sys.stdout
    rows = [(name, f) for name in ORDER if name in results for f in results[name]["figures"]]
    width = max(len(f["name"]) for _, f in rows) + 2 if rows else 40
    print(f"\n{'figure':<{width}}{'value':>10}  {'unit':<9}{'target':<22}result", file=file)
    print("-" * (width + 50), file=file)
    current = None
    for name, f in rows:
        if name != current:
            current = name
            print(f"[{TITLES[name]}]", file=file)
        print(f"{f['name']:<{width}}{fmt(f['value']):>10}  {f['unit']:<9}{(f['target'] or 'none set'):<22}"
              f"{verdict(f['met'])}", file=file)


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# taskorg benchmark results",
        "",
        f"Written by `bench/run.py {report['mode_flag']}` — do not edit by hand; run it again.",
        "",
        "| | |",
        "| --- | --- |",
        f"| date (UTC) | {m['date']} |",
        f"| mode | {report['mode']} ({report['seconds']:.0f} s) |",
        f"| commit | `{m['commit']}`{' + uncommitted changes' if m['uncommitted_changes'] else ''} |",
        f"| machine | {m['cores']} cores ({m['cpu'] or 'unknown CPU'}), {m['memory_gib']} GiB, kernel {m['kernel']}, "
        f"Python {m['python']}, Docker {m['docker']} |",
        f"| load average at start | {' / '.join(str(x) for x in m['load_average'])} (1 / 5 / 15 min) |",
        f"| load average at end | {' / '.join(str(x) for x in report['load_average_end'])} |",
        f"| taskorg processes of others at start | {m['taskorg_processes_of_others']} |",
        "",
        "On two cores the benchmark's own clusters are most of the load; each benchmark's own section "
        "gives the machine's CPU use while it ran, so anything else running shows there. How each figure "
        "is measured: `docs/bench.md`.",
        "",
    ]
    met = [f for name in ORDER if name in report["results"] for f in report["results"][name]["figures"]
           if f["met"] is not None]
    missed = [f for f in met if not f["met"]]
    lines += [f"**Targets: {len(met) - len(missed)} of {len(met)} met.**"
              + (" Missed: " + "; ".join(f"{f['name']} ({fmt(f['value'])} {f['unit']}, target {f['target']})"
                                         for f in missed) + "." if missed else ""), ""]
    for name in ORDER:
        if name not in report["results"]:
            continue
        result = report["results"][name]
        lines += [f"## {TITLES[name]}", ""]
        if result.get("seconds") is not None:
            lines += [f"Ran in {result['seconds']:.0f} s."
                      + (f" Machine CPU busy {result['machine_cpu_busy_pct']}% while measured, load "
                         f"{result.get('load1_before')} -> {result.get('load1_after')}."
                         if result.get("machine_cpu_busy_pct") is not None else ""), ""]
        lines += ["| figure | value | target | result | detail |", "| --- | ---: | --- | --- | --- |"]
        for f in result["figures"]:
            value = f"{fmt(f['value'])} {f['unit']}".strip()
            detail = (f["detail"] or "").replace("|", "\\|")
            lines.append(f"| {f['name']} | {value} | {f['target'] or 'none set'} | {verdict(f['met'])} | {detail} |")
        notes = result.get("notes", [])
        if notes:
            lines.append("")
            lines += [f"- {note}" for note in notes]
        if result.get("error"):
            lines += ["", "```", result["error"].strip()[-2000:], "```"]
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--quick", action="store_true", help="under 5 minutes: smaller counts, no testbed")
    mode.add_argument("--full", action="store_true", help="the issue's counts, with the testbed and Swarm")
    parser.add_argument("--peer", action="store_true", help="with --quick: run the testbed and Swarm as well")
    parser.add_argument("--only", nargs="+", choices=("footprint", "throughput", "failover", "speedup", "scale", "steadiness",
                                                      "peer", "failover_testbed"),
                        help="run only these (RESULTS.md then holds only them)")
    parser.add_argument("--json", type=Path, help="default: bench/results.json (--full) or bench/results-quick.json")
    parser.add_argument("--markdown", type=Path, help="default: bench/RESULTS.md (--full) or bench/RESULTS-quick.md")
    args = parser.parse_args()
    suffix = "" if args.full else "-quick"
    args.json = args.json or BENCH_DIR / f"results{suffix}.json"
    args.markdown = args.markdown or BENCH_DIR / f"RESULTS{suffix}.md"

    from taskorg.devtools.images import ensure_busybox_image

    ensure_busybox_image()
    machine = common.machine()
    log(f"{'quick' if args.quick else 'full'} run on {machine['cores']} cores, load {machine['load_average']}, "
        f"commit {machine['commit'][:12]}")
    started = time.monotonic()
    results: dict[str, Any] = {}
    for name, fn in benchmarks(args):
        log(f"--- {name}")
        if name == "testbed":
            results.update(fn())
            continue
        results[name] = _guarded(name, fn)
    if args.quick and "peer" not in results and (not args.only or "peer" in args.only):
        results["peer"] = skipped_testbed(True)
    report = {"mode": "quick" if args.quick else "full", "mode_flag": "--quick" if args.quick else "--full",
              "machine": machine, "seconds": round(time.monotonic() - started, 1),
              "load_average_end": common.load_average(), "results": results}
    args.json.write_text(json.dumps(report, indent=2, default=str))
    args.markdown.write_text(markdown(report))
    print_table(results)
    print(f"\n{report['mode']} run: {report['seconds']:.0f} s; load average {machine['load_average']} at start, "
          f"{report['load_average_end']} at end; commit {machine['commit'][:12]}")
    print(f"wrote {args.json} and {args.markdown}")
    return 1 if any(r.get("error") for r in results.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
