"""BENCHMARKS.md from every saved run: status, matrix, per-machine tables, runs; hand-written parts kept."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from pytest_vllmbench.common.cut import one_line
from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.common.files import read_plain_text, refuse_non_regular, write_text_atomic
from pytest_vllmbench.config.score_weights import DEFAULT_FLEXIBILITY, check_weights
from pytest_vllmbench.measure.host_load import GPU_BOUND_PCT, HOST_BOUND_PCT, KV_BOUND_PCT
from pytest_vllmbench.results import markers
from pytest_vllmbench.results import plots as plotting
from pytest_vllmbench.results.latest import Latest, latest_cells
from pytest_vllmbench.results.mode_glance import glance_table
from pytest_vllmbench.results.mode_verdicts import mode_verdicts
from pytest_vllmbench.results.parity_section import parity_section
from pytest_vllmbench.results.pooled_rounds import placed, pooled_latest
from pytest_vllmbench.results.ranking import (
    Ranker,
    Scorer,
    answer_part,
    engine_part,
    group_scores,
    ranking_section,
)
from pytest_vllmbench.results.report_price import MARK, ReportPrice, note, price_runs
from pytest_vllmbench.results.report_sweeps import sweep_plots, sweeps_section
from pytest_vllmbench.results.report_tables import (
    current_status,
    fit_table,
    history_table,
    machine_tables,
    matrix,
    parity_table,
    plot_cells,
)
from pytest_vllmbench.results.storage import SavedRun, scan_runs

PLACEHOLDERS = {
    "intro": "_What this page is for, which job it sizes, who reads it. Written by hand; regeneration keeps it._\n",
    "decisions": "_Key decisions and learnings, dated. Written by hand; regeneration keeps it._\n",
}
SHOWS_RUNS = "- **Saved runs:**"

# exit codes of `vllmbench report`
EXIT_OK, EXIT_REFUSED, EXIT_NO_RUNS = 0, 2, 3

GLOSSARY = f"""\
- **Cell**: one model in one vLLM mode (with its load point, GPU split or memory budget), measured once per run. Its
  label carries marks: **[d]** dummy weights, **[q4]** random weights quantized to 4 bits while loading, **[16G]** run
  under a 16 GiB memory budget, **(TP 2)** one engine over two GPUs (tensor parallel).
- **Mode**: offline (`vllm.LLM` in the test process), server (a `vllm serve` the session starts), endpoint (someone
  else's OpenAI-compatible server), run-batch (vLLM's batch runner), ray (Ray Data).
- **Current / superseded**: the tables show each cell's newest run per machine and workload (current), pooled with
  the runs of its boot where it and a cell it is compared with went both ways round; older runs of the same cell are
  superseded and listed only under History.
- **Faster / sooner**: the two cells' 95 % intervals separate and their runs went both ways round; **ahead**: they
  separate in one order only, across two boots or in an order not known (a lead, not yet a verdict); **no
  difference shown**: the intervals overlap.
- **Bound by**: what limited a cell, judged in this order: `kv-cache` (vLLM preempted at least {KV_BOUND_PCT:g}
  request per 100: its KV cache was full), `gpu` (busy at least {GPU_BOUND_PCT:g} % of the time), `api-server`,
  `engine-core` or `client` (the busiest such process used at least {HOST_BOUND_PCT:g} % of one core), else
  `unclear`; the figure beside it is the share that says so.
- **c64**: a load point of 64 requests in flight at once (`--concurrency`); **SLO**: a latency target (`--slo`);
  **goodput**: req/s of the requests that met every SLO; **knee**: the load point with the most req/s among those
  that met the SLOs.
- **TTFT / TPOT / E2EL**: time to first token, time per output token after it, end-to-end latency of a request;
  **p50 / p99**: the median and the 99th percentile over the cell's requests.
- **Rounds**: timed repeats of a cell on one engine (`--rounds`); figures show their mean ± the 95 % half-width.
  **Tie**: two cells whose req/s intervals overlap. **Steady req/s**: completions per second between 10 % and 90 %
  of a round's completions (no ramp, no tail).
- **Job h / Projected h**: the whole job (170,000 requests by default, `--project-to`): load once, then every request
  at the measured rate; job kWh and cost likewise.
- **Score**: the cell's weighted score within its ranking group (same machine, workload and request count);
  **flexibility**: a per-mode figure (server 1, offline 0 ...) for how many ways the mode can be used.
