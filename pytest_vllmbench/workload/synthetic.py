"""A deterministic synthetic candidate-screening batch, with gold labels in a side file."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pytest_vllmbench.common.files import atomic_writer
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


def write_dataset(out: Path, n: int, seed: int, model: str = DEFAULT_MODEL) -> Path:
    """Write the batch file and its gold side file atomically; returns the gold file's path."""
    gold = gold_path_for(out)
    with atomic_writer(out) as batch_file, atomic_writer(gold) as gold_file:
        for line, label in generate(n, seed, model):
            batch_file.write(json.dumps(line, ensure_ascii=False) + "\n")
            gold_file.write(json.dumps(label) + "\n")
    return gold
