"""What a writer meets in a run directory someone else can write: links for its parts, a directory where a file
goes, a directory named like a temporary file, a failing fsync, a FIFO where a probe would go. One line each;
nothing outside the run directory is touched, nothing is published that was not written."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import IO

import blake3
import pytest

from rig.paths import REPO
from steps import data, dataplane, errors, localpublish, train_resnet, workdir
from tests.unit.test_steps_cli import run
from tests.unit.test_steps_hostile_volume import write_eval


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    data.synthesize(str(root), train=20, test=10)
    return root


VICTIM_FILE = "epoch-0001-0123456789abcdef.safetensors"


def victim_and_run(tmp_path: Path) -> tuple[Path, Path]:
    """A directory elsewhere holding a file named like a checkpoint (what a link would lead to), and a run directory."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / VICTIM_FILE).write_bytes(b"not the run's")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    return victim, run_dir


@pytest.mark.parametrize(("step", "part"), [("train", "checkpoints"), ("test", "checkpoints"), ("metrics", "eval")])
def test_a_part_of_the_run_directory_that_is_a_link_elsewhere_is_refused_and_its_target_untouched(
    capsys: pytest.CaptureFixture[str],
    dataset: Path,
    tmp_path: Path,
    step: str,
    part: str,
) -> None:
    victim, run_dir = victim_and_run(tmp_path)
    (run_dir / part).symlink_to(victim)  # before this fix, train pruned the target's files and published there
    args = {"train": ["--data-root", str(dataset), "--device", "cpu"], "test": ["--data-root", str(dataset)]}

    code, lines = run(capsys, step, "--run-dir", str(run_dir), *args.get(step, []))

    assert code == 2 and len(lines) == 1
    assert f"{run_dir / part} is a symbolic link (to {victim}); refused" in lines[0], lines[0]
    assert sorted(p.name for p in victim.iterdir()) == [VICTIM_FILE]


def test_a_directory_where_a_document_goes_fails_the_publish_and_nothing_goes_into_it(tmp_path: Path) -> None:
    (tmp_path / "latest.json").mkdir()  # fs.mv moved the file into it and reported success

    with pytest.raises(errors.RunDirError, match=r"latest\.json"):
        dataplane.publish_bytes(str(tmp_path / "latest.json"), b"{}")

    assert list((tmp_path / "latest.json").iterdir()) == []
    assert [p.name for p in tmp_path.iterdir()] == ["latest.json"]  # no temporary file left either


def test_a_directory_named_like_a_temporary_file_is_left_alone_by_the_cleanup(tmp_path: Path) -> None:
    planted = tmp_path / f".latest.json{dataplane.TMP_MARK}deadbeef"
    planted.mkdir()
    (tmp_path / f".summary.json{dataplane.TMP_MARK}0badcafe").write_bytes(b"a killed writer's")

    removed = dataplane.remove_temporaries(str(tmp_path))  # a ValueError traceback at every start before

    assert removed == sorted([planted.name, f".summary.json{dataplane.TMP_MARK}0badcafe"])
    assert planted.is_dir() and not (tmp_path / f".summary.json{dataplane.TMP_MARK}0badcafe").exists()


def test_a_failed_fsync_fails_the_publish_and_the_previous_document_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "latest.json"
    target.write_bytes(b"the previous one")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)  # NFS reports a delayed write error at fsync
    with pytest.raises(errors.RunDirError):
        dataplane.publish_bytes(str(target), b"the new one")

    assert target.read_bytes() == b"the previous one"


def test_the_write_probe_never_opens_a_fifo_planted_at_a_name_it_might_use(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / f".write-probe-{os.getpid()}")  # the name the probe used: train-resnet hung on it
    done = threading.Event()

    def probe() -> None:
        train_resnet._check_writable(str(tmp_path))
        done.set()

    threading.Thread(target=probe, daemon=True).start()

    assert done.wait(30), "the write probe blocked"


@pytest.mark.timeout(60)
def test_a_fifo_planted_at_the_next_temporary_name_is_never_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(localpublish.uuid, "uuid4", lambda: uuid.UUID(int=0xABCDEF12 << 96))
    os.mkfifo(tmp_path / f".w.bin{dataplane.TMP_MARK}abcdef12")  # a writer opening it would wait for a reader

    with pytest.raises(errors.RunDirError, match="File exists"):
        localpublish.stage(str(tmp_path / "w.bin"))