- **Dummy weights**: random weights in a model's published shape: speed and memory are real, answers are not.
- **Not graded: cut at N tok**: every output stopped at a token cap (`--ignore-eos` or `max_tokens`), so its quality
  says nothing about the model; it is left out of quality and of the ranking's quality.
- **Memory budget**: `--gpu-memory=SIZE`, what vLLM may reserve per GPU; speed stays the GPU's that ran it.
- **Roofline %**: output tok/s as a share of the decode limit set by memory bandwidth / weight bytes x batch.
- **Seed**: the project's first brief, which named the six model x mode cells and the 40/30/20/10 weights.
"""
PRICED_TERM = f"- **{MARK}**: a cost priced at report time (the run saved no price).\n"
ExtraSection = Callable[[list[SavedRun]], str]  # runs -> a whole '## Title\n\nbody' section


class ReportRefused(UsageError):
    """The report file is not ours to rewrite, or rewriting it would lose hand-written text."""


class NoRuns(ReportRefused):
    """The storage holds no run, but the report on disk shows runs: rewriting it would blank them."""


def check_markers(text: str, path: Path | str) -> None:
    """Every hand-written section opens and closes once, on lines of their own, with the same name."""
    try:
        markers.hand_written_sections(text)
    except markers.MarkerError as exc:
        raise ReportRefused(f"{path}:{str(exc).removeprefix('line ')}") from None


MAX_REPORT_BYTES = 64 * 2**20  # far over any report this tool writes


def check_report_file(out: Path) -> str:
    """The current text of `out` ('' when absent) if this tool may rewrite it; ReportRefused otherwise."""
    try:
        refuse_non_regular(out)  # a symlink, FIFO or folder: never read (a FIFO would block) nor written over
    except OSError as exc:
        raise ReportRefused(str(exc)) from None
    if not out.exists():
        parent = out.parent if str(out.parent) else Path(".")
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            raise ReportRefused(f"{out}: cannot write the report: {parent} is not a writable folder")
        return ""
    try:
        text = read_plain_text(out, MAX_REPORT_BYTES)
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportRefused(f"{out}: cannot read the existing report: {exc}") from None
    if not markers.is_generated(text):
        raise ReportRefused(
            f"{out} was not generated by pytest-vllmbench, so it is left as it is. To let the tool own it, add the "
            f"line '{markers.GENERATED} -->' to it and wrap the text to keep in '<!-- vllmbench:hand-written NAME -->' / "
            "'<!-- /vllmbench:hand-written NAME -->' lines (everything else is rewritten); or choose another file "
            "with --report=PATH (--out for `vllmbench report`), or --report=none"
        )
    check_markers(text, out)
    if not os.access(out, os.W_OK):
        raise ReportRefused(f"{out}: the report file is not writable")
    return text


def hand_written_sections(text: str) -> dict[str, str]:
    return markers.hand_written_sections(text)


def _section(name: str, kept: dict[str, str]) -> str:
    return markers.section(name, kept.get(name, PLACEHOLDERS.get(name, "")))


def _plots_section(plots: list[tuple[str, str]] | str) -> str:
    """Markdown image links (paths relative to the report), or the note saying why there are none."""
    if isinstance(plots, str):
        return plots
    if not plots:
        return "No plot yet: no saved cell has figures to draw."
    return "\n\n".join(f"![{title}]({path})" for title, path in plots)


def render(
    runs: list[SavedRun],
    previous: str = "",
    weights: dict[str, float] | None = None,
    flexibility: dict[str, float] | None = None,
    plots: list[tuple[str, str]] | str | None = None,
    scorer: Scorer | None = None,
    price: ReportPrice | None = None,
    extra_sections: Sequence[ExtraSection] = (),
) -> str:
    """`price` (one GPU's hourly price) costs the cells whose runs saved none; each such cost is marked.
    `extra_sections` each return one more '## ...' section from the runs, placed before the decisions."""
    runs = price_runs(runs, price)
    priced = note(price, runs)
    priced = f"\n\n{priced}" if priced else ""
    weights = check_weights(weights or {})
    flexibility = {**DEFAULT_FLEXIBILITY, **(flexibility or {})}
    kept = hand_written_sections(previous)
    latest = latest_cells(runs)
    pooled = pooled_latest(runs, latest)
    rank = Ranker(weights, flexibility, scorer)
    parts = [
        "# vLLM batch benchmarks",
        "<!-- Generated by pytest-vllmbench from the runs saved under .benchmarks/. Edit only inside the"
        " hand-written sections: everything else is rewritten after every saved run. -->",
        "## Answer\n\n" + answer_part(pooled, rank),
        _section("intro", kept),
        "## Offline vs server\n\n"
        + _glance(pooled)
        + "A mode is called faster only when the 95 % intervals of the two cells' rounds"
        " separate and the two went both ways round (runs repeated in alternating order, or interleaved rounds);"
        " a separation in one order, or across two boots, is a lead (`offline ahead`), and the line ends saying it"
        " is not yet a verdict. Cells of one model, machine and workload. A server run at `--api-server-count`, or with its own"
        " `--engine-arg` or `--client-processes`, is a side of its own (`server (stream_interval=8)`), compared with"
        " offline and with the plain server. Where the two modes ran several times on one boot of"
        " one machine under the same conditions, both ways round (runs repeated in alternating order), each mode's"
        " rounds are pooled over those runs (the Answer ranks on them too). Where the two sides' newest runs are on"
        " two known boots, the verdict takes the newest boot that ran both with rounds under the same conditions, and"
        " says so. A verdict on one run of each mode says so, and in which order they ran or, where no boot ran both,"
        " that they ran on two boots (the drift between them is in the verdict). Each"
        " line also says what the gap costs the whole job: each round projected to it (loading, one ramp-up and tail, the rest at the steady rate), the modes compared by"
        " those projections' intervals.\n\n" + mode_verdicts(placed(pooled)),
        "## Decisions and learnings\n\n" + _section("decisions", kept),
        "## Current status\n\n" + current_status(runs, pooled),
        "## Test matrix\n\nThe current result of each model x mode on each machine and workload (older runs:"
        " History). req/s is the rounds' mean ± the 95 % half-width where a cell ran rounds, pooled over its runs on"
        " its newest run's boot where the two modes went both ways round there (Results by machine names them); Job"
        " h is the projected wall time of the full job: load once, then every request at the measured rate (the rounds' mean).\n\n"
        + matrix(pooled),
        "## Results by machine\n\nPer machine, the speed of each current cell, then what it used and costs. Score:"
        " the cell's score in its ranking group (see Ranking). Run: the saved run's number (History names its file), or"
        " the runs its rounds are pooled over.\n\n" + machine_tables(pooled, group_scores(pooled, rank)) + priced,
        *(
            [
                "## Plots\n\nThroughput of the newest cells on each machine, then each cell's TTFT and E2EL"
                " distribution (from 101 saved percentiles; no per-request data is kept).\n\n" + _plots_section(plots)
            ]
            if plots is not None
            else []
        ),
        "## Load sweeps\n\n" + sweeps_section(latest),
        "## Memory budgets\n\nCells run with `--gpu-memory=SIZE`: vLLM may reserve only that much of each GPU"
        " (weights, activations and KV cache). The verdict puts vLLM's own accounting beside the peak NVML measured"
        " on the card: *fits* when the engine started and the peak stayed within the budget, *ran, but over budget*"
        " when it started but the card held more (so a card of that size is not shown to hold it), *ran, peak"
        " shared* when it ran under `--interleave` and the card held more than the budget with every engine on it"
        " (its own peak is not known), *does not fit* when it could not start. The speed is the GPU's that ran it,"
        " not the smaller card's. Weights are params x bytes per param; what is left for the KV cache is the budget"
        " minus the weights, before activations and CUDA graphs take their share.\n\n" + fit_table(latest),
        "## Ranking\n\n" + ranking_section(pooled, rank) + priced,
        "## Parity with `vllm bench throughput`\n\nThe same engine args and random workload, ours then vLLM's own"
        " benchmark in the same session: a ratio near 1 says the harness adds nothing.\n\n" + parity_table(runs),
        *engine_part(pooled),
        *(section(runs) for section in extra_sections),
        "## Glossary\n\n" + GLOSSARY + (PRICED_TERM if priced else ""),
        "## History\n\nEvery saved cell, newest run first: the tables above show only the current result of each cell"
        " (its newest run per machine and workload, pooled with its boot's runs that went both ways round); a"
        " superseded one stays here. The JSON files hold every figure.\n\n" + history_table(runs, latest),
    ]
    extra = [name for name in kept if name not in PLACEHOLDERS]
    if extra:
        parts.append("## Other notes\n\n" + "\n\n".join(_section(name, kept) for name in extra))
    return "\n\n".join(parts) + "\n"


def _glance(pooled: Latest) -> str:
    table = glance_table(placed(pooled))
    if table is None:
        return ""
    return (
        "Each model's offline cell against each of its server cells measured with rounds, on the whole job (each"
        " round projected to it); *sooner* only where the two went both ways round, *ahead* a lead in one order, across"
        " two boots or in an order not known. The lines below give the rates and steady rates behind each row.\n\n"
        + table
        + "\n\n"
    )


def write_report(
    storage_root: Path,
    out: Path,
    weights: dict[str, float] | None = None,
    flexibility: dict[str, float] | None = None,
    allow_empty: bool = False,
    warn: Callable[[str], None] | None = None,
    scorer: Scorer | None = None,
    price: ReportPrice | None = None,
) -> Path:
    """Rewrite `out` from every run under storage_root; ReportRefused (file untouched) when that would lose text.
    `scorer` ranks a group of cells (the plugin passes the project's pytest_vllmbench_score hook); default: weights.

    Saved runs that cannot be read are skipped, each with a warning passed to `warn`."""
    previous = check_report_file(out)
    runs, skipped = scan_runs(storage_root)
    for message in skipped:
        (warn or (lambda _: None))(message)
    if not runs and SHOWS_RUNS in previous and not allow_empty:
        found = "does not exist" if not storage_root.is_dir() else "holds no readable vllmbench run"
        raise NoRuns(
            f"{storage_root} {found}, but {out} shows saved runs: not blanking it "
            "(check the storage path; `vllmbench report --allow-empty` rewrites it anyway)"
        )
    drawn = _draw_plots(runs, out)
    plots = (
        drawn
        if isinstance(drawn, str)
        else [(plot.title, plot.path.relative_to(out.parent).as_posix()) for plot in drawn]
    )
    parity = server_parity(out.parent / "benchmarks" / "results")
    text = render(runs, previous, weights, flexibility, plots, scorer, price, parity)
    if not isinstance(drawn, str):  # only once the text is rendered: a failure leaves nothing half-written
        plotting.save_plots(plots_folder(out), drawn)
    write_text_atomic(out, text)
    return out


MAX_SUMMARY_BYTES = 16 * 2**20  # a parity summary holds a few figures per run


def server_parity(folder: Path) -> list[ExtraSection]:
    """The server-parity procedure's summaries (benchmarks/scripts/server_parity.sh) kept under `folder`."""
    found = sorted(folder.glob("*/server_parity*.json"))
    if not found:
        return []
    lines = [
        "## Server parity with `vllm bench serve`",
        "",
        "The owned-server cell and the endpoint cell against `vllm bench serve` on one server's args and the same"
        " requests, alternating (benchmarks/scripts/server_parity.sh). A ratio holds when 1.0 is within its range"
        " over the runs, or its mean is at least 0.97.",
    ]
    for path in found:
        source = str(path.relative_to(folder.parent.parent))
        try:
            summary = json.loads(read_plain_text(path, MAX_SUMMARY_BYTES))
            section = parity_section(summary, source) if isinstance(summary, dict) else [f"`{source}`: not a summary"]
        except (OSError, ValueError, RecursionError) as exc:
            section = [f"`{source}` could not be read: {exc}"]
        except (AttributeError, TypeError):  # an entry that is not the object the procedure writes
            section = [f"`{source}`: not a summary"]
        lines += [""] + [one_line(line) for line in section]  # text from the file stays on its table row
    text = "\n".join(lines)
    return [lambda runs: text]


def plots_folder(out: Path) -> Path:
    """Under benchmarks/ beside the report: BENCHMARKS.md -> benchmarks/plots/ (another report: plots-NAME/)."""
    stem = out.stem.lower()
    return out.parent / "benchmarks" / ("plots" if stem == "benchmarks" else f"plots-{stem}")


def _draw_plots(runs: list[SavedRun], out: Path) -> list[plotting.Plot] | str:
    """The report's plots, drawn in memory where their files are not up to date, or why there are none."""
    try:
        drawn = plotting.render_plots(plot_cells(runs), plots_folder(out))
        return drawn + plotting.render_sweeps(sweep_plots(runs), plots_folder(out))
    except plotting.PlotsUnavailable as exc:
        return f"_No plots: {exc}. The tables above hold every figure._"
    except plotting.PlotRefused as exc:
        raise ReportRefused(str(exc)) from None
