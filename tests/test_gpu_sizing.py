"""GPU telemetry, roofline arithmetic, dummy-weight configs and the does-not-fit path (no GPU here)."""

import json
import sys
import threading
import types
from pathlib import Path

import pytest

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.config.registry import load_registry
from pytest_vllmbench.engines import embedded_model as embedded
from pytest_vllmbench.engines.dummy_weights import does_not_fit, prepare_shipped, weights_gib
from pytest_vllmbench.measure import gpu
from pytest_vllmbench.measure.cell_record import CellRecord
from pytest_vllmbench.measure.roofline import decode_bound_tokens_per_s, load_bandwidths, roofline
from pytest_vllmbench.workload.random_spec import parse_random_spec, random_requests
from tests.plans import plan_for

REPO = Path(__file__).resolve().parents[1]


class FakeNvml(types.SimpleNamespace):
    """A FAKE of NVML, because this machine has no GPU: two devices with scripted readings."""

    def __init__(self):
        super().__init__(calls=0, shut=0, sampled=threading.Event())  # set once the power has been read twice

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        self.shut += 1

    def nvmlDeviceGetCount(self):
        return 2

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def nvmlDeviceGetName(self, handle):
        return b"NVIDIA H200"

    def nvmlDeviceGetMemoryInfo(self, handle):
        self.calls += 1
        return types.SimpleNamespace(used=(1000 + 10 * self.calls) * 2**20, total=143771 * 2**20)

    def nvmlDeviceGetUtilizationRates(self, handle):
        return types.SimpleNamespace(gpu=50 if handle == 0 else 100)

    def nvmlDeviceGetPowerUsage(self, handle):
        self.power_reads = getattr(self, "power_reads", 0) + 1
        if self.power_reads >= 2:
            self.sampled.set()
        return 300_000


def test_sampler_reads_only_the_cells_gpus_and_summarizes(monkeypatch):
    fake = FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    with gpu.GpuSampler([1], interval_s=0.01) as sampler:
        assert fake.sampled.wait(30.0), "the sampler never read the GPU"
    figures = sampler.figures()
    assert figures["gpus"] == ["NVIDIA H200"]
    assert figures["peak_vram_mib"] > 1000 and figures["gpu_util_mean_pct"] == 100.0
    assert figures["gpu_power_mean_w"] == 300.0 and fake.shut >= 1


def test_without_a_gpu_every_figure_is_null_not_a_crash():
    with gpu.GpuSampler() as sampler:
        pass
    assert sampler.figures() == {
        "peak_vram_mib": None,
        "gpu_util_mean_pct": None,
        "gpu_util_max_pct": None,
        "gpu_power_mean_w": None,
        "gpu_power_max_w": None,
        "gpus": [],
    }
    assert gpu.list_gpus() == [] and gpu.driver_version() is None


def test_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert gpu.visible_indices() == [2, 3]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-uuid")
    assert gpu.visible_indices() is None


def test_roofline_arithmetic():
    # 12 B params in bf16 = 24 GB per step; 4.8 TB/s -> 200 steps/s; 64 sequences -> 12,800 tokens/s
    assert decode_bound_tokens_per_s(12.0, 2.0, 4800, 64) == pytest.approx(12_800)
    cell = CellRecord.from_figures(
        {
            "params_b": 12.0,
            "dtype": "bfloat16",
            "n_requests": 1000,
            "output_tokens_per_s": 25_600.0,
            "engine_args": {"max_num_seqs": 128},
        }
    )
    figures = roofline(cell, ["NVIDIA H200"], load_bandwidths())
    assert figures == {"decode_bound_tokens_per_s": 25_600.0, "roofline_pct": 100.0, "roofline_batch": 128}
    two = roofline(cell, ["NVIDIA H200", "NVIDIA H200"], load_bandwidths())
    assert two["roofline_pct"] == 50.0
    assert roofline(cell, [], load_bandwidths())["roofline_pct"] is None
    assert roofline(cell, ["Mystery GPU"], load_bandwidths({"Mystery GPU": 1000}))["roofline_pct"] is not None


def test_shipped_configs_match_the_published_architectures():
    from transformers import AutoConfig

    registry = load_registry()
    gemma = AutoConfig.from_pretrained(registry.models["gemma-12b"].config_dir)
    assert (gemma.hidden_size, gemma.intermediate_size, gemma.num_hidden_layers) == (3840, 15360, 48)
    assert (gemma.num_attention_heads, gemma.num_key_value_heads, gemma.head_dim) == (16, 8, 256)
    assert gemma.vocab_size == 262208 and gemma.sliding_window == 1024
    assert gemma.layer_types.count("full_attention") == 8  # one global layer in six
    one = AutoConfig.from_pretrained(registry.models["gemma-1b"].config_dir)
    assert (one.hidden_size, one.intermediate_size, one.num_hidden_layers, one.num_key_value_heads) == (
        1152,
        6912,
        26,
        1,
    )
    assert one.vocab_size == 262144 and one.sliding_window == 512
    four = AutoConfig.from_pretrained(registry.models["gemma-4b"].config_dir)
    assert (four.hidden_size, four.intermediate_size, four.num_hidden_layers) == (2560, 10240, 34)
    assert (four.num_attention_heads, four.num_key_value_heads, four.vocab_size) == (8, 4, 262208)
    qwen = AutoConfig.from_pretrained(registry.models["qwen-14b"].config_dir)
    assert (qwen.hidden_size, qwen.num_hidden_layers, qwen.num_attention_heads, qwen.vocab_size) == (
        5120,
        48,
        40,
        152064,
    )
    mistral = AutoConfig.from_pretrained(registry.models["mistral-7b"].config_dir)
    assert (mistral.hidden_size, mistral.num_hidden_layers, mistral.vocab_size) == (4096, 32, 32768)


