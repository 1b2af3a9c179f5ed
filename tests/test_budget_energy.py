"""The GPU memory budget (--gpu-memory) and each cell's energy and money (no GPU here: NVML is faked)."""

import math
import socket
import subprocess
import sys
import types
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from saved_runs import cell, save_run

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.config import memory_budget as budget
from pytest_vllmbench.config.matrix import Cell
from pytest_vllmbench.config.registry import load_registry
from pytest_vllmbench.engines.base import EngineDefaults, SamplingOverrides
from pytest_vllmbench.engines.dummy_weights import does_not_fit, over_budget
from pytest_vllmbench.measure import gpu
from pytest_vllmbench.measure.cell_record import CellResult
from pytest_vllmbench.measure.costs import ENERGY_KEYS, cost_figures, energy_figures
from pytest_vllmbench.measure.metrics import RequestRecord
from pytest_vllmbench.results.report import render
from pytest_vllmbench.results.storage import load_runs
from pytest_vllmbench.run.cell_run import run_cell
from tests.plans import plan_for

REPO = Path(__file__).resolve().parents[1]
H200_MIB = 143771
GIB = 2**30


class FakeEnergyNvml(types.SimpleNamespace):
    """A FAKE of NVML (this machine has no GPU): H200-sized devices whose energy counters (mJ) grow by
    `step_mj[i]` on every read; `counter=False` answers like a board without the counter."""

    class NVMLError_NotSupported(Exception):
        pass

    def __init__(self, count=2, step_mj=(1_000_000, 3_000_000), counter=True):
        super().__init__(count=count, step_mj=step_mj, counter=counter, energy=[0] * count)

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        pass

    def nvmlDeviceGetCount(self):
        return self.count

    def nvmlSystemGetDriverVersion(self):
        return b"580.00 (fake)"

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def nvmlDeviceGetName(self, handle):
        return b"NVIDIA H200"

    def nvmlDeviceGetMemoryInfo(self, handle):
        return types.SimpleNamespace(used=2**30, total=H200_MIB * 2**20)

    def nvmlDeviceGetUtilizationRates(self, handle):
        return types.SimpleNamespace(gpu=90)

    def nvmlDeviceGetPowerUsage(self, handle):
        return 500_000

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if not self.counter:
            raise self.NVMLError_NotSupported("Not Supported")
        self.energy[handle] += self.step_mj[handle]
        return self.energy[handle]


# --- the budget: sizes, utilization, usage errors -----------------------------------------------------------

UNIT_NAMES = sorted(budget.UNITS)


@given(st.integers(min_value=1, max_value=4096), st.sampled_from(UNIT_NAMES), st.booleans())
def test_sizes_parse_in_either_unit_system(number, unit, upper):
    text = f"{number}{unit.upper() if upper else unit}"
    assert budget.parse_size(text) == number * budget.UNITS[unit]


def test_sizes_examples_and_refusals():
    assert budget.parse_size("16GiB") == 16 * GIB
    assert budget.parse_size("24GB") == 24 * 10**9
    assert budget.parse_size("16384MiB") == 16 * GIB
    assert budget.parse_size(" 15.5 GiB ") == int(15.5 * GIB)
    for bad in ("16", "16 gigs", "GiB", "-1GiB", "0GiB", ""):
        with pytest.raises(UsageError, match="--gpu-memory"):
            budget.parse_size(bad)


@given(st.lists(st.integers(min_value=8 * GIB, max_value=200 * GIB), min_size=1, max_size=8), st.data())
def test_utilization_keeps_every_gpu_of_the_cell_within_the_budget(totals, data):
    budget_bytes = data.draw(st.integers(min_value=GIB, max_value=min(totals)))
    fraction = budget.utilization(budget_bytes, totals)
    assert 0 < fraction <= 1
    # vLLM reserves ceil(total x utilization) on each GPU of the engine
    assert all(math.ceil(total * fraction) <= budget_bytes for total in totals)
    # and the largest GPU gets the budget, less at most one step of the fraction
    assert max(totals) * fraction >= budget_bytes - max(totals) / budget.STEP


