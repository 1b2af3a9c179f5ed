"""The `vllmbench` command: prepare-model, validate, make-dataset, report, gate, compare."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from pytest_vllmbench.common import closed_stdout
from pytest_vllmbench.common.cut import key_text
from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.common.sigterm import SigtermAsInterrupt
from pytest_vllmbench.config.gate_rules import Rule
from pytest_vllmbench.config.registry import load_registry
from pytest_vllmbench.config.settings import read_tool_table
from pytest_vllmbench.engines import dummy_weights, embedded_model
from pytest_vllmbench.engines.base import CellSkip
from pytest_vllmbench.results import compare, gate, report, summary
from pytest_vllmbench.results.report_price import ReportPrice, parse_price, price_runs
from pytest_vllmbench.results.storage import RunFileError, SavedRun, load_runs, read_run, scan_runs
from pytest_vllmbench.workload import synthetic
from pytest_vllmbench.workload.batch import iter_batch


def _prepare_model(args: argparse.Namespace) -> int:
    """The embedded model, or a registry model's dummy-weight folder (shipped config + offline tokenizer)."""
    try:
        if args.name in embedded_model.EMBEDDED:
            folder = embedded_model.prepare(args.name, force=args.force)
        else:
            folder = _prepare_dummy(args.name, args.force, args.random_weights)
    except (ValueError, UsageError, CellSkip) as exc:
        print(f"vllmbench prepare-model: {exc}", file=sys.stderr)
        return 2
    if args.verify:
        bad = embedded_model.verify_folder(folder)
        if bad:
            print(
                f"vllmbench prepare-model: checksum mismatch in {folder}: {', '.join(bad)}; run again with --force",
                file=sys.stderr,
            )
            return 1
        print(f"verified: every file in {folder} matches its sha256")
    print(folder)
    return 0


def _prepare_dummy(name: str, force: bool, random_weights: bool) -> Path:
    spec = load_registry().resolve(name)
    if spec.config_dir is None or not spec.tokenizer:
        known = [alias for alias, model in load_registry().models.items() if model.config_dir and model.tokenizer]
        raise UsageError(
            f"{name!r} has no shipped config and offline tokenizer in the registry "
            f"(prepare-model knows: {', '.join(embedded_model.EMBEDDED + tuple(known))})"
        )
    folder = dummy_weights.prepare_shipped(spec, force=force)
    if random_weights:
        source = dummy_weights.DummyModel(
            str(folder), f"shipped config data/configs/{spec.config_dir.name} + tokenizer {spec.tokenizer}"
        )
        folder = Path(dummy_weights.random_checkpoint(source, spec, force=force).path)
    return folder


def _validate(args: argparse.Namespace) -> int:
    status = 0
    for path in args.files:
        lines, errors = 0, 0
        urls: Counter[str] = Counter()
        models: Counter[str] = Counter()
        for item in iter_batch(Path(path)):
            if isinstance(item, str):
                errors += 1
                if errors <= args.max_errors:
                    print(item, file=sys.stderr)
                continue
            lines += 1
            urls[item.url] += 1
            models[item.model] += 1
        if errors > args.max_errors:
            print(f"{path}: ... {errors - args.max_errors} more invalid line(s)", file=sys.stderr)
        if not lines and not errors:
            print(f"{path}: empty file (no requests)", file=sys.stderr)
            errors = 1
        summary = (
            f"{path}: {lines} valid request(s), {errors} invalid; endpoints: {_counts(urls)}; models: {_counts(models)}"
        )
        print(summary, file=sys.stderr if errors else sys.stdout)
        status = status or (1 if errors else 0)
    return status


SUMMARY_CHARS = 200  # a model's local path fits; a name longer than that is cut


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{key_text(key, SUMMARY_CHARS)} ({n})" for key, n in counter.most_common()) or "none"


def _make_dataset(args: argparse.Namespace) -> int:
    try:
        synthetic.check_names(args.out, args.model)
        synthetic.check_room(Path(args.out), args.n, args.seed, args.model)
        gold = synthetic.write_dataset(Path(args.out), args.n, args.seed, args.model)
    except (ValueError, OSError) as exc:
        print(f"vllmbench make-dataset: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({args.n} requests) and {gold}")
    return 0


