"""--interleave: one model's cells alternate round by round (A B, B A, A B), their engines alive together, and the
saved run holds one entry per cell with every round in its statistics."""

import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.config.matrix import Cell
from pytest_vllmbench.config.registry import ModelSpec, load_registry
from pytest_vllmbench.config.settings import merge_sources, resolve
from pytest_vllmbench.pytest_plugin.benchmark_compat import fold_interleaved_rounds
from pytest_vllmbench.run.engine_slot import EngineSlot
from pytest_vllmbench.run.interleave import interleaved_rounds
from pytest_vllmbench.run.session import BenchSession
from tests.fake_mode import FAKE_MODE
from tests.test_fake_mode import fake_mode_project

REPO = Path(__file__).resolve().parents[1]


def cells_of(models: dict[str, int]) -> list[Cell]:
    """`models`: alias -> how many cells (modes) it has."""
    return [
        Cell(ModelSpec(alias=alias, source=f"org/{alias}"), f"mode{index}", alias)
        for alias, count in models.items()
        for index in range(count)
    ]


def test_one_models_cells_alternate_and_models_follow_each_other():
    cells = cells_of({"a": 2, "b": 2})
    order = [turn.id for turn in interleaved_rounds(cells, 3)]
    assert order == [
        *("a-mode0-round1", "a-mode1-round1", "a-mode1-round2", "a-mode0-round2", "a-mode0-round3", "a-mode1-round3"),
        *("b-mode0-round1", "b-mode1-round1", "b-mode1-round2", "b-mode0-round2", "b-mode0-round3", "b-mode1-round3"),
    ]


@given(st.lists(st.integers(1, 4), min_size=1, max_size=3), st.integers(1, 6))
def test_every_cell_runs_each_round_once_and_is_first_as_often_as_last(counts, rounds):
    cells = cells_of({f"m{index}": count for index, count in enumerate(counts)})
    order = interleaved_rounds(cells, rounds)
    assert Counter(turn.cell.id for turn in order) == {cell.id: rounds for cell in cells}
    first: Counter[str] = Counter()
    last: Counter[str] = Counter()
    start = 0
    for count in counts:  # a model's turns are contiguous: its engines are never interrupted by another model's
        block = order[start : start + count * rounds]
        assert len({turn.cell.model.alias for turn in block}) == 1
        for number in range(rounds):
            turn = block[number * count : (number + 1) * count]
            assert {t.round for t in turn} == {number + 1} and len({t.cell.id for t in turn}) == count
            if count > 1:
                first[turn[0].cell.id] += 1
                last[turn[-1].cell.id] += 1
        start += count * rounds
    assert all(abs(first[cell.id] - last[cell.id]) <= 1 for cell in cells)


class Recorder:
    def __init__(self) -> None:
        self.events: list[str] = []

    def start(self, plan):
        name = f"{plan.cell.model.alias}-{plan.cell.mode}"
        self.events.append(f"start {name}")
        recorder = self

        class Engine:
            def close(self) -> None:
                recorder.events.append(f"close {name}")
                if name == "a-mode1":
                    raise RuntimeError("would not stop")

        return Engine()


class Plan:
    def __init__(self, cell: Cell) -> None:
        self.cell = cell


def test_interleaved_engines_of_one_model_live_together_until_another_model_starts():
    recorder = Recorder()
    slot = EngineSlot(recorder.start, keep_model_engines=True)
    a0, a1, b0 = (Plan(cell) for cell in cells_of({"a": 2, "b": 1}))
    first = slot.get(a0)
    slot.get(a1)
    assert slot.get(a0) is first and recorder.events == ["start a-mode0", "start a-mode1"]
    with pytest.raises(RuntimeError, match="would not stop"):  # one would not stop: the other is stopped all the same
        slot.get(b0)
    assert recorder.events[2:] == ["close a-mode1", "close a-mode0"]
    slot.get(b0)
    slot.close()
    assert recorder.events[-2:] == ["start b-mode0", "close b-mode0"]


def test_an_interrupt_while_engines_stop_wins_over_an_engines_own_error():
    class Stubborn:
        def close(self) -> None:
            raise RuntimeError("would not stop")

    class Interrupted:
        def close(self) -> None:
            raise KeyboardInterrupt

    engines = iter([Stubborn(), Interrupted()])
    slot = EngineSlot(lambda plan: next(engines), keep_model_engines=True)
    a0, a1 = (Plan(cell) for cell in cells_of({"a": 2}))
    slot.get(a0)
    slot.get(a1)
    with pytest.raises(KeyboardInterrupt):  # the session must end, not carry on past the stubborn engine
        slot.close()
    assert slot.alive() == 0


