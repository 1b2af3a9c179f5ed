"""A cell bounded by its KV cache: vLLM's preemptions read offline (in-process) and from a server, saved as
preempted_pct, called `kv-cache` before any CPU or GPU share, and read again from runs saved before the figure."""

import re
import threading

from hypothesis import given
from hypothesis import strategies as st
from saved_runs import cell, save_run
from vllm.v1.metrics.reader import Counter, Gauge, Histogram, Vector

from pytest_vllmbench.engines.base import EngineDefaults, SamplingOverrides
from pytest_vllmbench.measure.cell_record import CellResult
from pytest_vllmbench.measure.host_load import KV_BOUND_PCT, bound_by, preempted_pct
from pytest_vllmbench.measure.metrics import RequestRecord
from pytest_vllmbench.measure.server_metrics import InProcessMetrics, MetricsSampler, from_snapshot
from pytest_vllmbench.results.bottleneck import preemptions_per_100, saved_bound
from pytest_vllmbench.results.compare import compare
from pytest_vllmbench.results.labels import cell_label
from pytest_vllmbench.results.mode_verdicts import mode_verdicts
from pytest_vllmbench.results.report_engine import engine_section
from pytest_vllmbench.results.saved_run import SavedCell
from pytest_vllmbench.results.storage import load_runs
from pytest_vllmbench.results.summary import bound_text, shared_memory_lines
from pytest_vllmbench.run.cell_run import run_cell
from tests.plans import plan_for

shares = st.none() | st.floats(0, 400, allow_nan=False)


@given(gpu=shares, client=shares, api=shares, core=shares, share=st.floats(KV_BOUND_PCT, 1e4, allow_nan=False))
def test_preemptions_bound_a_cell_before_any_gpu_or_cpu_share(gpu, client, api, core, share):
    cpu = {"cpu_client_pct": client, "cpu_api_server_pct": api, "cpu_engine_core_pct": core}
    assert bound_by(gpu, cpu, share) == "kv-cache"


@given(gpu=shares, client=shares, core=shares, share=st.none() | st.floats(0, KV_BOUND_PCT, exclude_max=True))
def test_fewer_preemptions_leave_the_verdict_to_the_gpu_and_cpus(gpu, client, core, share):
    cpu = {"cpu_client_pct": client, "cpu_api_server_pct": None, "cpu_engine_core_pct": core}
    assert bound_by(gpu, cpu, share) == bound_by(gpu, cpu)


def test_preemptions_count_per_100_requests_sent():
    assert preempted_pct(716.0, 3000) == 23.87
    assert preempted_pct(0.0, 3000) == 0.0
    assert preempted_pct(None, 3000) is None and preempted_pct(5.0, 0) is None
    assert preempted_pct(1e308, 64) is None  # a counter past a float's range: not saved as non-strict JSON


def test_vllms_in_process_snapshot_gives_the_figures_a_scrape_gives():
    """vLLM's own Metric classes (LLM.get_metrics()), two engines' label sets summed, histograms left out."""
    snapshot = [
        Gauge("vllm:kv_cache_usage_perc", {"engine": "0"}, 0.5),
        Gauge("vllm:kv_cache_usage_perc", {"engine": "1"}, 0.25),
        Gauge("vllm:num_requests_running", {}, 12.0),
        Counter("vllm:num_preemptions", {}, 7),
        Counter("vllm:prefix_cache_hits", {}, 30),
        Counter("vllm:prefix_cache_queries", {}, 60),
        Histogram("vllm:e2e_request_latency_seconds", {}, count=3, sum=1.0, buckets={"+Inf": 3}),
        Vector("vllm:spec_decode_num_accepted_tokens_per_pos", {}, [1, 2]),
        Gauge("vllm:num_requests_waiting", {}, float("nan")),
    ]
    assert from_snapshot(snapshot) == {
        "kv_cache_usage_pct": 75.0,
        "requests_running": 12.0,
        "preemptions": 7.0,
        "prefix_cache_hits": 30.0,
        "prefix_cache_queries": 60.0,
    }


