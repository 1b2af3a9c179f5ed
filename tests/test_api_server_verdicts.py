"""A server cell run at `--api-server-count` beside the plain one: its own side in the verdicts, its own mode in the
tables, and rounds pooled over alternating runs in the verdicts and the Answer (results/mode_verdicts.py,
results/pooled_rounds.py, results/labels.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from saved_runs import cell, save_run

from pytest_vllmbench.measure.rounds import interval
from pytest_vllmbench.results.labels import api_servers, mode_text, side_label, variant
from pytest_vllmbench.results.latest import latest_cells
from pytest_vllmbench.results.mode_verdicts import mode_verdicts
from pytest_vllmbench.results.pooled_rounds import compared, pooled_latest
from pytest_vllmbench.results.report import render
from pytest_vllmbench.results.storage import load_runs

GPU = ["NVIDIA H100 80GB HBM3"]
BOOT = "a1b2c3d4e5f6"
RATES = {"offline": [120.0, 124.0, 128.0], "server": [60.0, 62.0, 64.0], "server-api4": [96.0, 98.0, 100.0]}


def _cell(side: str, rates: list[float] | None = None) -> dict[str, object]:
    rates = rates or RATES[side]
    stats = interval(rates)
    return cell(
        f"m-{side}",
        model="m",
        mode=side.split("-")[0],
        gpus=GPU,
        weights="dummy weights",
        engine_args={"api_server_count": 4} if side.endswith("api4") else {},
        requests_per_s=rates[-1],  # a run's own figure is its last round's
        projected_hours=170000 / rates[-1] / 3600,
        rounds=[{"requests_per_s": rate} for rate in rates],
        round_stats={"requests_per_s": stats},
    )


def _alternating(tmp_path) -> str:
    order = ["server-api4", "server", "server-api4", "offline", "server-api4", "server", "offline"]
    for number, side in enumerate(order, start=1):
        when = f"2026-12-05T18:{10 + number:02d}:00"
        save_run(tmp_path, number, side, [_cell(side)], when=when, gpus=GPU, boot=BOOT)
    return render(load_runs(tmp_path))


def _verdicts(text: str) -> list[str]:
    section = text.split("## Offline vs server\n")[1].split("\n## ")[0]
    return [line for line in section.splitlines() if line.startswith("- m ")]


def test_each_server_side_gets_its_own_verdict_pooled_over_the_alternating_runs(tmp_path):
    lines = _verdicts(_alternating(tmp_path))
    runs = {"offline": 2, "server": 2, "server-api4": 3}
    pooled = {side: interval(RATES[side] * count) for side, count in runs.items()}
    rate = {side: f"{found['mean']:.2f} ± {found['ci95_half']:.2f}" for side, found in pooled.items()}
    assert len(lines) == 3  # before, the API server cell took the plain server's place: one line
    assert f"offline {rate['offline']} vs server {rate['server']} req/s" in lines[0]
    assert "offline 0004, 0007; server 0002, 0006)" in lines[0]
    assert f"offline {rate['offline']} vs server (4 API servers) {rate['server-api4']} req/s" in lines[1]
    assert "server (4 API servers) 0001, 0003, 0005)" in lines[1]
    assert f"server {rate['server']} vs server (4 API servers) {rate['server-api4']} req/s" in lines[2]
    assert ": server (4 API servers) faster; " in lines[2]
    assert ", server (4 API servers) sooner." in lines[2]


def test_the_tables_name_the_api_server_count_in_the_mode(tmp_path):
    matrix = _alternating(tmp_path).split("## Test matrix")[1].split("\n## ")[0]
    rows = [row for row in matrix.splitlines() if row.startswith("| m ")]
    modes = sorted(row.split("|")[2].strip() for row in rows)
    assert modes == ["offline", "server", "server (4 API servers)"]  # before: two rows read "server"


def test_the_answer_ranks_on_the_pooled_rounds_and_says_which_runs(tmp_path):
    answer = _alternating(tmp_path).split("## Answer")[1].split("\n## ")[0]
    offline = interval(RATES["offline"] * 2)
    assert "use **m-offline [d]**" in answer
    assert f"{offline['mean']:.2f} ± {offline['ci95_half']:.2f} req/s (6 rounds of runs 0004, 0007, pooled)" in answer
    assert "Runner-up: m-server-api4 [d]" in answer and "their req/s intervals do not overlap)" in answer


def test_the_answer_says_where_its_winner_and_runner_up_ran_on_two_boots(tmp_path):
    save_run(tmp_path, 1, "o", [_cell("offline")], when="2026-12-06T03:11:00", gpus=GPU, boot=BOOT)
    save_run(tmp_path, 2, "s", [_cell("server")], when="2026-12-06T05:11:00", gpus=GPU, boot="9e9e9e9e9e9e")
    answer = render(load_runs(tmp_path)).split("## Answer")[1].split("\n## ")[0]
    assert (
        "Runner-up: m-server [d] (score 0.567, margin 0.308; their req/s intervals do not overlap; measured on two "
        "boots of the machine, whose drift is in the margin)." in answer
    )


def _saved_in_order(tmp_path, order: list[str], rates: dict[int, list[float]] | None = None) -> str:
    for number, side in enumerate(order, start=1):
        when = f"2026-12-05T18:{10 + number:02d}:00"
        cells = [_cell(side, (rates or {}).get(number))]
        save_run(tmp_path, number, side, cells, when=when, gpus=GPU, boot=BOOT)
    return render(load_runs(tmp_path))


def test_a_pair_that_did_not_alternate_is_judged_on_each_sides_newest_run(tmp_path):
    lines = _verdicts(_saved_in_order(tmp_path, ["server", "offline", "server", "offline", "server-api4"]))
    pooled = (
        "(rounds pooled over runs both ways round on one boot of the machine: offline 0002, 0004; server 0001, 0003)"
    )
    assert pooled in lines[0]
    # offline was pooled for its pair with the plain server, not for this one: both sides as their newest run saved them
    assert (
        "offline 124.00 ± 9.94 vs server (4 API servers) 98.00 ± 4.97 req/s (one run each, one order: offline first; "
        "offline as its run 0004 alone, where the tables pool 0002, 0004)" in (lines[1])
    )
    assert (
        "server 62.00 ± 4.97 vs server (4 API servers) 98.00 ± 4.97 req/s (one run each, one order: server first; "
        "server as its run 0003 alone, where the tables pool 0001, 0003)" in (lines[2])
    )


def test_a_cell_pooled_with_one_side_is_not_called_pooled_against_the_other(tmp_path):
    lines = _verdicts(_saved_in_order(tmp_path, ["server-api4", "offline", "server-api4", "server", "server-api4"]))
    offline_vs_plain = next(line for line in lines if ": offline " in line and " vs server " in line)
    assert "(one run each, one order: offline first)" in offline_vs_plain
    assert "pooled" not in offline_vs_plain  # before: "rounds pooled over runs both ways round ...: offline 0002; ..."


def test_the_answer_scores_the_pooled_rounds_not_the_newest_runs_last_round(tmp_path):
    # the newest offline run ends on a slow round: scored on it (as a run saves its rate), the server would win
    slow_end = {4: [130.0, 128.0, 90.0]}
    text = _saved_in_order(tmp_path, ["offline", "server", "server-api4", "offline"], slow_end)
    answer = text.split("## Answer")[1].split("\n## ")[0]
    pooled = interval(RATES["offline"] + slow_end[4])
    assert "use **m-offline [d]**" in answer
    assert f"{pooled['mean']:.2f} ± {pooled['ci95_half']:.2f} req/s (6 rounds of runs 0001, 0004, pooled)" in answer
    ranking = text.split("## Ranking")[1].split("\n## ")[0]
    assert [row.split("|")[2].strip() for row in ranking.splitlines() if row.startswith("| 1 ")] == ["m-offline [d]"]


def test_without_an_offline_cell_the_two_server_sides_are_still_compared():
    def placed(side: str) -> tuple[str, str, dict[str, object]]:
        return ("H100", "w", _cell(side))

    text = mode_verdicts([placed("server"), placed("server-api4")])
    assert text.startswith("- m on H100 (w): server 62.00 ± 4.97 vs server (4 API servers) 98.00 ± 4.97 req/s")


@given(
    model=st.from_regex(r"[a-z][a-z0-9.-]{0,20}[a-z0-9]", fullmatch=True),
    count=st.integers(1, 64),
    point=st.sampled_from(["", "-c16", "-r8.5"]),
)
def test_the_api_server_count_is_read_from_the_cell_id_alone(model, count, point):
    server = {"model": model, "mode": "server", "cell": f"{model}-server-api{count}{point}"}
    assert api_servers(server) == count
    assert side_label(server) == f"server ({count} API server{'s' if count > 1 else ''})"
    assert api_servers({"model": model, "mode": "server", "cell": f"{model}-server{point}"}) is None
    assert api_servers({"model": model, "mode": "offline", "cell": f"{model}-offline"}) is None
    assert mode_text({"model": model, "mode": "offline", "cell": f"{model}-offline"}) == "offline"


def test_a_pooled_pair_is_told_apart_from_a_cell_of_the_same_id_at_another_gpu_split(tmp_path):
    split = {"tensor_parallel_size": 2}
    order = [
        ("offline", {}),
        ("server", {}),
        ("offline", {}),
        ("offline", split),
        ("server", split),
        ("offline", split),
    ]
    for number, (side, args) in enumerate(order, start=1):
        saved = _cell(side) | {"engine_args": args}
        save_run(tmp_path, number, side, [saved], when=f"2026-12-05T18:{10 + number:02d}:00", gpus=GPU, boot=BOOT)
    runs = load_runs(tmp_path)
    cells = {(c.cell, variant(c)): c for _, c in pooled_latest(runs, latest_cells(runs)).values()}
    plain_offline, plain_server = cells[("m-offline", "")], cells[("m-server", "")]
    split_offline = cells[("m-offline", "TP 2")]
    assert all(cell.get("pooled_from") for cell in compared(plain_offline, plain_server))
    # both were pooled, each with a partner of the same id; they never ran both ways round together
    first, second = compared(split_offline, plain_server)
    assert first.get("pooled_from") is None and second.get("pooled_from") is None
    assert (first["saved_at"]["run"], second["saved_at"]["run"]) == (
        split_offline["newest"]["saved_at"]["run"],
        plain_server["newest"]["saved_at"]["run"],
    )


def test_the_tables_of_newest_cells_show_the_score_the_ranking_gives(tmp_path):
    text = _saved_in_order(tmp_path, ["offline", "server", "server-api4", "offline"], {4: [130.0, 128.0, 90.0]})
    ranking = text.split("## Ranking")[1].split("\n## ")[0]
    ranked = {row.split("|")[2].strip(): row.split("|")[3].strip() for row in ranking.splitlines() if "| m-" in row}
    by_machine = text.split("## Results by machine")[1].split("\n## ")[0]
    second_table = by_machine.split("| Score")[1]  # the table of what each cell used and costs, with its score
    scores = {
        row.split("|")[2].strip(): row.split("|")[-2].strip() for row in second_table.splitlines() if "| m " in row
    }
    assert scores["offline"] == ranked["m-offline [d]"]  # before: this table scored the newest runs' own figures
    assert scores["server (4 API servers)"] == ranked["m-server-api4 [d]"]


SI8 = [112.0, 114.0, 116.0]


def _set_server(rates: list[float], args: dict[str, object]) -> dict[str, object]:
    """A plain server cell run with the user's engine args (`--engine-arg`), which its saved run records."""
    return _cell("server", rates) | {"engine_args": args, "engine_args_set": args}


