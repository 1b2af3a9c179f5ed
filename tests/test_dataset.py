import json

import pytest

from pytest_vllmbench.workload.batch import read_batch
from pytest_vllmbench.workload.gold import gold_path_for
from pytest_vllmbench.workload.synthetic import gold_label, write_dataset


def test_same_seed_gives_byte_identical_files(tmp_path):
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    write_dataset(a, 50, seed=7)
    write_dataset(b, 50, seed=7)
    write_dataset(c, 50, seed=8)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    assert gold_path_for(a).read_bytes() == gold_path_for(b).read_bytes()


def test_dataset_is_valid_and_gold_matches_each_line(tmp_path):
    out = tmp_path / "batch.jsonl"
    gold = write_dataset(out, 200, seed=1)
    requests = read_batch(out)
    labels = [json.loads(x) for x in gold.read_text().splitlines()]
    assert [r.custom_id for r in requests] == [g["custom_id"] for g in labels]
    assert {g["decision"] for g in labels} == {"advance", "reject"}
    assert len({len(r.body["messages"][1]["content"]) for r in requests}) > 50  # varied profile lengths
    assert all(r.body["response_format"] == {"type": "json_object"} for r in requests)


def test_gold_rule():
    assert gold_label(5, ["python", "sql"]) == "advance"
    assert gold_label(3, ["python", "sql", "statistics"]) == "reject"
    assert gold_label(10, ["python", "go"]) == "reject"


def test_committed_sample_is_what_the_generator_writes(tmp_path):
    from pathlib import Path

    committed = Path(__file__).resolve().parents[1] / "data" / "batch_5k.jsonl"
    fresh = tmp_path / "batch_5k.jsonl"
    write_dataset(fresh, 5000, seed=0)
    assert fresh.read_bytes() == committed.read_bytes()
    assert gold_path_for(fresh).read_bytes() == gold_path_for(committed).read_bytes()


def test_make_dataset_never_overwrites_a_file_it_did_not_write_and_rewrites_its_own(tmp_path, monkeypatch, capsys):
    from pytest_vllmbench.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "README.md").write_text("PRECIOUS\n")
    assert main(["make-dataset", "--n", "2", "--out", "README.md"]) == 2
    assert "not written by pytest-vllmbench" in capsys.readouterr().err
    assert (tmp_path / "README.md").read_text() == "PRECIOUS\n" and not (tmp_path / "README.gold.jsonl").exists()
    (tmp_path / "b.gold.jsonl").write_text("PRECIOUS\n")  # its gold side file is someone else's
    assert main(["make-dataset", "--n", "2", "--out", "b.jsonl"]) == 2
    assert (tmp_path / "b.gold.jsonl").read_text() == "PRECIOUS\n" and not (tmp_path / "b.jsonl").exists()
    for seed in ("0", "1"):  # its own files are written again, for another n or seed
        assert main(["make-dataset", "--n", "3", "--seed", seed, "--out", "c.jsonl"]) == 0
    assert len(read_batch(tmp_path / "c.jsonl")) == 3


def test_make_dataset_refuses_a_count_out_of_range_or_beyond_the_free_disk(tmp_path, monkeypatch, capsys):
    import shutil

    from pytest_vllmbench.cli import main

    monkeypatch.chdir(tmp_path)
    for n in ("0", "-1", "100000001"):
        assert main(["make-dataset", "--n", n, "--out", "x.jsonl"]) == 2
        assert "--n must be from 1 to 100,000,000" in capsys.readouterr().err
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 10**6, 10**6))
    assert main(["make-dataset", "--n", "5000", "--out", "x.jsonl"]) == 2
    assert "GB is free" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_make_dataset_writes_into_an_empty_file_such_as_mktemp_makes(tmp_path, monkeypatch):
    from pytest_vllmbench.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "out.jsonl").touch()  # OUT=$(mktemp --suffix .jsonl): nothing in it to lose
    assert main(["make-dataset", "--n", "2", "--out", "out.jsonl"]) == 0
    assert len(read_batch(tmp_path / "out.jsonl")) == 2


def test_a_huge_file_without_line_breaks_is_refused_without_being_read_whole(tmp_path, monkeypatch):
    from pytest_vllmbench.common import files

    big = tmp_path / "big.jsonl"
    big.write_bytes(b"x" * (3 * files.FIRST_LINE_BYTES))
    read: list[int] = []
    real_open = open

    def counting_open(*args, **kwargs):
        handle = real_open(*args, **kwargs)
        real_readline = handle.readline
        handle.readline = lambda size=-1: read.append(size) or real_readline(size)
        return handle

    monkeypatch.setattr("builtins.open", counting_open)
    assert files.first_line_json(big) is None and read == [files.FIRST_LINE_BYTES]


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--model", "", "--model must name a model, got ''"),
        ("--model", "  ", "--model must name a model, got '  '"),
        ("--model", "a\nb", r"--model must hold no line break or control character, got 'a\nb'"),
        ("--model", "a\x1b[2Jb", r"--model must hold no line break or control character, got 'a\x1b[2Jb'"),
        ("--out", "", "--out must name a file, got ''"),
        ("--out", ".", "--out must name a file, got '.'"),
    ],
    ids=["empty model", "blank model", "line break", "escape", "empty out", "dot out"],
)
def test_make_dataset_refuses_a_bad_model_or_out_up_front(tmp_path, monkeypatch, capsys, option, value, message):
    from pytest_vllmbench.cli import main

    monkeypatch.chdir(tmp_path)
    argv = {"--n": "2", "--out": "x.jsonl", "--model": "m"} | {option: value}
    assert main(["make-dataset", *[part for pair in argv.items() for part in pair]]) == 2
    err = capsys.readouterr().err
    assert err == f"vllmbench make-dataset: {message}\n"
    assert list(tmp_path.iterdir()) == []
