"""data/models.toml is checked whole before any model is built: each problem a UsageError naming the file, the
TOML line, the key and what was expected (a red-team run found tracebacks and silently accepted values)."""

from pathlib import Path

import pytest

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.config.registry import default_registry_path, load_registry
from pytest_vllmbench.config.toml_lines import line_of

MODEL = '[models.m]\nhf_id = "org/m"\n'

# (registry text, line of the problem, key path, other words the message must hold)
BAD_REGISTRIES = [
    pytest.param("[models]\nx = 5\n", 2, "models.x", ("expected a table", "found 5"), id="models-entry-not-a-table"),
    pytest.param("models = [1]\n", 1, "models", ("expected a table", "found [1] (an array)"), id="models-an-array"),
    pytest.param(
        "[[models]]\nhf_id = 'a/b'\n", 1, "models", ("expected a table", "an array"), id="models-an-array-of-tables"
    ),
    pytest.param(
        MODEL + 'engine_args = "tp=2"\n',
        3,
        "models.m.engine_args",
        ("expected a table", "'tp=2'"),
        id="engine-args-a-string",
    ),
    pytest.param(
        MODEL + "config = 5\n", 3, "models.m.config", ("expected a folder", "found 5"), id="config-not-a-string"
    ),
    pytest.param(
        "[platform]\ncpu = 5\n", 2, "platform.cpu", ("expected a table", "found 5"), id="platform-entry-not-a-table"
    ),
    pytest.param(
        "[platform.cpu]\nengine_args = 5\n",
        2,
        "platform.cpu.engine_args",
        ("expected a table",),
        id="platform-engine-args-not-a-table",
    ),
    pytest.param(
        "[platform.cpu]\nengine_arg = {}\n",
        2,
        "platform.cpu.engine_arg",
        ("unknown key", "engine_args"),
        id="platform-unknown-key",
    ),
    pytest.param(
        "[models.m]\nhf_id = 5\n",
        2,
        "models.m.hf_id",
        ("expected a Hugging Face id", "found 5 (an integer)"),
        id="hf-id-a-number",
    ),
    pytest.param('[models.m]\nhf_id = ""\n', 2, "models.m.hf_id", ("expected a Hugging Face id",), id="hf-id-empty"),
    pytest.param(
        MODEL + 'params_b = "seven"\n',
        3,
        "models.m.params_b",
        ("expected a positive number", "'seven'"),
        id="params-b-a-string",
    ),
    pytest.param(
        MODEL + "params_b = true\n",
        3,
        "models.m.params_b",
        ("expected a positive number", "True (a boolean)"),
        id="params-b-a-bool",
    ),
    pytest.param(
        MODEL + "params_b = nan\n", 3, "models.m.params_b", ("expected a positive number",), id="params-b-nan"
    ),
    pytest.param(
        MODEL + "params_b = -1\n", 3, "models.m.params_b", ("expected a positive number",), id="params-b-negative"
    ),
    pytest.param(
        MODEL + 'embedded = "yes"\n',
        3,
        "models.m.embedded",
        ("expected true or false", "'yes'"),
        id="embedded-a-string",
    ),
    pytest.param(MODEL + "ollama = 5\n", 3, "models.m.ollama", ("expected",), id="ollama-a-number"),
    pytest.param(MODEL + "dtype = 16\n", 3, "models.m.dtype", ("expected",), id="dtype-a-number"),
    pytest.param(MODEL + "notes = [1]\n", 3, "models.m.notes", ("expected a string",), id="notes-an-array"),
    pytest.param(MODEL + "tokenizer = false\n", 3, "models.m.tokenizer", ("expected",), id="tokenizer-a-bool"),
    pytest.param(
        MODEL + "tokenizer_from = 1\n", 3, "models.m.tokenizer_from", ("expected",), id="tokenizer-from-a-number"
    ),
    pytest.param(
        MODEL + 'quant = "x"\n',
        3,
        "models.m.quant",
        ("unknown key", "hf_id", "params_b", "tokenizer_from"),
        id="model-unknown-key",
    ),
    pytest.param(
        "[model.m]\nhf_id = 'a/b'\n", 1, "model", ("unknown key", "models, platform"), id="top-level-unknown-key"
    ),
    pytest.param(
        "[models.m.engine_args]\ndtype = 'x'\n", 1, "models.m.hf_id", ("found no such key",), id="hf-id-missing"
    ),
    pytest.param(
        MODEL + "[models.m.engine_args]\nwhen = 1979-05-27\n",
        4,
        "models.m.engine_args.when",
        ("expected a string",),
        id="engine-arg-a-date",
    ),
    pytest.param(
        MODEL + "[models.m.engine_args]\nswap_space = nan\n",
        4,
        "models.m.engine_args.swap_space",
        ("expected a string, finite number",),
        id="engine-arg-nan",
    ),
    pytest.param(
        MODEL + "engine_args = { a = { b = [1979-05-27] } }\n",
        3,
        "models.m.engine_args.a.b",
        ("a date",),
        id="engine-arg-nested-date",
    ),
    pytest.param(
        MODEL
        + "[models.m.engine_args]\ndtype = 'x'\n[models.n]\nhf_id = 'o/n'\n[models.n.engine_args]\ndtype = 2024-01-01\n",
        8,
        "models.n.engine_args.dtype",
        ("found datetime.date(2024, 1, 1) (a date)",),
        id="second-model-engine-arg",
    ),
    pytest.param(
        "[models.'a.b']\nhf_id = 'o/n'\nembedded = 1\n",
        3,
        "models.'a.b'.embedded",
        ("expected true or false",),
        id="quoted-alias",
    ),
    pytest.param(
        '[models.m]\nnotes = """\n[models.x]\nhf_id = 5\n"""\nhf_id = 5\n',
        6,
        "models.m.hf_id",
        (),
        id="multiline-string-skipped",
    ),
]


