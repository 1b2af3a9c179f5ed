"""A cell run with --engine-arg is its own cell: the report kept it apart from the same model and mode as configured.

Before, a server run at `--engine-arg=max_num_batched_tokens=16384` superseded the plain server cell of the same model
and machine: the Answer, the tables and the "Offline vs server" verdict then compared the plain offline cell with it.
"""

import json
from pathlib import Path

from saved_runs import cell, save_run

from pytest_vllmbench.config.matrix import Cell, build_matrix
from pytest_vllmbench.config.registry import load_registry
from pytest_vllmbench.config.settings import merge_sources, resolve
from pytest_vllmbench.engines.cell_plan import DummySources, plan_cell
from pytest_vllmbench.results.labels import cell_label
from pytest_vllmbench.results.mode_verdicts import mode_verdicts
from pytest_vllmbench.results.report import render
from pytest_vllmbench.results.saved_run import SavedCell
from pytest_vllmbench.results.storage import load_runs
from pytest_vllmbench.run.session import BenchSession
from tests.plans import plan_for

REPO = Path(__file__).resolve().parents[1]
GPU = ["NVIDIA H100 80GB HBM3"]
TUNED = {"max_num_batched_tokens": 16384}


def _rounds(mean: float) -> dict[str, object]:
    stats = {"n": 3, "mean": mean, "stddev": 1.0, "ci95_low": mean - 2.5, "ci95_high": mean + 2.5, "ci95_half": 2.5}
    return {"requests_per_s": mean, "round_stats": {"requests_per_s": stats}}


def _three_runs(root: Path) -> None:
    """Plain offline, plain server, then the server again with one engine arg set, newest last."""
    save_run(
        root, 1, "offline", [cell("mistral-7b-offline", gpus=GPU, **_rounds(100.0))], gpus=GPU, when="2026-12-05T10:00"
    )
    save_run(
        root, 2, "server", [cell("mistral-7b-server", gpus=GPU, **_rounds(60.0))], gpus=GPU, when="2026-12-05T10:10"
    )
    tuned = cell("mistral-7b-server", gpus=GPU, engine_args_set=TUNED, **_rounds(30.0))
    save_run(root, 3, "tuned", [tuned], gpus=GPU, when="2026-12-05T10:20")


def test_a_run_with_engine_args_set_does_not_supersede_the_plain_cell(tmp_path):
    _three_runs(tmp_path)
    text = render(load_runs(tmp_path))
    history = text.split("## History\n")[1]
    plain = next(line for line in history.splitlines() if "0002_server" in line)
    assert plain.rstrip(" |").endswith("current")
    matrix = text.split("## Test matrix\n")[1].split("\n## ")[0]
    assert "mistral-7b (max_num_batched_tokens=16384)" in matrix and "| 60.00 ± 2.50 " in matrix


def test_the_verdict_pairs_the_plain_cells_and_compares_the_tuned_server_with_them_by_its_name(tmp_path):
    _three_runs(tmp_path)
    verdicts = render(load_runs(tmp_path)).split("## Offline vs server\n")[1].split("\n## ")[0]
    lines = [line for line in verdicts.splitlines() if line.startswith("- mistral-7b")]
    assert "offline 100.00 ± 2.50 vs server 60.00 ± 2.50 req/s" in lines[0]
    # never in the plain pair's place: a side of its own, named for what it set
    assert "offline 100.00 ± 2.50 vs server (max_num_batched_tokens=16384) 30.00 ± 2.50 req/s" in lines[1]
    assert "server 60.00 ± 2.50 vs server (max_num_batched_tokens=16384) 30.00 ± 2.50 req/s" in lines[2]
    assert ": server ahead; " in lines[2] and len(lines) == 3


def test_a_tuned_pair_is_compared_on_its_own_line():
    def placed(mode: str, mean: float, tuned: dict | None = None):
        return ("H100", "w", cell(f"mistral-7b-{mode}", engine_args_set=tuned, **_rounds(mean)))

    text = mode_verdicts(
        [
            placed("offline", 100.0),
            placed("server", 60.0),
            placed("offline", 90.0, TUNED),
            placed("server", 80.0, TUNED),
        ]
    )
    lines = text.splitlines()
    assert lines[0].startswith("- mistral-7b on H100 (w): offline 100.00 ± 2.50 vs server 60.00")
    tuned = "- mistral-7b (max_num_batched_tokens=16384) on H100 (w): offline 90.00 ± 2.50 vs server 80.00 ± 2.50 req/s"
    assert sum(line.startswith(tuned) for line in lines) == 1  # under their variant, the tuned server is 'server'
    assert sum("vs server (max_num_batched_tokens=16384) 80.00" in line for line in lines) == 2  # plain offline, server


