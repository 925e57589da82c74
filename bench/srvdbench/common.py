"""What every part of the harness shares: the repository, failures, the log, tools, ports."""

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[2]


START = time.monotonic()


class BenchError(Exception):
    """A failure the harness reports in one line and exits on."""


def log(msg):
    print(f"[bench {time.monotonic() - START:6.1f}s] {msg}", file=sys.stderr, flush=True)


def find_tool(name):
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")


# apt package providing each tool the harness runs.
APT_PACKAGES = {
    "dnsperf": "dnsperf", "nsd": "nsd", "knotd": "knot", "dig": "bind9-dnsutils",
    "gcc": "gcc", "taskset": "util-linux",
}


def ensure_tools(tools):
    """Installs the Debian packages of missing tools. A policy-rc.d that denies service starts is
    in place during the install so that the nsd and knot packages start no daemon of their own
    (on a machine with systemd as well as in a container)."""
    missing = sorted({APT_PACKAGES[t] for t in tools if not find_tool(t)})
    if not missing:
        return
    if os.geteuid() != 0:
        raise BenchError(f"missing packages {' '.join(missing)}: run as root or "
                         f"`sudo apt-get install -y {' '.join(missing)}`")
    log(f"installing {' '.join(missing)}")
    policy = Path("/usr/sbin/policy-rc.d")
    created_policy = not policy.exists()
    if created_policy:
        policy.write_text("#!/bin/sh\n# srvd bench/run: no service starts during its install\nexit 101\n")
        policy.chmod(0o755)
    try:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for cmd in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]):
            r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if r.returncode != 0:
                raise BenchError(f"{' '.join(cmd)} failed:\n{r.stdout[-2000:]}")
    finally:
        if created_policy:
            policy.unlink(missing_ok=True)
    still = [t for t in tools if not find_tool(t)]
    if still:
        raise BenchError(f"still missing after install: {' '.join(still)}")


def tool_version(argv, pattern=r"(\d+\.\d+(\.\d+)?)"):
    try:
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    for line in r.stdout.splitlines():
        m = re.search(pattern, line)
        if m:
            return m.group(1)
    return "?"


def free_port():
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise BenchError("no free port on 127.0.0.1")
