"""Training under torchrun with 2 processes (gloo, loopback): ranks stay in sync.

See ../shared/notes/distributed.md: a free port per test, a barrier before
destroy_process_group (in lstmkit.train.distributed.teardown), and a bounded time.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
import torch.distributed as dist

from cli_helpers import TINY, subprocess_env, write_text
from lstmkit.train import checkpoint as ckpt


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="torch without gloo")
def test_two_processes_stay_in_sync(tmp_path):
    data = write_text(tmp_path)
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), "-m", "lstmkit", "train", "charlm", "--data", str(data),
           *map(str, TINY), "--batch-size", "4", "--dropout", "0.2", "--layers", "2", "--time-budget", "2",
           "--out", str(run)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=subprocess_env())
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    s = json.loads((run / "summary.json").read_text())
    assert s["world_size"] == 2
    assert s["ranks_in_sync"] is True  # all_gather of a parameter checksum after the last step
    # The clock differs between processes; the ranks agree on when the time is up (or they would hang).
    assert s["stopped"] == "time budget" and s["steps"] > 0
    assert s["tokens"] == s["steps"] * 32 * 4  # this rank's tokens: 4 sequences of 32 per step
    # the printed summary is rank 0's alone
    assert r.stdout.count("done (") == 1
    assert ckpt.read_meta(run)["world_size"] == 2