@pytest.mark.timeout(60)
def test_the_digest_is_of_the_bytes_written_even_when_the_temporary_name_is_swapped_before_hashing(
    tmp_path: Path,
) -> None:
    staged = localpublish.stage(str(tmp_path / "w.bin"))

    def write_then_swap(f: IO[bytes]) -> None:
        f.write(b"the weights")
        os.mkfifo(tmp_path / "fifo")
        os.replace(tmp_path / "fifo", staged.tmp)  # reopened by name, a FIFO would block the hash and the fsync

    localpublish.fill(staged, write_then_swap)

    assert staged.blake3 == blake3.blake3(b"the weights").hexdigest() and staged.size == len(b"the weights")


def test_a_killed_evaluations_temporary_file_is_removed_at_the_next_start(
    capsys: pytest.CaptureFixture[str], dataset: Path, tmp_path: Path
) -> None:
    (tmp_path / "eval").mkdir()
    left = tmp_path / "eval" / f".eval_result.json{dataplane.TMP_MARK}0badf00d"
    left.write_bytes(b"{")
    run(capsys, "test", "--run-dir", str(tmp_path), "--data-root", str(dataset))  # no checkpoint: refused after
    assert not left.exists()


@pytest.mark.timeout(120)
def test_a_fifo_inside_the_training_folder_is_refused_without_blocking(
    capsys: pytest.CaptureFixture[str], dataset: Path, tmp_path: Path
) -> None:
    (tmp_path / "train").mkdir()
    os.mkfifo(tmp_path / "train" / "resnet18_8xb16_cifar10.py")  # mmengine's open(..., "w") of it waited for ever

    code, lines = run(capsys, "train", "--run-dir", str(tmp_path), "--data-root", str(dataset), "--device", "cpu")

    assert code == 2 and "is not a regular file or a directory (a FIFO, a socket or a device)" in lines[-1]


