"""Rounds pooled over a cell's runs on one boot of one machine (results/pooled_rounds.py), and the boot id saved."""

from __future__ import annotations

import hashlib

from saved_runs import cell, save_run

from pytest_vllmbench.measure.machine import boot_id
from pytest_vllmbench.measure.metrics import projected_hours
from pytest_vllmbench.measure.rounds import central, interval, stat
from pytest_vllmbench.results.report import render
from pytest_vllmbench.results.report_tables import plot_cells
from pytest_vllmbench.results.storage import load_runs

GPU = ["NVIDIA H200"]
BOOT, OTHER_BOOT = "a1b2c3d4e5f6", "0f0f0f0f0f0f"


def _cell(mode: str, rates: list[float], load_s: float = 70.0) -> dict[str, object]:
    stats = interval(rates)
    return cell(
        f"m-{mode}",
        load_s=load_s,
        mode=mode,
        gpus=GPU,
        weights="dummy weights",
        requests_per_s=stats["mean"],
        rounds=[{"requests_per_s": rate} for rate in rates],
        round_stats={"requests_per_s": stats},
    )


def _verdict(text: str) -> str:
    return next(line for line in text.split("## Offline vs server")[1].splitlines() if line.startswith("- m "))


def test_alternating_runs_on_one_boot_are_judged_on_all_their_rounds(tmp_path):
    save_run(tmp_path, 1, "o", [_cell("offline", [60.0, 61.0, 62.0])], gpus=GPU, boot=BOOT)
    save_run(tmp_path, 2, "s", [_cell("server", [48.0, 50.0, 52.0])], gpus=GPU, boot=BOOT)
    save_run(tmp_path, 3, "o", [_cell("offline", [55.0, 60.0, 65.0], load_s=130.0)], gpus=GPU, boot=BOOT)
    line = _verdict(render(load_runs(tmp_path)))
    pooled = interval([60.0, 61.0, 62.0, 55.0, 60.0, 65.0])
    assert f"offline {pooled['mean']:.2f} ± {pooled['ci95_half']:.2f} vs server 50.00 ± 4.97 req/s" in line
    assert (
        "(rounds pooled over runs both ways round on one boot of the machine: offline 0001, 0003; server 0002)" in line
    )
    # the newest offline run alone (60.00 ± 12.42) would overlap the server; all six rounds do not
    assert ": offline faster" in line and "no difference" not in line and "not yet a verdict" not in line
    # the job hours too: every pooled round, at the pooled runs' mean loading (70 s and 130 s)
    hours = interval([projected_hours(rate, 170000, 100.0) for rate in [60.0, 61.0, 62.0, 55.0, 60.0, 65.0]])
    assert f"170,000 requests: offline {hours['mean']:.2f} ± {hours['ci95_half']:.2f} h, server " in line


def _saved(tmp_path, modes_and_boots: list[tuple[str, str | None]]) -> str:
    rates = {"offline": [[60.0, 61.0, 62.0], [55.0, 60.0, 65.0]], "server": [[48.0, 50.0, 52.0], [48.0, 50.0, 52.0]]}
    for number, (mode, boot) in enumerate(modes_and_boots, start=1):
        previous = sum(1 for earlier, _ in modes_and_boots[: number - 1] if earlier == mode)
        save_run(tmp_path, number, mode[0], [_cell(mode, rates[mode][min(previous, 1)])], gpus=GPU, boot=boot)
    return _verdict(render(load_runs(tmp_path)))


def _not_pooled(first: str = "server") -> str:
    return f"offline 60.00 ± 12.42 vs server 50.00 ± 4.97 req/s (one run each, one order: {first} first): no difference"


NOT_POOLED = _not_pooled()


def test_runs_from_another_boot_are_not_pooled(tmp_path):
    line = _saved(tmp_path, [("offline", OTHER_BOOT), ("server", BOOT), ("offline", BOOT)])
    assert NOT_POOLED in line and "pooled" not in line


