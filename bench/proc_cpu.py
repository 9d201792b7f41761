"""CPU-seconds spent by each kind of process of a live system between two snapshots of /proc.

Why two snapshots are enough: a process's `utime + stime` (fields 14-15 of /proc/PID/stat) is
its own CPU, and `cutime + cstime` (16-17) the CPU of the children it has waited for, their own
waited-for children included (proc(5)). Summing, over the processes alive at the end, the
growth of both, every CPU tick of the window is counted once: in the process that spent it if
it is still alive, else in its nearest ancestor that reaped it. A task process lives about a
second and is never seen by a sampler; its CPU shows in the cutime of the Airflow worker that
forked it. A process alive at the first snapshot and gone at the second had its earlier CPU
counted into its parent at reaping: that part is subtracted again.

Kinds (`classify`): the services of `ops up` (their pid files) and the embedded PostgreSQL
(postmaster.pid), and inside Airflow by command line: the scheduler, the LocalExecutor workers
(each is the supervisor of the task it runs: Airflow 3 `supervise()` forks the task process
from it), the task processes, the dag-processor, the triggerer and the api-server.
Linux only; needs to read /proc of the processes (same user, or root).
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")

# Airflow's components by the first words of their command line (`airflow scheduler ...`).
# The api-server renames itself (setproctitle) to `airflow api_server -- host:...`.
AIRFLOW_ROOTS = {
    "scheduler": ("airflow scheduler",),
    "dag-processor": ("airflow dag-processor",),
    "triggerer": ("airflow triggerer",),
    "api-server": ("airflow api-server", "airflow api_server"),
}
# Kinds in the order they are printed.
KINDS = (
    "scheduler",
    "task supervisors",
    "task processes",
    "dag-processor",
    "triggerer",
    "api-server",
    "airflow other",
    "tfdv-worker",
    "api",
    "ui",
    "postgresql",
)


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    own: float  # utime + stime, s
    reaped: float  # cutime + cstime, s
    cmd: str


def read_proc(pid: int) -> Proc | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmd = (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:  # gone meanwhile
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return Proc(pid, ppid, (utime + stime) / TICK, (cutime + cstime) / TICK, cmd.strip())


def snapshot() -> dict[int, Proc]:
    procs = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            proc = read_proc(int(entry))
            if proc is not None:
                procs[proc.pid] = proc
    return procs


def descendants(procs: dict[int, Proc], roots: dict[int, str]) -> dict[int, str]:
    """Every process under one of `roots` (pid -> name), mapped to its root's name."""
    children: dict[int, list[int]] = defaultdict(list)
    for p in procs.values():
        children[p.ppid].append(p.pid)
    found: dict[int, str] = {}
    for root, name in roots.items():
        stack = [root]
        while stack:
            pid = stack.pop()
            if pid in procs and pid not in found:
                found[pid] = name
                stack.extend(children[pid])
    return found


def classify(procs: dict[int, Proc], roots: dict[int, str]) -> dict[int, str]:
    """pid -> kind for the processes of the live system; `roots` maps the services' pids
    (and the postmaster's) to their names."""
    service_of = descendants(procs, roots)
    kinds: dict[int, str] = {}
    for pid, service in service_of.items():
        if service != "airflow":
            kinds[pid] = service
            continue
        kinds[pid] = airflow_kind(procs, pid)
    return kinds


def airflow_kind(procs: dict[int, Proc], pid: int) -> str:
    chain = []  # pid and its ancestors, nearest first
    p = procs.get(pid)
    while p is not None and len(chain) < 50:
        chain.append(p)
        p = procs.get(p.ppid)
    for depth, anc in enumerate(chain):
        for kind, names in AIRFLOW_ROOTS.items():
            if any(n in anc.cmd for n in names) and not any(
                n in a.cmd for a in chain[depth + 1 :] for n in names
            ):
                if kind != "scheduler":
                    return kind
                return ("scheduler", "task supervisors", "task processes")[min(depth, 2)]
    return "airflow other"


def reaped_kind(kind: str) -> str:
    """The kind of the children whose CPU a process of `kind` collects when it reaps them."""
    return {"scheduler": "task supervisors", "task supervisors": "task processes"}.get(kind, kind)


def cpu_by_kind(
    before: dict[int, Proc], after: dict[int, Proc], roots: dict[int, str]
) -> dict[str, float]:
    """CPU-seconds per kind between two snapshots (see the module docstring)."""
    kinds_after = classify(after, roots)
    kinds_before = classify(before, roots)
    totals: dict[str, float] = defaultdict(float)
    for pid, kind in kinds_after.items():
        now = after[pid]
        then = before.get(pid)
        if then is not None and then.cmd and kinds_before.get(pid) is None:
            then = None  # a pid reused by a process of ours
        own = now.own - (then.own if then else 0.0)
        reaped = now.reaped - (then.reaped if then else 0.0)
        totals[kind] += own
        totals[reaped_kind(kind)] += reaped
    # Processes of the first snapshot that were reaped meanwhile: their earlier CPU is in their
    # parent's growth above, but was spent before the window.
    for pid in kinds_before:
        if pid not in after or after[pid].ppid != before[pid].ppid:
            gone = before[pid]
            parent = kinds_after.get(gone.ppid)
            if parent is not None:
                totals[reaped_kind(parent)] -= gone.own + gone.reaped
    return dict(totals)


def live_roots(env: dict[str, str]) -> dict[int, str]:
    """The pids of a live system's services (from `ops up`'s pid files) and of its embedded
    PostgreSQL's postmaster."""
    from mlsys.config import load_settings
    from ops.supervisor import service_pid, services

    settings = load_settings(env)
    roots: dict[int, str] = {}
    for service in services():
        pid = service_pid(settings, service.name)
        if pid is not None:
            roots[pid] = service.name
    pid_file = settings.pg_data_dir / "postmaster.pid"
    if pid_file.is_file():
        roots[int(pid_file.read_text().split()[0])] = "postgresql"
    return roots


def format_table(cpu: dict[str, float], files: int) -> list[str]:
    """Lines: CPU-s and CPU-s per file per kind, then the total."""
    total = sum(cpu.values())
    per = max(files, 1)
    lines = [f"  {'process kind':<18} {'CPU-s':>8} {'per file':>9}"]
    for kind in (*KINDS, *sorted(set(cpu) - set(KINDS))):
        if kind in cpu:
            lines.append(f"  {kind:<18} {cpu[kind]:8.1f} {cpu[kind] / per:9.3f}")
    lines.append(f"  {'total':<18} {total:8.1f} {total / per:9.3f}")
    return lines


def machine_busy() -> float:
    """CPU-seconds the whole machine has been busy since boot (all cores; /proc/stat), to
    tell our share from the other work on a shared machine."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICK
