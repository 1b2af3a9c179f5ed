"""Endpoint mode runs whatever a server serves, and no credential reaches anything saved, printed or rendered."""

import json
import socket
from pathlib import Path

import pytest
from openai_stub import StubServer

from pytest_vllmbench.config.matrix import build_matrix
from pytest_vllmbench.config.registry import load_registry
from pytest_vllmbench.config.settings import merge_sources, resolve
from pytest_vllmbench.engines import endpoint as endpoint_module
from pytest_vllmbench.engines.cell_plan import DummySources, plan_cell
from pytest_vllmbench.run.engine_start import start_engine
from pytest_vllmbench.run.session import BenchSession

REPO = Path(__file__).resolve().parents[1]
DATASET = REPO / "data" / "batch_5k.jsonl"
TEST = "def test_batch(vllmbench_cell, benchmark):\n    vllmbench_cell.run(benchmark)\n"


def saved_cells(pytester):
    files = list((pytester.path / ".benchmarks").rglob("*.json"))
    assert len(files) == 1, files
    run = json.loads(files[0].read_text())
    return run, [bench["extra_info"] for bench in run["benchmarks"]]


@pytest.mark.parametrize("served", ["llama3.2:3b", "/models/gemma-3-270m-q4_k_m.gguf", "my-finetune"])
def test_a_name_the_registry_does_not_know_goes_to_the_endpoint_as_is(pytester, served):
    pytester.makepyfile(test_batch=TEST)
    with StubServer([served, "other"]) as stub:
        result = pytester.runpytest(
            "--mode=endpoint",
            f"--endpoint=http://127.0.0.1:{stub.port}",
            f"--model={served}",
            "--limit=3",
            f"--dataset={DATASET}",
            "--benchmark-save=names",
            "--report=report.md",
        )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert {seen["body"]["model"] for seen in stub.seen if seen["body"]} == {served}
    _, [cell] = saved_cells(pytester)
    shown = Path(served).name if served.startswith("/") else served  # a saved run holds no absolute path
    assert (cell["model_source"], cell["params_b"], cell["dtype"], cell["n_failed"]) == (shown, None, None, 0)
    assert cell["cell"] in (pytester.path / "report.md").read_text()


def test_a_name_the_endpoint_does_not_serve_fails_listing_what_it_serves(pytester):
    pytester.makepyfile(test_batch=TEST)
    with StubServer(["a-model", "b-model"]) as stub:
        result = pytester.runpytest(
            "--mode=endpoint",
            f"--endpoint=http://127.0.0.1:{stub.port}/v1",
            "--model=llama3.2:3b",
            "--limit=1",
            f"--dataset={DATASET}",
        )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*'llama3.2:3b' is not served at http://127.0.0.1:*/v1 (served: a-model, b-model)*"])


def test_unknown_names_still_need_the_registry_outside_endpoint_mode():
    registry = load_registry()
    cells = build_matrix(("llama3.2:3b",), ("endpoint",), registry)
    assert cells[0].model.alias == "llama3.2:3b" and cells[0].model.params_b is None
    assert build_matrix(("gemma3:12b",), ("endpoint",), registry)[0].model == registry.models["gemma-12b"]
    with pytest.raises(Exception, match=r"unknown model 'llama3\.2:3b'"):
        build_matrix(("llama3.2:3b",), ("endpoint", "offline"), registry)


SECRETS = ("bob-the-user", "hunter2-password", "query-secret-123", "sk-env-key-456", "engine-token-789")


