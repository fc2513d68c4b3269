"""How a process that joined a process group ends (:func:`end_process`).

DDP keeps torch's process group alive after ``destroy_process_group`` (gloo's worker threads
keep running), and such a thread that drops a finished collective's tensors while the
interpreter tears down is aborted: the process died with SIGABRT ("terminate called without
an active exception") in about one DDP run of twenty here.  A process that joined a group now
does the teardown's first steps itself and leaves with ``os._exit``: these tests pin down
what it still does and that the teardown does not run.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent("""
    import atexit, os, sys, threading, time
    from pathlib import Path
    from stylebridge.pipelines.featureshift.distributed import end_process, setup_distributed

    out = Path(sys.argv[1])
    join = sys.argv[2] == "join"
    if join:
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=sys.argv[3])
        info, _ = setup_distributed("cpu")
        assert info.created and info.backend == "gloo"
        import torch, torch.distributed as dist
        model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(2, 2))
        model(torch.ones(1, 2)).sum().backward()   # DDP has used the group
        dist.destroy_process_group()
    atexit.register(lambda: (out / "atexit").write_text("ran"))

    def late() -> None:   # a non-daemon thread still working when the script ends
        time.sleep(0.3)
        (out / "thread").write_text("done")

    threading.Thread(target=late).start()

    class Teardown:
        def __init__(self, path: str) -> None:
            self.path, self.open = path, open   # builtins are gone by then

        def __del__(self) -> None:   # runs only in the interpreter's teardown
            with self.open(self.path, "w") as f:
                f.write("ran")

    keep = Teardown(str(out / "teardown"))
    print("unflushed line", end="")
    sys.stderr.write("unflushed error")
    raise SystemExit(end_process(5))
""")


def _run(tmp_path: Path, mode: str) -> subprocess.CompletedProcess[str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    return subprocess.run([sys.executable, str(script), str(tmp_path), mode, str(port)],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow  # a subprocess that imports torch and starts a gloo group (~3 s)
def test_a_process_that_joined_a_group_ends_without_the_teardown(tmp_path: Path) -> None:
    proc = _run(tmp_path, "join")
    assert proc.returncode == 5, proc.stderr
    assert proc.stdout == "unflushed line"
    assert proc.stderr.endswith("unflushed error")
    assert (tmp_path / "atexit").read_text() == "ran"
    assert (tmp_path / "thread").read_text() == "done"   # waited for, as the teardown does
    assert not (tmp_path / "teardown").exists()            # the teardown did not run


@pytest.mark.slow  # a subprocess that imports torch (~3 s)
def test_a_process_that_joined_no_group_ends_as_usual(tmp_path: Path) -> None:
    proc = _run(tmp_path, "alone")
    assert proc.returncode == 5, proc.stderr
    assert proc.stdout == "unflushed line"
    assert (tmp_path / "atexit").read_text() == "ran"
    assert (tmp_path / "thread").read_text() == "done"
    assert (tmp_path / "teardown").read_text() == "ran"    # end_process returned the code