def test_a_server_run_with_its_own_engine_args_is_compared_with_the_plain_cells_pooled(tmp_path):
    """It had no verdict at all: its variant put it in a group of its own, beside no offline cell."""
    order = ["si8", "server", "server", "si8", "offline"]
    for number, side in enumerate(order, start=1):
        saved = _set_server(SI8, {"stream_interval": 8}) if side == "si8" else _cell(side)
        save_run(tmp_path, number, side, [saved], when=f"2026-12-06T02:{20 + number:02d}:00", gpus=GPU, boot=BOOT)
    lines = _verdicts(render(load_runs(tmp_path)))
    si8, plain = interval(SI8 * 2), interval(RATES["server"] * 2)
    pair = (
        f"): server {plain['mean']:.2f} ± {plain['ci95_half']:.2f} vs server (stream_interval=8) "
        f"{si8['mean']:.2f} ± {si8['ci95_half']:.2f} req/s"
    )
    against_plain = next(line for line in lines if pair in line)
    assert "server 0002, 0003; server (stream_interval=8) 0001, 0004)" in against_plain
    assert ": server (stream_interval=8) faster; " in against_plain
    against_offline = next(line for line in lines if " vs server (stream_interval=8) 114.00 ± 4.97 req/s" in line)
    assert (
        "(one run each, one order: server (stream_interval=8) first; server (stream_interval=8) as its run 0004 "
        "alone, where the tables pool 0001, 0004)" in against_offline
    )
    assert len(lines) == 3 and all(line.startswith("- m on ") for line in lines)


