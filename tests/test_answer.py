from hypothesis import given
from hypothesis import strategies as st
from saved_runs import cell, save_run

from pytest_vllmbench.results.answer import intervals_overlap, is_tie, renormalised_note
from pytest_vllmbench.results.report import render
from pytest_vllmbench.results.storage import load_runs

GPU = ["NVIDIA H200"]


def _rounds(mean: float, half: float, n: int = 3) -> dict[str, object]:
    stats = {"n": n, "mean": mean, "stddev": half, "ci95_low": mean - half, "ci95_high": mean + half, "ci95_half": half}
    return {"requests_per_s": mean, "round_stats": {"requests_per_s": stats}}


def _gpu_cell(name: str, **figures: object) -> dict[str, object]:
    return cell(name, gpus=GPU, weights="dummy weights", quality_accuracy=None, quality_valid_rate=None, **figures)


def _answer(text: str) -> str:
    return text.split("## Answer")[1].split("\n## ")[0]


def test_tie_rule_needs_rounds_on_both_sides_and_overlap():
    assert is_tie(_rounds(10.0, 1.0), _rounds(10.5, 1.0))
    assert not is_tie(_rounds(10.0, 0.2), _rounds(11.0, 0.2))
    assert intervals_overlap(_rounds(10.0, 1.0), cell(requests_per_s=10.0)) is None
    assert not is_tie(_rounds(10.0, 1.0), cell(requests_per_s=10.0))


@given(st.floats(0.1, 100), st.floats(0.01, 5), st.floats(0.1, 100), st.floats(0.01, 5))
def test_tie_rule_is_symmetric_and_matches_the_intervals(mean_a, half_a, mean_b, half_b):
    a, b = _rounds(mean_a, half_a), _rounds(mean_b, half_b)
    assert is_tie(a, b) == is_tie(b, a)
    apart = mean_a + half_a < mean_b - half_b or mean_b + half_b < mean_a - half_a
    assert is_tie(a, b) == (not apart)


def test_renormalised_note_names_what_was_left_out():
    weights = {"throughput": 0.4, "total_time": 0.3, "quality": 0.2, "flexibility": 0.1}
    used = {"throughput": 0.5, "total_time": 0.375, "flexibility": 0.125}
    assert renormalised_note(weights, used, " (dummy weights)") == (
        "quality not measured (dummy weights): ranked on throughput, total time and flexibility, 50/37.5/12.5"
    )
    assert renormalised_note(weights, weights) == ""
    assert renormalised_note(weights, {}) == ""  # a project's scorer that returns no weights


def test_answer_opens_the_report_with_recommendation_tie_note_and_budget_verdict(tmp_path):
    save_run(
        tmp_path,
        1,
        "h200",
        [
            _gpu_cell("gemma-12b-offline", **_rounds(17.0, 1.5), projected_hours=2.8, projected_cost=9.5),
            _gpu_cell("gemma-12b-server", **_rounds(18.0, 1.5), projected_hours=2.6, projected_cost=8.9),
            _gpu_cell("gemma-4b-server", gpu_memory_budget_gib=16, peak_vram_mib=19354, params_b=4.3, dtype="bfloat16"),
        ],
        gpus=GPU,
        machine_id="gpu-box",
    )
    text = render(load_runs(tmp_path))
    assert text.index("## Answer") < text.index("## Current status")
    answer = _answer(text)
    assert "use **gemma-12b-server [d]**" in answer and "Marks: [d] random weights" in answer
    assert "18.00 ± 1.50 req/s (3 rounds)" in answer
    assert "Runner-up: gemma-12b-offline" in answer and "a **tie**" in answer
    assert "Quality not measured (dummy weights): ranked on throughput, total time and flexibility, 50/37.5/12.5" in (
        answer
    )
    budget_line = next(line for line in answer.splitlines() if "gemma-4b-server" in line)
    assert "16 GiB" in budget_line and "measured peak 18.9 GiB" in budget_line and "over budget" in budget_line


def test_answer_separates_the_two_cells_when_their_intervals_do_not_overlap(tmp_path):
    save_run(
        tmp_path,
        1,
        "h200",
        [
            _gpu_cell("gemma-12b-offline", **_rounds(10.0, 0.5), projected_hours=4.0),
            _gpu_cell("gemma-12b-server", **_rounds(18.0, 0.5), projected_hours=2.6),
        ],
        gpus=GPU,
        machine_id="gpu-box",
    )
    answer = _answer(render(load_runs(tmp_path)))
    assert "use **gemma-12b-server" in answer and "do not overlap" in answer and "**tie**" not in answer


