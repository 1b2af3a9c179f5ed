"""Dummy-weight sizing: where the config and tokenizer come from, the labels, the random 4-bit checkpoint."""

import json
import shutil
from pathlib import Path

import pytest
from engine_memory import TEST_SHARE_ARG

from pytest_vllmbench.config.matrix import Cell
from pytest_vllmbench.config.registry import load_registry
from pytest_vllmbench.config.settings import merge_sources, resolve
from pytest_vllmbench.engines import dummy_weights as sizing
from pytest_vllmbench.engines import embedded_model as embedded
from pytest_vllmbench.engines.base import CellSkip
from pytest_vllmbench.engines.cell_plan import CellPlan, DummySources, plan_cell
from pytest_vllmbench.results.labels import cell_label, model_label
from pytest_vllmbench.results.saved_run import SavedCell

REPO = Path(__file__).resolve().parents[1]
TINY_GEMMA3 = {
    "architectures": ["Gemma3ForCausalLM"],
    "model_type": "gemma3_text",
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 64,
    "vocab_size": 262144,
    "max_position_embeddings": 2048,
    "sliding_window": 512,
    "layer_types": ["sliding_attention", "full_attention"],
    "query_pre_attn_scalar": 64,
    "bos_token_id": 2,
    "eos_token_id": 1,
    "pad_token_id": 0,
    "dtype": "bfloat16",
    "tie_word_embeddings": True,
}


def plan(cell, settings, registry) -> CellPlan:
    return plan_cell(cell, settings, registry, DummySources())  # a session of its own: nothing found before