def test_the_plan_knows_which_engine_args_the_user_changed_for_its_mode():
    offline = plan_for(mode="offline", engine_arg=["max_num_seqs=64", "ray_replicas=2"])
    assert offline.user_args == {"max_num_seqs": 64}  # ray_replicas shapes ray cells only
    assert plan_for(mode="offline").user_args == {}
    # beside an offline cell (alone, endpoint mode refuses engine args): the endpoint's server is not ours
    settings = resolve(
        merge_sources(
            {"model": ["gemma-270m"], "mode": ["offline", "endpoint"], "endpoint": "http://127.0.0.1:1/v1"}
            | {"engine_arg": ["max_num_seqs=9"]},
            {},
            {},
        ),
        REPO,
    )
    registry = load_registry()
    cell = Cell(registry.resolve_served("gemma-270m"), "endpoint", "gemma-270m")
    assert plan_cell(cell, settings, registry, DummySources()).user_args == {}


def test_args_that_change_nothing_the_cell_runs_with_do_not_set_it_apart():
    registry_value = plan_for(mode="offline").engine_args["max_model_len"]
    same = plan_for(mode="offline", engine_arg=[f"max_model_len={registry_value}", "enforce_eager=true"])
    assert same.user_args == {}  # the registry gives both already
    assert plan_for(mode="offline", engine_arg=["load_format=dummy"]).user_args == {}  # the [d] mark shows it
    registry = load_registry()
    settings = resolve(merge_sources({"mode": ["server"], "engine_arg": ["api_server_count=2"]}, {}, {}), REPO)
    api4 = Cell(registry.resolve("gemma-270m"), "server", "gemma-270m", api_servers=4)
    overridden = plan_cell(api4, settings, registry, DummySources())
    assert overridden.engine_args["api_server_count"] == 4 and overridden.user_args == {}  # the -api4 id shows it


def test_labels_write_each_value_once_as_json_writes_it():
    def label(args: dict) -> str:
        saved = cell("m-server", engine_args_set=args)
        return cell_label(SavedCell.of(saved))

    assert label({"enforce_eager": True, "b": {"y": 1, "x": 2}}) == 'm-server (b={"x": 2, "y": 1}, enforce_eager=true)'
    assert label({"b": {"x": 2, "y": 1}, "enforce_eager": True}) == label(
        {"enforce_eager": True, "b": {"y": 1, "x": 2}}
    )
    assert label({"tokenizer_mode": "a|b"}) == "m-server (tokenizer_mode=a\\|b)"  # a table cell holds it
    assert label({"tensor_parallel_size": 2}) == "m-server"  # the GPU split shows it, from engine_args


def test_the_cell_saves_the_engine_args_the_user_set_redacted():
    settings = resolve(
        merge_sources({"mode": ["offline"], "engine_arg": ["max_num_seqs=64", "hf_token=hf_abcdefgh12345678"]}, {}, {}),
        REPO,
    )
    session = BenchSession(settings, load_registry(), REPO)
    [matrix_cell] = build_matrix(("gemma-270m",), ("offline",), session.registry)
    saved = session.planned(session.plan(matrix_cell)).extra_info()
    assert saved["engine_args_set"] == {"max_num_seqs": 64}  # a secret is in engine_args, redacted, and no label
    assert saved["engine_args"]["hf_token"] == "<redacted>"
    assert "hf_abcdefgh12345678" not in json.dumps(saved)
    plain = BenchSession(resolve(merge_sources({"mode": ["offline"]}, {}, {}), REPO), load_registry(), REPO)
    assert "engine_args_set" not in plain.planned(plain.plan(matrix_cell)).extra_info()


def test_a_tuned_pair_repeated_both_ways_round_is_pooled_apart_from_the_plain_pair(tmp_path):
    def run(number: int, mode: str, mean: float, tuned: dict | None = None) -> None:
        figures = cell(f"mistral-7b-{mode}", gpus=GPU, **_rounds(mean), **({"engine_args_set": tuned} if tuned else {}))
        figures["rounds"] = [{"requests_per_s": mean - 1.0}, {"requests_per_s": mean}, {"requests_per_s": mean + 1.0}]
        save_run(
            tmp_path,
            number,
            f"{mode}{number}",
            [figures],
            gpus=GPU,
            when=f"2026-12-05T10:{number:02d}",
            boot="a1b2c3d4e5f6",
        )

    run(1, "offline", 100.0)
    run(2, "server", 60.0)
    run(3, "offline", 90.0, TUNED)
    run(4, "server", 80.0, TUNED)
    run(5, "offline", 92.0, TUNED)
    verdicts = render(load_runs(tmp_path)).split("## Offline vs server\n")[1].split("\n## ")[0]
    tuned = next(line for line in verdicts.splitlines() if line.startswith("- mistral-7b (max_num_batched_tokens"))
    assert (
        "rounds pooled over runs both ways round on one boot of the machine: offline 0003, 0005; server 0004" in tuned
    )
    plain = next(line for line in verdicts.splitlines() if line.startswith("- mistral-7b on "))
    assert "offline 100.00 ± 2.50 vs server 60.00 ± 2.50 req/s (one run each, one order: offline first)" in plain


def test_a_tensor_parallel_cell_is_not_paired_with_a_single_gpu_cell():
    split_offline = cell("m-offline", engine_args={"tensor_parallel_size": 2}, **_rounds(100.0))
    text = mode_verdicts([("H200", "w", split_offline), ("H200", "w", cell("m-server", **_rounds(60.0)))])
    assert text.startswith("No model has both")  # before, the two were compared as one model's modes
