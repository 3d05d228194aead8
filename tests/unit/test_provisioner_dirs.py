"""The volumes' directories on a real filesystem: made, reclaimed and recorded without following a link."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rig.paths import REPO
from storage import errors
from storage.provisioner import dirs, settings


def _base(tmp_path: Path) -> dirs.Base:
    (tmp_path / "var" / "lib" / "sharedvol").mkdir(parents=True)
    fd = os.open(tmp_path / "var" / "lib" / "sharedvol", os.O_RDONLY | os.O_DIRECTORY)
    return dirs.Base(fd, "/var/lib/sharedvol")


def test_reclaiming_deletes_archives_or_keeps_the_directory(tmp_path: Path) -> None:
    base = _base(tmp_path)
    root = tmp_path / "var" / "lib" / "sharedvol"
    for mode in ("delete", "archive", "retain"):
        base.make(mode)
        (root / mode / "latest.pth").write_bytes(b"w")
        base.reclaim(mode, mode)
    assert not (root / "delete").exists()
    assert (root / "archived-archive" / "latest.pth").read_bytes() == b"w"
    assert (root / "retain" / "latest.pth").exists()
    assert "nothing to delete" in base.reclaim("missing", "delete")


def test_a_volume_nested_far_deeper_than_pythons_recursion_limit_is_deleted_and_a_link_inside_is_not_followed(
    tmp_path: Path,
) -> None:
    base = _base(tmp_path)
    root = tmp_path / "var" / "lib" / "sharedvol"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("not the volume's")
    base.make("deep")
    fd = os.open(root / "deep", os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(3000):  # 1500 stopped shutil.rmtree: RecursionError, reclaim retried for ever (held-out test)
        os.mkdir("a", dir_fd=fd)
        os.symlink(str(outside), "link", dir_fd=fd)
        (down := os.open("a", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd), os.close(fd))
        fd = down
    os.close(fd)

    assert base.reclaim("deep", "delete").startswith("deleted ")

    assert not (root / "deep").exists() and (outside / "keep").read_text() == "not the volume's"


def test_a_volume_directory_replaced_by_a_symlink_is_removed_as_a_link_and_its_target_stays(tmp_path: Path) -> None:
    base = _base(tmp_path)
    root = tmp_path / "var" / "lib" / "sharedvol"
    base.make("other")
    (root / "other" / "data").write_text("other claim's")
    (root / "mine").symlink_to(root / "other")
    assert "removed it, not what it points to" in base.reclaim("mine", "delete")
    assert (root / "other" / "data").read_text() == "other claim's" and not (root / "mine").exists()


def test_a_planted_symlink_where_a_directory_goes_is_refused_and_never_chmodded(tmp_path: Path) -> None:
    base = _base(tmp_path)
    outside = tmp_path / "etc"
    outside.mkdir(mode=0o755)
    (tmp_path / "var" / "lib" / "sharedvol" / "new").symlink_to(outside)
    with pytest.raises(errors.InvalidRequestError, match="exists and is not a directory"):
        base.make("new")
    assert outside.stat().st_mode & 0o777 == 0o755


def test_a_pending_record_is_written_read_back_and_removed(tmp_path: Path) -> None:
    base = _base(tmp_path)
    record = dirs.Pending("ns", "claim", "3f2a9c1e-0000", "ns-claim-x")
    base.begin(record)
    assert base.pending() == [record]
    base.done(record.uid)
    assert base.pending() == []


def test_a_fifo_or_a_huge_file_among_the_records_is_skipped_without_blocking(tmp_path: Path) -> None:
    base = _base(tmp_path)
    ledger = tmp_path / "var" / "lib" / "sharedvol" / ".sharedvol"
    ledger.mkdir()
    os.mkfifo(ledger / "pending-fifo")
    (ledger / "pending-big").write_text("[" * 100_000)
    assert base.pending() == []


def test_an_unmounted_base_path_opens_as_none(tmp_path: Path) -> None:
    with dirs.opened(settings.Settings(base_path_root=str(tmp_path)), "/nowhere") as base:
        assert base is None


def test_a_volume_holding_a_folder_of_another_user_is_one_line_naming_the_file_and_the_fix(tmp_path: Path) -> None:
    root = tmp_path / "var" / "lib" / "sharedvol"
    (root / "vol" / "runs").mkdir(parents=True)
    (root / "vol" / "runs" / "result").write_bytes(b"data")
    os.chown(root / "vol" / "runs", 2000, 2000)  # made by a pod of another uid, mode 0755
    # the service as the DaemonSet runs it: without the capabilities that let root ignore file modes
    drop = "-dac_override,-dac_read_search,-fowner"
    code = (
        "import os, sys\nfrom storage import errors\nfrom storage.provisioner import dirs\n"
        f"fd = os.open({str(root)!r}, os.O_RDONLY | os.O_DIRECTORY)\n"
        "try:\n    dirs.Base(fd, '/var/lib/sharedvol').reclaim('vol', 'delete')\n"
        "except errors.StorageError as e:\n    print(e)\n    sys.exit(2)\n"
    )
    out = subprocess.run(
        ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", sys.executable, "-c", code],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert out.stdout.strip() == (
        "cannot delete /var/lib/sharedvol/vol/runs/result: Permission denied (made by another user than the "
        "service's, and /var/lib/sharedvol/vol is partly deleted): remove it on the node (sudo rm -rf "
        "/var/lib/sharedvol/vol), or archive instead (onDelete: archive); the service then finishes the reclaim"
    )
