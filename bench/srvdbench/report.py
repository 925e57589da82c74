"""The markdown tables, and the small statistics and number formats they use."""

import os
import platform
import statistics
import time

from .servers import LABELS


def fmt(v, spec):
    return "n/a" if v is None else format(v, spec)


def fmt_us(seconds):
    return "n/a" if seconds is None else f"{seconds * 1e6:,.0f} µs"


def fmt_ms(seconds):
    return "n/a" if seconds is None else f"{seconds * 1e3:.2f} ms"


def fmt_timing(t, with_p95=True):
    """`median / p95` (or `median (min–max)`) of a timing() result, in ms."""
    if not t:
        return "n/a"
    if with_p95:
        return f"{fmt_ms(t['median'])} / {fmt_ms(t['p95'])}"
    return f"{fmt_ms(t['median'])} ({fmt_ms(t['min'])}–{fmt_ms(t['max'])})"


def pct(sorted_values, p):
    return sorted_values[min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))] if sorted_values else None


def timing(values):
    """Median, p95, min, max and count of a list of seconds."""
    v = sorted(values)
    if not v:
        return None
    return {"median": statistics.median(v), "p95": pct(v, 95), "min": v[0], "max": v[-1], "n": len(v)}


def print_table(args, summary, failures):
    ceiling = summary.get("reflect", {}).get("peak_qps_median")
    rate = f"{args.rate // 1000}k" if args.rate % 1000 == 0 else f"{args.rate:,}"
    print()
    print(f"| system | peak qps | share of ceiling | CPU µs per query at a fixed {rate} qps "
          f"| p99 latency at {rate} qps | lost queries (peak + {rate}) |")
    print("|---|---:|---:|---:|---:|---:|")
    short_of_rate = False
    for name in args.systems:
        label = LABELS[name]
        if name in ("nsd", "knot"):
            label = label.replace("NSD", f"NSD {args.versions.get('nsd', '')}").replace(
                "Knot", f"Knot {args.versions.get('knot', '')}")
        if name in ("srvd", "srvd-nio", "srvd-2t"):
            extra = ["--udp-threads", "2" if name == "srvd-2t" else "1"] + args.srvd_extra + (["--udp-engine", "nio"] if name == "srvd-nio" else [])
            label = f"srvd {args.versions.get('srvd', '')}" + (f" (`{' '.join(extra)}`)" if extra else "")
        s = summary.get(name)
        if not s:
            why = failures.get(name, "no runs").splitlines()[0]
            print(f"| {label} | not measured: {why} | | | | |")
            continue
        share = f"{100 * s['peak_qps_median'] / ceiling:.0f}%" if ceiling else "n/a"
        mark = ""
        if s["fixed_qps_median"] < 0.97 * args.rate:
            mark, short_of_rate = " †", True
        print(f"| {label} | {s['peak_qps_median']:,.0f} ({s['peak_qps_min']:,.0f}–{s['peak_qps_max']:,.0f}) "
              f"| {share} | {fmt(s['cpu_us_per_query_median'], '.2f')}{mark} | {fmt_us(s['p99_s_median'])}{mark} "
              f"| {s['lost_peak']:,} + {s['lost_fixed']:,} |")
    print()
    print(f"Medians over {args.rounds} interleaved round(s) of {args.duration} s runs; peak qps with its "
          f"min–max. dnsperf {args.versions.get('dnsperf', '?')} `-c {args.clients} -T 1` on CPU {args.client_cpu}, "
          f"each server on CPU {args.server_cpu}, over loopback. CPU per query: utime+stime of the server's "
          f"process tree during the {rate} qps run / queries answered. Lost: summed over all runs.")
    if short_of_rate:
        short = ", ".join(f"{n} {s['fixed_qps_median']:,.0f}" for n, s in summary.items()
                          if s["fixed_qps_median"] < 0.97 * args.rate)
        print(f"† answered less than 97% of {args.rate:,} qps in its fixed-rate runs (median qps: {short}).")
    print(f"Machine: {os.cpu_count()} CPUs, Linux {platform.release()}; {time.strftime('%Y-%m-%d %H:%M')}.")


