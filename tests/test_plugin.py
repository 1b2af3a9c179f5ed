"""The pytest adapter, driven through real pytest runs (pytester); no engine starts here."""

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from fake_cells import FAKE_BATCH

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
    bad.write_text(
        '{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m", "messages": []}}\n'
    )
    result = bench.runpytest(f"--dataset={bad}", "--mode=offline", "--benchmark-save=x")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{bad}:1: body.messages must be a non-empty list*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert not list(bench.path.glob(".benchmarks/**/*.json"))
    assert not (bench.path / "BENCHMARKS.md").exists()


def test_machine_info_hook_adds_versions(fake):
    result = fake.runpytest(
        "--model=gemma-270m", "--mode=offline", "--limit=2", "--benchmark-json=out.json", "--report=none"
    )
    assert result.ret == 0
    info = json.loads((fake.path / "out.json").read_text())["machine_info"]["vllmbench"]
    assert info["vllm_version"] and info["torch_version"] and info["gpus"] == []


@pytest.fixture
def fake(bench):
    bench.makepyfile(test_batch=FAKE_BATCH)
    return bench


PLAIN_PROJECT = """
import signal

def test_plain(benchmark):
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, "a SIGTERM handler nobody asked for"
    benchmark.pedantic(sum, args=([1, 2, 3],), rounds=3)
"""


