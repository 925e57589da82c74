"""--scale: a zone of many members (load time, memory, qps), the big SRV RRset and the whole
zone (TCP, UDP, GET records, AXFR), and srvd's registrations through its admin API."""

import http.client
import json
import random
import resource
import socket
import statistics
import threading
import time

from .common import REPO, BenchError, free_port, log
from .dns_checks import MemberProbe, answer_shape, axfr, check_scale_answers, tcp_ask, udp_time
from .dnsperf import run_dnsperf
from .procs import CLK_TCK, cpu_seconds_between, pin_tree, tree_cpu, tree_memory
from .report import fmt_ms, fmt_timing, fmt_us, pct, print_big_rrset_tables, print_scale_tables, timing
from .servers import start_system


def scale_zone(n, srv_targets=None):
    """n members with an A record each; the first srv_targets of them (all by default) in
    `_etcd-server._tcp` and `_etcd-client._tcp`."""
    t = n if srv_targets is None else min(n, srv_targets)
    lines = ["$ORIGIN lab.example.", "$TTL 300",
             "@ IN SOA ns1 hostmaster 1 3600 900 604800 60", "  IN NS ns1", "ns1 IN A 127.0.0.1"]
    for i in range(n):
        k = i + 1
        lines.append(f"member{i} IN A 10.{k >> 16 & 255}.{k >> 8 & 255}.{k & 255}")
    lines += [f"_etcd-server._tcp IN SRV 0 0 2380 member{i}" for i in range(t)]
    lines += [f"_etcd-client._tcp IN SRV 0 0 2379 member{i}" for i in range(t)]
    return "\n".join(lines) + "\n"


