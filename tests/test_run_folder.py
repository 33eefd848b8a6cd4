"""The atomic writers (hyperdml._atomic) and the run folder: its lock, its refusals, its log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hyperdml._atomic import atomic_open, atomic_write_bytes, atomic_write_json, atomic_write_text
from hyperdml.errors import ConfigError
from hyperdml.train.run_folder import JsonLog, RunFolder, RunFolderError

ROOT = Path(__file__).resolve().parents[1]


def test_atomic_writers_replace_whole_files(tmp_path):
    path = tmp_path / "a.json"
    atomic_write_json(path, {"x": [1, 2]})
    assert json.loads(path.read_text()) == {"x": [1, 2]} and path.read_text().endswith("\n")
    atomic_write_text(path, "text")
    assert path.read_text() == "text"
    atomic_write_bytes(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "a.json"
    atomic_write_json(path, {"old": True})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"new": object()})  # not JSON: fails before the file is touched
    with pytest.raises(RuntimeError, match="midway"):
        with atomic_open(path, "w") as f:
            f.write('{"half": ')
            raise RuntimeError("midway")
    assert json.loads(path.read_text()) == {"old": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
    with pytest.raises(ValueError, match="mode"):
        with atomic_open(path, "a"):
            pass


def test_new_run_refuses_a_run_folder_and_overwrite_clears_it(tmp_path):
    out = tmp_path / "run"
    folder = RunFolder.open(out)
    folder.write_json("config.json", {"seed": 1})
    (out / "last.pt").write_bytes(b"x")
    (out / "notes.txt").write_text("mine")
    folder.close()
    with pytest.raises(ConfigError, match=r"already holds a run \(last.pt, config.json\): continue it with --resume"):
        RunFolder.open(out)
    RunFolder.open(out, overwrite=True).close()
    assert sorted(p.name for p in out.iterdir()) == [".hyperdml.lock", "notes.txt"]  # only the run's files go


def test_resume_may_write_into_its_own_folder_only(tmp_path):
    own, other = tmp_path / "own", tmp_path / "other"
    for d in (own, other):
        d.mkdir()
        (d / "last.pt").write_bytes(b"x")
    RunFolder.open(own, resume_from=str(own / "last.pt")).close()
    with pytest.raises(ConfigError, match="already holds another run"):
        RunFolder.open(other, resume_from=str(own / "last.pt"))
    RunFolder.open(tmp_path / "fresh", resume_from=str(own / "last.pt")).close()


def test_the_lock_goes_with_a_killed_process(tmp_path):
    """A run killed with SIGKILL leaves no stale lock: the OS releases it with the process."""
    out = tmp_path / "run"
    code = ("import sys, time; from hyperdml.train.run_folder import RunFolder; "
            f"held = RunFolder.open({str(out)!r}); print('locked', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(ConfigError, match="another run is writing to"):
            RunFolder.open(out)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    RunFolder.open(out).close()


def test_write_errors_name_the_file(tmp_path, monkeypatch):
    folder = RunFolder.open(tmp_path / "run")
    (tmp_path / "run" / "metrics.json").mkdir()  # os.replace onto a folder fails
    with pytest.raises(RunFolderError, match=r"cannot write .*metrics.json: "):
        folder.write_json("metrics.json", {})
    folder.close()


def test_log_truncation_keeps_the_steps_up_to_the_checkpoint(tmp_path):
    path = tmp_path / "log.jsonl"
    lines = [{"event": "start", "step": 0}] + [{"event": "step", "step": s} for s in range(1, 6)]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"event": "step", "st')  # a cut line
    log = JsonLog(str(path), truncate_after_step=3)
    log.write({"event": "resume", "step": 3})
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["event"], r["step"]) for r in records] == [("start", 0), ("step", 1), ("step", 2), ("step", 3),
                                                          ("resume", 3)]
    JsonLog(None).write({"dropped": True})  # a process that does not write
