"""What bounds a cell (CPU per role beside GPU busy), the effective engine settings, the steady-state rate and the
prefix-cache reset between rounds."""

import subprocess
import sys
import time
from types import SimpleNamespace

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_vllmbench.config.modes import mode_spec
from pytest_vllmbench.engines.base import EngineDefaults, SamplingOverrides
from pytest_vllmbench.measure import engine_settings
from pytest_vllmbench.measure.cell_record import CellResult
from pytest_vllmbench.measure.host_load import HostLoad, bound_by, role_of
from pytest_vllmbench.measure.metrics import RequestRecord, projected_hours, steady_rate, summarize
from pytest_vllmbench.results.mode_verdicts import compare_modes, mode_verdicts
from pytest_vllmbench.results.summary import bound_text, settings_lines
from pytest_vllmbench.run.cell_run import host_figures, run_cell
from tests.plans import plan_for

BUSY = "import time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end: pass\n"


def test_the_gpu_bounds_a_cell_it_keeps_busy_whatever_the_host_does():
    assert bound_by(97.0, {"cpu_api_server_pct": 99.0}) == "gpu"


def test_a_host_process_near_a_full_core_bounds_a_cell_the_gpu_waits_for():
    cpu = {"cpu_client_pct": 30.0, "cpu_api_server_pct": 98.5, "cpu_engine_core_pct": 70.0}
    assert bound_by(48.0, cpu) == "api-server"
    assert bound_by(None, {"cpu_client_pct": 12.0, "cpu_engine_core_pct": 185.0}) == "engine-core"  # vLLM on the CPU


def test_no_saturated_process_and_a_half_busy_gpu_is_unclear():
    assert (
        bound_by(55.0, {"cpu_client_pct": 40.0, "cpu_api_server_pct": 60.0, "cpu_engine_core_pct": None}) == "unclear"
    )
    assert bound_by(None, {}) == "unclear"


def two_seconds_of(host: HostLoad, has_api_server: bool) -> dict[str, float | None]:
    host.start()
    time.sleep(2.0)
    host.stop()
    return host.figures(has_api_server=has_api_server, has_engine_core=True)


def test_host_load_measures_each_role_in_share_of_one_core():
    """Two real children: one spins for the whole round (an engine core), one is a server's main process that
    sleeps; the pytest process itself mostly waits."""
    spinner = subprocess.Popen([sys.executable, "-c", BUSY.format(seconds=30)])
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.3)  # both interpreters started
        figures = two_seconds_of(HostLoad(server_pids=frozenset({sleeper.pid})), has_api_server=True)
    finally:
        for child in (spinner, sleeper):
            child.kill()
            child.wait()
    spinning, sleeping = figures["cpu_engine_core_pct"], figures["cpu_api_server_pct"]
    assert spinning is not None and sleeping is not None and figures["cpu_client_pct"] is not None
    # a loaded 2-core box (an engine beside the suite) gives the spinner far less than a core; it still dwarfs
    # the sleeper
    assert spinning > 5.0 and sleeping < 2.0 and spinning > 4 * sleeping


def test_an_engine_idle_beside_the_cell_is_not_its_host_load():
    """Another engine's process tree (--interleave, --start-ahead) is left out, its children too: here that
    engine's child spins (a busy neighbour would say engine-core-bound), the cell's own engine core sleeps."""
    neighbour = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys; subprocess.run([sys.executable, '-c', {BUSY.format(seconds=30)!r}])",
        ]
    )
    own_core = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        deadline = time.monotonic() + 10
        while not psutil.Process(neighbour.pid).children() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)
        figures = two_seconds_of(HostLoad(beside_pids=frozenset({neighbour.pid})), has_api_server=False)
    finally:
        for child in psutil.Process(neighbour.pid).children(recursive=True):
            child.kill()
        for child in (neighbour, own_core):
            child.kill()
            child.wait()
    assert figures["cpu_engine_core_pct"] is not None and figures["cpu_engine_core_pct"] < 2.0