def main_scale(args, work):
    n = args.scale_members
    origin = "lab.example."
    zone_dir = work / "scale-zones"
    zone_dir.mkdir()
    zone_file = zone_dir / "lab.example.zone"
    zone_file.write_text(scale_zone(n))
    rng = random.Random(1)
    query_file = work / "scale-queries.txt"
    query_file.write_text("".join(f"member{rng.randrange(n)}.{origin} A\n" for _ in range(100_000)))
    log(f"scale zone: {n:,} members, {3 * n + 3:,} records, {zone_file.stat().st_size / 1e6:.1f} MB")

    systems = [s for s in ("srvd", "nsd", "knot") if s in args.systems]
    servers, load, failures = {}, {}, {}
    for name in systems:  # one at a time, so that each load has the server CPU to itself
        srv = start_system(name, args, work, zone_dir, zone_file, origin,
                           admin_port=free_port() if name == "srvd" else 0)
        try:
            seconds = srv.wait_ready(args.scale_load_timeout)
        except BenchError as e:
            failures[name] = str(e)
            log(f"{name}: FAILED to load the scale zone: {e}")
            srv.stop()
            continue
        load_cpu = sum(tree_cpu(srv.pid).values()) / CLK_TCK
        time.sleep(0.5)
        rss, pss = tree_memory(srv.pid)
        problem = check_scale_answers(srv, n)
        if problem:
            failures[name] = problem
            log(f"{name}: WRONG ANSWER: {problem}")
            srv.stop()
            continue
        moved = pin_tree(srv.pid, args.server_cpu)
        if moved:
            log(f"{name}: pinned back to CPU {args.server_cpu} thread(s) that had moved themselves: {', '.join(moved)}")
        load[name] = {"load_seconds": seconds, "load_cpu_seconds": load_cpu, "rss_kib": rss, "pss_kib": pss}
        log(f"{name}: loaded in {seconds:.2f} s ({load_cpu:.2f} s CPU), VmRSS {rss / 1024:.0f} MiB, Pss {pss / 1024:.0f} MiB")
        servers[name] = srv

    runs = []
    for rnd in range(1, args.rounds + 1):
        for name, srv in servers.items():
            r = run_dnsperf(args, srv, query_file, args.duration)
            moved = pin_tree(srv.pid, args.server_cpu)
            if moved:
                r["problems"].append(f"threads left CPU {args.server_cpu} during the run: {', '.join(moved)}")
            other = {k: v for k, v in r.get("rcodes", {}).items() if k != "NOERROR"}
            if other:
                r["problems"].append(f"rcodes other than NOERROR: {other}")
            r.update(round=rnd, system=name, kind="scale-peak")
            runs.append(r)
            for p in r["problems"]:
                log(f"{name} scale run: PROBLEM: {p}")
            log(f"round {rnd}/{args.rounds} {name}: {r.get('qps', 0):,.0f} qps, A of random members (lost {r.get('lost')})")
    for name in servers:
        rss, pss = tree_memory(servers[name].pid)
        load[name].update(rss_after_queries_kib=rss, pss_after_queries_kib=pss)

    # The big SRV RRset and the whole zone, on every server that loaded the scale zone; then on
    # a zone of the same members whose SRV RRsets hold only --scale-srv-targets of them, which
    # NSD and Knot can load (they cannot load the big one). Each server loads on its own; the
    # measurements take turns between the servers.
    big_rrset = measure_big_rrset(args, list(servers.values()), f"{n:,} members", n) if servers else []
    for name, srv in servers.items():
        if name != "srvd":
            srv.stop()
    t = args.scale_srv_targets
    if 0 < t < n:
        small_dir = work / "srv-zones"
        small_dir.mkdir()
        small_file = small_dir / "lab.example.zone"
        small_file.write_text(scale_zone(n, srv_targets=t))
        zone_name = f"{n:,} members, SRV RRsets of {t:,}"
        log(f"second zone: {n:,} members, `_etcd-server._tcp` and `_etcd-client._tcp` of the first {t:,} "
            f"({n + 2 * t + 3:,} records, {small_file.stat().st_size / 1e6:.1f} MB)")
        second, loaded = [], {}
        for name in systems:
            srv = start_system(name, args, work / "srv-zone", small_dir, small_file, origin,
                               admin_port=free_port() if name == "srvd" else 0)
            try:
                loaded[name] = srv.wait_ready(args.scale_load_timeout)
                problem = check_scale_answers(srv, n)
                if problem:
                    raise BenchError(f"wrong answer: {problem}")
            except BenchError as e:
                failures[f"{name} ({zone_name})"] = str(e)
                log(f"{name}: FAILED on the second zone: {e}")
                big_rrset.append({"zone": zone_name, "system": name, "targets": t, "failed": str(e), "problems": []})
                srv.stop()
                continue
            pin_tree(srv.pid, args.server_cpu)
            log(f"{name}: loaded the second zone in {loaded[name]:.2f} s")
            second.append(srv)
        if second:
            for r in measure_big_rrset(args, second, zone_name, t):
                r["load_seconds"] = loaded[r["system"]]
                big_rrset.append(r)
        for srv in second:
            srv.stop()

    registrations = []
    if "srvd" in args.systems and args.scale_registrations > 0:
        # From the seed zone: a fresh srvd for each number of clients.
        seed_dir = work / "seed-zones"
        seed_dir.mkdir()
        (seed_dir / "lab.example.zone").write_text((REPO / "zones" / "lab.example.zone").read_text())
        for clients in args.scale_clients:
            srv = start_system("srvd", args, work / f"reg-seed-{clients}", seed_dir, None, origin, admin_port=free_port())
            srv.wait_ready(30)
            registrations.append(measure_registrations(args, srv, "seed zone (3 members)", clients))
            srv.stop()
        # From the big zone: the srvd that loaded it above (loading it again costs as much), so
        # each run after the first starts from the zone plus the earlier runs' registrations.
        big = servers.get("srvd")
        for clients in args.scale_clients:
            start = f"{n:,}-member zone"
            if big is None or big.stopped:
                why = "srvd did not load the zone" if big is None else "an earlier run ran out of time"
                registrations.append({"start": start, "clients": clients, "skipped": why, "problems": []})
                continue
            registrations.append(measure_registrations(args, big, start, clients))
    for srv in servers.values():
        srv.stop()

    print_scale_tables(args, n, load, runs, registrations, failures)
    print_big_rrset_tables(args, n, big_rrset)
    problems = sorted({f"{r['system']} scale: {p}" for r in runs for p in r["problems"]})
    for reg in registrations:
        problems += [f"srvd registrations ({reg['start']}, {reg['clients']} clients): {p}" for p in reg["problems"]]
    for b in big_rrset:
        problems += [f"{b['system']} ({b['zone']}): {p}" for p in b["problems"]]
    return {"scale_members": n, "load": load, "runs": runs, "registrations": registrations,
            "big_rrset": big_rrset, "failures": failures, "problems": problems}