def _outcome(pytester, *args):
    """Exit code, files written and output lines of a run, with timings and paths taken out."""
    result = pytester.runpytest_subprocess(*args)
    files = {
        str(path.relative_to(pytester.path)): path.read_bytes() if path.name == "BENCHMARKS.md" else None
        for path in pytester.path.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    saved = [json.loads(path.read_text()) for path in pytester.path.glob(".benchmarks/*/*.json")]
    shutil.rmtree(pytester.path / ".benchmarks", ignore_errors=True)
    lines = [
        line
        for line in result.outlines + result.errlines
        if not any(
            word in line
            for word in (
                "test_plain ",
                "seconds",
                " in ",
                "rootdir",
                "platform",
                "Saved",
                "benchmark:",
                "plugins:",
                "----",
                "Name (time",
            )
        )
    ]
    return result.ret, files, [sorted(run["machine_info"]) for run in saved], lines


def test_a_plain_pytest_benchmark_project_sees_no_change(pytester):
    pytester.makepyfile(test_plain=PLAIN_PROJECT)
    own = "# Our benchmarks\n\nWritten by hand; not generated by anything.\n"
    (pytester.path / "BENCHMARKS.md").write_text(own)
    args = ["--benchmark-save=x", "-p", "no:cacheprovider"]
    with_plugin = _outcome(pytester, *args)
    without = _outcome(pytester, *args, "-p", "no:vllmbench")
    assert with_plugin[0] == 0
    assert with_plugin == without
    assert (pytester.path / "BENCHMARKS.md").read_text() == own
    assert "vllmbench" not in "\n".join(with_plugin[3])


def test_xdist_plain_project_keeps_its_own_scheduling(pytester):
    pytester.makepyfile(test_plain=PLAIN_PROJECT)
    pytester.makeconftest(SEE_XDIST)
    assert pytester.runpytest("-n", "2").ret == 0
    assert json.loads((pytester.path / "xdist.json").read_text()) == {"sched": "LoadScheduling", "restarts": 8}


SEE_XDIST = """
import json

def pytest_sessionfinish(session):
    config = session.config
    if not hasattr(config, "workerinput"):
        dsession = config.pluginmanager.getplugin("dsession")
        with open("xdist.json", "w") as out:
            json.dump({"sched": type(dsession.sched).__name__, "restarts": dsession._max_worker_restart}, out)
"""


@pytest.mark.parametrize(
    ("own", "expected"),
    [
        ([], ("ScopeScheduling", 0)),
        (["--dist=loadgroup"], ("ScopeScheduling", 0)),
        (["--dist=loadfile"], ("LoadFileScheduling", 0)),
        (["--max-worker-restart=2"], ("ScopeScheduling", 2)),
    ],
    ids=["defaults", "loadgroup", "own-dist", "own-restarts"],
)
def test_xdist_settings_are_in_force_on_the_controller(fake, own, expected):
    fake.makeconftest(SEE_XDIST)
    result = fake.runpytest("-n", "2", *own, "--model=gemma-270m", "--mode=offline", "--limit=2", "--report=none")
    assert result.ret == 0, result.stdout.str()
    seen = json.loads((fake.path / "xdist.json").read_text())
    assert (seen["sched"], seen["restarts"]) == expected


def test_a_benchmarks_md_this_tool_did_not_write_is_refused_before_any_cell(fake):
    own = "# Team notes\n\nNot generated.\n"
    (fake.path / "BENCHMARKS.md").write_text(own)
    result = fake.runpytest("--model=gemma-270m", "--mode=offline", "--limit=2", "--benchmark-save=x")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*BENCHMARKS.md was not generated by pytest-vllmbench*add the line*"])
    assert (fake.path / "BENCHMARKS.md").read_text() == own
    assert not list(fake.path.glob(".benchmarks/*/*.json"))  # nothing ran


@pytest.mark.parametrize("bad", ["outputs", "report"])
def test_paths_are_checked_before_any_cell_runs(fake, bad):
    blocker = fake.path / "a-file"
    blocker.write_text("")
    option = f"--write-outputs={blocker}/out" if bad == "outputs" else f"--report={blocker}/R.md"
    result = fake.runpytest("--model=gemma-270m", "--mode=offline", "--limit=2", "--benchmark-save=x", option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{blocker}*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert not list(fake.path.glob(".benchmarks/*/*.json"))


def _strings(value):
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    else:
        yield str(value)


def _plain_json(value):
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain_json(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain_json(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


@pytest.mark.parametrize("where", ["inside", "outside"])
def test_a_saved_run_holds_no_local_path_and_plain_params(fake, where, tmp_path_factory):
    if where == "inside":
        dataset_args, label = [], "data/batch_5k.jsonl"
    else:
        outside = tmp_path_factory.mktemp("elsewhere") / "plain_variant.jsonl"
        outside.write_bytes((REPO / "data" / "batch_5k.jsonl").read_bytes())
        dataset_args, label = [f"--dataset={outside}", "--dataset-transform=response_format removed"], outside.name
    result = fake.runpytest(
        "--model=gemma-270m", "--mode=offline", "--mode=server", "--limit=2", "--benchmark-save=clean", *dataset_args
    )
    assert result.ret == 0, result.stdout.str()
    [saved] = fake.path.glob(".benchmarks/*/*.json")
    data = json.loads(saved.read_text())
    forbidden = {str(fake.path), str(fake.path.resolve()), str(Path.home()), tempfile.gettempdir()}
    leaks = [text for text in _strings(data) if any(place in text for place in forbidden)]
    assert leaks == []
    assert "UNSERIALIZABLE" not in saved.read_text() and "PosixPath" not in saved.read_text()
    for bench in data["benchmarks"]:
        assert _plain_json(bench["params"]) and bench["params"] == {"vllmbench_cell": bench["param"]}
        assert bench["extra_info"]["dataset"]["path"] == label
    report = (fake.path / "BENCHMARKS.md").read_text()
    assert label in report and str(fake.path) not in report
    if where == "outside":
        assert "plain_variant.jsonl (response_format removed), sha256 0a3e9638" in report


def test_without_model_option_the_batch_lines_choose_the_models(bench):
    batch = bench.path / "batch.jsonl"
    lines = [
        {
            "custom_id": f"r{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": model, "messages": [{"role": "user", "content": "hi"}]},
        }
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
    assert collected_ids(
        bench.runpytest("--collect-only", "-q", f"--dataset={batch}", "--model=gemma-1b", "--mode=offline")
    ) == ["test_batch.py::test_batch[gemma-1b-offline]"]
