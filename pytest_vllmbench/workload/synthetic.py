"""A deterministic synthetic candidate-screening batch, with gold labels in a side file."""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pytest_vllmbench.common.cut import one_line, shown
from pytest_vllmbench.common.files import atomic_writer, first_line_json, refuse_foreign
from pytest_vllmbench.workload.gold import gold_path_for

DEFAULT_MODEL = "gemma3:12b"  # the seed's batch file names the Ollama tag
REQUIRED_SKILLS = ("python", "sql", "statistics")
SKILLS = (
    "python",
    "sql",
    "statistics",
    "java",
    "go",
    "kubernetes",
    "spark",
    "excel",
    "tableau",
    "pytorch",
    "react",
    "typescript",
    "airflow",
    "dbt",
    "rust",
    "terraform",
    "communication",
    "project management",
    "a/b testing",
    "forecasting",
)
ROLES = (
    "Data Analyst",
    "Backend Engineer",
    "Data Scientist",
    "Product Manager",
    "ML Engineer",
    "Frontend Developer",
    "BI Developer",
    "Site Reliability Engineer",
    "Research Assistant",
)
SCHOOLS = ("State University", "Polytechnic Institute", "Community College", "Open University", "Technical University")
DEGREES = ("BSc Computer Science", "BA Economics", "MSc Statistics", "BSc Mathematics", "MBA", "PhD Physics")
FIRST = ("Ana", "Bo", "Chen", "Dara", "Eli", "Farah", "Goran", "Hana", "Ivo", "Jia", "Kofi", "Lena", "Malik", "Noor")
LAST = ("Silva", "Okafor", "Nguyen", "Kowalski", "Haddad", "Larsen", "Mehta", "Rossi", "Tanaka", "Ibrahim")

RUBRIC = (
    "You screen candidates for a Senior Data Analyst opening. Advance a candidate only if the "
    "profile shows at least 4 years of relevant experience and at least two of: Python, SQL, "
    "statistics. Answer with one JSON object and nothing else: "
    '{"decision": "advance" | "reject", "score": 1-5, "reason": "<one sentence>"}'
)


def gold_label(years: int, skills: list[str]) -> str:
    matched = sum(skill in skills for skill in REQUIRED_SKILLS)
    return "advance" if years >= 4 and matched >= 2 else "reject"


def _profile(rng: random.Random) -> tuple[str, str]:
    years = rng.randint(0, 15)
    skills = rng.sample(SKILLS, rng.randint(2, 8))
    jobs = []
    for _ in range(rng.randint(1, 5)):
        duties = ", ".join(rng.sample(SKILLS, rng.randint(1, 4)))
        jobs.append(f"- {rng.choice(ROLES)}, {rng.randint(1, 6)} years: worked with {duties}.")
    profile = "\n".join(
        [
            f"Name: {rng.choice(FIRST)} {rng.choice(LAST)}",
            f"Total relevant experience: {years} years",
            f"Education: {rng.choice(DEGREES)}, {rng.choice(SCHOOLS)}",
            f"Skills: {', '.join(skills)}",
            "Experience:",
            *jobs,
            f"Summary: {' '.join(rng.choice(SKILLS) for _ in range(rng.randint(3, 40)))}",
        ]
    )
    return profile, gold_label(years, skills)


def generate(n: int, seed: int, model: str = DEFAULT_MODEL) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(batch line, gold line) pairs; the same (n, seed, model) always gives the same pairs."""
    rng = random.Random(seed)
    for index in range(n):
        profile, label = _profile(rng)
        custom_id = f"candidate-{index:06d}"
        line = {
            "custom_id": custom_id,
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": model,
                "messages": [
                    {"role": "system", "content": RUBRIC},
                    {"role": "user", "content": f"Candidate profile:\n{profile}"},
                ],
                "max_tokens": 96,
                "temperature": 0.0,
                "response_format": {"type": "json_object"},
            },
        }
        yield line, {"custom_id": custom_id, "decision": label}


MAX_REQUESTS = 100_000_000


def _our_batch(path: Path) -> bool:
    """Whether a batch file is one this generator wrote: its first line is the first it writes, for any n and seed."""
    first = first_line_json(path)
    body = first.get("body") if isinstance(first, dict) else None
    messages = body.get("messages") if isinstance(body, dict) else None
    return (
        isinstance(first, dict)
        and first.get("custom_id") == "candidate-000000"
        and isinstance(messages, list)
        and messages[:1] == [{"role": "system", "content": RUBRIC}]
    )


def _our_gold(path: Path) -> bool:
    first = first_line_json(path)
    return (
        isinstance(first, dict) and set(first) == {"custom_id", "decision"} and first["custom_id"] == "candidate-000000"
    )


def check_names(out: str, model: str) -> None:
    """ValueError unless `out` names a file and `model` is a name the batch validator accepts, on one line."""
    if not Path(out).name:  # '' and '.' name a folder: Path('') is Path('.')
        raise ValueError(f"--out must name a file, got {out!r}")
    if not model.strip():
        raise ValueError(f"--model must name a model, got {shown(model)}")
    if one_line(model) != model:  # it would break the lines of every message and table that shows it
        raise ValueError(f"--model must hold no line break or control character, got {shown(model)}")


def check_room(out: Path, n: int, seed: int, model: str) -> None:
    """ValueError unless 1 <= n <= MAX_REQUESTS and the files fit in the free space of `out`'s folder."""
    if not 1 <= n <= MAX_REQUESTS:
        raise ValueError(f"--n must be from 1 to {MAX_REQUESTS:,}, got {n}")
    sample = list(generate(min(n, 200), seed, model))
    per_request = sum(len(json.dumps(line)) + len(json.dumps(label)) + 2 for line, label in sample) / len(sample)
    needed = 2 * per_request * n  # the files and, until each is renamed, their temporary copies
    folder = out.parent if out.parent.exists() else Path(".")
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise ValueError(f"{n:,} requests need ~{needed / 1e9:,.1f} GB while written; {free / 1e9:,.1f} GB is free")


def write_dataset(out: Path, n: int, seed: int, model: str = DEFAULT_MODEL) -> Path:
    """Write the batch file and its gold side file atomically; returns the gold file's path. OSError when either
    exists and was not written by this generator (it is never overwritten)."""
    gold = gold_path_for(out)
    refuse_foreign(out, _our_batch)
    refuse_foreign(gold, _our_gold)
    with atomic_writer(out) as batch_file, atomic_writer(gold) as gold_file:
        for line, label in generate(n, seed, model):
            batch_file.write(json.dumps(line, ensure_ascii=False) + "\n")
            gold_file.write(json.dumps(label) + "\n")
    return gold