def test_planted_secrets_reach_nothing_saved_printed_or_rendered(pytester, monkeypatch):
    monkeypatch.setenv("BENCH_KEY", SECRETS[3])
    pytester.makepyfile(test_batch=TEST)
    with StubServer(["served-model"]) as stub:
        url = f"http://{SECRETS[0]}:{SECRETS[1]}@127.0.0.1:{stub.port}/v1?api_key={SECRETS[2]}&mode=x"
        result = pytester.runpytest(
            "--mode=endpoint",
            f"--endpoint={url}",
            "--model=served-model",
            "--limit=2",
            f"--dataset={DATASET}",
            "--api-key-env=BENCH_KEY",
            "--benchmark-save=secret",
            "--report=report.md",
            "--write-outputs=outs",
            "-v",
        )
        missing = socket.socket()
        missing.bind(("127.0.0.1", 0))
        gone = missing.getsockname()[1]
        missing.close()
        dead = f"http://{SECRETS[0]}:{SECRETS[1]}@127.0.0.1:{gone}/v1?token={SECRETS[2]}"
        failed = pytester.runpytest(
            "--mode=endpoint",
            f"--endpoint={dead}",
            "--model=served-model",
            "--limit=1",
            f"--dataset={DATASET}",
            "--api-key-env=BENCH_KEY",
            "--benchmark-save=dead",
            "--report=report.md",
        )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert failed.ret == pytest.ExitCode.TESTS_FAILED
    # the endpoint itself got what it needs: the key, the credentials and the query
    posts = [seen for seen in stub.seen if seen["body"]]
    assert posts and all(seen["authorization"] == f"Bearer {SECRETS[3]}" for seen in posts)
    assert all(f"api_key={SECRETS[2]}" in seen["query"] for seen in stub.seen)
    texts = {
        "terminal": result.stdout.str() + result.stderr.str() + failed.stdout.str() + failed.stderr.str(),
        "report": (pytester.path / "report.md").read_text(),
        **{str(p): p.read_text() for p in (pytester.path / ".benchmarks").rglob("*.json")},
        **{str(p): p.read_text() for p in (pytester.path / "outs").rglob("*")},
    }
    assert len(texts) == 4  # a saved run (the failed session saves none) and one batch output file
    for where, text in texts.items():
        assert not [secret for secret in SECRETS if secret in text], where
    [run] = [text for where, text in texts.items() if where.endswith(".json")]
    [cell] = json.loads(run)["benchmarks"]
    assert cell["extra_info"]["engine"]["url"].startswith("http://<redacted>@127.0.0.1:")
    assert "cannot reach http://127.0.0.1:" in texts["terminal"]


def test_secret_engine_args_are_saved_redacted(tmp_path):
    settings = resolve(
        merge_sources(
            {
                "mode": ["offline"],
                "engine_arg": [f"hf_token={SECRETS[4]}", "api-key=k1234", "max_num_batched_tokens=64"],
            },
            {},
            {},
        ),
        REPO,
    )
    session = BenchSession(settings, load_registry(), REPO)
    [cell] = build_matrix(("gemma-270m",), ("offline",), session.registry)
    session.record_unrun(session.plan(cell), f"failed: vLLM said hf_token={SECRETS[4]}")
    [entry] = session.unrun
    assert entry.engine_args is not None
    assert entry.engine_args["hf_token"] == "<redacted>" and entry.engine_args["api_key"] == "<redacted>"
    assert entry.engine_args["max_num_batched_tokens"] == 64
    assert SECRETS[4] not in json.dumps(entry.extra_info())


@pytest.mark.parametrize(
    ("url", "withheld"),
    [
        ("http://10.1.2.3:8000/v1", True),
        ("http://example.org/v1", True),
        ("https://example.org/v1", False),
        ("http://127.0.0.1:1/v1", False),
        ("http://localhost:1/v1", False),
        ("http://[::1]:1/v1", False),
    ],
)
def test_the_api_key_is_not_sent_over_plain_http_to_another_machine_unless_asked(monkeypatch, capfd, url, withheld):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-1234")
    got = []
    monkeypatch.setattr(endpoint_module, "EndpointEngine", lambda config: got.append(config))
    registry = load_registry()
    [cell] = build_matrix(("some-model",), ("endpoint",), registry)
    for opt_in in (False, True):
        cli = {"mode": ["endpoint"], "endpoint": url, "api_key_over_http": opt_in}
        start_engine(plan_cell(cell, resolve(merge_sources(cli, {}, {}), REPO), registry, DummySources()))
    assert [config.api_key for config in got] == [None if withheld else "sk-test-1234", "sk-test-1234"]
    assert ("is NOT sent to" in capfd.readouterr().err) == withheld


def test_without_model_the_batch_lines_names_go_to_the_endpoint(pytester):
    pytester.makepyfile(test_batch=TEST)
    body = {"model": "llama3.2:3b", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    (pytester.path / "b.jsonl").write_text(
        json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": body}) + "\n"
    )
    with StubServer(["llama3.2:3b"]) as stub:
        result = pytester.runpytest("--mode=endpoint", f"--endpoint=http://127.0.0.1:{stub.port}", "--dataset=b.jsonl")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.stdout.fnmatch_lines(["*test_batch?llama3.2:3b-endpoint?*"])
    assert {seen["body"]["model"] for seen in stub.seen if seen["body"]} == {"llama3.2:3b"}