def test_a_link_planted_in_the_training_folder_after_its_check_is_replaced_never_written_through(
    capsys: pytest.CaptureFixture[str], dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    checked = workdir.check_tree

    def check_then_plant(root: str) -> None:  # the race: the link comes once the check has passed
        checked(root)
        (Path(root) / "resnet18_8xb16_cifar10.py").symlink_to(victim)

    monkeypatch.setattr(workdir, "check_tree", check_then_plant)
    run_dir = tmp_path / "run"
    code, _ = run(capsys, "train", "--run-dir", str(run_dir), "--data-root", str(dataset), "--device", "cpu",
                  "--epochs", "1", "--batch-size", "8")  # fmt: skip

    assert code == 0 and victim.read_text() == "precious"
    kept = run_dir / "train" / "resnet18_8xb16_cifar10.py"
    assert not kept.is_symlink() and "model" in kept.read_text()  # mmengine's config, published in the link's place
    assert list((run_dir / "train").glob("*.log"))  # and its log


@pytest.mark.parametrize("kind", ["symbolic", "hard"])
def test_a_link_inside_the_training_folder_is_refused_and_the_file_it_leads_to_is_untouched(
    capsys: pytest.CaptureFixture[str], dataset: Path, tmp_path: Path, kind: str
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    train = tmp_path / "run" / "train"
    train.mkdir(parents=True)
    planted = train / "resnet18_8xb16_cifar10.py"  # the config mmengine dumps, opened for writing by name
    if kind == "symbolic":
        planted.symlink_to(victim)
    else:
        planted.hardlink_to(victim)

    code, lines = run(
        capsys, "train", "--run-dir", str(tmp_path / "run"), "--data-root", str(dataset), "--device", "cpu"
    )

    what = "symbolic link" if kind == "symbolic" else "file with 1 other hard link(s)"
    assert code == 2 and f"{planted} is a {what}" in lines[-1]
    assert victim.read_text() == "precious"


@pytest.mark.parametrize("root", ["", "/", "//", "file:///"])
@pytest.mark.parametrize("step", ["train", "test", "metrics"])
def test_a_run_directory_that_is_empty_or_the_root_is_refused_before_anything_is_written(
    capsys: pytest.CaptureFixture[str], dataset: Path, root: str, step: str
) -> None:
    extra = {"train": ["--data-root", str(dataset), "--device", "cpu"], "test": ["--data-root", str(dataset)]}
    code, lines = run(capsys, step, "--run-dir", root, *extra.get(step, []))
    assert code == 2 and "is empty or the filesystem's root" in lines[-1]
    assert not Path("/checkpoints").exists() and not Path("/train").exists()


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/r", "ftp://127.0.0.1/r", "reference://r", "zip://r::/x.zip"])
def test_a_run_directory_on_a_filesystem_that_cannot_hold_one_is_one_line_without_a_request(
    capsys: pytest.CaptureFixture[str], url: str
) -> None:
    code, lines = run(capsys, "metrics", "--run-dir", url)
    assert code == 2 and "a run directory cannot be on" in lines[-1]


def test_a_log_handler_that_cannot_write_prints_no_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = open(tmp_path / "log", "w")  # noqa: SIM115 (closed at once: a log file on a disk that filled up)
    broken.close()
    handler = logging.StreamHandler(broken)
    root = logging.getLogger()
    monkeypatch.setattr(root, "level", logging.INFO)
    monkeypatch.setattr(logging, "raiseExceptions", True)  # Python's default, which the command turns off
    data.synthesize(str(tmp_path / "d"), train=10, test=10)
    root.addHandler(handler)
    try:
        code, lines = run(capsys, "data", "prepare", str(tmp_path / "d"))  # logs "dataset already prepared"
    finally:
        root.removeHandler(handler)
    assert code == 0 and not any("Logging error" in line for line in lines)


def test_a_training_folder_this_user_may_not_search_is_one_line_not_a_report_without_curves(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    write_eval(run_dir)
    (run_dir / "train").mkdir()
    (run_dir / "train").chmod(0)
    drop = "-dac_override,-dac_read_search,-fowner"  # root without them: modes apply, as for any other user
    out = subprocess.run(
        ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", sys.executable, "-m", "pipelines", "metrics",
         "--run-dir", str(run_dir)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    (run_dir / "train").chmod(0o755)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1] == (
        f"sharedvol metrics: error: cannot tell whether {run_dir}/train/summary.json exists: Permission denied: "
        "check the run directory"
    )


def test_a_second_training_of_a_run_directory_being_trained_is_one_line_and_changes_nothing(
    capsys: pytest.CaptureFixture[str], dataset: Path, tmp_path: Path
) -> None:
    train = tmp_path / "train"
    train.mkdir()
    with open(train / workdir.LOCK, "w") as held:  # the first training, still running
        fcntl.flock(held, fcntl.LOCK_EX)
        code, lines = run(capsys, "train", "--run-dir", str(tmp_path), "--data-root", str(dataset), "--device", "cpu")
    assert code == 2 and lines[-1] == (
        f"sharedvol train: error: another train-resnet is training in {tmp_path} (it holds {train / workdir.LOCK}): "
        "wait until it ends, or use another --run-dir"
    )
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("existed", [False, True], ids=["made-later", "there-at-the-check"])
def test_checkpoints_swapped_for_a_link_after_the_check_are_refused_and_the_target_is_untouched(
    capsys: pytest.CaptureFixture[str],
    dataset: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    existed: bool,
) -> None:
    victim, run_dir = victim_and_run(tmp_path)
    if existed:
        (run_dir / "checkpoints").mkdir()
    checked = dataplane.RunLayout.check_own

    def check_then_swap(self: dataplane.RunLayout) -> None:  # the race: the swap comes once the check has passed
        checked(self)
        if existed:
            (run_dir / "checkpoints").rename(tmp_path / "moved-away")
        (run_dir / "checkpoints").symlink_to(victim)

    monkeypatch.setattr(dataplane.RunLayout, "check_own", check_then_swap)
    code, lines = run(capsys, "train", "--run-dir", str(run_dir), "--data-root", str(dataset), "--device", "cpu",
                      "--epochs", "1", "--batch-size", "8")  # fmt: skip

    refused = "was replaced while the step ran" if existed else "is a symbolic link; refused"
    assert code == 2 and f"{run_dir / 'checkpoints'} {refused}" in lines[-1]
    assert sorted(p.name for p in victim.iterdir()) == [VICTIM_FILE]
