"""The README's walkthrough, as a newcomer pastes it: its `sh` blocks are taken from
README.md and run one after the other in one bash, as root, from the repository, with
nothing added but `set -e` (so the first failing command fails the test) and the
clean-up block at the end. If the README changes, this runs the new text.

The walkthrough needs the debug build (what `make test` builds) and etcd 3.5 in `.venv`
(`make etcd`; `make test`'s venv has it). It uses the names it documents: the network
namespace `lab` and /tmp/lab, so it removes leftovers of those first.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"


def walkthrough_blocks() -> list[str]:
    """The ```sh blocks of the section "## Walkthrough", in order."""
    text = README.read_text()
    start = text.index("## Walkthrough")
    end = text.index("\n## ", start + 1)
    section = text[start:end]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)


def cleanup() -> None:
    subprocess.run(["bash", "-c", "ip netns pids lab 2>/dev/null | xargs -r kill -9; ip netns del lab 2>/dev/null; "
                    "rm -rf /etc/netns/lab /tmp/lab"], check=False)


@pytest.fixture
def walkthrough_env():
    if os.geteuid() != 0:
        pytest.skip("the walkthrough runs as root (network namespaces)")
    for tool in (REPO / ".build" / "debug" / "srvd", REPO / ".venv" / "bin" / "etcd"):
        if not os.access(tool, os.X_OK):
            pytest.fail(f"{tool} is missing: the walkthrough needs `make build` and `make etcd`")
    cleanup()
    yield
    cleanup()


def test_the_readme_walkthrough_works_as_pasted(walkthrough_env, tmp_path):
    blocks = walkthrough_blocks()
    assert len(blocks) == 4, f"expected setup, start, fourth member and clean-up blocks, found {len(blocks)}"
    setup, start, fourth, clean = blocks
    assert "ip netns del lab" in clean
    script = "set -e\n" + "\n".join([setup, start, fourth]) + "\n" + clean
    (tmp_path / "walkthrough.sh").write_text(script)
    # The debug binaries the walkthrough names (make test builds them; SRVD_BIN may point
    # at another build, which the README does not know about).
    env = {k: v for k, v in os.environ.items() if k not in ("SRVD_TOKEN_FILE",)}
    # Files, not pipes: the servers the blocks start in the background keep their output
    # open until the clean-up block (or the fixture) ends them.
    out_path, err_path = tmp_path / "stdout", tmp_path / "stderr"
    with open(out_path, "w") as out_file, open(err_path, "w") as err_file:
        r = subprocess.run(["bash", "-x", str(tmp_path / "walkthrough.sh")], cwd=REPO, env=env,
                           stdout=out_file, stderr=err_file, timeout=300, stdin=subprocess.DEVNULL)
    out = out_path.read_text()
    log = f"stdout:\n{out[-6000:]}\nstderr:\n{err_path.read_text()[-6000:]}"
    assert r.returncode == 0, log
    # What the README says each step prints.
    assert "srvd 0.1.0: DNS on 127.0.0.1:53" in out, log
    assert "3 member(s) registered and resolvable via srvd at 127.0.0.1:53: infra0, infra1, infra2" in out, log
    assert "--initial-cluster 0=http://infra0.lab.example:2380,1=http://infra1.lab.example:2380,2=http://infra2.lab.example:2380" in out, log
    assert "ok: etcd would bootstrap from these records" in out, log
    assert out.count("| started |") >= 3 + 4, f"member lists should show 3, then 4 started members:\n{log}"
    assert "\nfoo\nbar\n" in out, log
    assert not Path("/tmp/lab").exists(), "the clean-up block left /tmp/lab"
