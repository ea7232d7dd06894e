import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.services import IN_CI

ROOT = Path(__file__).resolve().parents[2]


def test_compose_file_validates():
    exe = shutil.which("docker-compose")
    if exe is None:
        if IN_CI:
            pytest.fail("docker-compose (Debian package) must be installed in CI")
        pytest.skip("docker-compose is not installed")
    result = subprocess.run([exe, "-f", str(ROOT / "docker/compose.yaml"), "config", "-q"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_compose_runs_every_part_of_the_market():
    text = (ROOT / "docker/compose.yaml").read_text()
    for service in ("web:", "worker:", "beat:", "postgres:", "redis:", "minio:"):
        assert f"\n  {service}" in text