def test_a_cell_is_told_the_processes_of_the_engines_idle_beside_it():
    class Engine:
        def __init__(self, pids: set[int]) -> None:
            self.pids = frozenset(pids)

        def process_pids(self) -> frozenset[int]:
            return self.pids

        def close(self) -> None: ...

    engines = iter([Engine({11, 12}), Engine({21})])
    slot = EngineSlot(lambda plan: next(engines), keep_model_engines=True)
    a0, a1 = (Plan(cell) for cell in cells_of({"a": 2}))
    slot.get(a0)
    assert slot.beside(a0.cell.engine_key) == frozenset()
    slot.get(a1)
    assert slot.beside(a0.cell.engine_key) == {21} and slot.beside(a1.cell.engine_key) == {11, 12}


def test_without_interleave_one_engine_lives_at_a_time():
    recorder = Recorder()
    slot = EngineSlot(recorder.start)
    a0, _, b0 = (Plan(cell) for cell in cells_of({"a": 2, "b": 1}))
    slot.get(a0)
    slot.get(b0)
    assert recorder.events == ["start a-mode0", "close a-mode0", "start b-mode0"]


def interleave_settings(**options):
    raw = {"model": ["gemma-270m"], "mode": ["offline", "server"], "rounds": "3", "interleave": True}
    return resolve(merge_sources(raw | options, {}, {}), REPO)


def test_interleave_needs_rounds_to_alternate_and_refuses_parity_that_stops_its_engines():
    with pytest.raises(UsageError, match="--interleave alternates timed rounds"):
        interleave_settings(rounds="1")
    with pytest.raises(UsageError, match="--vllm-bench-parity stops every engine"):
        interleave_settings(vllm_bench_parity=True)


def test_engines_alive_together_share_the_memory_unless_the_user_set_it():
    registry = load_registry()
    alone = BenchSession(resolve(merge_sources({"model": ["gemma-270m"], "rounds": "3"}, {}, {}), REPO), registry, REPO)
    shared = BenchSession(interleave_settings(), registry, REPO)
    chosen = BenchSession(interleave_settings(engine_arg=["gpu_memory_utilization=0.2"]), registry, REPO)
    beside_endpoint = BenchSession(
        interleave_settings(mode=["offline", "endpoint"], endpoint="http://127.0.0.1:9/v1"), registry, REPO
    )
    own = alone.plan(alone.cells[0]).engine_args["gpu_memory_utilization"]
    assert shared.plan(shared.cells[0]).engine_args["gpu_memory_utilization"] == pytest.approx(own / 2, abs=1e-4)
    assert shared.plan(shared.cells[1]).engine_args["gpu_memory_utilization"] == pytest.approx(own / 2, abs=1e-4)
    assert chosen.plan(chosen.cells[0]).engine_args["gpu_memory_utilization"] == 0.2
    # a server not ours holds none of this GPU's memory for this session
    assert beside_endpoint.plan(beside_endpoint.cells[0]).engine_args["gpu_memory_utilization"] == own


def entry(cell: str, test_id: str, seconds: float, rounds: int) -> dict:
    info = {"vllmbench_schema": 1, "cell": cell, "interleaved": ["x", "y"], "rounds": [{}] * rounds}
    return {
        "name": f"test_batch[{test_id}]",
        "fullname": f"benchmarks/test_batch.py::test_batch[{test_id}]",
        "param": test_id,
        "extra_info": info if rounds > 1 else {k: v for k, v in info.items() if k != "rounds"},
        "stats": {"min": seconds, "max": seconds, "mean": seconds, "rounds": 1, "iterations": 1},
    }


def test_a_cells_rounds_fold_into_one_entry_named_by_the_cell_with_every_rounds_time():
    plain = {"name": "test_other", "extra_info": {}, "stats": {"mean": 1.0, "rounds": 1}}
    saved = [entry("x", "x-round1", 2.0, 1), entry("y", "y-round1", 5.0, 1), plain]
    saved += [entry("y", "y-round2", 7.0, 2), entry("x", "x-round2", 4.0, 2)]
    fold_interleaved_rounds(saved)
    assert [bench.get("param") for bench in saved] == [None, "y", "x"]
    x = saved[2]
    assert x["name"] == "test_batch[x]" and x["fullname"] == "benchmarks/test_batch.py::test_batch[x]"
    assert x["stats"]["rounds"] == 2 and x["stats"]["min"] == 2.0 and x["stats"]["max"] == 4.0
    assert x["stats"]["mean"] == 3.0 and x["stats"]["iterations"] == 1 and len(x["extra_info"]["rounds"]) == 2
    again = json.loads(json.dumps(saved))
    fold_interleaved_rounds(again)  # pytest-benchmark calls the hook once per output
    assert again == json.loads(json.dumps(saved))


