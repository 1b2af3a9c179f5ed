"""ray mode without a Ray cluster: its settings, rows and records, and the skip when ray is not installed."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_plugin import BENCH_TEST, REPO

from pytest_vllmbench.config.matrix import Cell
from pytest_vllmbench.config.registry import load_registry
from pytest_vllmbench.config.settings import merge_sources, resolve
from pytest_vllmbench.engines import ray_data, ray_rows
from pytest_vllmbench.engines.base import SamplingOverrides
from pytest_vllmbench.engines.cell_plan import DummySources, plan_cell
from pytest_vllmbench.workload.batch import BatchRequest
from pytest_vllmbench.workload.batch_line import CHAT_URL, COMPLETIONS_URL


def test_ray_settings_are_split_from_the_vllm_args():
    settings, vllm_args = ray_data.split_settings({"ray_replicas": 2, "ray_batch_size": 8, "max_model_len": 512})
    assert settings == {"ray_replicas": 2, "ray_batch_size": 8, "ray_max_concurrent_batches": 4}
    assert vllm_args == {"max_model_len": 512}


@pytest.mark.parametrize(
    "args, message",
    [
        ({"ray_replicas": 0}, "ray_replicas=0: expected an integer >= 1"),
        ({"ray_replicas": "2"}, "expected an integer"),
        ({"ray_replica": 2}, "unknown Ray setting --engine-arg ray_replica"),
    ],
)
def test_bad_ray_settings_say_which_and_why(args, message):
    with pytest.raises(ValueError, match=message):
        ray_data.split_settings(args)


def test_cpu_replicas_sharing_a_node_get_its_cores_between_them_not_vllms_one_bound_core():
    """vLLM's CPU build binds every engine of a 2-core host to core 0: two local replicas would share it."""
    threads = ray_data.cpu_threads_env
    assert threads(1, 2, 2, 1, {}) == {"VLLM_CPU_OMP_THREADS_BIND": "nobind", "OMP_NUM_THREADS": "1"}
    assert threads(1, 16, 3, 1, {}) == {"VLLM_CPU_OMP_THREADS_BIND": "nobind", "OMP_NUM_THREADS": "5"}
    assert threads(1, 16, 2, 2, {})["OMP_NUM_THREADS"] == "4"  # two workers a replica (tensor parallel 2)
    assert threads(1, 2, 1, 1, {}) == {}  # one engine a node: vLLM's own binding
    assert threads(2, 2, 2, 1, {}) == {}
    assert threads(1, 2, 2, 1, {"VLLM_CPU_OMP_THREADS_BIND": "0|1"}) == {}  # what the user set is kept
    assert threads(1, 2, 2, 1, {"OMP_NUM_THREADS": "2"}) == {"VLLM_CPU_OMP_THREADS_BIND": "nobind"}


