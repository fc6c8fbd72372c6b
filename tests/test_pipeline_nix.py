"""Submissions with a cutor.nix: the environment reaches the sandbox, failures end early."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from tests.conftest import Stack


def tool_derivation(nonce: str, tool: str = "greet") -> str:
    return f"""
derivation {{
  name = "{tool}-{nonce}";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" ''
    mkdir -p $out/bin
    printf '#!/bin/sh\\necho "{tool} {nonce} $*"\\n' > $out/bin/{tool}
    chmod +x $out/bin/{tool}
  '' ];
}}"""


def with_nix(cutor_nix: str, run_sh: str) -> dict[str, Any]:
    return {"files": [{"name": "run.sh", "content": run_sh},
                      {"name": "cutor.nix", "content": cutor_nix}]}


def test_list_of_tools_on_path(stack: Stack) -> None:
    nonce = secrets.token_hex(6)
    result = stack.run(with_nix(f"[ ({tool_derivation(nonce)}) ]", "greet world"))
    assert result["status"] == "FINISHED", result
    assert result["run"]["stdout"] == f"greet {nonce} world\n"
    assert f"greet-{nonce}" in result["dependencies"]["stdout"]
    assert result["dependencies"]["exit_code"] == 0


def test_shell_derivation_and_hook_run_in_sandbox(stack: Stack) -> None:
    nonce = secrets.token_hex(6)
    marker = Path(f"/tmp/cutor-hook-{nonce}")
    shell = f"""
let tool = {tool_derivation(nonce)};
in derivation {{
  name = "shell-{nonce}";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  buildInputs = [ tool ];
  GREETING = "from-the-derivation";
  shellHook = ''
    touch {marker}
    export HOOKED=yes
  '';
}}"""
    result = stack.run(with_nix(shell, 'echo "$GREETING $HOOKED"; ls /tmp; greet'))
    assert result["status"] == "FINISHED", result
    lines = result["run"]["stdout"].splitlines()
    assert lines[0] == "from-the-derivation yes"
    assert marker.name in lines
    assert lines[-1] == f"greet {nonce} "
    assert not marker.exists()


def test_nix_store_is_read_only(stack: Stack) -> None:
    nonce = secrets.token_hex(6)
    run_sh = "touch /nix/store/x 2>&1; echo $?; ls /nix/store | grep -c greet"
    result = stack.run(with_nix(f"[ ({tool_derivation(nonce)}) ]", run_sh))
    lines = result["run"]["stdout"].splitlines()
    assert "Read-only file system" in lines[0]
    assert lines[1] == "1"


def test_syntax_error_fails_dependencies(stack: Stack) -> None:
    result = stack.run(with_nix("[ (derivation { name = ; }) ]", "echo never"))
    assert result["status"] == "DEPENDENCIES_FAILED"
    assert "syntax error" in result["dependencies"]["stderr"]
    assert result["run"] is None
    assert result["compile"] is None


def test_missing_nixpkgs_is_explained(stack: Stack) -> None:
    result = stack.run(with_nix("{ pkgs ? import <nixpkgs> {} }: pkgs.hello", "hello"))
    assert result["status"] == "DEPENDENCIES_FAILED"
    assert "nixpkgs" in result["dependencies"]["stderr"]


def test_failing_build_fails_dependencies(stack: Stack) -> None:
    nonce = secrets.token_hex(6)
    broken = f"""[ (derivation {{
      name = "broken-{nonce}"; system = builtins.currentSystem; builder = "/bin/sh";
      args = [ "-c" "echo build-log-{nonce}; exit 3" ];
    }}) ]"""
    result = stack.run(with_nix(broken, "echo never"))
    assert result["status"] == "DEPENDENCIES_FAILED"
    assert f"build-log-{nonce}" in result["dependencies"]["stderr"]


def test_cached_environment_is_reused(stack: Stack) -> None:
    nonce = secrets.token_hex(6)
    body = with_nix(f"[ ({tool_derivation(nonce)}) ]", "greet again")
    first = stack.run(body)
    second = stack.run(body)
    assert first["status"] == second["status"] == "FINISHED"
    assert "will be built" in first["dependencies"]["stderr"]
    assert second["dependencies"] == first["dependencies"]


def test_limit_failure_not_reused_with_larger_limit(stack: Stack) -> None:
    nonce = secrets.token_hex(6)
    slow = f"""[ (derivation {{
      name = "slow-{nonce}"; system = builtins.currentSystem; builder = "/bin/sh";
      args = [ "-c" "sleep 3; echo done > $out" ];
    }}) ]"""
    tight = with_nix(slow, "echo ran")
    tight["limits"] = {"dependencies": {"wall_time": 1}}
    failed = stack.run(tight)
    assert failed["status"] == "DEPENDENCIES_FAILED"
    assert failed["dependencies"]["limit_exceeded"] == "wall_time"

    same = stack.run(tight)
    assert same["status"] == "DEPENDENCIES_FAILED"
    assert same["dependencies"] == failed["dependencies"]

    roomy = with_nix(slow, "echo ran")
    roomy["limits"] = {"dependencies": {"wall_time": 60}}
    result = stack.run(roomy)
    assert result["status"] == "FINISHED", result
    assert result["run"]["stdout"] == "ran\n"