def fake_project(pytester, monkeypatch) -> Path:
    """Two fake modes on one local model folder; returns the engines' event log."""
    fake_mode_project(
        pytester,
        f"register(FAKE_MODE.__class__({SECOND!r}, flexibility=0.5, start='fake_mode:start', sweeps=True, "
        "figures=('timing',)))\n",
    )
    log = pytester.path / "engines.log"
    monkeypatch.setenv("FAKE_ENGINE_LOG", str(log))
    return log


SECOND = "fake-other"


def run_session(pytester, *options: str, modes: tuple[str, ...] = (FAKE_MODE.name, SECOND)):
    """The fake project's benchmarks on the local model folder, in a pytest of its own."""
    mode_options = [f"--mode={mode}" for mode in modes]
    return pytester.runpytest_subprocess(
        "benchmarks", "-p", "no:cacheprovider", "--model=my-model", *mode_options, *options
    )


def test_under_xdist_each_engines_cells_run_on_one_worker_in_order(pytester, monkeypatch):
    """xdist's loadgroup lost its groups under pytest 9.2 (pytest-xdist#1386): a sweep's cells were spread over the
    workers, each loading the engine."""
    log = fake_project(pytester, monkeypatch)
    result = run_session(pytester, "--concurrency=1,2,4,8", "--limit=2", "-n", "2")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-3000:]
    result.assert_outcomes(passed=8)
    events = log.read_text().splitlines()
    assert sorted(event for event in events if event.startswith("start")) == [
        f"start {FAKE_MODE.name}",
        f"start {SECOND}",
    ]
    assert events.count(f"run {FAKE_MODE.name}") == 4 and events.count(f"run {SECOND}") == 4


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_interleaved_rounds_run_a_b_b_a_a_b_on_live_engines_and_save_one_entry_per_cell(pytester, monkeypatch, workers):
    log = fake_project(pytester, monkeypatch)
    result = run_session(pytester, "--rounds=3", "--interleave", "--limit=4", "--benchmark-save=il", *workers)
    output = result.stdout.str()
    assert result.ret == pytest.ExitCode.OK, output[-3000:]
    result.assert_outcomes(passed=6)
    a, b = FAKE_MODE.name, SECOND
    assert log.read_text().splitlines() == [
        *(f"start {a}", f"run {a}", f"start {b}", f"run {b}"),  # both engines start once and stay up
        *(f"run {b}", f"run {a}", f"run {a}", f"run {b}"),
        *(f"close {b}", f"close {a}"),
    ]
    [path] = (pytester.path / ".benchmarks").glob("*/*_il.json")
    saved = json.loads(path.read_text())["benchmarks"]
    assert sorted(bench["param"] for bench in saved) == [f"my-model-{a}", f"my-model-{b}"]
    for bench in saved:
        info = bench["extra_info"]
        assert bench["stats"]["rounds"] == 3 and bench["name"] == f"test_batch[{info['cell']}]"
        assert len(info["rounds"]) == 3 and info["round_stats"]["requests_per_s"]["n"] == 3
        assert info["interleaved"] == [f"my-model-{a}", f"my-model-{b}"] and "score" in info
    assert f"my-model-{b}" in (pytester.path / "BENCHMARKS.md").read_text()


def test_an_interleaved_cell_is_not_charged_with_the_busy_engine_idle_beside_it(pytester, monkeypatch):
    """Under --interleave the other engine lives on while this cell runs: its processes are not this cell's."""
    fake_project(pytester, monkeypatch)
    (pytester.path / "conftest.py").write_text(
        (pytester.path / "conftest.py").read_text()
        + "\nregister(FAKE_MODE.__class__('fake-busy', flexibility=0.5, start='fake_mode:start_with_busy_core', figures=('timing',)))"
        + "\nregister(FAKE_MODE.__class__('fake-slow', flexibility=0.5, start='fake_mode:start_slow', figures=('timing',)))\n"
    )
    result = run_session(
        pytester, "--rounds=2", "--interleave", "--limit=2", "--benchmark-save=busy", modes=("fake-busy", "fake-slow")
    )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-3000:]
    [path] = (pytester.path / ".benchmarks").glob("*/*_busy.json")
    cells = {bench["extra_info"]["mode"]: bench["extra_info"] for bench in json.loads(path.read_text())["benchmarks"]}
    # its own spinning child is the busy engine's engine core; beside it, the slow engine's cell has none at work
    assert cells["fake-busy"]["cpu_engine_core_pct"] > 5.0
    assert cells["fake-slow"]["cpu_engine_core_pct"] < 2.0


