"""Offline builds the same vLLM sampling as the OpenAI server does from the same body."""

import pytest

from pytest_vllmbench.engines.base import SamplingOverrides
from pytest_vllmbench.workload.batch import BatchRequest
from pytest_vllmbench.workload.batch_line import SAMPLING_FIELDS

CHAT = "/v1/chat/completions"
# a non-default value for every sampling field the validator admits, and the SamplingParams it must become
FIELD_VALUES = {
    "max_tokens": (7, {"max_tokens": 7}),
    "max_completion_tokens": (9, {"max_tokens": 9}),
    "n": (3, {"n": 3}),
    "temperature": (0.5, {"temperature": 0.5}),
    "top_p": (0.5, {"top_p": 0.5}),
    "top_k": (5, {"top_k": 5}),
    "min_p": (0.1, {"min_p": 0.1}),
    "presence_penalty": (0.5, {"presence_penalty": 0.5}),
    "frequency_penalty": (-0.5, {"frequency_penalty": -0.5}),
    "repetition_penalty": (1.2, {"repetition_penalty": 1.2}),
    "seed": (11, {"seed": 11}),
    "stop": (["\n"], {"stop": ["\n"]}),
    "stop_token_ids": ([3], {"stop_token_ids": [3]}),
    "ignore_eos": (True, {"ignore_eos": True}),
    "min_tokens": (2, {"min_tokens": 2}),
    "logit_bias": ({"12": -5}, {"logit_bias": {12: -5.0}}),
    "logprobs": (True, {"logprobs": 0}),
    "include_stop_str_in_output": (True, {"include_stop_str_in_output": True}),
    "skip_special_tokens": (False, {"skip_special_tokens": False}),
    "spaces_between_special_tokens": (False, {"spaces_between_special_tokens": False}),
    "response_format": ({"type": "json_object"}, {}),  # becomes structured_outputs in offline.py
}


def test_every_admitted_sampling_field_has_an_offline_mapping():
    assert set(FIELD_VALUES) == set(SAMPLING_FIELDS)


@pytest.mark.parametrize("field", sorted(FIELD_VALUES))
def test_each_body_field_reaches_the_offline_sampling_params(field):
    value, expected = FIELD_VALUES[field]
    request = BatchRequest("a", CHAT, {"model": "m", "messages": [], field: value}, 1)
    params = SamplingOverrides().engine_params(request)
    assert expected.items() <= params.items()


def test_chat_top_logprobs_is_the_count_and_generation_defaults_apply_only_when_unset():
    request = BatchRequest(
        "a", CHAT, {"model": "m", "messages": [], "logprobs": True, "top_logprobs": 4, "temperature": 0.3}, 1
    )
    params = SamplingOverrides().engine_params(request, {"temperature": 1.0, "top_k": 64, "max_tokens": 1})
    assert (params["logprobs"], params["temperature"], params["top_k"], params["max_tokens"]) == (4, 0.3, 64, 256)
    completion = BatchRequest("b", "/v1/completions", {"model": "m", "prompt": "x", "logprobs": 2}, 1)
    assert SamplingOverrides().engine_params(completion)["logprobs"] == 2