def test_an_offline_and_a_server_run_with_the_same_engine_args_are_still_compared_with_each_other():
    args = {"max_num_batched_tokens": 16384}
    offline = _cell("offline") | {"engine_args": args, "engine_args_set": args}
    text = mode_verdicts([("H100", "w", offline), ("H100", "w", _set_server(SI8, args))])
    assert text.startswith("- m (max_num_batched_tokens=16384) on H100 (w): offline 124.00 ± 9.94 vs server")


@given(args=st.dictionaries(st.sampled_from(["stream_interval", "max_num_seqs"]), st.integers(1, 512), min_size=1))
def test_a_set_servers_side_names_what_it_set_and_its_tables_mode_does_not(args):
    server = _set_server(SI8, args)
    named = ", ".join(f"{key}={args[key]}" for key in sorted(args))
    assert side_label(server) == f"server ({named})"
    assert mode_text(server) == "server"  # the tables name it in the model's column, with the variant
    assert side_label(server | {"cell": "m-server-api4"}) == f"server (4 API servers, {named})"


def _saved_sides(tmp_path, runs: list[list[dict[str, object]]]) -> list[str]:
    for number, cells in enumerate(runs, start=1):
        when = f"2026-12-06T03:{10 + number:02d}:00"
        save_run(tmp_path, number, f"run{number}", cells, when=when, gpus=GPU, boot=BOOT)
    return _verdicts(render(load_runs(tmp_path)))