@pytest.mark.parametrize(("text", "line", "key", "words"), BAD_REGISTRIES)
def test_malformed_registry_is_a_usage_error_naming_file_line_and_key(
    tmp_path: Path, text: str, line: int, key: str, words: tuple[str, ...]
) -> None:
    registry = tmp_path / "models.toml"
    registry.write_text(text, encoding="utf-8")
    with pytest.raises(UsageError) as info:
        load_registry(registry)
    message = str(info.value)
    assert message.startswith(f"{registry}:{line}: ")
    assert f" {key}: " in message
    assert all(word in message for word in words), message


def test_not_utf8_registry_is_a_usage_error(tmp_path: Path) -> None:
    registry = tmp_path / "models.toml"
    registry.write_bytes(b'[models.m]\nhf_id = "\xff"\n')
    with pytest.raises(UsageError, match="cannot read the model registry"):
        load_registry(registry)


def test_a_key_not_in_the_text_has_no_line() -> None:
    text = "[models.m]\nhf_id = 'a/b'\n"
    assert line_of(text, ("platform", "cpu")) is None
    assert line_of(text, ("models", "m", "hf_id")) == 2
    assert line_of(text, ("models", "m", "engine_args")) == 1  # not written: the nearest table that is


def test_shipped_registry_loads_with_every_key_it_uses() -> None:
    registry = load_registry()
    gemma = registry.models["gemma-270m"]
    assert (gemma.embedded, gemma.params_b, gemma.dtype) == (True, 0.268, "bfloat16")
    assert registry.models["gemma-1b"].config_dir == default_registry_path().parent / "configs/gemma-1b"
    assert registry.models["qwen-14b"].tokenizer == "dashscope:qwen2"
    assert registry.platform_engine_args["cpu"] == {"gpu_memory_utilization": 0.3, "enforce_eager": True}
