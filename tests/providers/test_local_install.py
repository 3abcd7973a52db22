"""The runtime installs with no compiler: a fresh venv in which every C/C++ compiler fails gets the
project from prebuilt wheels, starts, prints its first-start line, and that line gets an answer
from the embedded model. About a minute (the install dominates)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from support.server import free_port

pytestmark = pytest.mark.local_model

ROOT = Path(__file__).resolve().parents[2]
NO_COMPILER = {"CC": "/bin/false", "CXX": "/bin/false", "CMAKE_C_COMPILER": "/bin/false",
               "CMAKE_CXX_COMPILER": "/bin/false"}


def project_copy(target: Path) -> Path:
    """The sources as a clone has them (an in-tree build would leave build/ in the work tree)."""
    target.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, target / name)
    shutil.copytree(ROOT / "src", target / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    return target


def test_a_fresh_install_needs_no_compiler_and_answers_from_the_embedded_model(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADWATER_", "VIRTUAL_ENV"))} | NO_COMPILER
    install = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-v",
         str(project_copy(tmp_path / "project"))],
        env=env, capture_output=True, text=True, timeout=900,
    )
    assert install.returncode == 0, install.stdout[-4000:] + install.stderr[-4000:]
    built = re.findall(r"Building wheel for (\S+)", install.stdout)
    assert set(built) == {"headwater"}, f"built from source: {built}"  # only our own pure-Python package

    port = free_port()
    data_dir = tmp_path / "data"
    env |= {"HEADWATER_HOST": "127.0.0.1", "HEADWATER_PORT": str(port), "HEADWATER_DATA_DIR": str(data_dir)}
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen([str(venv / "bin" / "headwater"), "serve"], env=env, stdout=out,
                                  stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        printed = log.read_text()
        assert "Headwater admin API key (shown once, store it now): hw_" in printed
        line = next(line.strip() for line in printed.splitlines() if line.strip().startswith("curl "))
        assert f"http://127.0.0.1:{port}/" in line
        answer = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=120)
        reply = httpx.Response(200, content=answer.stdout).json()
        assert reply["choices"][0]["message"]["content"].strip(), reply
        assert reply["usage"]["completion_tokens"] > 0
    finally:
        os.kill(server.pid, signal.SIGTERM)  # the loaded model must not keep the server from stopping
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(server.pid, signal.SIGKILL)
            server.wait()
            pytest.fail("the server did not stop on SIGTERM with the model loaded")
