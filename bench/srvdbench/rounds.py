"""The default run: interleaved rounds of dnsperf over every system, on the seed zone."""

import statistics

from .common import REPO, BenchError, log
from .dns_checks import query_mix, verify_with_dig
from .dnsperf import check_rcode_mix, check_verbose, run_dnsperf
from .procs import cpu_seconds_between, pin_tree, tree_cpu, tree_size
from .report import fmt, fmt_us, print_table
from .servers import build_reflector, start_system


def main_run(args, work):
    zone_path = REPO / "zones" / "lab.example.zone"
    zone_text = zone_path.read_text()
    origin, mix = query_mix(zone_text)
    expected = {(n, t): rc for n, t, rc, _ in mix}
    nx_share = sum(1 for *_, rc, _ in mix if rc == "NXDOMAIN") / len(mix)
    zone_dir = work / "zones"
    zone_dir.mkdir()
    zone_file = zone_dir / zone_path.name
    zone_file.write_text(zone_text)
    query_file = work / "queries.txt"
    query_file.write_text("".join(f"{n} {t}\n" for n, t, _, _ in mix))
    log(f"zone {origin} from {zone_path}; query mix of {len(mix)} lines, NXDOMAIN share {nx_share:.3f}")

    reflect_bin = build_reflector(work) if "reflect" in args.systems else None
    servers, failures = {}, {}
    for name in args.systems:
        srv = start_system(name, args, work, zone_dir, zone_file, origin, reflect_bin)
        try:
            srv.wait_ready(30, expect_soa=name != "reflect")
        except BenchError as e:
            failures[name] = str(e)
            log(f"{name}: FAILED to start: {e}")
            srv.stop()
            continue
        problems = [] if name == "reflect" else verify_with_dig(srv, mix)
        if problems:
            failures[name] = "; ".join(problems)
            log(f"{name}: WRONG ANSWERS, not measured:\n  " + "\n  ".join(problems))
            srv.stop()
            continue
        moved = pin_tree(srv.pid, args.server_cpu)
        if moved:
            log(f"{name}: pinned back to CPU {args.server_cpu} thread(s) that had moved themselves: {', '.join(moved)}")
        procs, threads = tree_size(srv.pid)
        log(f"{name}: pid {srv.pid} ({procs} process(es), {threads} thread(s)), 127.0.0.1:{srv.port}"
            + ("" if name == "reflect" else ", answers the mix correctly"))
        servers[name] = srv

    runs = []
    for rnd in range(1, args.rounds + 1):
        for name, srv in servers.items():
            if not srv.alive():
                failures.setdefault(name, f"exited during the benchmark:\n{srv.log_tail()}")
                continue
            peak = run_dnsperf(args, srv, query_file, args.duration)
            peak["problems"] += check_rcode_mix(peak, nx_share, name == "reflect")
            vfile = work / f"verbose-{name}-{rnd}.txt"
            before = tree_cpu(srv.pid)
            fixed = run_dnsperf(args, srv, query_file, args.duration, rate=args.rate, verbose_file=vfile)
            cpu = cpu_seconds_between(before, tree_cpu(srv.pid))
            moved = pin_tree(srv.pid, args.server_cpu)
            if moved:
                fixed["problems"].append(f"threads left CPU {args.server_cpu} during the runs: {', '.join(moved)}")
            lat = check_verbose(vfile, expected, name == "reflect")
            vfile.unlink()
            if lat["wrong_rcodes"]:
                fixed["problems"].append(f"{lat['wrong_rcodes']} responses with a wrong rcode, e.g. "
                                         + "; ".join(lat["wrong_examples"]))
            fixed.update(lat)
            fixed["cpu_seconds"] = cpu
            fixed["cpu_us_per_query"] = cpu * 1e6 / fixed["completed"] if fixed.get("completed") else None
            for kind, r in (("peak", peak), ("fixed", fixed)):
                r.update(round=rnd, system=name, kind=kind)
                runs.append(r)
                for p in r["problems"]:
                    log(f"{name} {kind} run: PROBLEM: {p}")
            log(f"round {rnd}/{args.rounds} {name}: peak {peak.get('qps', 0):,.0f} qps (lost {peak.get('lost')}); "
                f"at {args.rate:,} qps: {fixed.get('qps', 0):,.0f} qps, "
                f"{fmt(fixed['cpu_us_per_query'], '.2f')} µs CPU/query, p99 {fmt_us(lat['p99'])}, lost {fixed.get('lost')}")

    summary = summarize(args, runs, failures)
    print_table(args, summary, failures)
    problems = sorted({f"{r['system']} {r['kind']}: {p}" for r in runs for p in r["problems"]})
    return {"runs": runs, "summary": summary, "failures": failures, "problems": problems}


def summarize(args, runs, failures):
    summary = {}
    for name in args.systems:
        peaks = [r for r in runs if r["system"] == name and r["kind"] == "peak" and "qps" in r]
        fixed = [r for r in runs if r["system"] == name and r["kind"] == "fixed" and "qps" in r]
        if not peaks or not fixed:
            continue
        cpu = [r["cpu_us_per_query"] for r in fixed if r["cpu_us_per_query"] is not None]
        p99 = [r["p99"] for r in fixed if r["p99"] is not None]
        summary[name] = {
            "peak_qps_median": statistics.median(r["qps"] for r in peaks),
            "peak_qps_min": min(r["qps"] for r in peaks), "peak_qps_max": max(r["qps"] for r in peaks),
            "fixed_qps_median": statistics.median(r["qps"] for r in fixed),
            "cpu_us_per_query_median": statistics.median(cpu) if cpu else None,
            "cpu_us_per_query_min": min(cpu) if cpu else None, "cpu_us_per_query_max": max(cpu) if cpu else None,
            "p99_s_median": statistics.median(p99) if p99 else None,
            "lost_peak": sum(r.get("lost", 0) for r in peaks), "lost_fixed": sum(r.get("lost", 0) for r in fixed),
            "sent_peak": sum(r.get("sent", 0) for r in peaks), "sent_fixed": sum(r.get("sent", 0) for r in fixed),
            "rounds": len(peaks),
        }
    return summary
