"""A ray cell on a real two-node Ray cluster that the test starts (`ray start --head` and a second `ray start
--address=...`), joined with --ray-address: each node runs one of its replicas (Ray's actor table; with one CPU a
node and a replica, this checks the cell's replica count and resources, not that both replicas took rows, which is
Ray Data's timing-dependent choice), every row is counted once on the cluster's nodes, the cluster outlives the cell, and the test stops exactly the nodes it started (by their `ray start --block` processes, never `ray stop`,
which stops every Ray instance on the machine)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ports import free_ports
from procs import alive_after, kill_all, run_bench_isolated

pytestmark = [pytest.mark.engine, pytest.mark.ray_cluster]
REPO = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).with_name("ray")
REQUESTS = 8
START_TIMEOUT_S = 120


def _start_node(args: list[str], log: Path, cpu: int) -> subprocess.Popen[bytes]:
    """`ray start ... --block` in a session of its own: it stays in the foreground and, stopped, stops its node.
    The node and all it starts run on CPU `cpu` only (taskset), as if it were a machine of one core: vLLM's CPU
    build binds its threads to the cores a process may use, and two nodes that may use every core bind both
    engines to the same one."""
    with log.open("wb") as out:
        node = subprocess.Popen(
            ["taskset", "--cpu-list", str(cpu), str(RAY), "start", *args, "--num-gpus=0", "--block"]
            + ["--object-store-memory=100000000"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while b"Ray runtime started" not in log.read_bytes():
        if node.poll() is not None or time.monotonic() > deadline:
            _stop_node(node)
            pytest.fail(f"ray start {args[0]} did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.5)
    return node


def _stop_node(node: subprocess.Popen[bytes]) -> list[tuple[int, str]]:
    """SIGTERM to the `ray start --block` we started (it stops its node's processes), then whatever of its
    session is still there after a grace period is killed and returned."""
    if node.poll() is None:
        node.send_signal(signal.SIGTERM)
    try:
        node.wait(timeout=60)
    except subprocess.TimeoutExpired:
        node.kill()
        node.wait()
    leftovers = alive_after(node.pid, grace_s=15.0)
    kill_all(leftovers)
    return leftovers


@pytest.fixture
def two_nodes(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """(address, token) of a head with 1 CPU and a second node with 1 CPU. Token
    authentication on, with a token of the test's own, so the cell must join with it and may never save it."""
    if not RAY.is_file():
        pytest.skip(f"ray is not installed ({RAY} missing): pip install 'pytest-vllmbench[ray]'")
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or shutil.which("taskset") is None:
        pytest.skip("two Ray nodes of one core each need two cores and taskset (util-linux)")
    token = secrets.token_hex(32)
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", token)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    # a short temp dir of our own: Ray's socket paths must stay under the OS limit, and nothing of another
    # instance's /tmp/ray is touched
    temp = Path(tempfile.mkdtemp(prefix="vbray", dir="/tmp"))
    port, client_port, head_agent_port, second_agent_port = free_ports(4)
    head = _start_node(
        [
            "--head",
            f"--port={port}",
            "--num-cpus=1",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={temp}",
            f"--ray-client-server-port={client_port}",
            f"--dashboard-agent-listen-port={head_agent_port}",
        ],
        temp / "head.log",
        cpu=cpus[0],
    )
    second = None
    try:
        second = _start_node(
            [
                f"--address=127.0.0.1:{port}",
                "--num-cpus=1",
                "--disable-usage-stats",
                f"--dashboard-agent-listen-port={second_agent_port}",
            ],
            temp / "second.log",
            cpu=cpus[1],
        )
        yield f"127.0.0.1:{port}", token
    finally:
        leftovers = [*(_stop_node(second) if second else []), *_stop_node(head)]
        shutil.rmtree(temp, ignore_errors=True)  # the nodes' sessions and logs
        assert leftovers == [], f"processes of the test's Ray nodes outlived their `ray start`: {leftovers}"


def _nodes(address: str) -> dict[str, dict[str, float]]:
    """{node id: resources} of the cluster's live nodes, asked of Ray by a driver of its own."""
    ask = (
        "import json, sys, ray; ray.init(address=sys.argv[1], log_to_driver=False); "
        "print(json.dumps({n['NodeID']: n['Resources'] for n in ray.nodes() if n['Alive']}))"
    )
    done = subprocess.run([sys.executable, "-c", ask, address], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _engine_actor_nodes(address: str) -> list[str]:
    """The node of each actor of the cell's vLLM engine stage (its replicas), from Ray's actor table, which keeps
    an actor's record after it ends, asked by a driver of its own. Ray's public actor listing needs the dashboard,
    which the test's head does not run, so this reads the table the way that listing does (`ray._private.state`)."""
    ask = (
        "import json, sys, ray; from ray._private import state; "
        "ray.init(address=sys.argv[1], log_to_driver=False); "
        "print(json.dumps([[a['ActorClassName'], a['Address']['NodeID']] for a in state.actors().values()]))"
    )
    done = subprocess.run([sys.executable, "-c", ask, address], capture_output=True, text=True, timeout=120, check=True)
    actors = json.loads(done.stdout.strip().splitlines()[-1])
    return sorted(node for name, node in actors if "vLLMEngineStage" in name)


def test_a_ray_cell_joins_a_two_node_cluster_runs_a_replica_on_each_node_and_leaves_it_running(two_nodes, tmp_path):
    address, token = two_nodes
    nodes = _nodes(address)
    assert len(nodes) == 2
    args = [
        "--model=gemma-270m",
        "--mode=ray",
        f"--dataset={REPO / 'data' / 'batch_5k.jsonl'}",
        f"--limit={REQUESTS}",
        "--max-tokens=16",
        f"--ray-address={address}",
        # one replica a node: each node has one CPU, a replica takes one
        "--engine-arg=ray_replicas=2",
        "--engine-arg=ray_batch_size=1",
        "--engine-arg=ray_max_concurrent_batches=1",
        # on the CPU build this is a share of RAM: two engines on one small host
        "--engine-arg=gpu_memory_utilization=0.1",
        "--benchmark-save=two-nodes",
    ]
    result, leftovers = run_bench_isolated(tmp_path, args, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:]
    assert leftovers == []
    [run] = (tmp_path / ".benchmarks").glob("*/0001_two-nodes.json")
    assert token not in run.read_text()
    [cell] = [bench["extra_info"] for bench in json.loads(run.read_text())["benchmarks"]]
    assert cell["n_failed"] == 0 and cell["n_requests"] == REQUESTS
    assert cell["ray_cluster"]["address"] == address and cell["ray_cluster"]["nodes"] == 2
    assert cell["ray_cluster"]["replicas"] == 2
    # Ray's own record of where the replicas ran: one on each node (a node has one CPU, a replica takes one)
    assert _engine_actor_nodes(address) == sorted(nodes)
    # and of where the engine stage made its rows: every row counted once, on the cluster's nodes. Which replica
    # takes a row is Ray Data's choice and depends on timing (a row that comes while its node's replica is free goes
    # there), so a split over both nodes is not asserted: it failed a CI run with all 8 rows on one node
    per_node = cell["ray_rows_per_node"]
    assert set(per_node) <= set(nodes) and sum(per_node.values()) == REQUESTS, per_node
    # the cell only disconnected: the cluster it joined still runs, with both nodes
    assert set(_nodes(address)) == set(nodes)
