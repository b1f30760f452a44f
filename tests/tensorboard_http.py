"""TensorBoard's own server on a log directory, asked what a browser would be answered.

The server runs as a subprocess bound to loopback on a port the OS picks, and is stopped
when the ``with`` block ends. It loads event files in the background, so ``wait_for``
polls until an answer is complete.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

STARTUP_SECONDS = 90


class TensorBoardServer:
    """``with TensorBoardServer(log_dir, scratch_dir) as board: board.json("/data/runs")``."""

    def __init__(self, log_dir: str | Path, scratch_dir: str | Path):
        self.log_dir, self.output = Path(log_dir), Path(scratch_dir) / "tensorboard.out"
        self.process, self.url = None, None

    def __enter__(self) -> TensorBoardServer:
        with open(self.output, "wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tensorboard.main", "--logdir", str(self.log_dir), "--host", "127.0.0.1",
                 "--port", "0"], stdout=output, stderr=subprocess.STDOUT)
        try:
            self.url = self.wait_for(self._announced_url, "the server to announce its address")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _announced_url(self):
        if self.process.poll() is not None:
            raise RuntimeError(f"tensorboard exited with {self.process.returncode}:\n{self.output.read_text()[-2000:]}")
        found = re.search(r"TensorBoard \S+ at (http://127\.0\.0\.1:\d+)/", self.output.read_text(errors="replace"))
        return found and found.group(1)

    def wait_for(self, answer, what: str, timeout: float = STARTUP_SECONDS):
        """Polls ``answer()`` until it returns something truthy; fails naming ``what``."""
        deadline = time.monotonic() + timeout
        while True:
            value = answer()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"TensorBoard: timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(0.5)

    def get(self, path: str, **params) -> bytes:
        """The body of ``GET path?params``; an error status fails with TensorBoard's message."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=30) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            raise AssertionError(f"GET {path}{query}: {error.code} {error.read().decode(errors='replace')}") from None

    def json(self, path: str, **params):
        return json.loads(self.get(path, **params))
