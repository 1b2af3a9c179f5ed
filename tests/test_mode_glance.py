"""Offline vs server at a glance (results/mode_glance.py): one row per offline cell and server side with rounds."""

from __future__ import annotations

from saved_runs import cell, save_run

from pytest_vllmbench.measure.rounds import interval
from pytest_vllmbench.results.report import render
from pytest_vllmbench.results.storage import load_runs

GPU = ["NVIDIA H200"]
BOOT, OTHER_BOOT = "a1b2c3d4e5f6", "0f0f0f0f0f0f"
HEADER = (
    "| Machine | Model | Requests | Offline req/s | Server | Server req/s | Job h (170,000 requests), offline / server"
)


def _cell(name: str, rates: list[float] | None, **figures: object) -> dict[str, object]:
    model, mode = name.split("-")[:2]
    if rates is None:  # one run, no rounds
        return cell(name, model=model, mode=mode, gpus=GPU, requests_per_s=50.0, **figures)
    stats = interval(rates)
    return cell(
        name,
        model=model,
        mode=mode,
        gpus=GPU,
        requests_per_s=stats["mean"],
        rounds=[{"requests_per_s": rate} for rate in rates],
        round_stats={"requests_per_s": stats},
        **figures,
    )


def _section(tmp_path) -> str:
    return render(load_runs(tmp_path)).split("## Offline vs server\n")[1].split("\n## ")[0]


def _rows(section: str) -> list[list[str]]:
    lines = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| Machine")]
    return [[part.strip() for part in line.strip("|").split("|")] for line in lines]


FAST, SLOW = [60.0, 61.0, 62.0], [48.0, 50.0, 52.0]


def test_runs_both_ways_round_give_a_verdict_row_naming_the_pooled_runs_and_what_bound_each(tmp_path):
    bound = {"m-offline": "gpu", "m-server": "api-server"}
    for number, name in enumerate(["m-offline", "m-server", "m-offline", "m-server"], start=1):
        rates = FAST if name.endswith("offline") else SLOW
        shares = {"bound_by": bound[name], "gpu_util_mean_pct": 97.0, "cpu_api_server_pct": 98.0}
        save_run(tmp_path, number, name[2], [_cell(name, rates, **shares)], gpus=GPU, boot=BOOT)
    section = _section(tmp_path)
    assert HEADER in section
    ((machine, model, requests, offline, side, server, _, outcome, bound_by, runs),) = _rows(section)
    assert (machine, model, requests, side) == ("1 x NVIDIA H200", "m", "64", "server")
    assert offline.startswith("61.00 ± ") and server.startswith("50.00 ± ")
    assert outcome == "offline sooner"
    assert bound_by == "gpu 97% / api-server 98%"
    assert runs == "0001, 0003 / 0002, 0004"
    # the table comes before the verdict lines, which still give the pair
    assert section.index(HEADER) < section.index("- m on 1 x NVIDIA H200")


def test_a_lead_in_one_order_says_so_and_a_tie_says_no_difference(tmp_path):
    save_run(tmp_path / "lead", 1, "o", [_cell("m-offline", FAST)], gpus=GPU, boot=BOOT)
    save_run(tmp_path / "lead", 2, "s", [_cell("m-server", SLOW)], gpus=GPU, boot=BOOT)
    ((*_, outcome, _, runs),) = _rows(_section(tmp_path / "lead"))
    assert (outcome, runs) == ("offline ahead (one order only)", "0001 / 0002")

    save_run(tmp_path / "boots", 1, "o", [_cell("m-offline", FAST)], gpus=GPU, boot=BOOT)
    save_run(tmp_path / "boots", 2, "s", [_cell("m-server", SLOW)], gpus=GPU, boot=OTHER_BOOT)
    ((*_, outcome, _, _),) = _rows(_section(tmp_path / "boots"))
    assert outcome == "offline ahead (two boots)"

    save_run(tmp_path / "tie", 1, "o", [_cell("m-offline", [40.0, 60.0, 80.0])], gpus=GPU, boot=BOOT)
    save_run(tmp_path / "tie", 2, "s", [_cell("m-server", SLOW)], gpus=GPU, boot=BOOT)
    ((*_, outcome, _, _),) = _rows(_section(tmp_path / "tie"))
    assert outcome == "no difference shown"


