"""--ray-address: which cluster a ray cell joins, how the address is saved, and that no token is ever kept."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.common.redaction import address_without_credentials
from pytest_vllmbench.config.settings import merge_sources, resolve
from pytest_vllmbench.engines import ray_data
from pytest_vllmbench.engines.base import EngineStartError

ROOT = Path("/project")


def settings_from(cli, ini=None):
    return resolve(merge_sources(cli, {}, ini or {}), ROOT)


def test_the_option_and_its_ini_twin_reach_the_settings_of_ray_cells():
    assert settings_from({"mode": ["ray"], "ray_address": "10.0.0.5:6379"}).ray_address == "10.0.0.5:6379"
    assert settings_from({"mode": ["ray"]}, {"ray_address": "auto"}).ray_address == "auto"
    assert settings_from({"mode": ["ray"]}).ray_address is None


def test_a_ray_address_without_ray_mode_is_a_usage_error_that_shows_no_token():
    with pytest.raises(UsageError, match="only used by ray mode: add --mode=ray") as info:
        settings_from({"mode": ["offline"], "ray_address": "ray://bob:s3cr3t-token@head:10001"})
    assert "s3cr3t-token" not in str(info.value) and "head:10001" in str(info.value)


def test_an_address_with_spaces_is_a_usage_error():
    with pytest.raises(UsageError, match="--ray-address expects HOST:PORT"):
        settings_from({"mode": ["ray"], "ray_address": "head 6379"})


@pytest.mark.parametrize(
    ("address", "saved"),
    [
        ("10.0.0.5:6379", "10.0.0.5:6379"),
        ("ray://head:10001", "ray://head:10001"),
        ("auto", "auto"),
        ("ray://bob:tok@head:10001", "head:10001"),
        ("ray://head:10001?token=abc", "head:10001"),
        ("tok@10.0.0.5:6379", "10.0.0.5:6379"),
        ("ray://u:p@[::1]:10001/x#frag", "[::1]:10001"),
    ],
)
def test_an_address_is_saved_as_given_or_as_host_and_port_when_it_carries_credentials(address, saved):
    assert address_without_credentials(address) == saved


HOSTS = st.from_regex(r"[a-z][a-z0-9.-]{0,20}", fullmatch=True)
SECRETS = st.from_regex(r"[A-Za-z0-9_~-]{6,30}", fullmatch=True)


@given(host=HOSTS, port=st.integers(1, 65535), user=SECRETS, token=SECRETS, scheme=st.sampled_from(["", "ray://"]))
def test_no_credential_survives_in_a_saved_address(host, port, user, token, scheme):
    for address in (f"{scheme}{user}:{token}@{host}:{port}", f"{scheme}{host}:{port}?auth_token={token}"):
        assert address_without_credentials(address) == f"{host}:{port}"


def test_the_option_beats_ray_address_which_beats_a_local_instance(monkeypatch):
    joined = []

    class Recorder:
        def __init__(self, model, engine_args, platform, address=None):
            joined.append(address)

    monkeypatch.setattr(ray_data, "ray_available", lambda: None)
    monkeypatch.setattr(ray_data, "RayDataEngine", Recorder)

    def plan(address):
        settings = SimpleNamespace(ray_address=address, server_timeout=600.0)
        return SimpleNamespace(model_source="m", engine_args={}, platform="cpu", settings=settings)

    monkeypatch.setenv("RAY_ADDRESS", "env-head:6379")
    ray_data.start(plan("option-head:6379"))
    ray_data.start(plan(None))
    monkeypatch.delenv("RAY_ADDRESS")
    ray_data.start(plan(None))
    assert joined == ["option-head:6379", "env-head:6379", None]


def test_without_an_address_ray_starts_its_own_instance_never_one_found_on_the_machine(monkeypatch):
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    calls = []

    def refuse(**kwargs):
        calls.append(kwargs)
        raise ConnectionError("no cluster (the test refuses every join)")

    monkeypatch.setattr(ray, "init", refuse)
    with pytest.raises(EngineStartError, match=r"ray.init\(local\) failed"):
        ray_data.RayDataEngine("m", {}, "cpu")
    assert calls[0]["address"] == "local"  # a bare ray.init() would join the last cluster `ray start` left here


def test_a_failed_join_names_host_and_port_and_never_the_token(monkeypatch):
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    address = "ray://bob:s3cr3t-token@head:10001"

    def refuse(**kwargs):
        raise ConnectionError(f"could not reach {kwargs['address']}")  # Ray may echo the address it was given

    monkeypatch.setattr(ray, "init", refuse)
    with pytest.raises(EngineStartError) as info:
        ray_data.RayDataEngine("m", {}, "cpu", address)
    assert "ray.init(head:10001) failed" in str(info.value)
    assert "s3cr3t-token" not in str(info.value) and "bob" not in str(info.value)


def test_a_model_with_only_mistral_tokenizer_files_is_skipped_before_ray_starts(monkeypatch):
    from pytest_vllmbench.engines.base import CellSkip

    monkeypatch.setattr(ray_data, "ray_available", lambda: None)
    monkeypatch.setattr(ray_data, "RayDataEngine", lambda *args: pytest.fail("ray must not start for it"))
    settings = SimpleNamespace(ray_address=None, server_timeout=600.0)
    plan = SimpleNamespace(
        model_source="m", engine_args={"tokenizer_mode": "mistral"}, platform="cuda", settings=settings
    )
    with pytest.raises(CellSkip, match=r"AutoProcessor.*tokenizer_mode=mistral.*offline or as a server"):
        ray_data.start(plan)