def test_shipped_gemma_folder_takes_the_embedded_models_tokenizer():
    folder = prepare_shipped(load_registry().models["gemma-12b"])  # tokenizer from the embedded 270M
    assert json.loads((folder / "config.json").read_text())["hidden_size"] == 3840
    assert (folder / "tokenizer.json").is_file() and (folder / "chat_template.jinja").is_file()
    assert not embedded.verify_folder(folder)


def test_out_of_memory_becomes_does_not_fit_with_need_and_have():
    spec = load_registry().models["qwen-14b"]
    assert weights_gib(spec) == pytest.approx(27.57, abs=0.01)
    text = does_not_fit("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.2 GiB", spec, [16376], 0.9)
    assert text == (
        "does not fit: needs ~27.6 GiB for the weights alone, plus the KV cache; has 14.4 GiB "
        "(90% of 16 GiB on its 1 GPU)"
    )
    assert does_not_fit("ValueError: No available memory for the cache blocks.", spec, [], 0.9).startswith(
        "does not fit"
    )
    assert does_not_fit("RuntimeError: some other failure", spec, [16376], 0.9) is None


def test_random_workload_matches_vllms_random_dataset_shape():
    requests = random_requests("random:512:256:10", seed=3)
    assert len(requests) == 10 and all(len(r.body["prompt"]) == 512 for r in requests)
    assert all(r.max_tokens == 256 and r.body["ignore_eos"] and not r.is_chat for r in requests)
    assert requests == random_requests("random:512:256:10", seed=3)
    for bad in ("random:512:256", "random:a:b:c", "random:0:1:1"):
        with pytest.raises(UsageError, match="--dataset"):  # a usage error (exit 4), not a collection traceback
            parse_random_spec(bad)


@pytest.mark.parametrize(
    ("visible", "args", "expected"),
    [
        (None, {}, [81559]),
        ("2,3", {}, [143771]),
        ("2,3", {"tensor_parallel_size": 2}, [143771, 143771]),
        ("0,1,2,3", {"tensor_parallel_size": 2, "pipeline_parallel_size": 2}, [81559, 81559, 143771, 143771]),
    ],
)
def test_does_not_fit_counts_only_the_cells_gpus(monkeypatch, visible, args, expected):
    from pytest_vllmbench.engines import cell_plan

    host = [gpu.GpuInfo(i, "GPU", 81559 if i < 2 else 143771) for i in range(8)]  # an 8-GPU host, two sizes
    monkeypatch.setattr(cell_plan, "list_gpus", lambda: host)
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    memory = plan_for(engine_arg=[f"{key}={value}" for key, value in args.items()]).gpu_memory_mib
    assert memory == expected
    text = does_not_fit("CUDA out of memory", load_registry().models["qwen-14b"], memory, 0.9)
    assert f"of {sum(expected) / 1024:.0f} GiB on its {len(expected)} GPU" in text


class BusyOnlyInTheBatch(FakeNvml):
    """The FAKE NVML above, idle for 3 samples (a ray round's replicas starting), then busy for 3 (its batch)."""

    def nvmlDeviceGetUtilizationRates(self, handle):
        self.util_reads = getattr(self, "util_reads", 0) + 1
        if self.util_reads >= 8:
            self.sampled.set()
        return types.SimpleNamespace(gpu=100 if 4 <= self.util_reads <= 6 else 0)

    def nvmlDeviceGetPowerUsage(self, handle):
        return 300_000 if 4 <= getattr(self, "util_reads", 0) <= 6 else 100_000


def _sampled_on_a_counting_clock(monkeypatch, fake: BusyOnlyInTheBatch) -> gpu.GpuSampler:
    """Sample n is taken at time n (its util read is the n-th): the batch below is samples 4 to 6."""
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    ticks = iter(range(1, 10_000))
    with gpu.GpuSampler([1], interval_s=0.001, clock=lambda: float(next(ticks))) as sampler:
        assert fake.sampled.wait(30.0), "the sampler never read the GPU"
    return sampler


def test_busy_share_and_power_are_read_over_the_batch_when_the_engine_names_it(monkeypatch):
    sampler = _sampled_on_a_counting_clock(monkeypatch, BusyOnlyInTheBatch())
    whole, batch = sampler.figures(), sampler.figures([(4.0, 6.0)])
    assert whole["gpu_util_mean_pct"] < 50 and batch["gpu_util_mean_pct"] == 100.0
    assert whole["gpu_power_mean_w"] < 200 and batch["gpu_power_mean_w"] == 300.0
    assert batch["peak_vram_mib"] == whole["peak_vram_mib"]  # memory is the whole run's peak
    assert sampler.figures([(10**6, 10**6 + 1)])["gpu_util_mean_pct"] == whole["gpu_util_mean_pct"]  # none inside


class OnePowerReadFails(BusyOnlyInTheBatch):
    def nvmlDeviceGetPowerUsage(self, handle):
        if getattr(self, "util_reads", 0) == 5:
            raise RuntimeError("NVMLError_Unknown (a transient read)")
        return super().nvmlDeviceGetPowerUsage(handle)


def test_a_failed_power_read_leaves_the_batch_power_read_over_the_batch(monkeypatch):
    batch = _sampled_on_a_counting_clock(monkeypatch, OnePowerReadFails()).figures([(4.0, 6.0)])
    assert batch["gpu_power_mean_w"] == 300.0 and batch["gpu_util_mean_pct"] == 100.0
