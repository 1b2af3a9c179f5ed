"""The pytest adapter, driven through real pytest runs (pytester); no engine starts here."""

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH_TEST = (REPO / "benchmarks" / "test_batch.py").read_text()


@pytest.fixture
def bench(pytester):
    pytester.makepyfile(test_batch=BENCH_TEST)
    (pytester.path / "data").mkdir()
    (pytester.path / "data" / "batch_5k.jsonl").symlink_to(REPO / "data" / "batch_5k.jsonl")  # the default dataset
    return pytester


def collected_ids(result):
    return [line.strip() for line in result.outlines if "test_batch[" in line]


def test_matrix_is_model_major_with_stable_ids(bench):
    result = bench.runpytest("--collect-only", "-q", "--model=gemma-270m", "--model=mistral-7b")
    assert collected_ids(result) == [
        "test_batch.py::test_batch[gemma-270m-offline]",
        "test_batch.py::test_batch[gemma-270m-server]",
        "test_batch.py::test_batch[mistral-7b-offline]",
        "test_batch.py::test_batch[mistral-7b-server]",
    ]


def test_ollama_tags_and_hf_ids_name_cells_by_alias(bench):
    result = bench.runpytest("--collect-only", "-q", "--model=gemma3:12b", "--model=acme/tiny-llm", "--mode=offline")
    assert collected_ids(result) == [
        "test_batch.py::test_batch[gemma-12b-offline]",
        "test_batch.py::test_batch[tiny-llm-offline]",
    ]


def test_unknown_model_is_a_usage_error_listing_aliases(bench):
    result = bench.runpytest("--collect-only", "--model=gemma-13b")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown model 'gemma-13b'*gemma-12b-4bit*mistral-7b*qwen-14b*"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mode=batch"], "*--mode must be one of offline, server, endpoint*"),
        (["--limit=-1"], "*--limit must be >= 1*"),
        (["--engine-arg=eager"], "*--engine-arg expects KEY=VALUE*"),
        (["--mode=endpoint"], "*--mode=endpoint needs --endpoint=URL*"),
    ],
)
def test_bad_options_are_usage_errors(bench, args, message):
    result = bench.runpytest("--collect-only", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_ini_twin_and_tool_table(bench):
    bench.makeini("[pytest]\nvllmbench_model = gemma-1b gemma-4b\nvllmbench_mode = offline\n")
    result = bench.runpytest("--collect-only", "-q")
    assert collected_ids(result) == [
        "test_batch.py::test_batch[gemma-1b-offline]",
        "test_batch.py::test_batch[gemma-4b-offline]",
    ]
    bench.makepyprojecttoml('[tool.vllmbench]\nmodel = ["qwen-14b"]\nmode = ["server"]\n')
    (bench.path / "tox.ini").unlink()
    assert collected_ids(bench.runpytest("--collect-only", "-q")) == ["test_batch.py::test_batch[qwen-14b-server]"]
    # the command line beats both
    assert collected_ids(bench.runpytest("--collect-only", "-q", "--model=gemma-12b")) == [
        "test_batch.py::test_batch[gemma-12b-server]"
    ]


def test_options_are_documented_in_help(pytester):
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*vllmbench*", "*--model=NAME*", "*--engine-arg=KEY=VALUE*", "*--project-to=N*"])


def test_a_bad_batch_file_stops_the_run_naming_file_and_line_before_any_engine(bench):
    bad = bench.path / "bad.jsonl"
    bad.write_text('{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m", "messages": []}}\n')
    result = bench.runpytest(f"--dataset={bad}", "--mode=offline", "--benchmark-save=x")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{bad}:1: body.messages must be a non-empty list*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert not list(bench.path.glob(".benchmarks/**/*.json"))
    assert not (bench.path / "BENCHMARKS.md").exists()


def test_machine_info_hook_adds_versions(pytester):
    pytester.makepyfile(test_x="def test_x(benchmark):\n    benchmark(lambda: None)\n")
    result = pytester.runpytest("--benchmark-json=out.json", "--report=none")
    assert result.ret == 0
    info = json.loads((pytester.path / "out.json").read_text())["machine_info"]["vllmbench"]
    assert info["vllm_version"] and info["torch_version"] and info["gpus"] == []


def test_without_model_option_the_batch_lines_choose_the_models(bench):
    batch = bench.path / "batch.jsonl"
    lines = [
        {"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": model, "messages": [{"role": "user", "content": "hi"}]}}
        for i, model in enumerate(["gemma3:12b", "mistral:7b", "gemma3:12b"])
    ]
    batch.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    result = bench.runpytest("--collect-only", "-q", f"--dataset={batch}", "--mode=offline")
    assert collected_ids(result) == [
        "test_batch.py::test_batch[gemma-12b-offline]",
        "test_batch.py::test_batch[mistral-7b-offline]",
    ]
    lines[2]["body"]["model"] = "llama3:8b"
    batch.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    result = bench.runpytest("--collect-only", f"--dataset={batch}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{batch}:3: model 'llama3:8b' is not in the registry*pass --model*"])
    # --model overrides the lines, so the unknown one no longer matters
    assert collected_ids(bench.runpytest("--collect-only", "-q", f"--dataset={batch}", "--model=gemma-1b",
                                         "--mode=offline")) == ["test_batch.py::test_batch[gemma-1b-offline]"]
