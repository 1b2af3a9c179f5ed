"""A random bf16 checkpoint in a model's published shape, for loaders that cannot use dummy weights.

vLLM's bitsandbytes loader reads weight files, so `load_format="dummy"` fails there ("No model weights
found"). Writing random tensors with the names and shapes of the Hugging Face model's state_dict and
letting vLLM quantize them in flight measures the 4-bit model's speed and memory, not its answers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

SHARD_BYTES = 4 * 2**30
# vLLM's own dummy loader draws from this range: small enough that no activation overflows in bf16
LOW, HIGH = -1e-3, 1e-3


def checkpoint_shapes(config_dir: Path) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every stored tensor, from the model class built on the meta device (no memory).

    Tied weights (lm_head tied to the embedding) appear once, as save_pretrained writes them."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(config_dir)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    shapes = {name: tuple(param.shape) for name, param in model.named_parameters()}  # tied ones once
    non_persistent = {
        f"{module_name}.{name}".lstrip(".")
        for module_name, module in model.named_modules()
        for name in module._non_persistent_buffers_set
    }
    shapes |= {name: tuple(buf.shape) for name, buf in model.named_buffers() if name not in non_persistent}
    return shapes


def _shards(shapes: dict[str, tuple[int, ...]]) -> Iterator[list[str]]:
    shard: list[str] = []
    size = 0
    for name, shape in shapes.items():
        nbytes = 2 * _numel(shape)
        if shard and size + nbytes > SHARD_BYTES:
            yield shard
            shard, size = [], 0
        shard.append(name)
        size += nbytes
    if shard:
        yield shard


def _numel(shape: tuple[int, ...]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count


def write_random_checkpoint(config_dir: Path, out: Path, device: str | None = None, seed: int = 0) -> int:
    """Write `model-0000N-of-0000M.safetensors` + index into `out`; returns the bytes written.

    Tensors are made on the GPU when there is one (a 12B model in ~30 s), one shard at a time."""
    import torch
    from safetensors.torch import save_file

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    generator = torch.Generator(device=device).manual_seed(seed)
    shapes = checkpoint_shapes(config_dir)
    shards = list(_shards(shapes))
    weight_map: dict[str, str] = {}
    total = 0
    for number, names in enumerate(shards, start=1):
        filename = f"model-{number:05d}-of-{len(shards):05d}.safetensors"
        tensors = {}
        for name in names:
            tensor = torch.empty(shapes[name], dtype=torch.bfloat16, device=device)
            tensor.uniform_(LOW, HIGH, generator=generator)
            tensors[name] = tensor.cpu()
            weight_map[name] = filename
            total += tensor.numel() * 2
        save_file(tensors, out / filename, metadata={"format": "pt"})
        del tensors
    if device.startswith("cuda"):
        torch.cuda.empty_cache()  # the engine that loads this checkpoint needs the memory
    index = {"metadata": {"total_size": total, "random_weights": True}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    return total