def test_a_mode_without_the_process_saves_none_for_it():
    host = HostLoad()
    host.start()
    host.stop()
    figures = host.figures(has_api_server=False, has_engine_core=False)
    assert figures["cpu_api_server_pct"] is None and figures["cpu_engine_core_pct"] is None


@pytest.mark.parametrize("mode", ["ray", "run-batch"])
def test_an_engine_started_inside_the_round_is_not_measured_rather_than_measured_idle(mode):
    """Its processes are not there when the round's CPU times are first read: 0 % would be a figure of nothing."""
    host = HostLoad()
    host.start()
    time.sleep(0.05)
    host.stop()
    figures = host_figures(mode_spec(mode), host, None)
    assert figures["cpu_engine_core_pct"] is None and figures["cpu_client_pct"] is not None
    assert host_figures(mode_spec("offline"), host, None)["cpu_engine_core_pct"] is not None


def test_vllms_api_server_processes_are_told_apart_by_their_title():
    me = psutil.Process()
    assert role_of(me, frozenset({me.pid})) == "api-server"
    titled = SimpleNamespace(pid=-1, cmdline=lambda: ["VLLM::APIServer_1"], name=lambda: "python")
    core = SimpleNamespace(pid=-2, cmdline=lambda: ["VLLM::EngineCore"], name=lambda: "python")
    assert role_of(titled, frozenset()) == "api-server"  # type: ignore[arg-type]
    assert role_of(core, frozenset()) == "engine-core"  # type: ignore[arg-type]


def _done_at(times):
    return [RequestRecord(f"r{i}", output_tokens=1, e2el_s=0.1, done_at=t) for i, t in enumerate(times)]


def test_the_steady_rate_leaves_out_the_ramp_and_the_tail():
    # 10 s of ramp with 10 completions, 80 completions at 5/s, then a 10-request tail over 10 s
    ramp = [i * 1.0 for i in range(10)]
    steady = [10.0 + i * 0.2 for i in range(80)]
    tail = [26.0 + i * 1.0 for i in range(10)]
    records = _done_at(ramp + steady + tail)
    assert steady_rate(records) == pytest.approx(5.0, rel=0.02)
    whole = summarize(records, wall_s=36.0, load_s=0.0, project_to=1000)
    assert whole["requests_per_s"] < 3.0 and whole["steady_requests_per_s"] == pytest.approx(5.0, rel=0.02)


def test_the_job_projects_at_the_steady_rate_plus_one_ramp_and_tail():
    # 100 requests in 24 s (4.17/s), steady 20/s: ramp and tail cost 24 - 5 = 19 s once, not per 100 requests
    hours = projected_hours(100 / 24.0, 170_000, load_s=60.0, steady=20.0, done=100)
    assert hours == pytest.approx((60.0 + 19.0 + 170_000 / 20.0) / 3600.0)
    assert projected_hours(100 / 24.0, 170_000, load_s=60.0) == pytest.approx((60.0 + 170_000 * 24.0 / 100) / 3600)


def test_a_batch_that_finishes_at_once_has_no_steady_rate():
    # 16 requests done within 5 ms of a 14 s round (one engine step): no steady state, not 3,000 req/s
    records = _done_at([14.0 + i * 0.0003 for i in range(16)])
    assert steady_rate(records, wall_s=14.0) is None
    assert summarize(records, wall_s=14.0, load_s=0.0, project_to=100)["steady_requests_per_s"] is None


def test_too_few_timed_completions_have_no_steady_rate():
    assert steady_rate(_done_at([0.0, 1.0, 2.0])) is None
    assert steady_rate(_done_at([5.0] * 20)) is None  # all at once: no span to divide by
    assert steady_rate([RequestRecord("r", output_tokens=1, e2el_s=0.1) for _ in range(50)]) is None


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=0, max_size=300))
def test_a_steady_rate_is_positive_and_finite_or_none(times):
    rate = steady_rate(_done_at(times))
    assert rate is None or (rate > 0 and rate < float("inf"))