def test_under_its_variant_a_set_server_is_named_plain_server_even_where_it_was_pooled_with_another_cell(tmp_path):
    args = {"max_num_seqs": 64}
    offline = _cell("offline") | {"engine_args": args, "engine_args_set": args}
    lines = _saved_sides(tmp_path, [[offline], [_set_server(SI8, args)], [_cell("server")], [_set_server(SI8, args)]])
    tuned = next(line for line in lines if line.startswith("- m (max_num_seqs=64) on "))
    # the server was pooled with the plain server, not with this offline cell: the line takes its newest run, which
    # still named what it set ("vs server (max_num_seqs=64) 114.00")
    assert (
        "): offline 124.00 ± 9.94 vs server 114.00 ± 4.97 req/s (one run each, one order: offline first; server as "
        "its run 0004 alone, where the tables pool 0002, 0004)" in tuned
    )


def test_a_server_at_an_api_server_count_with_its_own_setting_is_compared_with_that_count_without_it(tmp_path):
    api4 = _cell("server-api4")
    two_clients = _cell("server-api4", SI8) | {"client_processes": 2}
    lines = _saved_sides(tmp_path, [[api4], [two_clients], [api4], [two_clients]])
    pooled = interval(RATES["server-api4"] * 2), interval(SI8 * 2)
    assert len(lines) == 1  # before: none (and a plain server's partner was the plain server alone)
    assert lines[0].startswith(
        f"- m on 1 x NVIDIA H100 80GB HBM3 (data/batch_5k.jsonl, sha256 00000000): server (4 API servers) "
        f"{pooled[0]['mean']:.2f} ± {pooled[0]['ci95_half']:.2f} vs server (4 API servers, client processes 2) "
        f"{pooled[1]['mean']:.2f} ± {pooled[1]['ci95_half']:.2f} req/s (rounds pooled over runs both ways round"
    )


def test_a_runs_second_copy_of_a_cell_is_neither_judged_nor_pooled_under_the_first(tmp_path):
    """The verdicts take a cell's first copy in a run; its second (two tests of one cell) pooled in with it, the
    run named twice."""
    server_again = _cell("server", [40.0, 41.0, 42.0])
    lines = _saved_sides(tmp_path, [[_cell("offline")], [_cell("server"), server_again], [_cell("offline")]])
    plain = interval(RATES["server"])
    assert len(lines) == 1
    assert f"vs server {plain['mean']:.2f} ± {plain['ci95_half']:.2f} req/s" in lines[0]
    assert "offline 0001, 0003; server 0002)" in lines[0]


def test_under_its_variant_a_set_server_taken_from_an_older_boot_is_named_plain_server(tmp_path):
    """Its pair with the offline cell run with the same args comes from the boot that ran both, not the newest."""
    args = {"max_num_seqs": 64}
    offline = _cell("offline") | {"engine_args": args, "engine_args_set": args}
    save_run(tmp_path, 1, "o", [offline], when="2026-12-06T03:11:00", gpus=GPU, boot=BOOT)
    save_run(tmp_path, 2, "s", [_set_server(SI8, args)], when="2026-12-06T03:12:00", gpus=GPU, boot=BOOT)
    newer = _set_server([90.0, 91.0, 92.0], args)
    save_run(tmp_path, 3, "s", [newer], when="2026-12-06T05:00:00", gpus=GPU, boot="9e9e9e9e9e9e")
    lines = _verdicts(render(load_runs(tmp_path)))
    tuned = next(line for line in lines if line.startswith("- m (max_num_seqs=64) on "))
    assert "): offline 124.00 ± 9.94 vs server 114.00 ± 4.97 req/s (one run each, one order: offline first; " in tuned


