"""The CI workflow example is checked by actionlint (the `test` extra installs it), not by eye."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / ".github" / "workflows" / "benchmark-gate.yml"


def _actionlint() -> str:
    beside_python = Path(sys.executable).with_name("actionlint")
    found = str(beside_python) if beside_python.is_file() else shutil.which("actionlint")
    if found is None:
        pytest.skip("actionlint is not installed (pip install -e '.[test]' installs it)")
    return found


def _lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            _actionlint(),
            "-config-file",
            str(REPO / ".github" / "actionlint.yaml"),
            "-shellcheck=",
            "-pyflakes=",
            str(path),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )


def test_the_benchmark_workflow_passes_actionlint():
    result = _lint(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_workflow_gates_restores_and_uploads():
    text = WORKFLOW.read_text()
    assert "self-hosted" in text and "actions/cache/restore@" in text and "actions/upload-artifact@" in text
    assert "pytest benchmarks/" in text and "--vllmbench-gate=" in text and "--benchmark-save=" in text
    assert "if: success() && github.ref == 'refs/heads/main'" in text  # a failed gate never becomes the baseline


def test_actionlint_catches_a_broken_copy(tmp_path):
    broken = tmp_path / "broken.yml"
    runner = "runs-on: [self-hosted, linux, gpu]"
    broken.write_text(WORKFLOW.read_text().replace(runner, f"{runner}\n    step: []"))  # 'step' is no job key
    assert _lint(broken).returncode != 0