def test_effective_settings_come_from_vllms_config_whether_json_or_live():
    as_json = {
        "scheduler_config": {"max_num_seqs": 1024, "max_num_batched_tokens": 8192, "enable_chunked_prefill": True},
        "cache_config": {"enable_prefix_caching": True, "gpu_memory_utilization": 0.9},
        "model_config": {"enforce_eager": False, "max_model_len": 8192},
        "compilation_config": {"cudagraph_mode": [2, 1]},  # as the server's JSON writes it
    }
    served = engine_settings.from_config_json(as_json)
    live = engine_settings.from_config_object(
        SimpleNamespace(**{key: SimpleNamespace(**value) for key, value in as_json.items()})
    )
    assert served == live
    assert served["max_num_batched_tokens"] == 8192 and served["cudagraph_mode"] == "FULL_AND_PIECEWISE"
    assert engine_settings.from_config_json({"scheduler_config": 5})["max_num_seqs"] is None  # odd JSON: unknown


def test_the_summary_says_what_bounds_each_cell_and_where_settings_differ():
    offline = {"cell": "m-offline", "bound_by": "gpu", "gpu_util_mean_pct": 97.4}
    offline["engine_settings"] = {"max_num_batched_tokens": 16384, "max_num_seqs": 1024, "source": "LLM"}
    server = {"cell": "m-server", "bound_by": "api-server", "cpu_api_server_pct": 99.2}
    server["engine_settings"] = {"max_num_batched_tokens": 8192, "max_num_seqs": 1024, "source": "server"}
    assert bound_text(offline) == "gpu 97%" and bound_text(server) == "api-server 99%"
    assert bound_text({"cell": "old run"}) == "-"
    assert settings_lines([offline, server]) == [
        "engine setting max_num_batched_tokens differs: m-offline=16384, m-server=8192"
    ]


class ResettableEngine(EngineDefaults):
    """A FAKE engine with a prefix cache to reset and settings to report; it counts resets per round."""

    mode = "offline"
    load_s = 1.0

    def __init__(self, reset_ok: bool = True) -> None:
        self.resets = 0
        self.reset_ok = reset_ok

    def run(self, requests, sampling, progress=None, load=None, on_sent=None):
        return _done_at([0.01 * i for i in range(20)])

    def reset_prefix_cache(self):
        self.resets += 1
        return self.reset_ok

    def effective_settings(self):
        return {"max_num_seqs": 256, "source": "fake"}

    def describe(self):
        return {"name": "fake"}

    def fault(self):
        return None


def _run(engine, rounds=3, warmup=0):
    def timed(fn):
        for _ in range(rounds):
            fn()

    return run_cell(
        plan_for(project_to=1000), engine, [], SamplingOverrides(), CellResult(), timed, warmup=warmup
    ).result.extra_info()


def test_the_prefix_cache_is_reset_before_every_timed_round_and_the_cell_says_so():
    engine = ResettableEngine()
    info = _run(engine, rounds=3, warmup=1)
    assert engine.resets == 3
    assert info["prefix_cache"] == "reset before each timed round" and info["warmup_rounds"] == 1
    assert info["engine_settings"] == {"max_num_seqs": 256, "source": "fake"}
    assert info["bound_by"] in {"client", "engine-core", "unclear"} and info["cpu_api_server_pct"] is None
    assert _run(ResettableEngine(reset_ok=False))["prefix_cache"] == "not reset (the reset failed)"


def _with_rounds(mode, mean, half, steady=None):
    stats = {"requests_per_s": {"mean": mean, "ci95_half": half, "ci95_low": mean - half, "ci95_high": mean + half}}
    if steady is not None:
        stats["steady_requests_per_s"] = {
            "mean": steady,
            "ci95_half": 1.0,
            "ci95_low": steady - 1,
            "ci95_high": steady + 1,
        }
    return {"cell": f"m-{mode}", "model": "m", "mode": mode, "requests_per_s": mean, "round_stats": stats}


