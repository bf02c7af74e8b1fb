"""The soak of `make run`'s stack (bench/soak.py, ten minutes), cut to CI
size (half a minute): beat, deploys to the local target and console calls
with no process crashing and every call answered."""

import subprocess
import sys

import pytest

from tests import processes

# Real Triton servers behind the whole stack, on real time.
pytestmark = [pytest.mark.triton, pytest.mark.server]


def test_half_a_minute_of_deploys_and_console_calls_crashes_nothing():
    soak = subprocess.run(
        [sys.executable, "bench/soak.py", "--duration", "30"],
        cwd=processes.ROOT,
        env=processes.child_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    print(soak.stdout, soak.stderr)
    assert soak.returncode == 0, soak.stdout[-3000:] + soak.stderr[-3000:]
    assert "unexpected process exits: 0" in soak.stdout
    assert "failures: 0" in soak.stdout
    assert "deploys: 0" not in soak.stdout