def test_pairs_without_rounds_are_counted_not_tabled_and_server_pairs_are_left_to_the_lines(tmp_path):
    save_run(
        tmp_path,
        1,
        "both",
        [
            _cell("m-offline", FAST),
            _cell("m-server", SLOW),
            _cell("m-server-api4", SLOW),
            _cell("n-offline", None),
            _cell("n-server", None),
        ],
        gpus=GPU,
        boot=BOOT,
    )
    section = _section(tmp_path)
    rows = _rows(section)
    assert [(row[1], row[4]) for row in rows] == [("m", "server"), ("m", "server (4 API servers)")]
    assert "1 more offline/server pair lack rounds on one side or both" in section
    assert ": server 50.00 ± 4.97 vs server (4 API servers) 50.00 ± 4.97 req/s" in section  # a line, not a row


def test_no_table_where_no_pair_has_rounds(tmp_path):
    save_run(tmp_path, 1, "both", [_cell("n-offline", None), _cell("n-server", None)], gpus=GPU, boot=BOOT)
    section = _section(tmp_path)
    assert "| Machine |" not in section and section.lstrip().startswith("A mode is called faster")
    assert "not called: no rounds on both sides" in section


def test_the_report_reads_answer_first(tmp_path):
    save_run(tmp_path, 1, "o", [_cell("m-offline", FAST)], gpus=GPU, boot=BOOT)
    save_run(tmp_path, 2, "s", [_cell("m-server", SLOW)], gpus=GPU, boot=BOOT)
    text = render(load_runs(tmp_path))
    order = ["## Answer", "## Offline vs server", "## Decisions and learnings", "## Current status", "## Ranking"]
    assert [text.index(title) for title in order] == sorted(text.index(title) for title in order)


def test_the_glossary_says_what_each_bound_and_each_verdict_word_means(tmp_path):
    from pytest_vllmbench.measure.host_load import GPU_BOUND_PCT, HOST_BOUND_PCT, ROLES

    save_run(tmp_path, 1, "o", [_cell("m-offline", FAST)], gpus=GPU, boot=BOOT)
    glossary = render(load_runs(tmp_path)).split("## Glossary\n")[1].split("\n## ")[0]
    bound = next(entry for entry in glossary.split("\n- ") if entry.startswith("**Bound by**"))
    for name in ["kv-cache", "gpu", *ROLES, "unclear"]:
        assert f"`{name}`" in bound
    assert f"at least {GPU_BOUND_PCT:g} % of the time" in bound and f"at least {HOST_BOUND_PCT:g} % of one" in bound
    assert "**ahead**" in glossary and "**Faster / sooner**" in glossary


def test_sides_of_other_sizes_show_both_counts_and_their_own_job_and_two_datasets_get_a_workload_column(tmp_path):
    save_run(tmp_path, 1, "o", [_cell("m-offline", FAST, n_requests=3000)], gpus=GPU, boot=BOOT)
    save_run(tmp_path, 2, "s", [_cell("m-server", SLOW, n_requests=1000, project_to=20000)], gpus=GPU, boot=BOOT)
    other = {"dataset": {"path": "data/other.jsonl", "sha256": "1" * 64}}
    save_run(tmp_path, 3, "o", [_cell("n-offline", FAST, **other)], gpus=GPU, boot=BOOT)
    save_run(tmp_path, 4, "s", [_cell("n-server", SLOW, **other)], gpus=GPU, boot=BOOT)
    section = _section(tmp_path)
    assert "| Machine | Model | Workload | Requests |" in section
    assert "Job h (170,000 requests), offline / server |" in section  # the one job any row projects
    by_model = {row[1]: row for row in _rows(section)}
    assert by_model["m"][3] == "3,000 / 1,000" and by_model["n"][3] == "64"
    assert by_model["m"][7:9] == ["-", "-"]  # offline projects 170,000 requests, the server 20,000: no one job
    assert " ± " in by_model["n"][7] and by_model["n"][8] == "offline ahead (one order only)"
    assert by_model["m"][2] != by_model["n"][2]


def test_each_rows_outcome_is_its_verdict_lines_on_the_job(tmp_path):
    for number, name in enumerate(["m-offline", "m-server", "m-offline", "m-server"], start=1):
        save_run(
            tmp_path / "both", number, name[2], [_cell(name, FAST if "off" in name else SLOW)], gpus=GPU, boot=BOOT
        )
    side_by_side = [_cell("m-offline", FAST, xdist_worker="gw0"), _cell("m-server", SLOW, xdist_worker="gw1")]
    save_run(tmp_path / "unknown", 1, "both", side_by_side, gpus=GPU, boot=BOOT)
    for folder, outcome in (("both", "offline sooner"), ("unknown", "offline ahead (order not known)")):
        section = _section(tmp_path / folder)
        ((*_, row_outcome, _, _),) = _rows(section)
        line = next(line for line in section.splitlines() if line.startswith("- m "))
        assert row_outcome == outcome and "170,000 requests: offline " in line
        assert line.split("170,000 requests: ")[1].split(", ")[2].startswith(outcome.split(" (")[0])