def test_every_table_shows_one_req_per_s_and_one_score_per_cell(tmp_path):
    rounds = _rounds(3.06, 0.70)
    rounds["requests_per_s"] = 3.14  # the last round, which the tables used to show beside the mean
    save_run(
        tmp_path,
        1,
        "cpu",
        [cell("gemma-270m-server", **rounds), cell("gemma-270m-offline", requests_per_s=1.0, score=1.0)],
    )
    text = render(load_runs(tmp_path))
    assert "3.14" not in text.split("## History")[0]
    matrix = text.split("## Test matrix")[1].split("## Results by machine")[0]
    assert "3.06 ± 0.70" in matrix
    ranking = text.split("## Ranking")[1].split("\n## ")[0]
    machine = text.split("## Results by machine")[1].split("\n## ")[0]
    offline_rank = next(line for line in ranking.splitlines() if "gemma-270m-offline" in line)
    offline_cells = [part.strip() for line in machine.splitlines() if "| offline" in line for part in line.split("|")]
    group_score = offline_rank.split("|")[3].strip()
    assert group_score != "1.000" and group_score in offline_cells and "1.000" not in offline_cells


def test_newer_engine_fields_are_shown_with_only_the_settings_that_differ(tmp_path):
    settings = {"max_num_seqs": 256, "enable_prefix_caching": True, "enforce_eager": False, "source": "vllm defaults"}
    newer = {
        "bound_by": "client",
        "cpu_client_pct": 98.0,
        "cpu_api_server_pct": 40.0,
        "cpu_engine_core_pct": 60.0,
        "steady_requests_per_s": 2.2,
        "warmup_rounds": 1,
        "prefix_cache": "on, 12 % hits",
    }
    save_run(
        tmp_path,
        1,
        "cpu",
        [
            cell("gemma-270m-server", engine_settings=settings, **newer),
            cell("gemma-270m-offline", engine_settings={**settings, "max_num_seqs": 64}, bound_by="gpu"),
        ],
    )
    save_run(tmp_path, 2, "old", [cell("gemma-270m-ray")])
    section = render(load_runs(tmp_path)).split("## Engine settings and bottleneck")[1].split("\n## ")[0]
    header = next(line for line in section.splitlines() if line.startswith("| Cell"))
    assert "max_num_seqs" in header and "enforce_eager" not in header and "source" not in header
    server = next(line for line in section.splitlines() if "gemma-270m-server" in line)
    assert "client (client 98 %, API server 40 %, engine core 60 %)" in server and "on, 12 % hits" in server
    assert "gemma-270m-ray" not in section


def test_old_runs_have_no_engine_section(tmp_path):
    save_run(tmp_path, 1, "old", [cell("gemma-270m-ray")])
    assert "## Engine settings and bottleneck" not in render(load_runs(tmp_path))


def test_the_group_nearest_the_job_comes_first_and_budget_lines_name_their_machine(tmp_path):
    small = [_gpu_cell("gemma-12b-offline", **_rounds(40.0, 1.0), n_requests=1000)]
    large = [_gpu_cell("mistral-7b-offline", **_rounds(100.0, 1.0), n_requests=3000)]
    budget = [_gpu_cell("gemma-4b-server", gpu_memory_budget_gib=16, peak_vram_mib=19354, params_b=4.3)]
    save_run(tmp_path, 1, "small", small + budget, gpus=GPU, machine_id="gpu-box")
    save_run(tmp_path, 2, "large", large, gpus=GPU, machine_id="gpu-box")
    answer = _answer(render(load_runs(tmp_path)))
    assert answer.index("3,000 requests measured") < answer.index("1,000 requests measured")
    budget_line = next(line for line in answer.splitlines() if "gemma-4b-server" in line)
    assert " on 1 x NVIDIA H200: " in budget_line


