"""Every user error of every command is one line on stderr with exit status 2, and no run gives a
silent wrong result: each case runs ``hyperdml.cli.main([...])`` (the console script's path)
and checks the status, the single line and the words that name the problem."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from hyperdml.cli import main
from hyperdml.train.checkpoint import load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
#: a tiny run: 8x8 synthetic images, 10 steps per epoch
TINY = ["--dataset", "synthetic", "--image-size", "8", "--embedding-size", "8", "--hyperbolic-size", "4",
        "--batch-size", "128", "--samples-per-class", "8", "--epochs", "1", "--device", "cpu", "--quiet"]
#: torch's own import-time log line on machines without a CUDA runtime (not hyperdml's output)
TORCH_NOISE = "No CUDA runtime is found"


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch, one_thread):
    monkeypatch.delenv("HYPERDML_DEBUG", raising=False)


def run_main(argv) -> int:
    """``main(argv)``'s exit status, also when argparse exits (``--help``, ``--version``, a bad option)."""
    try:
        return main([str(a) for a in argv])
    except SystemExit as exc:
        return exc.code


def one_line_error(capsys, argv, *fragments) -> str:
    """``main(argv)`` returns 2 and prints exactly one line ``hyperdml <cmd>: error: ...`` holding
    every fragment; returns that line."""
    code = run_main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith(f"hyperdml {argv[0]}: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def train_ok(capsys, out, *extra):
    assert main(["train", *TINY, "--max-steps", "2", "--out", str(out), *map(str, extra)]) == 0, capsys.readouterr().err
    capsys.readouterr()


@pytest.fixture(scope="module")
def chest_run(tmp_path_factory):
    """A finished 2-step CHEST run (dual head: Euclidean and hyperbolic proxies)."""
    from hyperdml.train import Trainer

    out = tmp_path_factory.mktemp("chest")
    torch.set_num_threads(1)
    Trainer({"dataset": "synthetic", "image_size": 8, "embedding_size": 8, "hyperbolic_size": 4, "batch_size": 128,
             "samples_per_class": 8, "epochs": 1, "max_steps": 2, "eval_every": 0, "quiet": True, "device": "cpu",
             "loss": "chest", "loss_args": {"centers_per_class": 2}, "out": str(out)}).fit()
    return out


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


# -- run folders ---------------------------------------------------------------------------------


def test_second_run_into_a_run_folder_is_refused_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    train_ok(capsys, out, "--seed", "1")
    before = (out / "last.pt").read_bytes()
    one_line_error(capsys, ["train", *TINY, "--seed", "2", "--out", out], "already holds a run", "--overwrite",
                   f"--resume {out}")
    assert (out / "last.pt").read_bytes() == before  # untouched
    assert json.loads((out / "config.json").read_text())["seed"] == 1
    train_ok(capsys, out, "--seed", "2", "--overwrite")
    assert load_checkpoint(out / "last.pt")["config"]["seed"] == 2
    assert json.loads((out / "config.json").read_text())["seed"] == 2
    events = [r["event"] for r in _records(out)]
    assert events.count("start") == 1 and events.count("step") == 2  # one run's log, not two mixed


def test_a_run_folder_in_use_is_refused(tmp_path, capsys):
    """While a run holds the folder's lock (here: this process), a second run exits with status 2
    and writes nothing there."""
    from hyperdml.train.run_folder import RunFolder

    out = tmp_path / "run"
    held = RunFolder.open(out)
    try:
        one_line_error(capsys, ["train", *TINY, "--max-steps", "1", "--out", out], "another run is writing to", str(out))
        assert not any((out / name).exists() for name in ("last.pt", "log.jsonl", "config.json", "metrics.json"))
    finally:
        held.close()
    train_ok(capsys, out)  # released: the folder is free again


def test_two_concurrent_cli_runs_into_one_folder(tmp_path):
    """Two ``hyperdml train`` processes started together on one --out: one trains, the other exits
    with status 2 and a one-line error; the folder holds one run's files."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("HYPERDML_DEBUG", None)
    procs = [subprocess.Popen([sys.executable, "-m", "hyperdml", "train", *TINY, "--max-steps", "20", "--epochs", "2",
                               "--seed", str(seed), "--out", str(out)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    lines = [line for line in loser.splitlines() if line.strip() and TORCH_NOISE not in line]
    assert len(lines) == 1 and ("another run is writing" in lines[0] or "already holds a run" in lines[0]), loser
    seed = load_checkpoint(out / "last.pt")["config"]["seed"]
    assert json.loads((out / "config.json").read_text())["seed"] == seed
    events = [r["event"] for r in _records(out)]
    assert events.count("start") == 1 and events.count("step") == 20


def test_out_that_is_a_file_or_under_a_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    one_line_error(capsys, ["train", *TINY, "--out", f], "is a file, not a folder")
    one_line_error(capsys, ["train", *TINY, "--out", f / "run"], "is a file")
    one_line_error(capsys, ["eval", "--checkpoint", tmp_path / "none.pt", "--out", f], "is a file, not a folder")
    one_line_error(capsys, ["viz", "--checkpoint", tmp_path / "none.pt", "--out", f], "is a file, not a folder")


@pytest.mark.parametrize("code, words", [(errno.EROFS, "Read-only file system"), (errno.EACCES, "Permission denied")])
def test_out_that_cannot_be_created(tmp_path, capsys, monkeypatch, code, words):
    """A read-only file system or a folder without write permission (simulated: the tests may run
    as root, for whom permissions do not apply)."""
    real = os.makedirs

    def makedirs(path, *args, **kwargs):
        if "blocked" in str(path):
            raise OSError(code, os.strerror(code), str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "makedirs", makedirs)
    one_line_error(capsys, ["train", *TINY, "--out", tmp_path / "blocked"], "cannot create the run folder", words)


def test_full_disk_at_the_checkpoint_writes_nothing_beside_it(tmp_path, capsys, monkeypatch):
    """The checkpoint save fails (no space left): one line, and neither metrics.json nor the
    epoch's records are written beside the missing checkpoint; no temporary file is left."""
    import hyperdml.train.checkpoint as checkpoint

    def full(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint.torch, "save", full)
    out = tmp_path / "run"
    one_line_error(capsys, ["train", *TINY, "--max-steps", "2", "--out", out], "No space left on device", "last.pt")
    assert sorted(p.name for p in out.iterdir()) == [".hyperdml.lock", "config.json", "log.jsonl"]
    assert {r["event"] for r in _records(out)} == {"start", "step"}


# -- options that used to end in a traceback -----------------------------------------------------


@pytest.mark.parametrize("args, fragments", [
    (["--image-size", "0"], ["--image-size"]),
    (["--device", "tpu"], ["--device", "tpu"]),
    (["--adam-eps", "0"], ["--adam-eps", "> 0"]),
    (["--seed", str(2**64)], ["--seed", str(2**64)]),
    (["--seed", "-1"], ["--seed"]),
    (["--batch-size", "10000"], ["1250 classes", "has 16", "--batch-size"]),
    (["--lr", "inf"], ["--lr"]),
    (["--clip-r", "nan"], ["--clip-r"]),
    (["--loss-arg", "margin=0.1", "--loss-arg", "margin=0.2"], ["'margin' is given twice"]),
    (["--loss-arg", "margin=0.1", "--loss-arg", "base.margin=0.2"], ["set the same parameter"]),
    (["--epochs", "x"], ["--epochs", "invalid int value"]),
    (["--dataset", "imagenet"], ["--dataset", "invalid choice"]),
])
def test_bad_train_options(tmp_path, capsys, args, fragments):
    one_line_error(capsys, ["train", *TINY, *args, "--out", tmp_path / "run"], *fragments)
    assert not (tmp_path / "run" / "last.pt").exists()


def test_curvature_beyond_the_ops_limit_names_c(tmp_path, capsys):
    from hyperdml.ops import _checks

    if not hasattr(_checks, "MAX_CURVATURE"):
        pytest.skip("this build of hyperdml.ops has no maximum curvature")
    one_line_error(capsys, ["train", *TINY, "--c", "1000", "--out", tmp_path / "run"], "--c", f"{_checks.MAX_CURVATURE:g}")


def test_curvature_check_is_the_ops_check(tmp_path, monkeypatch):
    """The config asks hyperdml.ops._checks.check_curvature and turns its ValueError into a
    ConfigError naming --c (whatever limits the ops set)."""
    from hyperdml.errors import ConfigError
    from hyperdml.ops import _checks
    from hyperdml.train import resolve_config

    def strict(c):
        raise ValueError(f"curvature c must lie in [1e-06, 5], got {c}")

    monkeypatch.setattr(_checks, "check_curvature", strict)
    with pytest.raises(ConfigError, match=r"--c \(curvature\) 7.0 is refused: curvature c must lie in \[1e-06, 5\]"):
        resolve_config({"c": 7.0})


def test_diverging_learning_rate_is_reported(tmp_path, capsys):
    """lr 1e10 trained to chance-level metrics and exit 0; the parameters' norm explodes at once."""
    line = one_line_error(capsys, ["train", *TINY, "--lr", "1e10", "--max-steps", "5", "--out", tmp_path / "run"],
                          "training diverged at step 1", "--lr (now 1e+10)")
    assert "norm grew" in line
    assert not (tmp_path / "run" / "last.pt").exists()


def test_moderate_learning_rates_train(tmp_path, capsys):
    """The divergence check leaves ordinary and large-but-working settings alone (the DDP test's
    lr 100 with Adam's eps 1e4 steps like SGD)."""
    train_ok(capsys, tmp_path / "a", "--lr", "0.01", "--max-steps", "10")
    train_ok(capsys, tmp_path / "b", "--lr", "100", "--adam-eps", "1e4", "--proxy-lr-mult", "1", "--max-steps", "10")


def test_non_finite_loss_is_reported_naming_lr(tmp_path):
    from hyperdml.train import Trainer
    from hyperdml.train.step import TrainingDiverged

    t = Trainer({"dataset": "synthetic", "image_size": 8, "embedding_size": 8, "batch_size": 128,
                 "samples_per_class": 8, "epochs": 1, "max_steps": 3, "quiet": True, "device": "cpu",
                 "out": str(tmp_path)})
    t._setup()
    with torch.no_grad():
        t.loss.proxies.fill_(float("nan"))
    x, y = next(iter(torch.utils.data.DataLoader(t.splits.train, batch_size=16)))
    with pytest.raises(TrainingDiverged, match=r"diverged at step 1 \(epoch 1\): the loss refused .*proxies.*--lr"):
        t.train_step(x, y)
    t.folder.close()


def test_resume_with_another_loss_names_the_loss(chest_run, tmp_path, capsys):
    one_line_error(capsys, ["train", "--resume", chest_run, "--loss", "proxy_anchor", "--out", tmp_path / "r"],
                   "whose loss is 'chest', not 'proxy_anchor'", "without --resume")


def test_resume_into_another_run_folder_is_refused(chest_run, tmp_path, capsys):
    other = tmp_path / "other"
    train_ok(capsys, other)
    one_line_error(capsys, ["train", "--resume", chest_run, "--out", other, "--max-steps", "3"],
                   "already holds another run", "--overwrite")


# -- data sets -----------------------------------------------------------------------------------


def _cub(root: Path, classes: dict, images_txt: bytes | None = None) -> Path:
    """A CUB-200-2011 folder with ``classes`` (class id → number of images)."""
    from PIL import Image

    d = root / "CUB_200_2011"
    images, labels, names = [], [], []
    i = 0
    for cid, n in classes.items():
        names.append(f"{cid} c{cid}")
        for j in range(n):
            i += 1
            rel = f"c{cid}/{j}.png"
            (d / "images" / f"c{cid}").mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (6, 6), (i * 20 % 255, 0, 0)).save(d / "images" / rel)
            images.append(f"{i} {rel}")
            labels.append(f"{i} {cid}")
    (d / "images.txt").write_bytes(images_txt if images_txt is not None else ("\n".join(images) + "\n").encode())
    (d / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    (d / "classes.txt").write_text("\n".join(names) + "\n")
    return d


CUB_TINY = ["--dataset", "cub", "--image-size", "8", "--embedding-size", "4", "--batch-size", "4",
            "--samples-per-class", "2", "--epochs", "1", "--device", "cpu", "--quiet", "--arch", "small_cnn"]


@pytest.mark.parametrize("classes, fragment", [
    ({1: 3, 101: 2, 102: 2}, "the training split has 1 class"),
    ({1: 2, 2: 2, 101: 1, 102: 1}, "every class of the test split has one image"),
])
def test_data_sets_that_cannot_train(tmp_path, capsys, classes, fragment):
    d = _cub(tmp_path, classes)
    one_line_error(capsys, ["train", *CUB_TINY, "--data-root", d, "--out", tmp_path / "run"], fragment)


def test_list_file_errors(tmp_path, capsys):
    base = {1: 2, 2: 2, 101: 2}
    d = _cub(tmp_path / "a", base, images_txt=b"1 c1/0.png\n2 c1/1.png\n3 c2/\xff.png\n")
    one_line_error(capsys, ["train", *CUB_TINY, "--data-root", d, "--out", tmp_path / "run"],
                   "line 3 of", "images.txt is not UTF-8", "0xff")
    d = _cub(tmp_path / "b", base, images_txt=b"1 c1/0.png\n1 c1/1.png\n")
    one_line_error(capsys, ["train", *CUB_TINY, "--data-root", d, "--out", tmp_path / "run"],
                   "image id 1 is listed twice")
    lines = "\n".join(["1 ../../../../../../etc/passwd", "2 c1/1.png", "3 c2/0.png", "4 c2/1.png",
                       "5 c101/0.png", "6 c101/1.png"]).encode()
    d = _cub(tmp_path / "c", base, images_txt=lines)
    one_line_error(capsys, ["train", *CUB_TINY, "--data-root", d, "--out", tmp_path / "run"],
                   "'../../../../../../etc/passwd'", "outside the data folder")


def test_fifo_images_are_refused_without_blocking(tmp_path, capsys):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this system")
    from hyperdml.data import ImageListDataset
    from hyperdml.errors import DatasetError

    d = _cub(tmp_path, {1: 2, 2: 2, 101: 2})
    first = d / "images" / "c1" / "0.png"
    first.unlink()
    os.mkfifo(first)
    result = {}

    def attempt():
        code = main(["train", *CUB_TINY, "--data-root", str(d), "--out", str(tmp_path / "run")])
        result["code"] = code
        try:
            ImageListDataset([str(first)], [0], ["a"])[0]
        except DatasetError as exc:
            result["load"] = str(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(120)
    assert not worker.is_alive(), "opening a FIFO image blocked"
    assert result["code"] == 2 and "is a FIFO" in capsys.readouterr().err
    assert "is a FIFO" in result["load"]


def test_default_batches_fit_the_built_in_data_sets(tmp_path, capsys):
    """digits has 5 training classes: the default batch (12 x 5) fits it, for any loss."""
    assert main(["train", "--dataset", "digits", "--loss", "hyp_proxy_anchor", "--epochs", "1", "--max-steps", "2",
                 "--device", "cpu", "--quiet", "--out", str(tmp_path / "d")]) == 0, capsys.readouterr().err
    cfg = json.loads((tmp_path / "d" / "config.json").read_text())
    assert (cfg["batch_size"], cfg["samples_per_class"]) == (60, 12)


# -- checkpoints ---------------------------------------------------------------------------------


def _altered(src: Path, dst: Path, change) -> Path:
    ckpt = load_checkpoint(src / "last.pt")
    change(ckpt)
    save_checkpoint(dst, ckpt)
    return dst


@pytest.mark.parametrize("command", ["eval", "viz", "train"])
@pytest.mark.parametrize("what, change, fragments", [
    ("nan_weights", lambda c: c["model"]["heads.euclidean.weight"].fill_(float("nan")),
     ["model holds NaN or Inf", "heads.euclidean.weight"]),
    ("nan_proxies", lambda c: c["loss"][next(k for k in c["loss"] if "proxies" in k)].fill_(float("inf")),
     ["loss holds NaN or Inf", "proxies"]),
    ("huge_num_classes", lambda c: c["config"].update(num_classes=10**9), ["1000000000 classes", "loss does not fit"]),
    ("float_num_classes", lambda c: c["config"].update(num_classes=1e9), ["num_classes=1000000000.0"]),
    ("float_epoch", lambda c: c.update(epoch=0.5), ["'epoch' must be an integer"]),
])
def test_bad_checkpoint_contents(chest_run, tmp_path, capsys, command, what, change, fragments):
    path = _altered(chest_run, tmp_path / f"{what}.pt", change)
    argv = {"eval": ["eval", "--checkpoint", path, "--device", "cpu"],
            "viz": ["viz", "--checkpoint", path, "--out", tmp_path / "viz", "--max-points", "0"],
            "train": ["train", "--resume", path, "--max-steps", "3", "--out", tmp_path / "run"]}[command]
    one_line_error(capsys, argv, *fragments)


def test_hostile_pickle_is_named_as_such(tmp_path, capsys):
    """Refused without running it, and the message says why: no 'truncated or corrupt', no advice
    to load it with weights_only=False."""
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "hyperdml-checkpoint", "model": Payload()}, path)
    line = one_line_error(capsys, ["eval", "--checkpoint", path], "was not loaded",
                          "contains code or objects other than tensors", "system")
    assert "corrupt" not in line and "weights_only=False" not in line and "set to `False`" not in line
    assert not marker.exists()


