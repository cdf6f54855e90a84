"""--threads and its default: the cores other work leaves free (#16: one competing process made torch's
default of every core 13-20x slower on 2 cores)."""

from __future__ import annotations

import os

import pytest
import torch

from geometry.networks import device


@pytest.mark.parametrize(("load", "want"), [(0.0, 2), (0.4, 2), (0.6, 1), (1.7, 1), (9.0, 1)])
def test_free_cores_leaves_the_busy_ones(monkeypatch, load, want):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    assert device.free_cores() == want


def test_every_command_takes_threads_and_the_caller_keeps_its_own(monkeypatch, spirals_run_path):
    from app.cli import foundation_cmds
    from app.cli.main import main

    seen = []
    real = foundation_cmds.cmd_info
    monkeypatch.setattr(foundation_cmds, "cmd_info", lambda args: (seen.append(torch.get_num_threads()), real(args))[1])
    before = torch.get_num_threads()
    monkeypatch.setattr(device, "free_cores", lambda: 2)
    from app.cli import main as cli_main

    parser = cli_main.build_parser()
    assert all(any("--threads" in a.option_strings for a in p._actions) for p in parser._subparsers._group_actions[0].choices.values())
    assert main(["info", str(spirals_run_path), "--threads", "1"]) == 0
    assert main(["info", str(spirals_run_path)]) == 0  # default: the free cores
    assert seen == [1, 2] and torch.get_num_threads() == before