def test_runs_with_no_boot_or_a_malformed_one_are_not_pooled(tmp_path):
    assert NOT_POOLED in _saved(tmp_path / "none", [("offline", None), ("server", None), ("offline", None)])
    malformed = "../../not-a-boot"
    assert NOT_POOLED in _saved(
        tmp_path / "bad", [("offline", malformed), ("server", malformed), ("offline", malformed)]
    )


def test_runs_repeated_in_one_order_only_are_not_pooled(tmp_path):
    line = _saved(tmp_path, [("offline", BOOT), ("offline", BOOT), ("server", BOOT)])
    assert _not_pooled("offline") in line and "pooled" not in line


def test_the_pair_is_not_pooled_when_the_modes_newest_runs_are_on_different_boots(tmp_path):
    line = _saved(tmp_path, [("offline", BOOT), ("server", OTHER_BOOT), ("offline", BOOT), ("server", OTHER_BOOT)])
    assert "pooled" not in line


def test_the_boot_id_is_a_short_hash_of_the_kernels_and_none_where_unreadable(tmp_path):
    source = tmp_path / "boot_id"
    source.write_text("6c1f4e0a-1d2b-4c3d-9e8f-0a1b2c3d4e5f\n")
    assert boot_id(source) == hashlib.sha256(b"6c1f4e0a-1d2b-4c3d-9e8f-0a1b2c3d4e5f").hexdigest()[:12]
    assert boot_id(tmp_path / "missing") is None


def test_runs_of_one_boot_under_other_conditions_are_not_pooled(tmp_path):
    shared = {"interleaved": ["m-offline", "m-server"], "engine_args": {"gpu_memory_utilization": 0.45}}
    save_run(tmp_path, 1, "o", [_cell("offline", [60.0, 61.0, 62.0]) | shared], gpus=GPU, boot=BOOT)
    save_run(tmp_path, 2, "o", [_cell("offline", [70.0, 71.0, 72.0]) | {"n_requests": 1000}], gpus=GPU, boot=BOOT)
    save_run(
        tmp_path, 3, "o", [_cell("offline", [80.0, 81.0, 82.0]) | {"load": {"concurrency": 64}}], gpus=GPU, boot=BOOT
    )
    save_run(tmp_path, 4, "s", [_cell("server", [48.0, 50.0, 52.0])], gpus=GPU, boot=BOOT)
    save_run(tmp_path, 5, "o", [_cell("offline", [55.0, 60.0, 65.0])], gpus=GPU, boot=BOOT)
    line = _verdict(render(load_runs(tmp_path)))
    assert NOT_POOLED in line


def test_a_pair_from_one_run_says_which_mode_ran_first(tmp_path):
    offline, server = _cell("offline", [60.0, 61.0, 62.0]), _cell("server", [48.0, 50.0, 52.0])
    save_run(tmp_path / "o", 1, "both", [offline, server], gpus=GPU)
    assert "req/s (one run each, one order: offline first): offline ahead" in _verdict(
        render(load_runs(tmp_path / "o"))
    )
    save_run(tmp_path / "s", 1, "both", [server, offline], gpus=GPU)
    assert "req/s (one run each, one order: server first): offline ahead" in _verdict(render(load_runs(tmp_path / "s")))


def test_a_pair_from_two_runs_is_ordered_by_when_each_run_was_saved(tmp_path):
    save_run(tmp_path, 1, "o", [_cell("offline", [60.0, 61.0, 62.0])], when="2026-12-05T12:00:00+00:00", gpus=GPU)
    save_run(tmp_path, 2, "s", [_cell("server", [48.0, 50.0, 52.0])], when="2026-12-05T11:00:00+00:00", gpus=GPU)
    assert "(one run each, one order: server first)" in _verdict(render(load_runs(tmp_path)))