def measure_big_rrset(args, servers, zone_name, targets):
    """On loaded servers, interleaved (query by query, server by server, so that whatever else
    the machine does hits them alike): the SRV query for `_etcd-server._tcp` (`targets` records)
    over TCP, each on a new connection (srvd's TCP path has no answer cache), and over UDP
    (srvd: the first query after a registration, since every change empties the answer caches,
    and the one right after it; NSD and Knot, which have no API: the same query repeated); then
    the whole zone: srvd's `GET /v1/zones/{zone}/records` and an AXFR from every server.
    Returns one result per server."""
    qname = f"_etcd-server._tcp.{servers[0].origin}"
    results = []
    for srv in servers:
        out = {"zone": zone_name, "system": srv.name, "targets": targets, "problems": [], "notes": [],
               "tcp_times": [], "udp_first": [], "udp_repeat_times": [], "put_times": [], "get_times": [],
               "get_first_byte": [], "axfr_times": []}
        # A wrong answer from srvd fails the run; from NSD or Knot it is what they do, reported
        # (Knot answers SERVFAIL when an RRset does not fit a TCP message, and fails the AXFR).
        out["strict"] = srv.name.startswith("srvd")
        results.append(out)
        if out["strict"]:
            token_file = srv.data_dir / "admin.token"
            wait_http(srv.admin_port, token_file, srv)
            out["auth"] = f"Bearer {token_file.read_text().strip()}"

    def flag(srv, out, what):
        where = out["problems"] if out["strict"] else out["notes"]
        if what not in where:
            where.append(what)
            log(f"{srv.name} ({zone_name}): {'PROBLEM' if out['strict'] else 'note'}: {what}")

    def check(srv, out, r, what):
        if r is None:
            flag(srv, out, f"{what}: no answer")
        elif r.rcode != 0 or not r.aa:
            flag(srv, out, f"{what}: {answer_shape(r)}{'' if r.aa else ', AA not set'}")

    # TCP, one query per server per turn
    for i in range(args.scale_srv_queries):
        for srv, out in zip(servers, results):
            if out.get("tcp_failed"):
                continue
            try:
                seconds, r = tcp_ask(srv.port, qname, "SRV")
            except (OSError, BenchError) as e:
                flag(srv, out, f"SRV over TCP: {type(e).__name__}: {e}")
                out["tcp_failed"] = True
                continue
            check(srv, out, r, "SRV over TCP")
            out["tcp_times"].append(seconds)
            out["tcp_answer"] = answer_shape(r)

    # UDP: srvd a registration then two queries; the others a query each, per turn
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    conns = {srv.name: http.client.HTTPConnection("127.0.0.1", srv.admin_port, timeout=120)
             for srv, out in zip(servers, results) if out["strict"]}
    measure_big_rrset.count = getattr(measure_big_rrset, "count", 0) + 1
    tag = measure_big_rrset.count
    try:
        for k in range(max(args.scale_srv_changes, args.scale_srv_queries)):
            for srv, out in zip(servers, results):
                if out["strict"]:
                    if k >= args.scale_srv_changes:
                        continue
                    name = f"srvprobe{tag}n{k}"
                    body = json.dumps({"addresses": [f"10.199.{tag % 250}.{k % 250 + 1}"], "peerPort": 2380, "clientPort": 2379})
                    conn = conns[srv.name]
                    t0 = time.perf_counter()
                    conn.request("PUT", f"/v1/zones/{srv.origin.rstrip('.')}/members/{name}", body=body,
                                 headers={"Authorization": out["auth"], "Content-Type": "application/json"})
                    resp = conn.getresponse()
                    payload = resp.read()
                    out["put_times"].append(time.perf_counter() - t0)
                    if resp.status not in (200, 201):
                        flag(srv, out, f"PUT {name}: HTTP {resp.status} {payload[:200]!r}")
                        continue
                    for times in (out["udp_first"], out["udp_repeat_times"]):
                        got = udp_time(sock, srv.port, qname, "SRV")
                        check(srv, out, got and got[1], "SRV over UDP")
                        if got:
                            times.append(got[0])
                            out["udp_answer"] = answer_shape(got[1])
                else:
                    if k >= args.scale_srv_queries:
                        continue
                    got = udp_time(sock, srv.port, qname, "SRV")
                    check(srv, out, got and got[1], "SRV over UDP")
                    if got:
                        out["udp_repeat_times"].append(got[0])
                        out["udp_answer"] = answer_shape(got[1])
    finally:
        sock.close()
        for c in conns.values():
            c.close()

    # The whole zone: GET records (srvd) and AXFR (all), one of each per server per turn
    conns = {srv.name: http.client.HTTPConnection("127.0.0.1", srv.admin_port, timeout=300)
             for srv, out in zip(servers, results) if out["strict"]}
    try:
        for i in range(args.scale_list_repeats):
            for srv, out in zip(servers, results):
                if out["strict"] and not out.get("get_failed"):
                    conn = conns[srv.name]
                    t0 = time.perf_counter()
                    conn.request("GET", f"/v1/zones/{srv.origin.rstrip('.')}/records", headers={"Authorization": out["auth"]})
                    resp = conn.getresponse()
                    t1 = time.perf_counter()
                    payload = resp.read()
                    out["get_times"].append(time.perf_counter() - t0)
                    out["get_first_byte"].append(t1 - t0)
                    if resp.status != 200:
                        flag(srv, out, f"GET records: HTTP {resp.status} {payload[:200]!r}")
                        out["get_failed"] = True
                    elif i == 0:
                        listing = json.loads(payload)
                        out["records_size"] = len(payload)
                        out["records_rrsets"] = len(listing["rrsets"])
                        out["records_records"] = sum(len(s["rdata"]) for s in listing["rrsets"])
                        del listing
                if not out.get("axfr_failed"):
                    try:
                        seconds, info = axfr(srv.port, srv.origin)
                    except (OSError, BenchError) as e:
                        flag(srv, out, f"AXFR failed: {e}")
                        out["axfr_failed"] = True
                        continue
                    out["axfr_times"].append(seconds)
                    out["axfr_info"] = info
    finally:
        for c in conns.values():
            c.close()

    for srv, out in zip(servers, results):
        label = f"{srv.name} ({zone_name})"
        out.pop("auth", None)
        out["tcp"], out["put"] = timing(out["tcp_times"]), timing(out["put_times"])
        out["udp_after_change"] = timing(out["udp_first"])
        out["udp_repeat"] = timing(out["udp_repeat_times"])
        out["records"], out["records_first_byte"] = timing(out["get_times"]), timing(out["get_first_byte"])
        out["axfr"] = timing(out["axfr_times"])
        log(f"{label}: SRV {qname} ({targets:,} targets) over TCP: {fmt_timing(out['tcp'])} "
            f"({out.get('tcp_answer', 'n/a')}); over UDP"
            + (f", first query after a registration: {fmt_timing(out['udp_after_change'])}, the query after that "
               f"(answer cache): {fmt_timing(out['udp_repeat'])}" if out["strict"] else
               f" (no API, so no change first): {fmt_timing(out['udp_repeat'])}")
            + f" ({out.get('udp_answer', 'n/a')}) [median / p95]")
        if out["records"]:
            log(f"{label}: GET records: median {fmt_ms(out['records']['median'])} (headers after "
                f"{fmt_ms(out['records_first_byte']['median'])}), {out.get('records_size', 0) / 1e6:.1f} MB, "
                f"{out.get('records_rrsets', 0):,} RRsets, {out.get('records_records', 0):,} records")
        if out["axfr"]:
            info = out["axfr_info"]
            log(f"{label}: AXFR: median {fmt_ms(out['axfr']['median'])}, {info['octets'] / 1e6:.1f} MB in "
                f"{info['messages']:,} messages, {info['records']:,} records")
    return results