def test_the_answer_judges_its_tie_on_the_cells_it_ranks_not_on_an_older_boots_pair(tmp_path):
    """The verdict takes the pair from the boot that ran both; the Answer ranks the newest runs and says they ran on
    two boots."""
    save_run(tmp_path, 1, "s", [_cell("server", [48.0, 50.0, 52.0])], when="2026-12-06T03:11:00", gpus=GPU, boot=BOOT)
    save_run(tmp_path, 2, "o", [_cell("offline", [49.0, 50.0, 51.0])], when="2026-12-06T03:12:00", gpus=GPU, boot=BOOT)
    newer = _cell("offline", [69.0, 70.0, 71.0])
    save_run(tmp_path, 3, "o", [newer], when="2026-12-06T05:11:00", gpus=GPU, boot="9e9e9e9e9e9e")
    text = render(load_runs(tmp_path))
    answer = text.split("## Answer")[1].split("\n## ")[0]
    assert "use **m-offline [d]** (score 0.875): 70.00 ± 2.48 req/s (3 rounds)" in answer
    assert "their req/s intervals do not overlap; measured on two boots of the machine" in answer  # before: a tie
    assert "offline 50.00 ± 2.48 vs server 50.00 ± 4.97 req/s" in _verdicts(text)[0]


def test_a_set_server_pooled_with_offline_on_the_newest_boot_meets_the_plain_server_on_the_boot_that_ran_both(
    tmp_path,
):
    """The lease of 2026-12-06 04:00 UTC: the set server's pair with offline is pooled on its newest boot, its pair
    with the plain server (not run there) on the boot before."""
    args = {"stream_interval": 8}
    order = [("si8", BOOT), ("server", BOOT), ("server", BOOT), ("si8", BOOT)]
    order += [
        ("offline", "9e9e9e9e9e9e"),
        ("si8", "9e9e9e9e9e9e"),
        ("offline", "9e9e9e9e9e9e"),
        ("si8", "9e9e9e9e9e9e"),
    ]
    for number, (side, boot) in enumerate(order, start=1):
        cells = [_set_server(SI8, args) if side == "si8" else _cell(side)]
        save_run(tmp_path, number, side, cells, when=f"2026-12-06T03:{10 + number:02d}:00", gpus=GPU, boot=boot)
    lines = [line for line in _verdicts(render(load_runs(tmp_path))) if "on 1 x" in line]
    with_offline = next(line for line in lines if ": offline " in line)
    with_plain = next(line for line in lines if ": server " in line)
    assert "offline 0005, 0007; server (stream_interval=8) 0006, 0008)" in with_offline
    assert "newest boot" not in with_offline
    assert (
        "server 0002, 0003; server (stream_interval=8) 0001, 0004; the newest boot that ran both: a newer run of "
        "server (stream_interval=8) is on another boot)" in with_plain
    )


def _plain_vs_set_api4(lines: list[str]) -> str:
    plain_first = [line for line in lines if "00000000): server " in line]
    return next(line for line in plain_first if "vs server (4 API servers, client processes 2)" in line)


def test_the_plain_server_and_a_set_server_at_an_api_server_count_are_pooled_over_their_alternating_runs(tmp_path):
    set_api4 = _cell("server-api4", SI8) | {"client_processes": 2}
    lines = _saved_sides(tmp_path, [[_cell("server")], [set_api4], [_cell("server")], [set_api4], [_cell("offline")]])
    # before: "(one run each, one order: server first)"
    assert "server 0001, 0003; server (4 API servers, client processes 2) 0002, 0004)" in _plain_vs_set_api4(lines)


def test_the_plain_server_and_a_set_server_at_an_api_server_count_are_taken_from_the_boot_that_ran_both(tmp_path):
    set_api4 = _cell("server-api4", SI8) | {"client_processes": 2}
    for number, cells in enumerate([[_cell("server")], [set_api4], [_cell("server")], [set_api4]], start=1):
        save_run(
            tmp_path, number, f"run{number}", cells, when=f"2026-12-06T03:{10 + number:02d}:00", gpus=GPU, boot=BOOT
        )
    save_run(tmp_path, 5, "again", [set_api4], when="2026-12-06T05:00:00", gpus=GPU, boot="9e9e9e9e9e9e")
    line = _plain_vs_set_api4(_verdicts(render(load_runs(tmp_path))))
    assert "server 0001, 0003; server (4 API servers, client processes 2) 0002, 0004; the newest boot that ran" in line
    assert "on two boots of the machine" not in line  # before: the newest runs, across the two boots
