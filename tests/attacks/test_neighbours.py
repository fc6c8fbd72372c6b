"""Neighbours: concurrent submissions cannot see or signal each other, and nothing carries over.

A holder leaves files in /work, /tmp and /dev/shm, an abstract Unix socket and a
process with a marked command line, then waits. A prober that runs at the same time
looks for them and sends SIGKILL to every process it can name. A later submission looks
for the traces of both.
"""

from __future__ import annotations

import json
import secrets

from tests.attacks.conftest import probe_body, probe_report, run_all
from tests.conftest import Stack


def test_neighbours_isolated(stack: Stack) -> None:
    holder, prober = secrets.token_hex(8), secrets.token_hex(8)
    first, second = run_all(stack, [
        probe_body("neighbour.py", "holder", holder, "[]"),
        probe_body("neighbour.py", "prober", prober, json.dumps([holder])),
    ])
    held, probed = probe_report(first), probe_report(second)
    # The probing must fall inside the time the holder's traces existed, or this would
    # test nothing; the sandboxes share the host's clock.
    assert held["held from"] <= probed["probed from"], (held, probed)
    assert probed["probed until"] <= held["held until"], (held, probed)

    assert len(held["own traces"]) == 5, held
    assert held["marked alive"] is True
    assert probed["seen"] == []
    assert probed["seen after"] == []
    assert "1" in probed["signals"], "the prober could not even name PID 1"
    assert probed["signals"]["1"] == "EPERM"

    later = probe_report(stack.run(
        probe_body("neighbour.py", "later", secrets.token_hex(8), json.dumps([holder, prober]))
    ))
    assert later["seen"] == []