def test_eval_options(chest_run, tmp_path, capsys):
    one_line_error(capsys, ["eval", "--checkpoint", chest_run, "--batch-size", "0"], "--batch-size")
    one_line_error(capsys, ["eval", "--checkpoint", chest_run, "--workers", "-1"], "--workers")
    one_line_error(capsys, ["eval", "--checkpoint", chest_run, "--device", "tpu"], "--device", "tpu")
    assert main(["eval", "--checkpoint", str(chest_run), "--device", "cpu", "--out", str(tmp_path / "e")]) == 0
    out = capsys.readouterr().out
    assert "step 2 (epoch 1)" in out
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["epoch"] == 1


# -- the CLI around the commands -----------------------------------------------------------------


def test_log_epochs_are_one_based_everywhere(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "2", "--max-steps", "12", "--log-every", "5", "--out", str(out)]) == 0
    capsys.readouterr()
    recs = _records(out)
    assert [(r["step"], r["epoch"]) for r in recs if r["event"] == "step"] == [(5, 1), (10, 1)]
    assert [(r["step"], r["epoch"], r["finished"]) for r in recs if r["event"] == "epoch"] == [(10, 1, True),
                                                                                              (12, 2, False)]
    assert [(r["step"], r["epoch"]) for r in recs if r["event"] == "eval"] == [(10, 1), (12, 2)]
    assert json.loads((out / "metrics.json").read_text())["epoch"] == 2
    assert load_checkpoint(out / "last.pt")["epoch"] == 1  # the checkpoint counts finished epochs


