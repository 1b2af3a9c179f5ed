"""The report's readability rules (issue 26): current runs in the tables and superseded ones only in History, short
labels with a legend, a matrix of at most 8 columns, cut outputs kept out of quality, one req/s and one rounding per
cell everywhere, one budget verdict, and a glossary for the terms the tables use."""

from hypothesis import given
from hypothesis import strategies as st
from saved_runs import cell, save_run

from pytest_vllmbench.measure.rounds import central
from pytest_vllmbench.results.report import render
from pytest_vllmbench.results.report_tables import plot_cells
from pytest_vllmbench.results.saved_run import SavedCell
from pytest_vllmbench.results.storage import load_runs

GPU = ["NVIDIA H200"]
SECTIONS = ("## Answer", "## Test matrix", "## Results by machine", "## Memory budgets", "## Ranking")


def section(text: str, title: str) -> str:
    return text.split(title + "\n")[1].split("\n## ")[0]


def main_tables(text: str) -> str:
    return "".join(section(text, title) for title in SECTIONS if title in text)


def rounds(mean: float, half: float, last: float) -> dict[str, object]:
    stats = {"n": 3, "mean": mean, "stddev": half, "ci95_low": mean - half, "ci95_high": mean + half, "ci95_half": half}
    return {"requests_per_s": last, "round_stats": {"requests_per_s": stats}}


def test_a_superseded_run_of_a_cell_shows_only_in_history(tmp_path):
    save_run(tmp_path, 1, "old", [cell("qwen-14b-offline", status="skipped: no tokenizer")], when="2026-11-29T10:00")
    save_run(tmp_path, 2, "new", [cell("qwen-14b-offline", requests_per_s=7.5)], when="2026-11-30T10:00")
    text = render(load_runs(tmp_path))
    assert "no tokenizer" not in main_tables(text) and "| 7.50 " in section(text, "## Test matrix")
    history = section(text, "## History")
    old_row = next(line for line in history.splitlines() if "no tokenizer" in line)
    new_row = next(line for line in history.splitlines() if "0002_new" in line)
    assert "superseded by 0002" in old_row and "| current" in new_row


def test_labels_are_short_and_every_mark_is_explained_beside_its_table(tmp_path):
    quantized = cell(
        "gemma-12b-4bit-server",
        gpus=GPU,
        weights="bitsandbytes 4-bit, in-flight from random weights",
        gpu_memory_budget_gib=16.0,
        peak_vram_mib=21961,
    )
    save_run(tmp_path, 1, "h200", [quantized, cell("mistral-7b-offline", gpus=GPU, weights="dummy weights")], gpus=GPU)
    text = render(load_runs(tmp_path))
    assert "in-flight from random weights)" not in main_tables(text)
    for title in ("## Test matrix", "## Results by machine", "## Memory budgets"):
        body = section(text, title)
        assert "gemma-12b-4bit [q4,16G]" in body, title
        legend = next(line for line in body.splitlines() if line.startswith("Marks:"))
        assert "[q4] a random checkpoint" in legend and "[16G] vLLM capped at 16 GiB" in legend, title
    assert "mistral-7b-offline [d]" in section(text, "## Ranking")


def test_the_matrix_has_at_most_eight_columns_and_short_workload_names(tmp_path):
    save_run(tmp_path, 1, "cpu", [cell(), cell("gemma-270m-server")])
    matrix = section(render(load_runs(tmp_path)), "## Test matrix")
    header = next(line for line in matrix.splitlines() if line.startswith("| Model"))
    assert header.strip("|").count("|") + 1 <= 8
    assert (
        "| batch_5k.jsonl " in matrix and "Workloads: batch_5k.jsonl = data/batch_5k.jsonl, sha256 00000000" in matrix
    )


def test_cut_outputs_are_labelled_and_kept_out_of_quality_and_the_ranking(tmp_path):
    cut = {"sampling": {"max_tokens": 32, "ignore_eos": True}, "quality_accuracy": 0.0, "quality_valid_rate": 0.0}
    save_run(tmp_path, 1, "cpu", [cell("gemma-270m-server", **cut), cell("gemma-270m-ray", requests_per_s=1.0, **cut)])
    text = render(load_runs(tmp_path))
    assert "not graded: cut at 32 tok" in section(text, "## Results by machine")
    assert "acc 0%" not in main_tables(text)
    ranking = section(text, "## Ranking")
    row = next(line for line in ranking.splitlines() if "gemma-270m-server" in line)
    assert [part.strip() for part in row.strip("|").split("|")][5] == "-"  # the quality component
    assert "Quality not measured (outputs cut at 32 tokens): ranked on throughput" in ranking
    answer = section(text, "## Answer")
    assert "quality not graded (outputs cut at 32 tokens)" in answer
    assert "Quality not measured (outputs cut at 32 tokens): ranked on throughput, total time and flexibility" in answer