def test_a_start_that_fails_beside_live_engines_is_a_failure_not_a_does_not_fit_answer(pytester, monkeypatch):
    """With its model's other engines up, an out-of-memory start says nothing about whether the cell fits alone:
    it was saved as 'does not fit', which the report shows as an answer."""
    log = fake_project(pytester, monkeypatch)
    (pytester.path / "conftest.py").write_text(
        (pytester.path / "conftest.py").read_text()
        + "\nregister(FAKE_MODE.__class__('fake-oom', flexibility=0.5, start='fake_mode:start_out_of_memory'))\n"
    )
    result = run_session(
        pytester, "--rounds=2", "--interleave", "--limit=2", "--benchmark-save=oom", modes=(FAKE_MODE.name, "fake-oom")
    )
    output = result.stdout.str()
    result.assert_outcomes(passed=2, failed=2)
    assert "engine did not start (beside 1 other engine(s) of the model, --interleave)" in output
    assert "does not fit" not in output and log.read_text().count("start fake-oom") == 1
    [path] = (pytester.path / ".benchmarks").glob("*/*_oom.json")
    [unrun] = json.loads(path.read_text())["vllmbench"]["unrun"]
    assert unrun["cell"] == "my-model-fake-oom" and unrun["status"].startswith("failed: ")


def test_the_trace_keeps_every_interleaved_round(pytester, monkeypatch):
    """Each round's test rewrote the cell's trace file with its own round, numbered 1."""
    fake_project(pytester, monkeypatch)
    result = run_session(pytester, "--rounds=3", "--interleave", "--limit=4", f"--trace-dir={pytester.path / 'traces'}")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-3000:]
    rows = (pytester.path / "traces" / f"my-model-{FAKE_MODE.name}.jsonl").read_text().splitlines()[1:]
    assert Counter(json.loads(row)["round"] for row in rows) == {1: 4, 2: 4, 3: 4}


def test_interleave_refuses_an_xdist_distribution_that_would_split_a_models_rounds(pytester, monkeypatch):
    fake_project(pytester, monkeypatch)
    result = run_session(pytester, "--rounds=2", "--interleave", "-n", "2", "--dist", "worksteal")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--interleave runs a model's rounds on one worker, which --dist worksteal*"])


def test_a_cell_alone_under_interleave_keeps_every_round_in_one_entry(pytester, monkeypatch):
    """A model with one cell has nothing to alternate with: its rounds were saved as three one-round entries."""
    fake_project(pytester, monkeypatch)
    result = run_session(pytester, "--rounds=3", "--interleave", "--limit=2", "--benchmark-save=alone", modes=(SECOND,))
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-3000:]
    [path] = (pytester.path / ".benchmarks").glob("*/*_alone.json")
    [bench] = json.loads(path.read_text())["benchmarks"]
    assert bench["param"] == f"my-model-{SECOND}" and bench["stats"]["rounds"] == 3
    assert len(bench["extra_info"]["rounds"]) == 3 and "interleaved" not in bench["extra_info"]


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_two_test_functions_of_cells_are_refused_under_interleave_whose_rounds_they_would_mix(
    pytester, monkeypatch, workers
):
    """Rounds are counted per cell across the session: a second test function's rounds of the same cell would be
    counted as the first's."""
    fake_project(pytester, monkeypatch)
    with (pytester.path / "benchmarks" / "test_batch.py").open("a") as tests:
        tests.write("\n\ndef test_again(vllmbench_cell, benchmark):\n    vllmbench_cell.run(benchmark)\n")
    result = run_session(pytester, "--rounds=2", "--interleave", "--limit=2", *workers)
    output = result.stdout.str() + result.stderr.str()
    # a usage error where the session collects; under xdist the workers collect, and every cell errs saying why
    assert result.ret == (pytest.ExitCode.TESTS_FAILED if workers else pytest.ExitCode.USAGE_ERROR), output[-3000:]
    assert (
        "one test function per session may use vllmbench_cell; found 2: benchmarks/test_batch.py::test_batch, "
        "benchmarks/test_batch.py::test_again (select one with -k or a path)"
    ) in output
    assert "Traceback" not in output and "INTERNALERROR" not in output
    if workers:
        result.assert_outcomes(errors=8)
    result = run_session(pytester, "--rounds=2", "--interleave", "--limit=2", "-k", "test_again", *workers)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-3000:]


def test_a_cell_whose_only_saved_round_is_its_first_gets_no_warning_of_rounds_elsewhere():
    saved = [entry("x", "x-round1", 2.0, 1)]  # the session stopped before x's second round
    assert fold_interleaved_rounds(saved) == []
    assert [bench["param"] for bench in saved] == ["x"]
