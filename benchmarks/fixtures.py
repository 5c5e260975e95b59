"""What every scenario shares: the TLS material made at run time, and the server process."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import trustme

__all__ = ["TLSMaterial", "ServerProcess", "system_ca_file", "cert_env"]


def system_ca_file() -> str:
    """The system trust store as one PEM file (what ``ssl.create_default_context()`` loads)."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile, "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and os.path.isfile(candidate):
            return candidate
    raise RuntimeError("no system CA bundle found; the system-trust-store scenario needs one")


class TLSMaterial:
    """A throw-away CA (trustme) and a server certificate for 127.0.0.1 and localhost.

    Files, all in a temporary directory that lives as long as this object:

    - ``ca``: the test CA alone (PEM).
    - ``bundle``: the system trust store followed by the test CA, so a client that loads it
      loads the whole system store and can still verify the loopback server.
    - ``cert`` / ``key``: the server's chain and private key.
    - ``empty_dir``: an empty directory, used as ``SSL_CERT_DIR`` when the official SDK
      must see the test CA and nothing else.
    """

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="pacspace-bench-")
        root = Path(self._tmp.name)
        authority = trustme.CA()
        issued = authority.issue_cert("127.0.0.1", "localhost")
        self.ca = str(root / "test-ca.pem")
        self.cert = str(root / "server-chain.pem")
        self.key = str(root / "server-key.pem")
        self.bundle = str(root / "system-plus-test-ca.pem")
        self.empty_dir = str(root / "no-certs")
        os.mkdir(self.empty_dir)
        authority.cert_pem.write_to_path(self.ca)
        issued.private_key_pem.write_to_path(self.key)
        with open(self.cert, "wb") as out:
            for blob in issued.cert_chain_pems:
                out.write(blob.bytes())
        self.system_store = system_ca_file()
        with open(self.bundle, "wb") as out:
            out.write(Path(self.system_store).read_bytes().rstrip(b"\n") + b"\n")
            out.write(authority.cert_pem.bytes())
        self.system_store_certs = _count_certs(self.system_store)

    def context(self, *, system_store: bool) -> ssl.SSLContext:
        """A client context made once: the test CA alone, or the system store plus the test CA."""
        return ssl.create_default_context(cafile=self.bundle if system_store else self.ca)

    def close(self) -> None:
        self._tmp.cleanup()


def _count_certs(path: str) -> int:
    return Path(path).read_bytes().count(b"-----BEGIN CERTIFICATE-----")


@contextmanager
def cert_env(cafile: str, capath: str | None) -> Iterator[None]:
    """Point OpenSSL's default verify paths (``SSL_CERT_FILE``/``SSL_CERT_DIR``) elsewhere.

    Only the official SDK relies on them (urllib builds a default context per connection);
    every other client gets an explicit context or CA file.
    """
    saved = {name: os.environ.get(name) for name in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    os.environ["SSL_CERT_FILE"] = cafile
    if capath is None:
        os.environ.pop("SSL_CERT_DIR", None)
    else:
        os.environ["SSL_CERT_DIR"] = capath
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class ServerProcess:
    """``python -m benchmarks.server`` in a child process, driven over its stdin/stdout."""

    def __init__(self, tls: TLSMaterial) -> None:
        root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.server", tls.cert, tls.key],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=root,
            env=env,
            text=True,
        )
        hello = self._read()
        self.pid: int = hello["pid"]
        self.http_url = f"http://127.0.0.1:{hello['http']}"
        self.https_url = f"https://127.0.0.1:{hello['https']}"

    def _read(self) -> dict[str, Any]:
        stdout: IO[str] | None = self._process.stdout
        assert stdout is not None
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"the benchmark server exited (code {self._process.poll()})")
        message: dict[str, Any] = json.loads(line)
        return message

    def _command(self, command: str) -> dict[str, Any]:
        stdin = self._process.stdin
        assert stdin is not None
        stdin.write(command + "\n")
        stdin.flush()
        return self._read()

    def stats(self) -> dict[str, Any]:
        return self._command("stats")

    def reset_peak(self) -> dict[str, Any]:
        return self._command("reset-peak")

    def close(self) -> None:
        stop_child(self._process)


def stop_child(process: subprocess.Popen[str]) -> None:
    """Ask a helper process (server, proxy) to quit on its stdin; kill it if it does not."""
    if process.poll() is None:
        try:
            stdin = process.stdin
            assert stdin is not None
            stdin.write("quit\n")
            stdin.flush()
            process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
