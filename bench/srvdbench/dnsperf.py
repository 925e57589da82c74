"""dnsperf runs and what their output says."""

import re
import subprocess
import tempfile
from pathlib import Path


def run_dnsperf(args, server, query_file, duration, rate=None, verbose_file=None):
    """One dnsperf run pinned to the client CPU; returns its parsed statistics plus `problems`
    (its own warnings and errors)."""
    argv = ["taskset", "-c", str(args.client_cpu), "dnsperf", "-s", "127.0.0.1", "-p", str(server.port),
            "-d", str(query_file), "-c", str(args.clients), "-T", "1", "-l", str(duration)]
    if rate:
        argv += ["-Q", str(rate)]
    if verbose_file:
        argv += ["-v"]  # one line per response, with its rcode and latency
    out_path = verbose_file or Path(tempfile.mktemp(prefix="dnsperf-", dir=query_file.parent))
    with open(out_path, "wb") as out:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE)
        try:
            _, err = p.communicate(timeout=duration + 60)
        except BaseException:  # Ctrl-C or a hung dnsperf
            p.kill()
            p.wait()
            raise
    text = Path(out_path).read_text(errors="replace")
    if not verbose_file:
        Path(out_path).unlink()
    stats = parse_dnsperf(text)
    problems = [l for l in err.decode(errors="replace").splitlines() if l.strip()]
    if p.returncode != 0:
        problems.append(f"dnsperf exited with {p.returncode}")
    if "completed" not in stats:
        problems.append("dnsperf printed no statistics")
    stats["problems"] = problems
    stats["command"] = " ".join(argv)
    return stats


def parse_dnsperf(text):
    stats = {}
    for key, pattern in [("sent", r"Queries sent:\s+(\d+)"), ("completed", r"Queries completed:\s+(\d+)"),
                         ("lost", r"Queries lost:\s+(\d+)"), ("qps", r"Queries per second:\s+([\d.]+)"),
                         ("run_time", r"Run time \(s\):\s+([\d.]+)"),
                         ("avg_latency", r"Average Latency \(s\):\s+([\d.]+)")]:
        m = re.search(pattern, text)
        if m:
            stats[key] = float(m.group(1)) if "." in m.group(1) else int(m.group(1))
    m = re.search(r"Response codes:\s+(.*)", text)
    stats["rcodes"] = {k: int(v) for k, v in re.findall(r"(\w+) (\d+) \(", m.group(1))} if m else {}
    return stats


def check_verbose(path, expected, is_reflect):
    """Reads dnsperf -v lines (`> RCODE name type latency`): latency percentiles, and responses
    whose rcode is not the one the query must get."""
    latencies, wrong, examples = [], 0, []
    with open(path, errors="replace") as f:
        for line in f:
            if not line.startswith("> "):
                continue
            parts = line.split()
            if len(parts) < 5:
                continue  # timed out or interrupted queries carry no latency
            rcode, name, qtype = parts[1], parts[2].lower(), parts[3].upper()
            try:
                latencies.append(float(parts[4]))
            except ValueError:
                continue
            want = "NOERROR" if is_reflect else expected.get((name, qtype))
            if rcode != want:
                wrong += 1
                if len(examples) < 3:
                    examples.append(f"{name} {qtype}: {rcode}, expected {want}")
    latencies.sort()

    def pct(p):
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] if latencies else None
    return {"p50": pct(50), "p99": pct(99), "max": latencies[-1] if latencies else None,
            "answered": len(latencies), "wrong_rcodes": wrong, "wrong_examples": examples}


def check_rcode_mix(stats, expected_nx_share, is_reflect):
    """A peak run asks without -v; its rcode totals must still be those of the mix."""
    rc, total = stats.get("rcodes", {}), sum(stats.get("rcodes", {}).values())
    if not total:
        return ["no responses"]
    other = {k: v for k, v in rc.items() if k not in ("NOERROR", "NXDOMAIN")}
    if other:
        return [f"unexpected rcodes {other}"]
    share = rc.get("NXDOMAIN", 0) / total
    want = 0.0 if is_reflect else expected_nx_share
    if total >= 1000 and abs(share - want) > 0.02:
        return [f"NXDOMAIN share {share:.3f}, expected {want:.3f}"]
    return []
