"""``python -m demo``: a client program that imports nothing of the server and fails with a named error."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from demo import cli

ROOT = Path(__file__).resolve().parents[2]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: connections are refused


def test_an_unreachable_market_is_a_named_error_and_exit_status_1(capsys, tmp_path):
    code = cli.main(
        ["--url", f"http://127.0.0.1:{closed_port()}", "--limit", "1", "--cache-dir", str(tmp_path)]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot log in to http://127.0.0.1:") and "cannot reach the server" in err, (
        err
    )


def test_the_seeder_runs_as_a_module_without_the_server_package():
    # A meta-path hook that refuses the server package and Django proves the seeder never imports them.
    probe = (
        "import sys\n"
        "class Refuse:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'marketplace' or name.startswith(('marketplace.', 'django')):\n"
        "            raise ImportError('the demo seeder imported ' + name)\n"
        "sys.meta_path.insert(0, Refuse())\n"
        "import runpy; sys.argv = ['demo', '--help']; runpy.run_module('demo', run_name='__main__')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "Seed the demo market" in done.stdout
