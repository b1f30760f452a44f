"""Starting and killing server replicas for the drills (subprocesses or in-process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from drills.replica import READY
from recsys_base.errors import RecsysError


class ReplicaProcess:
    """An embedded server in a child process (``drills.replica``).

    Usage::

        replica = ReplicaProcess(config_file, model_base)
        replica.target        # "127.0.0.1:<port>", once started
        replica.kill()        # SIGKILL: no goodbye to clients, like a lost machine
    """

    def __init__(self, config_file: Path, model_base: Path, port: int = 0, poll_seconds: float = 0.5,
                 start_timeout_s: float = 120.0, server_args: tuple[str, ...] = ()):
        # server_args: more drills.replica flags (--rest-port, --enable-batching, --max-message-bytes).
        command = [sys.executable, "-m", "drills.replica", "--config", str(config_file),
                   "--model-base", str(model_base), "--port", str(port), "--poll-seconds", str(poll_seconds), *server_args]
        self.rest_port: int | None = None
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.port = self._wait_ready(start_timeout_s)
        self.ready_at = time.monotonic()
        # Drain stderr so a chatty replica never blocks on a full pipe.
        self._stderr: list[str] = []
        threading.Thread(target=lambda: self._stderr.extend(self.process.stderr), daemon=True).start()

    def _wait_ready(self, timeout_s: float) -> int:
        timer = threading.Timer(timeout_s, self.process.kill)
        timer.start()
        try:
            for line in self.process.stdout:
                if line.startswith(READY):
                    ports = [int(port) for port in line.split()[1:]]
                    self.rest_port = ports[1] if len(ports) > 1 else None
                    return ports[0]
        finally:
            timer.cancel()
        error = self.process.stderr.read().strip().splitlines()
        raise RecsysError(f"server replica exited before serving (code {self.process.wait()}): {error[-1] if error else 'no output'}")

    @property
    def target(self) -> str:
        """``host:port`` for the client."""
        return f"127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL, then reap."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM (graceful stop), SIGKILL if it does not exit within ``timeout_s``."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