def test_utilization_refuses_what_the_gpus_cannot_give():
    with pytest.raises(ValueError, match="more than a GPU"):
        budget.utilization(100 * GIB, [80 * GIB, 141 * GIB])
    with pytest.raises(ValueError):
        budget.utilization(16 * GIB, [])
    assert budget.utilization(16 * GIB, [H200_MIB * 2**20]) == 0.1139


def test_budget_needs_a_gpu_no_endpoint_and_no_more_than_the_gpu():
    with pytest.raises(UsageError, match="finds no GPU"):
        budget.check_machine(16 * GIB, [], ("offline",))
    with pytest.raises(UsageError, match="endpoint"):
        budget.check_machine(16 * GIB, [H200_MIB], ("offline", "endpoint"))
    with pytest.raises(UsageError, match="cannot cap an endpoint"):  # refused, not dropped, with endpoint mode alone
        budget.check_machine(16 * GIB, [H200_MIB], ("endpoint",))
    with pytest.raises(UsageError, match="more than this machine's smallest GPU"):
        budget.check_machine(200 * GIB, [H200_MIB], ("server",))
    budget.check_machine(16 * GIB, [H200_MIB], ("offline", "server"))
    budget.check_machine(None, [], ("endpoint",))


def test_label_names_the_budget_and_the_gpu_that_set_the_speed():
    assert budget.label(16.0, ["NVIDIA H200"]) == "memory budget 16 GiB only: the speed is the NVIDIA H200's"
    assert budget.label(22.35, ["NVIDIA H200"] * 2).startswith("memory budget 22.35 GiB per GPU x 2 only")
    assert budget.label(16.0) == "memory budget 16 GiB"


def test_engine_args_turn_the_budget_into_gpu_memory_utilization(monkeypatch):
    from pytest_vllmbench.config.settings import Settings
    from pytest_vllmbench.engines.cell_plan import DummySources, plan_cell

    monkeypatch.setitem(sys.modules, "pynvml", FakeEnergyNvml())
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr("pytest_vllmbench.engines.cell_plan.vllm_platform", lambda: "cuda")
    registry = load_registry()
    settings = Settings(
        models=(), modes=("offline",), dataset=Path("x"), gpu_memory=16 * GIB, engine_args={"tensor_parallel_size": 2}
    )
    cell = Cell(registry.models["mistral-7b"], "offline", "mistral-7b")
    args = plan_cell(cell, settings, registry, DummySources()).engine_args
    assert args["gpu_memory_utilization"] == budget.utilization(16 * GIB, [H200_MIB * 2**20] * 2)


