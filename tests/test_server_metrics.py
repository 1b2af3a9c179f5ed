"""Server-side metrics: Prometheus text parsed by prometheus-client's parser, sampled while a cell runs."""

import pytest
from openai_stub import StubServer

from pytest_vllmbench.measure.server_metrics import MetricsSampler, MetricsSource, parse, summarize

SCRAPE = """# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{{engine="0",model_name="m"}} {kv}
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{{engine="0",model_name="m"}} {running}
vllm:num_requests_running{{engine="1",model_name="m"}} 1.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{{engine="0",model_name="m"}} {waiting}
# TYPE vllm:num_preemptions counter
vllm:num_preemptions_total{{engine="0",model_name="m"}} {preempted}
vllm:num_preemptions_created{{engine="0",model_name="m"}} 1.7e9
# TYPE vllm:prefix_cache_queries counter
vllm:prefix_cache_queries_total{{engine="0",model_name="m"}} {queries}
# TYPE vllm:prefix_cache_hits counter
vllm:prefix_cache_hits_total{{engine="0",model_name="m"}} {hits}
"""


def scrape(kv=0.0, running=0, waiting=0, preempted=0, queries=0, hits=0):
    return SCRAPE.format(kv=kv, running=running, waiting=waiting, preempted=preempted, queries=queries, hits=hits)


def test_one_scrape_sums_engines_and_reads_counters_without_their_created_stamp():
    found = parse(scrape(kv=0.5, running=3, waiting=2, preempted=4, queries=100, hits=25))
    assert found == {
        "kv_cache_usage_pct": 50.0,
        "requests_running": 4.0,
        "requests_waiting": 2.0,
        "preemptions": 4.0,
        "prefix_cache_queries": 100.0,
        "prefix_cache_hits": 25.0,
    }


def test_nan_and_infinities_are_left_out_so_the_saved_run_stays_strict_json():
    text = scrape(kv="NaN", running="+Inf", waiting=1e308, preempted=1)
    text += 'vllm:num_requests_waiting{engine="1",model_name="m"} 1e308\n'  # two finite values, an infinite sum
    found = parse(text)
    assert found == {"preemptions": 1.0, "prefix_cache_queries": 0.0, "prefix_cache_hits": 0.0}


def test_finite_samples_that_add_up_past_a_floats_range_are_saved_as_unknown():
    samples = [{"requests_running": 1e308, "preemptions": -1e308}, {"requests_running": 1e308, "preemptions": 1e308}]
    figures = summarize(samples)
    assert figures["requests_running_mean"] is None and figures["preemptions"] is None
    assert figures["requests_running_peak"] == 1e308


def test_older_vllm_names_are_read_too():
    older = '# TYPE vllm:gpu_cache_usage_perc gauge\nvllm:gpu_cache_usage_perc{model_name="m"} 0.125\n'
    assert parse(older) == {"kv_cache_usage_pct": 12.5}


def test_a_cell_keeps_peak_and_mean_of_gauges_and_the_growth_of_counters():
    samples = [
        parse(scrape(kv=0.1, running=1, preempted=2, queries=10, hits=0)),
        parse(scrape(kv=0.9, running=7, waiting=5, preempted=5, queries=110, hits=40)),
        parse(scrape(kv=0.2, running=1, preempted=6, queries=210, hits=80)),
    ]
    figures = summarize(samples)
    assert figures["kv_cache_usage_pct_peak"] == 90.0
    assert figures["kv_cache_usage_pct_mean"] == pytest.approx(40.0)
    assert (figures["requests_running_peak"], figures["requests_waiting_peak"]) == (8.0, 5.0)
    assert figures["preemptions"] == 4.0  # 6 - 2: only what happened during the cell
    assert figures["prefix_cache_hit_rate"] == 0.4  # 80 hits of 200 queries during the cell
    assert figures["samples"] == 3


def test_the_sampler_reads_a_server_that_has_metrics():
    with (
        StubServer(["m"], metrics=scrape(kv=0.3, running=2)) as stub,
        MetricsSampler(MetricsSource(f"http://127.0.0.1:{stub.port}/metrics", {}), interval_s=0.01) as sampler,
    ):
        pass
    figures = sampler.figures()
    assert figures["kv_cache_usage_pct_peak"] == 30.0 and figures["samples"] >= 2


@pytest.mark.parametrize("metrics", [None, "plain text that is no Prometheus exposition {{{", "# only a comment\n"])
def test_an_endpoint_without_usable_metrics_is_simply_not_sampled(metrics):
    with StubServer(["m"], metrics=metrics) as stub:
        with MetricsSampler(MetricsSource(f"http://127.0.0.1:{stub.port}/metrics", {}), interval_s=0.01) as sampler:
            pass
        asked = [seen["path"] for seen in stub.seen]
    assert sampler.figures() is None
    assert asked == ["/metrics"]  # asked once, then left alone