def print_scale_tables(args, n, load, runs, registrations, failures):
    print()
    print(f"Scale: a zone of {n:,} members (A + `_etcd-server._tcp` SRV + `_etcd-client._tcp` SRV each: "
          f"two SRV RRsets of {n:,} records), {3 * n + 3:,} records.")
    print()
    print("| system | load time (start → SOA answered) | CPU to load | VmRSS after load (process tree) "
          "| Pss after load | qps, A of random members | lost queries |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in ("srvd", "nsd", "knot"):
        if name not in args.systems:
            continue
        label = name if name == "srvd" else f"{'NSD' if name == 'nsd' else 'Knot'} {args.versions.get(name, '')}"
        if name not in load:
            print(f"| {label} | failed: {failures.get(name, '?').splitlines()[0]} | | | | | |")
            continue
        l = load[name]
        q = [r["qps"] for r in runs if r["system"] == name and "qps" in r]
        qps = f"{statistics.median(q):,.0f} ({min(q):,.0f}–{max(q):,.0f})" if q else "n/a"
        lost = sum(r.get("lost", 0) for r in runs if r["system"] == name)
        print(f"| {label} | {l['load_seconds']:.2f} s | {l['load_cpu_seconds']:.2f} s | {l['rss_kib'] / 1024:,.0f} MiB "
              f"| {l['pss_kib'] / 1024:,.0f} MiB | {qps} | {lost:,} |")
    print()
    print(f"qps: dnsperf `-c {args.clients} -T 1` without -Q, {args.rounds} interleaved run(s) of {args.duration} s, "
          f"median (min–max); 100,000-line query file of A queries for random memberN.")
    if registrations:
        print()
        print(f"srvd registrations through the admin API (`PUT /v1/zones/lab.example/members/NAME`, keep-alive "
              f"HTTP/1.1 from Python threads on CPU {args.client_cpu}), each PUT followed by a UDP query for the new A record:")
        print()
        print("| starting zone | clients | registrations | registrations/s | PUT latency p50 / p99 "
              "| PUT latency, first → last tenth (median) "
              "| in the first DNS answer after the PUT | delay PUT response → DNS answer (median / max) "
              "| srvd CPU µs per registration | client CPU busy |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in registrations:
            if "skipped" in r:
                print(f"| {r['start']} | {r['clients']} | not measured: {r['skipped']} | | | | | | | |")
                continue
            share = "n/a" if r["immediate_share"] is None else f"{100 * r['immediate_share']:.1f}%"
            rate = f"{r['per_second']:,.0f}" if r["per_second"] >= 10 else f"{r['per_second']:.2f}"
            if r["timed_out"] or r["registrations"] < args.scale_registrations:
                rate += f" (stopped at {args.scale_reg_timeout:.0f} s)"
            print(f"| {r['start']} | {r['clients']} | {r['registrations']:,} | {rate} "
                  f"| {fmt_ms(r['put_p50_s'])} / {fmt_ms(r['put_p99_s'])} "
                  f"| {fmt_ms(r['put_median_first_tenth_s'])} → {fmt_ms(r['put_median_last_tenth_s'])} | {share} "
                  f"| {fmt_us(r['delay_p50_s'])} / {fmt_us(r['delay_max_s'])} "
                  f"| {fmt(r['srvd_cpu_us_per_registration'], ',.0f')} "
                  f"| {fmt(r['client_cpu_share'] and 100 * r['client_cpu_share'], '.0f')}% |")
    print()
    print(f"Machine: {os.cpu_count()} CPUs, Linux {platform.release()}; {time.strftime('%Y-%m-%d %H:%M')}.")


def print_big_rrset_tables(args, n, results):
    if not results:
        return

    def label(name):
        return {"srvd": f"srvd {args.versions.get('srvd', '')}", "nsd": f"NSD {args.versions.get('nsd', '')}",
                "knot": f"Knot {args.versions.get('knot', '')}"}.get(name, name)

    print()
    print("SRV query for `_etcd-server._tcp` (the big RRset), per query, median / p95:")
    print()
    print("| zone | system | SRV RRset | over TCP (new connection each) | over UDP, first query after a registration "
          "| over UDP, repeated | answer over TCP | answer over UDP |")
    print("|---|---|---:|---:|---:|---:|---|---|")
    for r in results:
        if "failed" in r:
            print(f"| {r['zone']} | {label(r['system'])} | {r['targets']:,} | could not load it: "
                  f"{r['failed'].splitlines()[0]} | | | | |")
            continue
        srvd = r["system"].startswith("srvd")
        after = fmt_timing(r.get("udp_after_change")) if srvd else "no API to change the zone"
        repeat = fmt_timing(r.get("udp_repeat")) + (" (answer cache)" if srvd else "")
        print(f"| {r['zone']} | {label(r['system'])} | {r['targets']:,} | {fmt_timing(r.get('tcp'))} | {after} "
              f"| {repeat} | {r.get('tcp_answer', 'n/a')} | {r.get('udp_answer', 'n/a')} |")
    print()
    print(f"{args.scale_srv_queries} TCP queries per row, each on a new connection (connect to last octet read); "
          f"srvd: {args.scale_srv_changes} registrations (`PUT .../members/NAME`), each followed by two UDP queries: "
          f"the first after the change (every change empties the answer caches) and the one after it; NSD and Knot: "
          f"{args.scale_srv_queries} UDP queries (they have no API, and no answer cache). Queries without EDNS. "
          f"The servers of one zone are all loaded and take turns, query by query.")
    print()
    print("Listing the whole zone (median (min–max)); NSD and Knot have no records API: an AXFR is the closest "
          "\"list everything\" they offer, and srvd's AXFR is beside it:")
    print()
    print("| zone | system | `GET /v1/zones/{zone}/records` | its JSON | AXFR | AXFR size |")
    print("|---|---|---:|---:|---:|---:|")
    for r in results:
        if "failed" in r:
            continue
        if r["system"].startswith("srvd"):
            rec = fmt_timing(r.get("records"), with_p95=False)
            js = (f"{r['records_size'] / 1e6:.1f} MB, {r['records_rrsets']:,} RRsets, {r['records_records']:,} records"
                  if "records_size" in r else "n/a")
        else:
            rec, js = "no records API", ""
        info = r.get("axfr_info")
        ax = f"{info['octets'] / 1e6:.1f} MB, {info['messages']:,} messages, {info['records']:,} records" if info else "n/a"
        axfr_failed = [x for x in r["problems"] + r.get("notes", []) if x.startswith("AXFR failed")]
        axt = fmt_timing(r.get("axfr"), with_p95=False) if r.get("axfr") else (axfr_failed[0] if axfr_failed else "n/a")
        print(f"| {r['zone']} | {label(r['system'])} | {rec} | {js} | {axt} | {ax} |")
    print()
    print(f"{args.scale_list_repeats} of each per row: GET over one keep-alive connection (request to last octet of "
          f"the body); AXFR with a Python reader over a new connection each (connect to the last message), "
          f"records counted and checked after the clock stops.")