def measure_registrations(args, srv, start_name, clients):
    """`clients` threads with keep-alive HTTP connections PUT --scale-registrations new members
    into srvd, each PUT followed at once by a UDP query for the new member's A record. Stops at
    --scale-reg-timeout; if PUTs are still in flight then, stops srvd to end them."""
    total = args.scale_registrations
    measure_registrations.count = getattr(measure_registrations, "count", 0) + 1
    tag = f"b{measure_registrations.count}"
    token_file = srv.data_dir / "admin.token"
    wait_http(srv.admin_port, token_file, srv)
    token = token_file.read_text().strip()
    budget = args.scale_reg_timeout

    results, problems, lock = [], [], threading.Lock()
    stopping = threading.Event()
    barrier = threading.Barrier(clients + 1)
    clock = {}

    def client(k):
        conn = http.client.HTTPConnection("127.0.0.1", srv.admin_port, timeout=budget + 30)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        barrier.wait()
        try:
            for i in range(k, total, clients):
                if stopping.is_set() or time.monotonic() > clock["deadline"]:
                    break
                name = f"{tag}c{k}n{i}"
                addr = f"10.{200 + k % 50}.{i >> 8 & 255}.{i & 255}"
                body = json.dumps({"addresses": [addr], "peerPort": 2380, "clientPort": 2379})
                probe = MemberProbe(f"{name}.lab.example.", addr)
                t0 = time.monotonic()
                conn.request("PUT", f"/v1/zones/lab.example/members/{name}", body=body, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
                t1 = time.monotonic()
                if resp.status not in (200, 201):
                    with lock:
                        problems.append(f"PUT {name}: HTTP {resp.status} {payload[:200]!r}")
                    continue
                hit, delay = probe.run(sock, srv.port, t1)
                with lock:
                    results.append({"done_at": t1, "put_s": t1 - t0, "immediate": hit == "immediate",
                                    "found": hit != "never", "delay_s": delay})
        except (OSError, http.client.HTTPException) as e:
            if not stopping.is_set():
                with lock:
                    problems.append(f"client {k}: {type(e).__name__}: {e}")
        finally:
            conn.close()
            sock.close()

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    before_cpu = tree_cpu(srv.pid)
    before_self = resource.getrusage(resource.RUSAGE_SELF)
    t_start = time.monotonic()
    clock["deadline"] = t_start + budget
    barrier.wait()
    for t in threads:
        t.join(max(0.0, clock["deadline"] + 1 - time.monotonic()))
    timed_out = any(t.is_alive() for t in threads)
    t_end = min(time.monotonic(), clock["deadline"])
    srvd_cpu = cpu_seconds_between(before_cpu, tree_cpu(srv.pid))
    after_self = resource.getrusage(resource.RUSAGE_SELF)
    client_cpu = (after_self.ru_utime - before_self.ru_utime) + (after_self.ru_stime - before_self.ru_stime)
    if timed_out:  # PUTs still waiting for srvd: end them with srvd
        stopping.set()
        srv.stop()
        for t in threads:
            t.join(10)
    wall = t_end - t_start
    with lock:
        done_list = [r for r in results if r["done_at"] <= clock["deadline"]]
    done = len(done_list)
    notes = []  # findings, not failures: srvd was slower than the budget
    if done < total:
        notes.append(f"{done} of {total} registrations within --scale-reg-timeout {budget:.0f} s"
                     + (" (srvd stopped to end the PUTs in flight)" if timed_out else ""))
    immediate = sum(r["immediate"] for r in done_list)
    if immediate < done:
        problems.append(f"{done - immediate} of {done} new members were missing from the first DNS answer after the PUT's response")
    done_list.sort(key=lambda r: r["done_at"])
    tenth = max(1, done // 10)
    first_tenth = statistics.median(r["put_s"] for r in done_list[:tenth]) if done else None
    last_tenth = statistics.median(r["put_s"] for r in done_list[-tenth:]) if done else None
    puts = sorted(r["put_s"] for r in done_list)
    delays = sorted(r["delay_s"] for r in done_list if r["found"])
    reg = {
        "start": start_name, "clients": clients, "registrations": done, "wall_s": wall,
        "per_second": done / wall if wall else 0, "timed_out": timed_out,
        "put_p50_s": pct(puts, 50), "put_p99_s": pct(puts, 99),
        "put_median_first_tenth_s": first_tenth, "put_median_last_tenth_s": last_tenth,
        "immediate_share": immediate / done if done else None,
        "delay_p50_s": pct(delays, 50), "delay_max_s": delays[-1] if delays else None,
        "srvd_cpu_us_per_registration": srvd_cpu * 1e6 / done if done else None,
        "client_cpu_share": client_cpu / wall if wall else None,
        "problems": problems, "notes": notes,
    }
    log(f"registrations ({start_name}, {clients} client(s)): {done} in {wall:.1f} s = {reg['per_second']:,.1f}/s, "
        f"in the first DNS answer {immediate}/{done}, median delay {fmt_us(reg['delay_p50_s'])}"
        + "".join(f"; {n}" for n in notes) + (f"; PROBLEMS: {problems[:3]}" if problems else ""))
    return reg


def wait_http(port, token_file, srv, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not srv.alive():
            raise BenchError(f"srvd exited before its admin API came up:\n{srv.log_tail()}")
        if token_file.exists():
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    c.close()
                    return
            except OSError:
                pass
        time.sleep(0.05)
    raise BenchError(f"srvd's admin API did not answer on 127.0.0.1:{port} within {timeout} s:\n{srv.log_tail()}")