def test_a_mode_is_called_faster_only_when_the_rounds_intervals_separate():
    assert compare_modes(_with_rounds("offline", 100, 10), _with_rounds("server", 60, 10)) == "offline faster"
    assert compare_modes(_with_rounds("offline", 70, 10), _with_rounds("server", 80, 10)) == (
        "no difference shown (intervals overlap)"
    )
    assert compare_modes({"mode": "offline", "requests_per_s": 9.0}, _with_rounds("server", 5, 1)) is None


def test_the_verdict_line_gives_both_intervals_and_the_steady_rate_verdict():
    text = mode_verdicts(
        [
            ("H200", "w", _with_rounds("offline", 73.1, 0.1, steady=89.3)),
            ("H200", "w", _with_rounds("server", 63.0, 4.2, steady=89.9)),
        ]
    )
    # one run of each, not both ways round: a lead in that order, not a verdict, and the line says so
    assert "offline 73.10 ± 0.10 vs server 63.00 ± 4.20 req/s (one run each, order not saved): offline ahead" in text
    assert "steady rate: no difference shown (intervals overlap)" in text
    # cells saved with no place or time: their order is not known
    assert text.endswith("; not yet a verdict: their order is not known (repeat them one at a time, both ways round).")
    assert mode_verdicts([("H200", "w", _with_rounds("offline", 1, 0.1))]).startswith("No model has both")


def test_the_verdict_line_ends_with_what_the_gap_costs_the_whole_job():
    job = {"project_to": 170000, "n_requests": 3000, "n_failed": 0}
    offline, server = _with_rounds("offline", 100, 5) | job, _with_rounds("server", 50, 3) | job
    text = mode_verdicts([("H100", "w", offline), ("H100", "w", server)])
    assert text.endswith(
        ": offline ahead; 170,000 requests: offline 0.47 h, server 0.94 h; not yet a verdict: their order is not"
        " known (repeat them one at a time, both ways round)."
    )


def test_a_lead_in_the_steady_rate_alone_is_not_a_verdict_either():
    offline, server = _with_rounds("offline", 70, 10, steady=95.0), _with_rounds("server", 68, 10, steady=85.0)
    text = mode_verdicts([("H100", "w", offline), ("H100", "w", server)])
    assert ": no difference shown (intervals overlap); steady rate: offline ahead" in text
    assert "; not yet a verdict: their order is not known" in text
    tied = _with_rounds("server", 68, 10, steady=94.5)
    assert "not yet a verdict" not in mode_verdicts([("H100", "w", offline), ("H100", "w", tied)])


def test_the_verdict_line_says_when_the_rounds_were_interleaved():
    offline, server = _with_rounds("offline", 73.1, 0.1), _with_rounds("server", 63.0, 4.2)
    assert "(rounds interleaved)" not in mode_verdicts([("H200", "w", offline), ("H200", "w", server)])
    together = ["m-offline", "m-server"]
    text = mode_verdicts(
        [("H200", "w", offline | {"interleaved": together}), ("H200", "w", server | {"interleaved": together})]
    )
    assert "offline 73.10 ± 0.10 vs server 63.00 ± 4.20 req/s (rounds interleaved): offline faster" in text
    assert "not yet a verdict" not in text  # interleaved rounds went both ways round


def _saved_at(
    run: str, place: int, when: str = "2026-12-05T10:46:06+00:00", boot: str | None = None
) -> dict[str, object]:
    return {"saved_at": {"time": when, "run": f"Linux/{run}.json", "place": place, "boot": boot}}


def _pair_note(offline: dict[str, object], server: dict[str, object]) -> str:
    text = mode_verdicts([("H100", "w", offline), ("H100", "w", server)])
    return text.split(" req/s", 1)[1].rsplit("): ", 1)[0] + ")" if " req/s (" in text else ""