def _report(args: argparse.Namespace) -> int:
    def warn(message: str) -> None:
        print(f"vllmbench report: warning: {message}", file=sys.stderr)

    if args.run is not None and not args.summary:
        print("vllmbench report: --run goes with --summary (it names the run whose summary is shown)", file=sys.stderr)
        return report.EXIT_REFUSED
    storage, out = Path(args.storage), Path(args.out)
    try:
        table = read_tool_table(Path("pyproject.toml"))
        price = _report_price(args, table)
        _check_storage(storage, out, args.allow_empty)
        shown = _summary_run(storage, args.run, price) if args.summary else None
        path = report.write_report(
            storage,
            out,
            table.get("weights"),
            table.get("flexibility"),
            allow_empty=args.allow_empty,
            warn=warn,
            price=price,
        )
    except report.NoRuns as exc:
        print(f"vllmbench report: {exc}", file=sys.stderr)
        return report.EXIT_NO_RUNS
    except (UsageError, OSError) as exc:
        print(f"vllmbench report: {exc}", file=sys.stderr)
        return report.EXIT_REFUSED
    print(f"wrote {path}")
    if args.summary:
        return _print_summary(storage, shown, path)
    return report.EXIT_OK


def _check_storage(storage: Path, out: Path, allow_empty: bool) -> None:
    """UsageError when --storage is no folder, where the report would otherwise be rewritten empty, unless
    --allow-empty asks for that. A report that shows runs is left to write_report, which refuses to blank it with its
    own message and exit code (3)."""
    if storage.is_dir() or allow_empty or report.SHOWS_RUNS in report.check_report_file(out):
        return
    problem = "is not a folder" if storage.exists() else "does not exist"
    raise UsageError(f"--storage {storage} {problem}: no saved runs to report (check the path); nothing written")


def _report_price(args: argparse.Namespace, table: dict[str, object]) -> ReportPrice | None:
    """--gpu-hourly-cost, else [tool.vllmbench] gpu_hourly_cost (with cost_currency likewise); None when neither."""
    if args.gpu_hourly_cost is not None:
        hourly = parse_price(args.gpu_hourly_cost, "--gpu-hourly-cost")
    else:
        hourly = parse_price(table.get("gpu_hourly_cost"), "[tool.vllmbench] gpu_hourly_cost")
    currency = args.cost_currency if args.cost_currency is not None else table.get("cost_currency")
    return None if hourly is None else ReportPrice(hourly, str(currency) if currency else None)


def _summary_run(storage: Path, spec: str | None, price: ReportPrice | None) -> SavedRun | None:
    """The run --summary shows: the newest (None when there is none), or the one --run names; resolved before the
    report is written, so that a spec naming no run leaves it as it was."""
    runs = price_runs(load_runs(storage), price)
    if spec is None:
        return runs[-1] if runs else None
    try:
        return compare.resolve(runs, spec)
    except UsageError as exc:
        raise UsageError(f"{storage}: {exc}") from None


def _print_summary(storage: Path, run: SavedRun | None, report_path: Path) -> int:
    if run is None:
        print(f"vllmbench report: no saved run under {storage}", file=sys.stderr)
        return 1
    block = summary.summary_block(run.cells, saved_run=storage / run.path, report=report_path)
    print(block or f"{storage / run.path}: no cell of this run was measured")
    return 0


def _gate(args: argparse.Namespace) -> int:
    try:
        rules = [Rule.parse(text) for text in args.rule]
    except UsageError as exc:
        print(f"vllmbench gate: {exc}", file=sys.stderr)
        return gate.EXIT_USAGE
    runs = []
    for path in (args.baseline, args.current):
        try:
            run = read_run(Path(path), Path(path).parent)
        except RunFileError as exc:
            print(f"vllmbench gate: {path}: {exc}", file=sys.stderr)
            return gate.EXIT_USAGE
        if run is None:
            print(f"vllmbench gate: {path}: not a saved run holding vllmbench cells", file=sys.stderr)
            return gate.EXIT_USAGE
        for warning in run.warnings:
            print(f"vllmbench gate: {warning}", file=sys.stderr)
        runs.append(run)
    if any(run.warnings for run in runs):  # a verdict on a file read in part cannot be trusted
        print("vllmbench gate: a saved run is wrong-shaped (see above): not gated", file=sys.stderr)
        return gate.EXIT_USAGE
    baseline, current = runs
    if baseline.machine != current.machine and not args.any_machine:
        print(
            f"vllmbench gate: the runs come from different machines ({baseline.machine} vs {current.machine}); "
            "pass --any-machine to compare them anyway",
            file=sys.stderr,
        )
        return gate.EXIT_USAGE
    checks = gate.check(gate.by_cell(current.cells), gate.by_cell(baseline.cells), rules)
    print(gate.table(checks))
    print(gate.summary(checks))
    return gate.exit_code(checks)


def _compare(args: argparse.Namespace) -> int:
    storage = Path(args.storage)
    runs, skipped = scan_runs(storage)
    for message in skipped:
        print(f"vllmbench compare: warning: {message}", file=sys.stderr)
    try:
        run_a, run_b = compare.resolve(runs, args.run_a), compare.resolve(runs, args.run_b)
    except UsageError as exc:
        print(f"vllmbench compare: {storage}: {exc}", file=sys.stderr)
        return 2
    print(compare.render(run_a, run_b, args.format))
    return 0