def test_version_and_help(capsys):
    import hyperdml

    assert run_main(["--version"]) == 0 and capsys.readouterr().out.strip() == f"hyperdml {hyperdml.__version__}"
    for argv in (["train"], ["eval"], ["viz"], ["demo"], ["bench", "cdist"], ["bench", "hyphc"]):
        assert run_main([*argv, "--help"]) == 0
        text = " ".join(capsys.readouterr().out.split())
        for option in text.split("  --")[1:]:
            assert option.count("(default:") <= 1, (argv, option)
        assert "(default: None)" not in text, argv


def test_cli_choices_are_the_configs():
    """One definition of each enumeration: the parser's choices are the config's."""
    from hyperdml.cli import build_parser
    from hyperdml.data.registry import DATASETS
    from hyperdml.train.config import AMP_CHOICES, ARCHS, HEADS, HYPERBOLIC_HEAD_ALIASES, HYPERBOLIC_HEADS, SCHEDULES
    from hyperdml.train.recipes import recipe_names

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    choices = {a.dest: tuple(a.choices) for a in train._actions if a.choices}
    assert choices == {"dataset": DATASETS, "arch": ("auto", *ARCHS), "head": ("auto", *HEADS),
                       "hyperbolic_head": (*HYPERBOLIC_HEADS, *HYPERBOLIC_HEAD_ALIASES), "schedule": SCHEDULES, "amp": AMP_CHOICES,
                       "recipe": tuple(recipe_names())}