def test_a_pair_that_pytest_xdist_workers_ran_side_by_side_has_no_order(tmp_path):
    offline = _cell("offline", [60.0, 61.0, 62.0]) | {"xdist_worker": "gw0"}
    save_run(tmp_path, 1, "both", [offline, _cell("server", [48.0, 50.0, 52.0]) | {"xdist_worker": "gw1"}], gpus=GPU)
    assert "req/s (one run each, order not saved): offline ahead" in _verdict(render(load_runs(tmp_path)))


NEWER_BOOT = "9e9e9e9e9e9e"
NEWEST_ONLY_OFFLINE = "offline 70.00 ± 2.48 vs server 50.00 ± 4.97 req/s (one run each, on two boots of the machine)"


def _newer_offline(tmp_path, number: int, **figures: object) -> str:
    """An offline run on a newer boot than the pair before it: the newest runs of the two modes are on two boots."""
    faster = _cell("offline", [69.0, 70.0, 71.0]) | figures
    save_run(tmp_path, number, "o-newer", [faster], when="2026-11-30T10:00:00", gpus=GPU, boot=NEWER_BOOT)
    return _verdict(render(load_runs(tmp_path)))


def test_a_pair_whose_newest_runs_are_on_two_boots_is_judged_on_the_newest_boot_that_ran_both(tmp_path):
    save_run(tmp_path, 1, "o", [_cell("offline", [60.0, 61.0, 62.0])], gpus=GPU, boot=BOOT)
    save_run(tmp_path, 2, "s", [_cell("server", [48.0, 50.0, 52.0])], gpus=GPU, boot=BOOT)
    save_run(tmp_path, 3, "o", [_cell("offline", [55.0, 60.0, 65.0])], gpus=GPU, boot=BOOT)
    line = _newer_offline(tmp_path, 4)
    pooled = interval([60.0, 61.0, 62.0, 55.0, 60.0, 65.0])
    # before: the newer offline run against the older boot's server, the two leases' drift in the verdict
    assert NEWEST_ONLY_OFFLINE not in line
    assert f"offline {pooled['mean']:.2f} ± {pooled['ci95_half']:.2f} vs server 50.00 ± 4.97 req/s" in line
    assert (
        "(rounds pooled over runs both ways round on one boot of the machine: offline 0001, 0003; server 0002; "
        "the newest boot that ran both: a newer run of offline is on another boot): offline faster" in line
    )


def test_a_pair_from_one_order_on_an_older_boot_names_its_runs_and_order(tmp_path):
    save_run(tmp_path, 1, "s", [_cell("server", [48.0, 50.0, 52.0])], gpus=GPU, boot=BOOT)
    save_run(tmp_path, 2, "o", [_cell("offline", [55.0, 60.0, 65.0])], gpus=GPU, boot=BOOT)
    line = _newer_offline(tmp_path, 3)
    assert (
        "offline 60.00 ± 12.42 vs server 50.00 ± 4.97 req/s (one run each, one order: server first; runs 0002 and "
        "0001, the newest boot that ran both: a newer run of offline is on another boot): no difference" in line
    )


def test_of_several_boots_that_ran_both_the_newest_is_taken(tmp_path):
    save_run(tmp_path, 1, "s", [_cell("server", [30.0, 31.0, 32.0])], when="2026-11-28T10:00:00", gpus=GPU, boot=BOOT)
    save_run(tmp_path, 2, "o", [_cell("offline", [40.0, 41.0, 42.0])], when="2026-11-28T10:05:00", gpus=GPU, boot=BOOT)
    save_run(tmp_path, 3, "s", [_cell("server", [48.0, 50.0, 52.0])], gpus=GPU, boot=OTHER_BOOT)
    save_run(tmp_path, 4, "o", [_cell("offline", [55.0, 60.0, 65.0])], gpus=GPU, boot=OTHER_BOOT)
    assert (
        "offline 60.00 ± 12.42 vs server 50.00 ± 4.97 req/s (one run each, one order: server first; runs 0004 and 0003,"
        in (_newer_offline(tmp_path, 5))
    )


