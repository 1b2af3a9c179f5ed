"""A FAKE vLLM batch runner: takes the runner's -i/-o, logs what the real one logs, writes its output format."""

import argparse
import json
import subprocess
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("-i", required=True)
parser.add_argument("-o", required=True)
parser.add_argument("--load-s", type=float, default=0.3)
parser.add_argument("--batch-s", type=float, default=0.4)
parser.add_argument("--exit-s", type=float, default=0.3)
parser.add_argument("--fail", choices=["before", "engine-core", "after", "garbage"], default=None)
parser.add_argument("--worker-pid-file", default=None)
args, _ = parser.parse_known_args()

if args.worker_pid_file:  # an engine-core-like child that never exits by itself
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(args.worker_pid_file, "w") as out:
        out.write(str(worker.pid))
time.sleep(args.load_s)
if args.fail == "before":
    print("ValueError: not enough memory for the KV cache", flush=True)
    sys.exit(3)
if args.fail == "engine-core":  # as vLLM logs a failed engine-core start: its error, then the front end's traceback
    core = "(EngineCore pid=7) ERROR 12-06 11:40:02 [core.py:1510]"
    print(f"{core} EngineCore failed to start.\n{core} Traceback (most recent call last):", flush=True)
    print(f"{core} ValueError: Available memory on node 0 (3.1/23.5 GiB) on startup is less than desired", flush=True)
    print("Traceback (most recent call last):\n" + '  File "x.py", line 1, in f\n    f()\n' * 30, end="", flush=True)
    print("RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}")
    sys.exit(1)
print(f"INFO run_batch.py: Reading batch from {args.i}...", flush=True)
with open(args.i, encoding="utf-8") as batch:
    lines = [json.loads(line) for line in batch if line.strip()]
time.sleep(args.batch_s)
print(
    f"Running batch: 100% Completed | {len(lines)}/{len(lines)} [00:01<00:00, 9.00req/s]", file=sys.stderr, flush=True
)
if args.fail == "after":
    print("RuntimeError: engine core died", flush=True)
    sys.exit(1)
with open(args.o, "w", encoding="utf-8") as out:
    if args.fail == "garbage":
        out.write("not json\n")
    for n, line in enumerate(lines):
        body = line["body"]
        if body["messages"][0]["content"] == "refuse me":
            item = {
                "id": f"vllm-{n}",
                "custom_id": line["custom_id"],
                "response": {"status_code": 400, "request_id": "x", "body": None},
                "error": {"error": {"message": "bad", "code": 400}},
            }
        else:
            text = json.dumps({"max_tokens": body["max_tokens"], "model": body["model"], "stream": "stream" in body})
            item = {
                "id": f"vllm-{n}",
                "custom_id": line["custom_id"],
                "error": None,
                "response": {
                    "status_code": 200,
                    "request_id": "x",
                    "body": {
                        "choices": [
                            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}
                        ],
                        "usage": {"prompt_tokens": 10 + n, "completion_tokens": body["max_tokens"], "total_tokens": 0},
                    },
                },
            }
        out.write(json.dumps(item) + "\n")
time.sleep(args.exit_s)