def tiny_model_folder(folder: Path, tokenizer: bool = True) -> Path:
    """A tiny Gemma 3 text config with the embedded model's tokenizer copied in: a user's own model folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(TINY_GEMMA3))
    if tokenizer:
        source = embedded.ensure_prepared("gemma-270m")
        for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
            shutil.copy2(source / name, folder / name)
    return folder


def settings_for(**cli):
    return resolve(merge_sources({"mode": ["offline"]} | cli, {}, {}), REPO)


def offline_cell(name: str) -> Cell:
    return Cell(load_registry().resolve(name), "offline", name)


def test_a_local_folder_uses_its_own_config_and_tokenizer(tmp_path):
    folder = tiny_model_folder(tmp_path / "my-model")
    registry, cell = load_registry(), offline_cell(str(folder))
    settings = settings_for(load_format="dummy")
    assert plan(cell, settings, registry).model_source == str(folder)
    info = plan(cell, settings, registry).weights_info()
    # saved runs hold no machine path: the folder is named by its last part
    assert info == {"weights": "dummy weights", "dummy_source": f"own config and tokenizer: local folder {folder.name}"}
    assert plan(cell, settings, registry).engine_args["load_format"] == "dummy"


def test_a_local_folder_without_a_tokenizer_is_skipped_naming_what_is_missing(tmp_path):
    folder = tiny_model_folder(tmp_path / "bare", tokenizer=False)
    with pytest.raises(CellSkip, match=r"bare: .* has no tokenizer file \(tokenizer.json.*copy them"):
        _ = plan(offline_cell(str(folder)), settings_for(load_format="dummy"), load_registry()).model_source


def test_a_hub_id_uses_the_hubs_config_and_tokenizer_when_it_answers(tmp_path, monkeypatch):
    snapshot = tiny_model_folder(tmp_path / "snapshot")
    asked = []
    monkeypatch.setattr(sizing, "_hub_snapshot", lambda repo: asked.append(repo) or snapshot)
    registry, settings, one_session = load_registry(), settings_for(load_format="dummy"), DummySources()
    offline, server = offline_cell("qwen-14b"), Cell(registry.resolve("qwen-14b"), "server", "qwen-14b")
    assert plan_cell(offline, settings, registry, one_session).model_source == str(snapshot)
    assert (
        plan_cell(server, settings, registry, one_session).weights_info()["dummy_source"]
        == "own config and tokenizer: hub Qwen/Qwen2.5-14B-Instruct"
    )
    assert asked == ["Qwen/Qwen2.5-14B-Instruct"]  # asked once per session, whatever the cells of the model


def test_offline_falls_back_to_the_shipped_config_and_packaged_tokenizer(tmp_path, monkeypatch):
    monkeypatch.setenv("VLLMBENCH_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    registry, settings = load_registry(), settings_for(load_format="dummy")
    mistral = offline_cell("mistral-7b")
    folder = Path(plan(mistral, settings, registry).model_source)
    assert folder == tmp_path / "models" / "dummy" / "mistral-7b"
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "tokenizer.model.v3", embedded.MANIFEST]
    assert plan(mistral, settings, registry).engine_args["tokenizer_mode"] == "mistral"
    assert (
        plan(mistral, settings, registry)
        .weights_info()["dummy_source"]
        .startswith("shipped config data/configs/mistral-7b + tokenizer mistral-common:v3")
    )
    assert not embedded.verify_folder(folder)
    qwen = Path(plan(offline_cell("qwen-14b"), settings, registry).model_source)
    assert (qwen / "tokenizer.json").is_file() and "tokenizer_mode" not in plan(
        offline_cell("qwen-14b"), settings, registry
    ).engine_args


def test_a_model_with_neither_is_skipped_saying_how_to_provide_them(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CellSkip, match=r"gemma-3-27b-it: no config and tokenizer.*no shipped config.*--model=/path/to"):
        _ = plan(offline_cell("google/gemma-3-27b-it"), settings_for(load_format="dummy"), load_registry()).model_source


def test_engine_arg_load_format_is_labelled_like_the_option(tmp_path):
    folder = tiny_model_folder(tmp_path / "my-model")
    registry, cell = load_registry(), offline_cell(str(folder))
    by_option, by_arg = settings_for(load_format="dummy"), settings_for(engine_arg=["load_format=dummy"])
    assert plan(cell, by_arg, registry).model_source == plan(cell, by_option, registry).model_source == str(folder)
    assert plan(cell, by_arg, registry).weights_info() == plan(cell, by_option, registry).weights_info() != {}
    saved = SavedCell.of(
        {
            "cell": cell.id,
            "model": cell.model.alias,
            "engine_args": plan(cell, by_arg, registry).engine_args,
            **plan(cell, by_arg, registry).weights_info(),
        }
    )
    assert model_label(saved).endswith("[d]") and cell_label(saved).endswith("[d]")
    assert plan(cell, settings_for(), registry).weights_info() == {}  # real weights carry no label


def test_bitsandbytes_cells_are_labelled_as_random_weights_quantized_in_flight(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    registry, cell, settings = load_registry(), offline_cell("gemma-12b-4bit"), settings_for(load_format="dummy")
    assert (
        plan(cell, settings, registry).weights_info()["weights"] == "bitsandbytes 4-bit, in-flight from random weights"
    )
    # vLLM's bitsandbytes loader is GPU-only: on this machine the cell is skipped, saying so
    with pytest.raises(CellSkip, match="NVIDIA GPUs only"):
        _ = plan(cell, settings, registry).model_source
    model = sizing.DummyModel("/models/x", "test")
    assert "load_format" not in sizing.vllm_args(plan(cell, settings, registry).engine_args, model)


def test_random_checkpoint_has_the_models_names_and_shapes(tmp_path):
    import torch
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    from pytest_vllmbench.engines.random_checkpoint import write_random_checkpoint

    folder = tiny_model_folder(tmp_path / "tiny")
    written = write_random_checkpoint(folder, folder, device="cpu")
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    stored = {}
    for name, filename in index["weight_map"].items():
        with safe_open(folder / filename, "pt") as handle:
            stored[name] = handle.get_tensor(name)
    reference = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16)  # loads the random weights
    expected = {name: tuple(t.shape) for name, t in reference.state_dict().items() if name != "lm_head.weight"}
    assert {name: tuple(t.shape) for name, t in stored.items()} == expected
    assert reference.config.tie_word_embeddings and "lm_head.weight" not in stored  # tied, stored once
    assert all(t.dtype == torch.bfloat16 and t.abs().max() <= 1e-3 for t in stored.values())
    assert written == sum(t.numel() * 2 for t in stored.values())
    loaded = reference.state_dict()["model.layers.0.mlp.up_proj.weight"]
    assert torch.equal(loaded, stored["model.layers.0.mlp.up_proj.weight"])


@pytest.mark.engine
def test_dummy_weight_sizing_of_a_local_folder_runs_on_the_cpu_engine(tmp_path):
    from procs import run_bench_isolated

    folder = tiny_model_folder(tmp_path / "my-model")
    args = [
        f"--model={folder}",
        "--mode=offline",
        "--load-format=dummy",
        f"--engine-arg={TEST_SHARE_ARG}",
        f"--dataset={REPO / 'data' / 'batch_5k.jsonl'}",
        "--limit=4",
        "--max-tokens=8",
        "--ignore-eos",
        "--benchmark-save=dummy",
    ]
    result, leftovers = run_bench_isolated(tmp_path, args, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    assert leftovers == []
    [saved] = (tmp_path / ".benchmarks").glob("*/0001_dummy.json")
    extra = json.loads(saved.read_text())["benchmarks"][0]["extra_info"]
    assert extra["weights"] == "dummy weights" and extra["engine_args"]["load_format"] == "dummy"
    assert extra["dummy_source"] == f"own config and tokenizer: local folder {folder.name}"
    assert extra["n_failed"] == 0 and extra["output_tokens"] == 4 * 8  # --ignore-eos: fixed lengths
    report = (tmp_path / "BENCHMARKS.md").read_text()
    shown = f"({TEST_SHARE_ARG}) [d]"  # the report sets a cell run with --engine-arg apart and names the arg
    assert f"my-model {shown}" in report and f"my-model-offline {shown}" in report and "[d] random weights" in report


def test_random_checkpoint_folder_is_built_once_whole_and_without_a_quantization_config(tmp_path, monkeypatch):
    base = tiny_model_folder(tmp_path / "tiny")  # its tokenizer from the real cache: not a fresh embedded model
    monkeypatch.setenv("VLLMBENCH_CACHE", str(tmp_path / "cache"))
    config = json.loads((base / "config.json").read_text())
    (base / "config.json").write_text(json.dumps(config | {"quantization_config": {"quant_method": "bitsandbytes"}}))
    spec = load_registry().resolve(str(base))
    built = Path(sizing.random_checkpoint(sizing.DummyModel(str(base), "test"), spec).path)
    assert "quantization_config" not in json.loads((built / "config.json").read_text())
    assert (built / "tokenizer.json").is_file() and (built / "model.safetensors.index.json").is_file()
    assert not embedded.verify_folder(built) and not [
        p for p in built.parent.glob(".tiny.*") if p.is_dir()
    ]  # no temp folder left
    stamp = (built / "model-00001-of-00001.safetensors").stat().st_mtime_ns
    again = sizing.random_checkpoint(sizing.DummyModel(str(base), "test"), spec)
    assert again.path == str(built) and (built / "model-00001-of-00001.safetensors").stat().st_mtime_ns == stamp


def test_prepare_model_builds_a_checksummed_dummy_folder_and_refuses_models_without_one(tmp_path, monkeypatch, capsys):
    from pytest_vllmbench import cli

    monkeypatch.setenv("VLLMBENCH_CACHE", str(tmp_path))
    assert cli.main(["prepare-model", "mistral-7b", "--verify"]) == 0
    out = capsys.readouterr().out
    assert "verified" in out and out.strip().endswith(str(tmp_path / "models" / "dummy" / "mistral-7b"))
    manifest = json.loads((tmp_path / "models" / "dummy" / "mistral-7b" / embedded.MANIFEST).read_text())
    assert set(manifest["files"]) == {"config.json", "tokenizer.model.v3"}
    assert cli.main(["prepare-model", "google/gemma-3-27b-it"]) == 2
    assert "no shipped config and offline tokenizer" in capsys.readouterr().err