def test_a_boot_that_ran_the_pair_under_other_conditions_is_not_taken(tmp_path):
    save_run(tmp_path, 1, "s", [_cell("server", [48.0, 50.0, 52.0])], gpus=GPU, boot=BOOT)
    save_run(tmp_path, 2, "o", [_cell("offline", [55.0, 60.0, 65.0]) | {"n_requests": 1000}], gpus=GPU, boot=BOOT)
    assert NEWEST_ONLY_OFFLINE in _newer_offline(tmp_path, 3)


def test_a_lead_across_two_boots_is_not_called_a_verdict_and_says_what_would_make_it_one(tmp_path):
    save_run(tmp_path, 1, "s", [_cell("server", [48.0, 50.0, 52.0])], gpus=GPU, boot=BOOT)
    line = _newer_offline(tmp_path, 2)
    assert f"{NEWEST_ONLY_OFFLINE}: offline ahead;" in line and "faster" not in line
    assert line.endswith("; not yet a verdict: the two ran on two boots (repeat both on one boot, both ways round).")


def test_a_newest_run_with_no_boot_saved_is_compared_as_it_is(tmp_path):
    """It may be of the same lease as the other side's: it is neither put aside nor said to be on another boot."""
    save_run(tmp_path, 1, "o", [_cell("offline", [55.0, 60.0, 65.0])], gpus=GPU, boot=BOOT)
    save_run(tmp_path, 2, "s", [_cell("server", [48.0, 50.0, 52.0])], gpus=GPU, boot=BOOT)
    faster = _cell("offline", [69.0, 70.0, 71.0])
    save_run(tmp_path, 3, "o-newer", [faster], when="2026-11-30T10:00:00", gpus=GPU)
    line = _verdict(render(load_runs(tmp_path)))
    assert "offline 70.00 ± 2.48 vs server 50.00 ± 4.97 req/s (one run each, one order: server first)" in line
    assert "two boots" not in line and "newest boot" not in line


def test_where_both_sides_have_newer_runs_on_other_boots_the_line_names_both(tmp_path):
    save_run(tmp_path, 1, "s", [_cell("server", [48.0, 50.0, 52.0])], gpus=GPU, boot=BOOT)
    save_run(tmp_path, 2, "o", [_cell("offline", [55.0, 60.0, 65.0])], gpus=GPU, boot=BOOT)
    slower = _cell("server", [30.0, 31.0, 32.0])
    save_run(tmp_path, 3, "s", [slower], when="2026-11-30T09:00:00", gpus=GPU, boot=OTHER_BOOT)
    line = _newer_offline(tmp_path, 4)
    assert (
        "runs 0002 and 0001, the newest boot that ran both: newer runs of offline and server are on other boots)"
        in (line)
    )


def test_a_newest_run_without_rounds_gives_way_to_the_newest_boot_that_ran_both_with_rounds(tmp_path):
    """One round says nothing below ~10 %: the pair that ran rounds on one boot is judged, and the line says a newer
    run is elsewhere (before: 'not called: no rounds on both sides')."""
    save_run(tmp_path, 1, "s", [_cell("server", [48.0, 50.0, 52.0])], gpus=GPU, boot=BOOT)
    save_run(tmp_path, 2, "o", [_cell("offline", [55.0, 60.0, 65.0])], gpus=GPU, boot=BOOT)
    line = _newer_offline(tmp_path, 3, rounds=None, round_stats=None)
    assert (
        "offline 60.00 ± 12.42 vs server 50.00 ± 4.97 req/s (one run each, one order: server first; runs 0002" in line
    )
    assert "not called" not in line