@given(
    cap=st.integers(1, 512),
    n=st.integers(1, 1000),
    per_request=st.integers(0, 600),
    ignore_eos=st.booleans(),
)
def test_outputs_count_as_cut_when_forced_or_every_request_reached_the_cap(cap, n, per_request, ignore_eos):
    saved = SavedCell.of(
        cell(sampling={"max_tokens": cap, "ignore_eos": ignore_eos}, n_requests=n, output_tokens=n * per_request)
    )
    expected = ignore_eos or per_request >= cap
    assert (saved.outputs_cut_at == cap) == expected and saved.outputs_cut_at in (None, cap)
    assert SavedCell.of(cell(sampling={"max_tokens": None, "ignore_eos": True})).outputs_cut_at is None


def test_one_req_per_s_in_tables_verdicts_and_plots(tmp_path):
    save_run(
        tmp_path,
        1,
        "h200",
        [
            cell("gemma-12b-offline", gpus=GPU, **rounds(20.0, 0.5, last=23.456)),
            cell("gemma-12b-server", gpus=GPU, **rounds(10.0, 0.5, last=12.345)),
            cell("gemma-12b-server", gpus=GPU, gpu_memory_budget_gib=16.0, status="does not fit in 16 GiB"),
        ],
        gpus=GPU,
    )
    runs = load_runs(tmp_path)
    text = render(runs)
    before_history = text.split("## History")[0]
    assert "23.456" not in before_history and "23.46" not in before_history and "12.35" not in before_history
    verdict = section(text, "## Offline vs server")
    assert (
        "offline 20.00 ± 0.50 vs server 10.00 ± 0.50 req/s (one run each, one order: offline first): offline ahead"
        in verdict
    )
    assert "None" not in verdict
    plotted = {label: figures for label, figures in plot_cells(runs)["1 x NVIDIA H200"]}
    assert {round(float(figures["requests_per_s"]), 2) for figures in plotted.values()} == {20.0, 10.0}
    assert all(central(figures, "requests_per_s") == figures["requests_per_s"] for figures in plotted.values())


def test_whole_numbers_are_grouped_the_same_in_every_table(tmp_path):
    save_run(
        tmp_path, 1, "h200", [cell("gemma-12b-offline", gpus=GPU, peak_vram_mib=135727, n_requests=3000)], gpus=GPU
    )
    text = render(load_runs(tmp_path))
    for title in ("## Test matrix", "## Results by machine"):
        assert "135,727" in section(text, title) and "135727" not in section(text, title)
    assert "3,000 requests" in section(text, "## Ranking") and "| 3,000 " in section(text, "## History")


def test_the_budget_table_and_the_answer_give_one_verdict_with_the_measured_peak(tmp_path):
    over = cell("gemma-4b-server", gpus=GPU, gpu_memory_budget_gib=16.0, peak_vram_mib=19354, params_b=4.3)
    within = cell("gemma-1b-server", gpus=GPU, gpu_memory_budget_gib=16.0, peak_vram_mib=12288, params_b=1.0)
    save_run(tmp_path, 1, "h200", [over, within], gpus=GPU)
    text = render(load_runs(tmp_path))
    budgets = section(text, "## Memory budgets")
    over_row = next(line for line in budgets.splitlines() if "gemma-4b" in line)
    within_row = next(line for line in budgets.splitlines() if "gemma-1b" in line)
    assert "ran, but over budget" in over_row and "18.9" in over_row
    assert "| fits " in within_row and "12.0" in within_row
    answer = section(text, "## Answer")
    assert "gemma-4b-server [16G] on 1 x NVIDIA H200: **ran, but over budget**" in answer
    assert "gemma-1b-server [16G] on 1 x NVIDIA H200: **fits**" in answer


def test_the_glossary_explains_the_terms_the_report_uses(tmp_path):
    save_run(tmp_path, 1, "cpu", [cell()])
    glossary = section(render(load_runs(tmp_path)), "## Glossary")
    terms = ("Cell", "[d]", "[q4]", "[16G]", "Mode", "superseded", "c64", "SLO", "goodput", "knee", "TTFT", "TPOT")
    terms += ("E2EL", "p50 / p99", "Rounds", "Tie", "Steady req/s", "Job h", "Score", "flexibility", "Dummy weights")
    terms += ("Not graded", "Memory budget", "Roofline", "Seed")
    assert [term for term in terms if term not in glossary] == []