def test_an_in_process_reader_that_raises_reads_nothing_rather_than_failing_the_cell():
    def broken():
        raise RuntimeError("engine stopped")

    assert InProcessMetrics(broken).scrape() is None
    with MetricsSampler(InProcessMetrics(broken), interval_s=0.01) as sampler:
        pass
    assert sampler.figures() is None


class PreemptingEngine(EngineDefaults):
    """A FAKE offline engine whose in-process metrics count a preemption for every second request it runs."""

    mode = "offline"
    load_s = 1.0

    def __init__(self) -> None:
        self.preempted = 0
        self.lock = threading.Lock()

    def run(self, requests, sampling, progress=None, load=None, on_sent=None):
        with self.lock:
            self.preempted += 10
        return [RequestRecord(f"r{i}", output_tokens=4, e2el_s=0.1, done_at=0.01 * i) for i in range(20)]

    def metrics_source(self):
        def snapshot():
            with self.lock:
                return [Counter("vllm:num_preemptions", {}, self.preempted), Gauge("vllm:kv_cache_usage_perc", {}, 1.0)]

        return InProcessMetrics(snapshot)

    def describe(self):
        return {"name": "fake"}

    def fault(self):
        return None


def _rounds_of(count):
    def timed(fn):
        for _ in range(count):
            fn()

    return timed


def test_an_offline_cell_saves_vllms_metrics_and_is_called_kv_bound_when_it_preempted():
    info = run_cell(
        plan_for(project_to=1000), PreemptingEngine(), [], SamplingOverrides(), CellResult(), _rounds_of(3)
    ).result.extra_info()
    assert info["server_metrics"]["preemptions"] == 30.0 and info["server_metrics"]["kv_cache_usage_pct_peak"] == 100
    assert info["preempted_pct"] == 50.0  # 30 preemptions over 3 rounds of 20 requests
    assert info["bound_by"] == "kv-cache"


def test_an_interleave_round_counts_its_own_requests_not_its_earlier_rounds():
    earlier = [{"requests_per_s": 10.0}, {"requests_per_s": 11.0}]
    outcome = run_cell(
        plan_for(project_to=1000),
        PreemptingEngine(),
        [],
        SamplingOverrides(),
        CellResult(),
        _rounds_of(1),
        earlier_rounds=earlier,
        interleaved=["gemma-270m-offline", "gemma-270m-server"],
    )
    info = outcome.result.extra_info()
    assert len(info["rounds"]) == 3
    assert info["preempted_pct"] == 50.0  # 10 preemptions over this call's one round of 20, as its metrics were read


def test_a_server_cell_counts_its_preemptions_from_the_metrics_its_client_side_reads():
    engine = PreemptingEngine()
    engine.mode = "server"
    info = run_cell(
        plan_for(mode="server", project_to=1000), engine, [], SamplingOverrides(), CellResult(), _rounds_of(2)
    ).result.extra_info()
    assert info["load"] and info["server_metrics"]["preemptions"] == 20.0
    assert info["preempted_pct"] == 50.0 and info["bound_by"] == "kv-cache"


def _saved(mode, **figures):
    """A cell as the reader gives it from a saved run (saved_run.clean_cell)."""
    base = {"cell": f"qwen-14b-{mode}", "model": "qwen-14b", "mode": mode, "n_requests": 3000, "requests_per_s": 60.0}
    cell, _ = SavedCell.from_saved({"vllmbench_schema": 1} | base | figures, "test")
    return cell


# as runs saved before preempted_pct existed: the server's count, the old verdict from CPU shares alone
OLD_INTERLEAVED_SERVER = _saved(
    "server",
    bound_by="api-server",
    cpu_api_server_pct=81.0,
    server_metrics={"preemptions": 716.0},
    rounds=[{"requests_per_s": 53.1}, {"requests_per_s": 54.1}],
    interleaved=["qwen-14b-offline", "qwen-14b-server"],
    engine_args={"gpu_memory_utilization": 0.45},
)
OLD_OFFLINE = _saved("offline", bound_by="engine-core", interleaved=["qwen-14b-offline", "qwen-14b-server"])