def test_the_tables_show_the_pooled_rate_the_verdict_and_the_ranking_use_and_name_the_runs(tmp_path):
    save_run(tmp_path, 1, "o", [_cell("offline", [60.0, 61.0, 62.0])], gpus=GPU, boot=BOOT)
    save_run(tmp_path, 2, "s", [_cell("server", [48.0, 50.0, 52.0])], gpus=GPU, boot=BOOT)
    save_run(tmp_path, 3, "o", [_cell("offline", [55.0, 60.0, 65.0], load_s=130.0)], gpus=GPU, boot=BOOT)
    text = render(load_runs(tmp_path))
    pooled = interval([60.0, 61.0, 62.0, 55.0, 60.0, 65.0])
    figure = f"{pooled['mean']:.2f} ± {pooled['ci95_half']:.2f}"
    matrix = text.split("## Test matrix")[1].split("## Results by machine")[0]
    by_machine = text.split("## Results by machine")[1].split("\n## ")[0]
    rows = [" ".join(line.split()) for line in (matrix + by_machine).splitlines()]
    offline_rows = [row for row in rows if row.startswith("| m [d] | offline |")]
    assert len(offline_rows) == 3  # the matrix, then by machine its speed and its spend tables
    assert f"| {figure} |" in offline_rows[0] and f"| {figure} |" in offline_rows[1]
    assert "60.00 ± 12.42" not in matrix + by_machine  # the newest offline run alone
    assert offline_rows[1].endswith("| 0001, 0003 |")
    ranked = next(
        " ".join(row.split()) for row in text.split("## Ranking")[1].splitlines() if "| m-offline [d] |" in row
    )
    assert offline_rows[2].split(" | ")[-1] == ranked.split(" | ")[2] + " |"  # the Ranking's score, not "-"
    assert next(row for row in rows if row.startswith("| m [d] | server | 1 |")).endswith("| 0002 |")


def test_the_throughput_plot_draws_the_pooled_rate_and_the_latency_plot_keeps_its_own_runs_rounds(tmp_path):
    save_run(tmp_path, 1, "o", [_cell("offline", [60.0, 61.0, 62.0])], gpus=GPU, boot=BOOT)
    save_run(tmp_path, 2, "s", [_cell("server", [48.0, 50.0, 52.0])], gpus=GPU, boot=BOOT)
    save_run(tmp_path, 3, "o", [_cell("offline", [55.0, 60.0, 65.0])], gpus=GPU, boot=BOOT)
    [cells] = plot_cells(load_runs(tmp_path)).values()
    offline = next(cell for label, cell in cells if "offline" in label)
    pooled = interval([60.0, 61.0, 62.0, 55.0, 60.0, 65.0])
    assert central(offline, "requests_per_s") == pooled["mean"]
    assert stat(offline, "requests_per_s")["ci95_half"] == pooled["ci95_half"]
    assert len(offline.rounds) == 3  # the CDF's "last of 3 rounds": its own run's


def test_a_pair_that_takes_a_pooled_cell_as_its_newest_run_alone_says_so(tmp_path):
    save_run(tmp_path, 1, "o", [_cell("offline", [60.0, 61.0, 62.0])], gpus=GPU, boot=BOOT)
    save_run(tmp_path, 2, "s", [_cell("server", [48.0, 50.0, 52.0])], gpus=GPU, boot=BOOT)
    save_run(tmp_path, 3, "o", [_cell("offline", [55.0, 60.0, 65.0])], gpus=GPU, boot=BOOT)
    tuned = _cell("server", [40.0, 41.0, 42.0]) | {"engine_args_set": {"stream_interval": 8}}
    save_run(tmp_path, 4, "si8", [tuned], gpus=GPU, boot=OTHER_BOOT)
    verdicts = render(load_runs(tmp_path)).split("## Offline vs server")[1].splitlines()
    line = next(line for line in verdicts if "vs server (stream_interval=8)" in line and line.startswith("- m "))
    assert "offline 60.00 ± 12.42 vs server (stream_interval=8)" in line  # run 0003's rounds, not the pooled six
    assert "offline as its run 0003 alone, where the tables pool 0001, 0003" in line
    assert "as its run" not in _verdict(render(load_runs(tmp_path)))  # the pooled pair itself
