"""The share of RAM a real-engine test's CPU engine reserves, smaller than the registry's.

On the CPU build, vLLM's gpu_memory_utilization is a share of the machine's RAM that the engine reserves at start
and fails to start without ('Available memory ... on startup is less than desired CPU memory utilization'). The
registry's 0.3 is 7.4 GiB of a 24 GiB CI machine, and `make test-engine` runs two engine tests at once: beside the
sweep's server and the two-node Ray cluster, 2.9 GiB was left, and a batch runner starting then failed in CI.
At 0.1 (2.4 GiB) the embedded model still has room for tens of thousands of tokens of KV cache, far more than a
test's few short requests need. Tests of the plugin's own share (the registry's, split between xdist workers) and
of a KV cache too small keep their settings."""

TEST_SHARE = 0.1
TEST_SHARE_ARG = f"gpu_memory_utilization={TEST_SHARE}"