def test_weight_decay_default_is_the_same_in_api_and_cli():
    import inspect

    from hyperdml.optim import make_optimizer
    from hyperdml.train.config import DEFAULTS

    assert inspect.signature(make_optimizer).parameters["weight_decay"].default == DEFAULTS["weight_decay"] == 1e-4


def _run(*args, env_extra=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **(env_extra or {})}
    env.pop("HYPERDML_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "hyperdml", *map(str, args)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_no_library_noise_and_plain_progress_off_a_terminal(chest_run, tmp_path):
    """Nothing on stderr but progress: no torch 'No CUDA runtime' line, no FutureWarning; with
    stderr a pipe, progress comes as plain lines (every HYPERDML_PROGRESS_INTERVAL seconds)."""
    fast = {"HYPERDML_PROGRESS_INTERVAL": "0"}
    runs = {
        "train": _run("train", *[a for a in TINY if a != "--quiet"], "--max-steps", "3", "--out", tmp_path / "t",
                      env_extra=fast),
        "eval": _run("eval", "--checkpoint", chest_run, "--device", "cpu", env_extra=fast),
        "viz": _run("viz", "--checkpoint", chest_run, "--out", tmp_path / "v", "--max-points", "200", env_extra=fast),
        "bench": _run("bench", "cdist", "--quick", "--dry-run", "--out", tmp_path / "b"),
    }
    for name, r in runs.items():
        assert r.returncode == 0, (name, r.stderr[-2000:])
        assert TORCH_NOISE not in r.stderr and "Warning" not in r.stderr, (name, r.stderr)
        progress = [line for line in r.stderr.splitlines() if line.strip()]
        assert all(": " in line and "/" in line for line in progress), (name, progress)
    assert "epoch 1/1: 2/10 steps" in runs["train"].stderr
    assert "embedding 1280 images: 5/5 batches" in runs["eval"].stderr
    assert "embedding 200 images" in runs["viz"].stderr
    quiet = _run("train", *TINY, "--max-steps", "1", "--out", tmp_path / "q", env_extra=fast)
    assert quiet.returncode == 0 and quiet.stderr.strip() == "" and quiet.stdout.strip() == ""


def test_progress_bar_on_a_terminal():
    """On a terminal (a tty stream) the progress is a tqdm bar, not plain lines."""
    from hyperdml._progress import Progress

    class Tty:
        def __init__(self):
            self.text = ""

        def isatty(self):
            return True

        def write(self, s):
            self.text += s

        def flush(self):
            pass

    stream = Tty()
    bar = Progress(range(4), 4, "epoch 1/1", enabled=True, stream=stream)
    assert sum(1 for _ in bar) == 4
    bar.close()
    assert "\repoch 1/1:" in stream.text and "0/4 [" in stream.text  # a bar, redrawn in place
    assert "batches" not in stream.text and "\n" not in stream.text  # no plain line