def _count_from_zero(text: str) -> int:
    """argparse type: an integer >= 0; argparse prints the error after the option's name and exits 2."""
    try:
        number = int(text)
    except ValueError:
        number = -1
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vllmbench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    prepare = commands.add_parser(
        "prepare-model", help="build the embedded model's folder, or a model's dummy-weight folder (once)"
    )
    prepare.add_argument(
        "name",
        help=f"{', '.join(embedded_model.EMBEDDED)}, or a registry model with a shipped config "
        "and an offline tokenizer (gemma-12b, gemma-12b-4bit, mistral-7b, qwen-14b)",
    )
    prepare.add_argument(
        "--random-weights",
        action="store_true",
        help="also write a random bf16 checkpoint in the model's shape (bitsandbytes cells; on the "
        "GPU when there is one)",
    )
    prepare.add_argument("--force", action="store_true", help="rebuild even if present")
    prepare.add_argument("--verify", action="store_true", help="re-hash every file against the manifest")
    prepare.set_defaults(func=_prepare_model)

    validate = commands.add_parser("validate", help="check OpenAI Batch JSONL files")
    validate.add_argument("files", nargs="+")
    validate.add_argument("--max-errors", type=_count_from_zero, default=50, help="errors printed per file")
    validate.set_defaults(func=_validate)

    make = commands.add_parser("make-dataset", help="write a synthetic candidate-screening batch")
    make.add_argument("--n", type=int, required=True)
    make.add_argument("--seed", type=int, default=0)
    make.add_argument("--out", required=True)
    make.add_argument("--model", default=synthetic.DEFAULT_MODEL)
    make.set_defaults(func=_make_dataset)

    rep = commands.add_parser("report", help="regenerate BENCHMARKS.md from saved runs")
    rep.add_argument("--storage", default=".benchmarks")
    rep.add_argument("--out", default="BENCHMARKS.md")
    rep.add_argument(
        "--allow-empty",
        action="store_true",
        help="rewrite the report even when the storage holds no run (it would show none)",
    )
    rep.add_argument("--summary", action="store_true", help="also print a saved run's summary table (the newest)")
    rep.add_argument(
        "--run",
        help="with --summary: the run to show: latest~N, a run number, a name or MACHINE_ID/FILE (default: latest)",
    )
    rep.add_argument(
        "--gpu-hourly-cost",
        metavar="PRICE",
        help="one GPU's price per hour for the runs that saved no price of their own (default: "
        "[tool.vllmbench] gpu_hourly_cost); a run's own price wins",
    )
    rep.add_argument(
        "--cost-currency",
        metavar="LABEL",
        help="label shown beside those costs (default: [tool.vllmbench] cost_currency)",
    )
    rep.set_defaults(func=_report)

    gates = commands.add_parser(
        "gate", help="compare two saved runs; exit 1 on a regression, 3 on missing data, 2 on a usage error"
    )
    gates.add_argument("baseline", help="saved run JSON to compare against")
    gates.add_argument("current", help="saved run JSON under test")
    gates.add_argument(
        "--rule",
        action="append",
        required=True,
        metavar="METRIC:CHANGE",
        help="e.g. output_tokens_per_s:-5%% or ttft_ms_p99:+10%% (repeatable)",
    )
    gates.add_argument("--any-machine", action="store_true", help="compare runs of different machines")
    gates.set_defaults(func=_gate)

    comparing = commands.add_parser(
        "compare", help="two saved runs side by side: every gateable figure per cell, the change and the noise"
    )
    comparing.add_argument(
        "run_a", metavar="RUN_A", help="latest, latest~N (N runs before it), a run number, a name or MACHINE_ID/FILE"
    )
    comparing.add_argument("run_b", metavar="RUN_B", help="as RUN_A; the change is B against A")
    comparing.add_argument("--storage", default=".benchmarks", help="where the runs are saved (default .benchmarks)")
    comparing.add_argument("--format", choices=compare.FORMATS, default="table")
    comparing.set_defaults(func=_compare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with SigtermAsInterrupt():  # a file being written is then dropped whole, as on Ctrl-C
            status: int = args.func(args)
            sys.stdout.flush()  # so that a closed stdout raises here, not at exit where it would be reported
    except KeyboardInterrupt:
        print(f"vllmbench {args.command}: interrupted; each file is as it was or written whole", file=sys.stderr)
        return 130
    except BrokenPipeError:
        if not closed_stdout.reader_gone():
            raise  # another pipe broke (a child's): a fault to show, not a reader that stopped early
        return closed_stdout.quiet_exit()
    return status


if __name__ == "__main__":
    raise SystemExit(main())