def test_a_verdict_on_one_run_of_each_mode_says_which_ran_first():
    offline, server = _with_rounds("offline", 100, 5), _with_rounds("server", 50, 3)
    one_run = _pair_note(offline | _saved_at("0022", 0), server | _saved_at("0022", 1))
    assert one_run == " (one run each, one order: offline first)"
    server_first = _pair_note(offline | _saved_at("0022", 1), server | _saved_at("0022", 0))
    assert server_first == " (one run each, one order: server first)"
    # two runs: by the time each was saved, whatever their numbers
    later = _saved_at("0001", 0, when="2026-12-05T12:00:00+00:00")
    assert _pair_note(offline | later, server | _saved_at("0002", 0)) == " (one run each, one order: server first)"


def test_a_verdict_on_one_run_of_each_mode_from_two_boots_says_so_rather_than_an_order():
    offline, server = _with_rounds("offline", 100, 5), _with_rounds("server", 50, 3)
    two_leases = _pair_note(offline | _saved_at("0022", 0, boot="aaa"), server | _saved_at("0030", 0, boot="bbb"))
    assert two_leases == " (one run each, on two boots of the machine)"
    one_lease = _pair_note(offline | _saved_at("0031", 0, boot="bbb"), server | _saved_at("0030", 0, boot="bbb"))
    assert one_lease == " (one run each, one order: server first)"
    unknown = _pair_note(offline | _saved_at("0022", 0), server | _saved_at("0030", 0, boot="bbb"))
    assert unknown == " (one run each, one order: offline first)"  # 0022 saved no boot: by the save times


def test_a_verdict_on_one_run_of_each_mode_says_when_the_order_cannot_be_told():
    offline, server = _with_rounds("offline", 100, 5), _with_rounds("server", 50, 3)
    assert _pair_note(offline, server) == " (one run each, order not saved)"
    # pytest-xdist workers ran the two cells side by side: their place in the merged run is no order
    side_by_side = offline | _saved_at("0005", 0) | {"xdist_worker": "gw0"}
    assert _pair_note(side_by_side, server | _saved_at("0005", 1) | {"xdist_worker": "gw1"}) == (
        " (one run each, order not saved)"
    )
    # two runs, one without its save time
    unsaved = _saved_at("0001", 0, when="")
    assert _pair_note(offline | unsaved, server | _saved_at("0002", 0)) == " (one run each, order not saved)"


def test_only_a_called_verdict_on_one_run_of_each_mode_gets_the_one_order_note():
    offline, server = _with_rounds("offline", 100, 5), _with_rounds("server", 50, 3)
    unrounded = {"cell": "m-server", "model": "m", "mode": "server", "requests_per_s": 50.0}
    assert _pair_note(offline | _saved_at("0022", 0), unrounded | _saved_at("0022", 1)) == ""
    assert _pair_note(offline | _saved_at("0022", 0), server | _saved_at("0022", 1)).startswith(" (one run each")
    together = {"interleaved": ["m-offline", "m-server"]}
    interleaved = _pair_note(offline | together | _saved_at("0020", 0), server | together | _saved_at("0020", 1))
    assert interleaved == " (rounds interleaved)"
    note = _pair_note(offline | {"pooled_from": ["0026", "0028"]}, server | {"pooled_from": ["0027"]})
    assert note.startswith(" (rounds pooled over runs both ways round") and "one run each" not in note


def test_a_setting_a_run_saved_before_it_was_read_is_unknown_there_not_different():
    newer = {"engine_settings": {"max_num_seqs": 256, "stream_interval": 8}}
    older = {"engine_settings": {"max_num_seqs": 256}}
    same = {"engine_settings": {"max_num_seqs": 256, "stream_interval": 8}}
    assert engine_settings.differing([newer, older, same]) == []
    assert engine_settings.differing([newer, older, {"engine_settings": {"stream_interval": 1}}]) == ["stream_interval"]


def test_the_stream_interval_a_server_ran_with_is_read_from_its_config():
    config = {"scheduler_config": {"max_num_seqs": 64, "stream_interval": 8}}
    assert engine_settings.from_config_json(config)["stream_interval"] == 8
