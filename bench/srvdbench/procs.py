"""A server's process tree from /proc: its CPU time, threads, pinning and memory; and the
cleanup that stops every process the harness started."""

import os
import shutil
from pathlib import Path


CLK_TCK = os.sysconf("SC_CLK_TCK")


# Every process the harness starts is registered here and stopped on exit.
class Cleanup:
    procs = []
    dirs = []

    @classmethod
    def run(cls):
        for p in reversed(cls.procs):
            p.stop()
        cls.procs.clear()
        for d in cls.dirs:
            shutil.rmtree(d, ignore_errors=True)
        cls.dirs.clear()


def read_stat(pid):
    """(ppid, cpu ticks) of a process from /proc/PID/stat. Its utime+stime cover all its threads,
    live and exited; cutime+cstime cover its children that exited and were waited for."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(")") + 2:].split()
    return int(rest[1]), sum(int(x) for x in rest[11:15])


def process_tree(root):
    """The pid root and all its descendants."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = read_stat(int(entry))
            if st:
                children.setdefault(st[0], []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def tree_cpu(root):
    """{pid: cpu ticks} over the process tree of root."""
    out = {}
    for pid in process_tree(root):
        st = read_stat(pid)
        if st:
            out[pid] = st[1]
    return out


def cpu_seconds_between(before, after):
    ticks = sum(t - before.get(pid, 0) for pid, t in after.items())
    return ticks / CLK_TCK


def tree_size(root):
    """(processes, threads) in the process tree of root."""
    pids = process_tree(root)
    threads = 0
    for pid in pids:
        try:
            threads += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            pass
    return len(pids), threads


def pin_tree(root, cpu):
    """Pins every thread of the process tree to cpu. taskset pins a server at start, but a server
    may pin threads of its own afterwards (Knot pins UDP worker i to CPU i mod online CPUs, so its
    first worker lands on dnsperf's CPU 0). Returns the threads that were elsewhere."""
    moved = []
    for pid in process_tree(root):
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue
        for tid in tids:
            try:
                cpus = os.sched_getaffinity(tid)
                if cpus != {cpu}:
                    comm = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
                    os.sched_setaffinity(tid, {cpu})
                    moved.append(f"{comm} (tid {tid}, CPUs {','.join(map(str, sorted(cpus)))})")
            except OSError:
                pass  # the thread exited
    return moved


def tree_memory(root):
    """(VmRSS, Pss) in KiB summed over the process tree. VmRSS counts pages shared between
    forked processes (NSD) once per process; Pss splits them."""
    rss = pss = 0
    for pid in process_tree(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            pass
    return rss, pss
