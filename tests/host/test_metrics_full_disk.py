"""produce-metrics on a full volume (a real small tmpfs): the previous metrics directory stays whole."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.host.test_dataplane_disk import in_small_tmpfs

FULL_DISK = """
import json, os, sys
from pathlib import Path
from steps import errors, produce_metrics
from tests.unit.test_steps_hostile_volume import write_eval
run = Path(sys.argv[1])
write_eval(run)
produce_metrics.produce(str(run))
before = {p.name: p.read_bytes().hex() for p in (run / "metrics").iterdir()}
write_eval(run, confusion_matrix=[[2, 0], [1, 1]], top1=0.75, per_class_accuracy={"a": 1.0, "b": 0.5})
fd = os.open(run / "filler", os.O_WRONLY | os.O_CREAT)  # the volume is full now, but for a few kilobytes
try:
    while True:
        os.write(fd, b"x" * 4096)
except OSError:
    os.ftruncate(fd, max(0, os.fstat(fd).st_size - 16384))
os.close(fd)
try:
    produce_metrics.produce(str(run))
    error = ""
except errors.StepError as e:
    error = str(e)
after = {p.name: p.read_bytes().hex() for p in (run / "metrics").iterdir()}
left = sorted(p.name for p in run.iterdir() if p.name.startswith("."))
print(json.dumps({"error": error, "same": before == after, "left": left}))
"""


def test_metrics_on_a_full_disk_keep_the_previous_directory_whole(tmp_path: Path) -> None:
    mount = tmp_path / "volume"
    proc = in_small_tmpfs("2m", mount, sys.executable, "-c", FULL_DISK, str(mount))
    assert proc.returncode == 0, proc.stderr

    out = json.loads(proc.stdout)
    assert out["error"].startswith("no space left on the volume writing ") and "\n" not in out["error"]
    assert out["same"] is True  # not a mix of the two runs' files
    assert out["left"] == []  # no half-written directory beside it