def test_weights_over_the_budget_do_not_fit_without_starting_an_engine():
    models = load_registry().models
    assert over_budget(models["qwen-14b"], 16.0, 1) == (
        "does not fit in 16 GiB: needs ~27.6 GiB for the weights alone, plus the KV cache"
    )
    assert over_budget(models["qwen-14b"], 16.0, 2) is None  # 32 GiB over two GPUs: let the engine try
    assert over_budget(models["mistral-7b"], 16.0, 1) is None
    failure = "ValueError: To serve at least one request ... 1.0 GiB KV cache is needed, which is larger"
    assert does_not_fit(failure, models["mistral-7b"], [H200_MIB], 0.1139, 16.0, 1) == (
        "does not fit in 16 GiB: needs ~13.5 GiB for the weights alone, plus the KV cache"
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--gpu-memory=16GiB"], "finds no GPU on this machine"),
        (["--gpu-memory=16"], "--gpu-memory expects a size with a unit"),
        (
            ["--gpu-memory=16GiB", "--engine-arg", "gpu_memory_utilization=0.5"],
            "drop --engine-arg gpu_memory_utilization",
        ),
        (["--gpu-hourly-cost=abc"], "--gpu-hourly-cost expects a number"),
        (["--gpu-hourly-cost=nan"], "--gpu-hourly-cost expects a finite number"),
    ],
)
def test_budget_and_price_usage_errors_on_this_gpu_less_machine(pytester, args, message):
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest("--model=gemma-270m", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


# --- energy and money ---------------------------------------------------------------------------------------


@given(
    st.floats(min_value=0, max_value=1e9),
    st.integers(min_value=1, max_value=10**6),
    st.integers(min_value=1, max_value=10**8),
    st.integers(min_value=1, max_value=10**7),
)
def test_energy_figures_agree_with_each_other(energy_j, n_done, output_tokens, project_to):
    figures = energy_figures(energy_j, n_done, output_tokens, project_to)
    assert figures["energy_wh"] == pytest.approx(energy_j / 3600, abs=1e-4)
    assert figures["joules_per_request"] == pytest.approx(energy_j / n_done, abs=1e-3)
    assert figures["joules_per_1k_output_tokens"] == pytest.approx(energy_j / output_tokens * 1000, abs=1e-3)
    assert figures["projected_kwh"] == pytest.approx(energy_j / n_done * project_to / 3.6e6, abs=1e-4)


def test_unknown_energy_is_null_never_zero():
    assert energy_figures(None, 10, 100, 1000) == dict.fromkeys(ENERGY_KEYS)
    assert energy_figures(-5.0, 10, 100, 1000) == dict.fromkeys(ENERGY_KEYS)  # a reset counter
    nothing_done = energy_figures(50.0, 0, 0, 1000)
    assert nothing_done["energy_wh"] is not None and nothing_done["joules_per_request"] is None


@given(
    st.floats(min_value=0, max_value=1000),
    st.integers(min_value=1, max_value=8),
    st.floats(min_value=0.1, max_value=1e6),
    st.floats(min_value=0.001, max_value=1e4),
)
def test_cost_is_hours_times_price_times_gpus(price, n_gpus, tokens_per_s, hours):
    figures = cost_figures(price, "USD", n_gpus, tokens_per_s, hours)
    assert figures["projected_cost"] == pytest.approx(hours * price * n_gpus, abs=0.01)
    assert figures["cost_per_1m_output_tokens"] == pytest.approx(
        price * n_gpus / (tokens_per_s * 3600) * 1e6, rel=1e-3, abs=1e-4
    )
    assert figures["cost_currency"] == "USD" and figures["gpu_hourly_cost"] == price


def test_cost_is_null_without_a_price_or_a_gpu():
    for figures in (cost_figures(None, None, 1, 100.0, 2.0), cost_figures(2.0, "EUR", 0, 100.0, 2.0)):
        assert figures["projected_cost"] is None and figures["cost_per_1m_output_tokens"] is None
    assert cost_figures(2.0, None, 1, 100.0, None)["projected_cost"] is None


def test_sampler_sums_the_energy_counter_over_the_cells_gpus(monkeypatch):
    fake = FakeEnergyNvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    with gpu.GpuSampler([0, 1], interval_s=10) as sampler:
        first = sampler.energy_mj()
        second = sampler.energy_mj()
    assert first == 1_000_000 + 3_000_000 and second - first == 4_000_000
    with gpu.GpuSampler([1], interval_s=10) as only_second:
        assert only_second.energy_mj() == 9_000_000  # GPU 1's counter alone, read a third time (3 x 3 kJ)


def test_a_board_without_the_counter_gives_null_energy(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", FakeEnergyNvml(counter=False))
    with gpu.GpuSampler([0]) as sampler:
        assert sampler.energy_mj() is None


def test_without_a_gpu_energy_is_null():
    with gpu.GpuSampler() as sampler:
        assert sampler.energy_mj() is None


class FakeEngine(EngineDefaults):
    """A FAKE engine: every request returns 10 tokens at once."""

    mode = "offline"
    load_s = 36.0

    def run(self, requests, sampling, progress=None, load=None, on_sent=None):
        return [RequestRecord(f"r{i}", input_tokens=5, output_tokens=10, e2el_s=0.1, ttft_s=0.01) for i in range(4)]

    def describe(self):
        return {"name": "fake"}

    def fault(self):
        return None


def test_a_cell_records_the_last_rounds_energy_and_its_cost(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", FakeEnergyNvml(step_mj=(2_000_000, 0)))

    def two_rounds(fn):
        fn()
        fn()

    outcome = run_cell(
        plan_for(project_to=1000), FakeEngine(), [], SamplingOverrides(), CellResult(), two_rounds, pricing=(3.0, "USD")
    )
    result = outcome.result
    # GPU 0's counter grows 2,000 J per read; a round reads it twice: 2,000 J, whatever the number of rounds
    assert result.joules_per_request == 500.0 and result.joules_per_1k_output_tokens == 50_000.0
    assert result.energy_wh == pytest.approx(2000 / 3600, abs=1e-4)
    assert result.projected_kwh == pytest.approx(500 * 1000 / 3.6e6, abs=1e-4)
    assert result.projected_hours is not None
    assert result.projected_cost == pytest.approx(result.projected_hours * 3.0, abs=0.01)
    assert result.cost_currency == "USD" and result.gpus == ["NVIDIA H200"]


# --- the report -----------------------------------------------------------------------------------------------


def test_report_shows_job_hours_kwh_cost_and_the_fit_table(tmp_path):
    priced = cell(
        "gemma-12b-offline",
        params_b=11.8,
        dtype="bfloat16",
        gpus=["NVIDIA H200"],
        projected_hours=1.1,
        projected_kwh=0.9,
        projected_cost=2.75,
        cost_currency="USD",
        joules_per_request=19.2,
        cost_per_1m_output_tokens=0.1237,
    )
    unpriced = cell(
        "gemma-12b-server", params_b=11.8, dtype="bfloat16", gpus=["NVIDIA H200"], projected_kwh=float("nan")
    )
    fits = cell(
        "mistral-7b-offline",
        params_b=7.25,
        dtype="bfloat16",
        gpus=["NVIDIA H200"],
        gpu_memory_budget_gib=16.0,
        requests_per_s=30.0,
    )
    save_run(tmp_path, 1, "h200", [priced, unpriced, fits], gpus=["NVIDIA H200"], machine_id="gpu-box")
    run = tmp_path / "gpu-box" / "0001_h200.json"
    import json

    data = json.loads(run.read_text())
    data["vllmbench"] = {
        "unrun": [
            {
                "vllmbench_schema": 1,
                "cell": "qwen-14b-offline",
                "model": "qwen-14b",
                "mode": "offline",
                "params_b": 14.8,
                "dtype": "bfloat16",
                "dataset": {"path": "data/batch_5k.jsonl"},
                "gpu_memory_budget_gib": 16.0,
                "status": "does not fit in 16 GiB: needs ~27.6 GiB for the weights alone, plus the KV cache",
            }
        ]
    }
    run.write_text(json.dumps(data))
    text = render(load_runs(tmp_path))
    ranking = text.split("## Ranking")[1].split("## Parity")[0]
    assert "Job h" in ranking and "Job kWh" in ranking and "Job cost" in ranking
    assert "| 1.1 " in ranking and "| 0.90 " in ranking and "| 2.75 USD" in ranking
    assert "requests, memory budget 16 GiB per GPU" in ranking  # budget cells are ranked on their own
    row = next(line for line in ranking.splitlines() if "gemma-12b-server" in line)
    assert [part.strip() for part in row.strip().strip("|").split("|")][-3:] == ["31.4", "-", "-"]  # NaN kWh: missing
    results = text.split("## Results by machine")[1].split("## Memory budgets")[0]
    assert "0.12 USD" in results and "19.2" in results
    assert "mistral-7b [16G]" in results and "[16G] vLLM capped at 16 GiB of each GPU" in results
    fit = text.split("## Memory budgets")[1].split("## Ranking")[0]
    assert "| fits " in fit and "13.5" in fit and "2.5" in fit  # 7.25e9 x 2 B = 13.5 GiB; 16 - 13.5 left
    assert "| does not fit " in next(line for line in fit.splitlines() if "qwen-14b" in line)
    answer = text.split("## Answer")[1].split("\n## ")[0]
    assert (
        "qwen-14b-offline [16G] on 1 x NVIDIA H200: **does not fit** in 16 GiB (needs ~27.6 GiB for the weights alone"
        in answer
    )
    assert "nan" not in text


def test_missing_energy_and_cost_render_as_missing_not_zero(tmp_path):
    save_run(tmp_path, 1, "cpu", [cell()])  # saved before energy existed: no key at all
    text = render(load_runs(tmp_path))
    ranking_row = next(line for line in text.split("## Ranking")[1].splitlines() if "gemma-270m-offline" in line)
    cells = [part.strip() for part in ranking_row.strip("|").split("|")]
    assert cells[-2:] == ["-", "-"]  # Job kWh, Job cost
    assert "No cell run under a memory budget yet" in text


# --- a whole pytest run: endpoint mode against a stub server, NVML faked ------------------------------------


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def stub_server():
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "benchmarks" / "scripts" / "sse_stub.py"), str(port), "8"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_priced_run_saves_energy_and_cost_and_the_report_shows_them(pytester, monkeypatch, stub_server):
    monkeypatch.setitem(sys.modules, "pynvml", FakeEnergyNvml(step_mj=(5_000, 5_000)))
    pytester.makepyfile(test_batch=(REPO / "benchmarks" / "test_batch.py").read_text())
    (pytester.path / "stub").mkdir()  # a local folder name is a model name the registry accepts
    result = pytester.runpytest(
        "--mode=endpoint",
        f"--endpoint={stub_server}",
        "--model=stub",
        "--limit=4",
        f"--dataset={REPO / 'data' / 'batch_5k.jsonl'}",
        "--gpu-hourly-cost=2.5",
        "--cost-currency=USD",
        "--benchmark-save=priced",
        "--report=BENCHMARKS.md",
    )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    [saved] = load_runs(pytester.path / ".benchmarks")[0].cells
    # endpoint cells read every GPU of the machine: two fake H200s, each counter +5 J per read
    assert saved["gpus"] == ["NVIDIA H200", "NVIDIA H200"] and saved["energy_wh"] == pytest.approx(10 / 3600, abs=1e-4)
    assert saved["joules_per_request"] == 2.5
    assert saved["projected_cost"] == pytest.approx(saved["projected_hours"] * 2.5 * 2, abs=0.01)
    ranking = (pytester.path / "BENCHMARKS.md").read_text().split("## Ranking")[1].split("## Parity")[0]
    row = next(line for line in ranking.splitlines() if "stub-endpoint" in line)
    assert f"{saved['projected_cost']:,.2f} USD" in row and "nan" not in row


def test_pyproject_keys_set_budget_price_and_currency(tmp_path):
    from pytest_vllmbench.config.settings import merge_sources, resolve

    table = {"gpu_memory": "24GB", "gpu_hourly_cost": 2.5, "cost_currency": "EUR", "model": ["gemma-270m"]}
    settings = resolve(merge_sources({}, table, {}), tmp_path)
    assert (settings.gpu_memory, settings.gpu_hourly_cost, settings.cost_currency) == (24 * 10**9, 2.5, "EUR")
    overridden = resolve(merge_sources({"gpu_hourly_cost": "1.25"}, table, {}), tmp_path)
    assert overridden.gpu_hourly_cost == 1.25  # the command line wins


class BusyWhileFlagged(FakeEnergyNvml):
    """The FAKE NVML above, busy only while `busy` is set (by the engine below, around its batch)."""

    busy = False

    def nvmlDeviceGetUtilizationRates(self, handle):
        return types.SimpleNamespace(gpu=100 if self.busy else 0)


class StartsInsideItsRun(FakeEngine):
    """A FAKE of a ray-like engine: each run idles 1 s (its replicas starting), then does its batch for 1 s."""

    def __init__(self, nvml):
        self.nvml = nvml

    def run(self, requests, sampling, progress=None, load=None, on_sent=None):
        import time

        time.sleep(1.0)
        self.nvml.busy = True
        started = time.time()
        time.sleep(1.0)
        self.batch_span = (started, time.time())
        self.nvml.busy = False
        return super().run(requests, sampling, progress)


def test_the_gpu_busy_share_is_the_batchs_where_the_engine_names_its_span(monkeypatch):
    nvml = BusyWhileFlagged()
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    outcome = run_cell(plan_for(), StartsInsideItsRun(nvml), [], SamplingOverrides(), CellResult(), lambda fn: fn())
    assert outcome.result.gpu_util_mean_pct >= 80  # over the whole run it is below 50: the idle second is left out
