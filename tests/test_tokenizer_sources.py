"""The offline Mistral and Qwen tokenizers built from PyPI packages: known token ids and chat templates."""

import importlib.metadata
from pathlib import Path

import pytest

from pytest_vllmbench.engines.tokenizer_sources import TokenizerUnavailable, write_tokenizer

MESSAGES = [{"role": "system", "content": "You screen candidates."}, {"role": "user", "content": "Hello, world!"}]


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("qwen")
    assert write_tokenizer("dashscope:qwen2", folder) == {}
    return AutoTokenizer.from_pretrained(folder)


def test_qwen_tokenizer_gives_qwen25s_ids(qwen):
    assert qwen.encode("Hello, world!") == [9707, 11, 1879, 0]
    assert qwen.encode("你好") == [108386]
    assert len(qwen.encode("2026")) == 4  # Qwen2 splits every digit
    assert qwen.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|file_sep|>"]) == [
        151643,
        151644,
        151645,
        151664,
    ]
    assert len(qwen) == 151643 + 22 and qwen.eos_token == "<|im_end|>"


def test_qwen_chat_template_is_chatml_with_the_default_system_prompt(qwen):
    ids = qwen.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True, tokenize=True)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    assert ids[:8] == [151644, 8948, 198, 2610, 525, 1207, 16948, 11]
    text = qwen.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    assert text == (
        "<|im_start|>system\nYou screen candidates.<|im_end|>\n<|im_start|>user\nHello, world!<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_mistral_v3_tokenizer_encodes_the_chat_as_mistral_7b_v03(tmp_path):
    from mistral_common.protocol.instruct.messages import SystemMessage, UserMessage
    from mistral_common.protocol.instruct.request import ChatCompletionRequest
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    assert write_tokenizer("mistral-common:v3", tmp_path) == {"tokenizer_mode": "mistral"}
    tokenizer = MistralTokenizer.from_file(str(tmp_path / "tokenizer.model.v3"))  # as vLLM's mistral mode reads it
    request = ChatCompletionRequest(
        messages=[SystemMessage(content=MESSAGES[0]["content"]), UserMessage(content=MESSAGES[1]["content"])]
    )
    assert tokenizer.encode_chat_completion(request).tokens == [
        1,
        3,
        1763,
        5689,
        12947,
        29491,
        781,
        781,
        16998,
        29493,
        2294,
        29576,
        4,
    ]
    assert tokenizer.instruct_tokenizer.tokenizer.n_words == 32768


def test_a_changed_or_missing_package_file_is_refused_with_how_to_fix_it(monkeypatch, tmp_path):
    changed = tmp_path / "qwen.tiktoken"
    changed.write_text("not the ranks\n")

    class Dist:
        def locate_file(self, path):
            return changed

    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: Dist())
    with pytest.raises(TokenizerUnavailable, match=r"sha256 differs.*pip install 'dashscope==2.0.2'"):
        write_tokenizer("dashscope:qwen2", tmp_path)

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(TokenizerUnavailable, match=r"mistral-common package is not installed"):
        write_tokenizer("mistral-common:v3", tmp_path)
    with pytest.raises(TokenizerUnavailable, match="unknown tokenizer source"):
        write_tokenizer("sentencepiece:other", Path(tmp_path))