@given(nodes=st.integers(1, 8), cpus=st.integers(0, 256), replicas=st.integers(1, 64), workers=st.integers(1, 8))
def test_the_workers_of_a_node_never_get_more_threads_than_its_cores(nodes, cpus, replicas, workers):
    env = ray_data.cpu_threads_env(nodes, cpus, replicas, workers, {})
    engines_a_node = -(-replicas // nodes)
    if engines_a_node < 2:
        assert env == {}
    else:
        threads = int(env["OMP_NUM_THREADS"])
        assert threads >= 1 and (threads * engines_a_node * workers <= cpus // nodes or threads == 1)


def test_the_replicas_thread_settings_reach_the_engine_stage(monkeypatch):
    """The processor's runtime_env carries them to every stage's workers (and vLLM's processes inherit them)."""
    llm = pytest.importorskip("ray.data.llm", reason="the ray extra is not installed")
    configs = []
    monkeypatch.setattr(llm, "vLLMEngineProcessorConfig", lambda **kwargs: configs.append(kwargs) or kwargs)
    monkeypatch.setattr(llm, "build_processor", lambda config, **kwargs: config)
    engine = object.__new__(ray_data.RayDataEngine)
    engine.settings, engine._vllm_args = ray_data.split_settings({"ray_replicas": 2})
    engine._model, engine._platform = "model-dir", "cpu"
    shared = {"VLLM_CPU_OMP_THREADS_BIND": "nobind", "OMP_NUM_THREADS": "1"}
    for env in (shared, {}):
        engine.cluster = {"engine_env": env}
        engine._processor()
    assert [config["runtime_env"] for config in configs] == [{"env_vars": shared}, None]


def test_ray_settings_reach_ray_cells_only():
    registry = load_registry()
    settings = resolve(
        merge_sources({"mode": ["offline", "ray"], "engine_arg": ["ray_replicas=2", "max_model_len=512"]}, {}, {}), REPO
    )
    model = registry.resolve("gemma-270m")
    offline = plan_cell(Cell(model, "offline", "gemma-270m"), settings, registry, DummySources()).engine_args
    ray = plan_cell(Cell(model, "ray", "gemma-270m"), settings, registry, DummySources()).engine_args
    assert "ray_replicas" not in offline and offline["max_model_len"] == 512
    assert ray["ray_replicas"] == 2 and ray["max_model_len"] == 512


def test_a_row_carries_the_offline_sampling_and_structured_output():
    request = BatchRequest(
        "a",
        CHAT_URL,
        {
            "model": "m",
            "messages": [{"role": "user", "content": "x"}],
            "max_tokens": 40,
            "temperature": 0.3,
            "response_format": {"type": "json_object"},
        },
        1,
    )
    row = ray_rows.chat_row(request, SamplingOverrides(max_tokens=8), position=7)
    assert row["custom_id"] == "a" and row["position"] == 7 and row["messages"] == request.body["messages"]
    assert row["sampling_params"]["max_tokens"] == 8 and row["sampling_params"]["temperature"] == 0.3
    assert row["sampling_params"]["structured_outputs"] == {"json_object": True}


@given(kinds=st.lists(st.booleans(), max_size=40), size=st.integers(1, 7))
def test_rows_reach_ray_in_bounded_chunks_in_request_order(kinds, size):
    """A job of millions never has all its rows in the driver: at most `size` rows a chunk, every chat request once
    and in order, each other request reported with its position instead."""
    requests = [
        BatchRequest(f"r{i}", CHAT_URL, {"model": "m", "messages": [{"role": "user", "content": str(i)}]}, i + 1)
        if chat
        else BatchRequest(f"r{i}", COMPLETIONS_URL, {"model": "m", "prompt": str(i)}, i + 1)
        for i, chat in enumerate(kinds)
    ]
    skipped: list[int] = []
    chunks = list(
        ray_rows.row_chunks(requests, SamplingOverrides(), lambda position, _: skipped.append(position), size)
    )
    assert all(0 < len(chunk) <= size for chunk in chunks)
    rows = [row for chunk in chunks for row in chunk]
    assert [row["position"] for row in rows] == [i for i, chat in enumerate(kinds) if chat]
    assert [row["custom_id"] for row in rows] == [f"r{i}" for i, chat in enumerate(kinds) if chat]
    assert skipped == [i for i, chat in enumerate(kinds) if not chat]
    assert len(chunks) == -(-len(rows) // size)  # full chunks but the last


def test_rows_become_records_and_the_batch_span_comes_from_the_engine_times():
    rows = [
        {
            "custom_id": "a",
            "generated_text": "x",
            "num_input_tokens": 5,
            "num_generated_tokens": 3,
            "time_taken_llm": 2.0,
            "finished_at": 102.0,
            "error": "",
        },
        {
            "custom_id": "b",
            "generated_text": "y",
            "num_input_tokens": 6,
            "num_generated_tokens": 4,
            "time_taken_llm": 1.0,
            "finished_at": 105.0,
            "error": "",
        },
        {
            "custom_id": "c",
            "generated_text": "",
            "num_input_tokens": 0,
            "num_generated_tokens": 0,
            "time_taken_llm": -1,
            "finished_at": 106.0,
            "error": "boom",
        },
    ]
    records = [ray_rows.record_from_row(r) for r in rows]
    assert [(r.error, r.output_tokens, r.e2el_s) for r in records] == [
        (None, 3, 2.0),
        (None, 4, 1.0),
        ("engine_error", 0, None),
    ]
    assert [ray_rows.row_span(r) for r in rows] == [(100.0, 102.0), (104.0, 105.0), None]


def test_without_ray_a_ray_cell_is_skipped_saying_how_to_install_it(pytester, monkeypatch):
    shadow = pytester.path / "shadow" / "ray"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named ray (shadowed by the test)')\n")
    monkeypatch.setenv("PYTHONPATH", f"{shadow.parent}:{__import__('os').environ.get('PYTHONPATH', '')}")
    pytester.makepyfile(test_batch=BENCH_TEST)
    (pytester.path / "data").mkdir()
    (pytester.path / "data" / "batch_5k.jsonl").symlink_to(REPO / "data" / "batch_5k.jsonl")
    result = pytester.runpytest_subprocess(
        "--model=gemma-270m", "--mode=ray", "--limit=2", "-rs", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(skipped=1)
    assert "ray is not installed: pip install 'pytest-vllmbench[ray]'" in result.stdout.str()


def test_both_new_modes_are_cells_of_the_matrix(pytester):
    pytester.makepyfile(test_batch=BENCH_TEST)
    (pytester.path / "data").mkdir()
    (pytester.path / "data" / "batch_5k.jsonl").symlink_to(REPO / "data" / "batch_5k.jsonl")
    result = pytester.runpytest("--collect-only", "-q", "--model=gemma-270m", "--mode=run-batch", "--mode=ray")
    assert [line.strip() for line in result.outlines if "test_batch[" in line] == [
        "test_batch.py::test_batch[gemma-270m-run-batch]",
        "test_batch.py::test_batch[gemma-270m-ray]",
    ]


@pytest.mark.engine  # no vLLM, but a real local Ray (~30 s to start): with the engine tests, out of `make test`
def test_a_round_on_a_local_ray_instance_times_the_batch_and_shuts_ray_down(monkeypatch):
    pytest.importorskip("ray.data.llm", reason="the ray extra is not installed")
    import ray

    def _fake_stage(row):
        """What the vLLM stage + our postprocess yield for a row, without an engine: 0.2 s per request."""
        import time as clock

        clock.sleep(0.2)
        failed = row["messages"][0]["content"] == "fail me"
        return {
            "position": row["position"],
            "custom_id": row["custom_id"],
            "generated_text": "" if failed else "ok",
            "num_input_tokens": 4,
            "num_generated_tokens": 0 if failed else row["sampling_params"]["max_tokens"],
            "time_taken_llm": -1 if failed else 0.2,
            "finished_at": clock.time(),
            "error": "boom" if failed else "",
        }

    earlier = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])  # another engine's, say

    def sessions_handler(signum, frame):
        raise KeyboardInterrupt  # what the plugin installs: SIGTERM ends the session, which saves the rounds done

    previous = signal.signal(signal.SIGTERM, sessions_handler)
    engine = ray_data.RayDataEngine("model-dir", {"ray_replicas": 1, "max_model_len": 64}, "cpu")
    try:
        # ray.init installs a driver handler that makes SIGTERM a SystemExit: one failed test, the session going on
        assert signal.getsignal(signal.SIGTERM) is sessions_handler
        assert engine.cluster["nodes"] == 1 and engine.cluster["replicas"] == 1 and engine.cluster["cpus"] >= 1
        assert engine.cluster["address"] == "local"
        # the local instance's processes (GCS, raylet, ...) are the engine's: left out of another cell's host load
        local = engine.process_pids()
        assert local and local <= {child.pid for child in psutil.Process().children()} and earlier.pid not in local
        given = []

        def fake_processor(dataset):
            given.append(dataset)
            return dataset.map(_fake_stage)

        monkeypatch.setattr(engine, "_processor", lambda: fake_processor)
        monkeypatch.setattr(ray_rows, "ENGINE_STAGE", "_fake_stage")  # the operator Ray Data names after it
        monkeypatch.setattr(ray_rows, "ROWS_A_CHUNK", 2)  # the three chat rows reach Ray as two datasets, joined
        requests = [
            BatchRequest(f"r{n}", CHAT_URL, {"model": "m", "messages": [{"role": "user", "content": text}]}, n)
            for n, text in enumerate(["a", "fail me", "b"])
        ]
        requests.insert(1, BatchRequest("c", "/v1/completions", {"model": "m", "prompt": "x"}, 4))
        before = time.time()
        produced = engine.run(requests, SamplingOverrides(max_tokens=5))
        assert not isinstance(produced, list)  # handed on as the rows come back, never the round's whole list
        records = list(produced)
        assert [r.custom_id for r in records] == ["r0", "c", "r1", "r2"]  # request order
        assert [r.error for r in records] == [None, "unsupported_endpoint", "engine_error", None]
        assert records[0].output_tokens == 5 and records[0].e2el_s == 0.2
        assert 0.2 <= engine.batch_wall_s <= engine.end_to_end_s and engine.load_s >= 0
        # the batch on the wall clock, the window the GPU's busy share is read over (the replicas' start left out)
        first_in, last_done = engine.batch_span
        assert before <= first_in <= last_done <= time.time()
        figures = engine.cell_figures()
        assert figures["ray_cluster"] == engine.cluster and figures["not_measured"] == ["ttft", "tpot", "itl"]
        # Ray Data's record of where the stage made its rows: this one node, every chat row once
        [(node, rows)] = figures["ray_rows_per_node"].items()
        assert rows == 3 and node == ray.get_runtime_context().get_node_id()
        assert engine.fault() is None
        # the engine stage waits for every replica before its first row: the dataset carries that setting
        [dataset] = given
        assert dataset.context.wait_for_min_actors_s == int(engine.start_timeout_s)
    finally:
        engine.close()
        signal.signal(signal.SIGTERM, previous)
        earlier.kill()
        earlier.wait()
    assert not ray.is_initialized()


def test_a_ray_failure_leads_with_its_root_cause_without_colour_codes():
    wrapped = RuntimeError(
        "\x1b[36mray::MapWorker(vLLMEngineStageUDF).__init__()\x1b[39m (pid=1)\n"
        "  File \"x.py\", line 3, in f\n    raise ImportError('no')\n       ^^^^^^\n"
        "ImportError: RayPrometheusMetric requires Ray to be installed.\n   ^^^^^^^^^^\n"
    )
    first, *rest = ray_rows.short_error(wrapped).splitlines()
    assert first == "ImportError: RayPrometheusMetric requires Ray to be installed."
    assert not any("\x1b" in line for line in rest)
