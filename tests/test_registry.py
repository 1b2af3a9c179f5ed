import pytest

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.config.registry import load_registry

REQUIRED = ("gemma-270m", "gemma-1b", "gemma-4b", "gemma-12b", "gemma-12b-4bit", "mistral-7b", "qwen-14b")


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def test_registry_has_the_seed_models(registry):
    assert set(REQUIRED) <= set(registry.models)
    assert registry.models["gemma-12b-4bit"].source == "unsloth/gemma-3-12b-it-unsloth-bnb-4bit"
    assert registry.models["gemma-12b-4bit"].engine_args["quantization"] == "bitsandbytes"
    assert registry.models["mistral-7b"].source == "mistralai/Mistral-7B-Instruct-v0.3"
    assert registry.models["qwen-14b"].source == "Qwen/Qwen2.5-14B-Instruct"
    assert registry.models["gemma-270m"].embedded


@pytest.mark.parametrize("name", ["gemma-12b", "gemma3:12b", "google/gemma-3-12b-it"])
def test_alias_ollama_tag_and_hf_id_resolve_to_the_same_model(registry, name):
    assert registry.resolve(name).alias == "gemma-12b"


def test_unknown_hf_id_and_local_path_are_used_raw(registry, tmp_path):
    raw = registry.resolve("someorg/some-model")
    assert (raw.alias, raw.source, raw.engine_args) == ("some-model", "someorg/some-model", {})
    assert registry.resolve(str(tmp_path)).source == str(tmp_path)


@pytest.mark.parametrize("name", ["gemma-13b", "llama3:8b", "a/b/c", "not a model"])
def test_unknown_name_is_a_usage_error_listing_aliases(registry, name):
    with pytest.raises(UsageError) as info:
        registry.resolve(name)
    assert name in str(info.value)
    assert all(alias in str(info.value) for alias in REQUIRED)


def test_platform_args_apply_and_model_args_win(registry):
    spec = registry.models["gemma-270m"]
    cpu = registry.engine_args_for(spec, "cpu")
    assert cpu["gpu_memory_utilization"] == 0.3 and cpu["enforce_eager"] is True
    assert cpu["max_model_len"] == spec.engine_args["max_model_len"]
    assert "gpu_memory_utilization" not in registry.engine_args_for(spec, "cuda")


def test_broken_registry_file_names_the_file(tmp_path):
    bad = tmp_path / "models.toml"
    bad.write_text("[models.x]\nollama = 'x:1'\n")
    with pytest.raises(UsageError, match=r"models\.toml:1: model registry key models\.x\.hf_id: expected"):
        load_registry(bad)
    bad.write_text("[models\n")
    with pytest.raises(UsageError, match="cannot read"):
        load_registry(bad)