def test_a_run_saved_before_preempted_pct_is_read_again_from_its_preemption_count():
    # an --interleave round's metrics cover that round alone; a session's rounds, all of them
    assert preemptions_per_100(OLD_INTERLEAVED_SERVER) == 23.87 and saved_bound(OLD_INTERLEAVED_SERVER) == "kv-cache"
    alone = _saved("server", bound_by="api-server", server_metrics={"preemptions": 716.0}, rounds=[{}, {}, {}])
    assert preemptions_per_100(alone) == 7.96
    assert saved_bound(_saved("server", bound_by="api-server", server_metrics={"preemptions": 0.0})) == "api-server"
    assert preemptions_per_100(OLD_OFFLINE) is None and saved_bound(OLD_OFFLINE) == "engine-core"
    assert preemptions_per_100(_saved("server", preempted_pct=0.5, server_metrics={"preemptions": 716.0})) == 0.5
    assert preemptions_per_100(_saved("server", bound_by="gpu", server_metrics={"preemptions": -50.0})) is None


def test_the_report_and_the_summary_call_the_kv_bound_cell_so():
    section = engine_section([("1 x H200", [OLD_OFFLINE, OLD_INTERLEAVED_SERVER])], cell_label) or ""
    assert "| kv-cache (23.9 preemptions per 100 requests, API server 81 %) |" in section
    assert re.search(r"\| qwen-14b-offline\s+\| engine-core\s+\|", section)
    assert bound_text(OLD_INTERLEAVED_SERVER) == "kv-cache 24 preemptions/100 req"


def test_the_offline_vs_server_verdict_says_the_kv_cache_was_full_and_what_was_not_read():
    text = mode_verdicts([("1 x H200", "w", OLD_OFFLINE), ("1 x H200", "w", OLD_INTERLEAVED_SERVER)])
    assert text.endswith(
        "; KV cache full: server 23.9 preemptions per 100 requests (0.45 of the GPU each, --interleave);"
        " offline preemptions not saved."
    )
    neither = _saved("server", bound_by="api-server", server_metrics={"preemptions": 0.0})
    assert "KV cache" not in mode_verdicts([("1 x H200", "w", OLD_OFFLINE), ("1 x H200", "w", neither)])


def test_the_session_summary_warns_when_interleaving_left_a_cell_short_of_kv_cache():
    [line] = shared_memory_lines([OLD_OFFLINE, OLD_INTERLEAVED_SERVER])
    assert line.startswith("qwen-14b-server: KV cache full with 0.45 of the GPU beside the other --interleave engines")
    assert "(23.9 preemptions per 100 requests)" in line and "without --interleave (one engine at a time)" in line
    alone = SavedCell.of({**OLD_INTERLEAVED_SERVER.saved, "interleaved": None})
    assert shared_memory_lines([alone]) == []  # a lone engine's full cache is its own: the bound column says so


def test_compare_shows_the_preemptions_of_a_run_saved_before_the_figure(tmp_path):
    alone = cell("qwen-14b-server", n_requests=3000, server_metrics={"preemptions": 0.0}, rounds=[{}, {}, {}])
    shared = cell(
        "qwen-14b-server",
        n_requests=3000,
        server_metrics={"preemptions": 716.0},
        rounds=[{}, {}],
        interleaved=["qwen-14b-offline", "qwen-14b-server"],
    )
    save_run(tmp_path, 1, "alone", [alone])
    save_run(tmp_path, 2, "interleaved", [shared])
    runs = load_runs(tmp_path)
    rows, _, _ = compare(runs[0], runs[1])
    [row] = [row for row in rows if row.figure == "preempted_pct"]
    assert (row.a, row.b) == (0.0, 23.87)  # no change in % from 0
