"""The backlog bench's CPU accounting (bench/proc_cpu.py) on a real process tree shaped like
Airflow's: a "scheduler" forks a "worker" that stays, the worker runs a short "task" that burns
CPU and is reaped before the second snapshot. Its CPU must land on the task processes, once."""

from __future__ import annotations

import subprocess
import sys
import time

from bench import proc_cpu

BURN = "import time\nend = time.process_time() + {s}\nwhile time.process_time() < end: pass\n"
# The worker waits for a line on stdin, then runs the task and waits for it (reaping it), then
# waits again, alive, until stdin closes.
WORKER = (
    "import subprocess, sys\n"
    "sys.stdin.readline()\n"
    "subprocess.run(['bash', '-c', 'exec -a task {py} -c \"$0\"', {burn!r}])\n"
    "print('done', flush=True)\n"
    "sys.stdin.readline()\n"
)


def test_a_reaped_task_process_is_counted_once_under_its_kind():
    py = sys.executable
    worker = WORKER.format(py=py, burn=BURN.format(s=0.5))
    scheduler = subprocess.Popen(
        ["bash", "-c", f'exec -a "airflow scheduler" {py} -c "$0"',
         "import subprocess, sys\n"
         f"w = subprocess.Popen(['bash', '-c', 'exec -a worker {py} -c \"$0\"', {worker!r}])\n"
         "w.wait()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(1.0)  # both interpreters started
        roots = {scheduler.pid: "airflow"}
        before = proc_cpu.snapshot()
        scheduler.stdin.write("go\n")
        scheduler.stdin.flush()
        assert scheduler.stdout.readline().strip() == "done"
        after = proc_cpu.snapshot()
        kinds = proc_cpu.classify(after, roots)
        assert sorted(kinds.values()) == ["scheduler", "task supervisors"]
        cpu = proc_cpu.cpu_by_kind(before, after, roots)
        assert 0.4 <= cpu["task processes"] <= 0.8, cpu
        assert cpu.get("scheduler", 0.0) < 0.2 and cpu.get("task supervisors", 0.0) < 0.2, cpu
    finally:
        scheduler.stdin.close()
        scheduler.wait(timeout=30)