def test_a_budget_cell_run_interleaved_is_not_called_over_budget_on_the_peak_every_engine_made(tmp_path):
    interleaved = {"gpu_memory_budget_gib": 16, "peak_vram_mib": 38_000, "params_b": 4.3, "dtype": "bfloat16"}
    save_run(
        tmp_path,
        1,
        "h200",
        [
            _gpu_cell("gemma-4b-offline", interleaved=["gemma-4b-offline", "gemma-4b-server"], **interleaved),
            _gpu_cell("gemma-4b-server", interleaved=["gemma-4b-offline", "gemma-4b-server"], **interleaved),
            _gpu_cell("gemma-1b-server", gpu_memory_budget_gib=16, peak_vram_mib=12_000, interleaved=["x", "y"]),
        ],
        gpus=GPU,
        machine_id="gpu-box",
    )
    text = render(load_runs(tmp_path))
    lines = {name: next(line for line in _answer(text).splitlines() if name in line) for name in ("4b-off", "1b-")}
    assert "over budget" not in lines["4b-off"] and "**ran, peak shared**" in lines["4b-off"]
    assert "37.1 GiB counts every engine --interleave kept on the GPU" in lines["4b-off"]
    assert "**fits**" in lines["1b-"]  # all of them together stayed within the budget: so did this one
    table_rows = [line for line in text.splitlines() if line.startswith("| gemma-4b") and "16G" in line]
    assert table_rows and all("over budget" not in row for row in table_rows)


def test_the_answer_says_when_its_cells_kv_cache_ran_full_in_a_shared_gpu_and_under_a_budget(tmp_path):
    together = ["qwen-14b-offline", "qwen-14b-server"]
    shared = {"interleaved": together, "n_requests": 3000, "engine_args": {"gpu_memory_utilization": 0.45}}
    save_run(
        tmp_path,
        1,
        "h200",
        [
            _gpu_cell("qwen-14b-offline", **_rounds(62.3, 2.3), **shared, preempted_pct=0.0),
            _gpu_cell("qwen-14b-server", **_rounds(53.6, 6.2), **shared, server_metrics={"preemptions": 716.0}),
            _gpu_cell("gemma-4b-server", gpu_memory_budget_gib=16, peak_vram_mib=15_000, preempted_pct=36.5),
        ],
        gpus=GPU,
    )
    answer = _answer(render(load_runs(tmp_path)))
    assert (
        "  KV cache full under --interleave (qwen-14b-server [d]: 23.9 preemptions per 100 requests): these rates and"
        " hours are for engines sharing the GPU and understate one alone."
    ) in answer
    budget_line = next(line for line in answer.splitlines() if "gemma-4b-server" in line)
    assert budget_line.endswith(
        "**fits** in 16 GiB; measured peak 14.6 GiB; weights - GiB (est.); KV cache full (36.5 preemptions per 100"
        " requests)."
    )


def test_the_answer_says_when_a_cell_that_shared_the_gpu_is_ranked_against_one_that_had_it_alone(tmp_path):
    together = ["qwen-14b-offline", "qwen-14b-server"]
    shared = {"interleaved": together, "n_requests": 3000, "engine_args": {"gpu_memory_utilization": 0.45}}
    alone = {"n_requests": 3000, "engine_args": {"gpu_memory_utilization": 0.92}}
    save_run(
        tmp_path,
        1,
        "h200",
        [
            _gpu_cell("qwen-14b-server", **_rounds(53.6, 6.2), **shared),
            _gpu_cell("qwen-14b-offline", **_rounds(40.0, 2.0), **shared),
            _gpu_cell("gemma-12b-4bit-server", **_rounds(49.7, 4.7), **alone),
        ],
        gpus=GPU,
    )
    answer = _answer(render(load_runs(tmp_path)))
    assert (
        "  Not like for like: qwen-14b-server [d] shared the GPU under --interleave, gemma-12b-4bit-server [d] had it"
        " alone; the margin is partly the share of the GPU each had."
    ) in answer


def test_cells_that_all_had_the_gpu_alone_get_no_sharing_note(tmp_path):
    alone = {"n_requests": 3000}
    save_run(
        tmp_path,
        1,
        "h200",
        [
            _gpu_cell("gemma-12b-4bit-offline", **_rounds(53.2, 7.0), **alone),
            _gpu_cell("gemma-12b-4bit-server", **_rounds(49.7, 4.7), **alone),
        ],
        gpus=GPU,
    )
    answer = _answer(render(load_runs(tmp_path)))
    assert "Runner-up: gemma-12b-4bit-offline [d]" in answer and "Not like for like" not in answer
