"""The real-network view: the same clients behind the latency proxy, at 1 ms and 20 ms RTT.

Over loopback a new connection costs the official SDK (one per call) about 60 µs; over a real
network it costs a round trip, two or three with TLS. Each RTT gets one proxy process
(`benchmarks/proxy.py`) in front of the benchmark server's HTTP and HTTPS ports; TLS runs end to
end through it. Modes: sequential (every client), 8 in flight (the async clients) and 8
threads (the blocking ones); call counts are small and fixed by a time budget per measurement.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import IO, Any

from .clients import Variant
from .fixtures import ServerProcess, TLSMaterial, cert_env, stop_child

__all__ = ["NETWORK_MODES", "RTTS_MS", "ProxyProcess", "network_variants", "variant_key"]

RTTS_MS = (1.0, 20.0)
NETWORK_MODES = ("sequential", "inflight8", "threads")


def variant_key(rtt_ms: float, transport: str) -> str:
    return f"rtt{rtt_ms:g}-{transport}"


class ProxyProcess:
    """``python -m benchmarks.proxy`` in a child process: one listening port per upstream port."""

    def __init__(self, rtt_ms: float, upstream_ports: list[int]) -> None:
        root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.rtt_ms = rtt_ms
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.proxy", f"{rtt_ms:g}", *map(str, upstream_ports)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=root,
            env=env,
            text=True,
        )
        stdout: IO[str] | None = self._process.stdout
        assert stdout is not None
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"the latency proxy exited (code {self._process.wait()})")
        hello: dict[str, Any] = json.loads(line)
        self.ports: list[int] = hello["ports"]
        self.pid: int = hello["pid"]

    def close(self) -> None:
        stop_child(self._process)


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def start_proxies(server: ServerProcess, rtts: list[float]) -> dict[float, ProxyProcess]:
    proxies: dict[float, ProxyProcess] = {}
    try:
        for rtt in rtts:
            proxies[rtt] = ProxyProcess(rtt, [_port(server.http_url), _port(server.https_url)])
    except BaseException:
        for proxy in proxies.values():
            proxy.close()
        raise
    return proxies


def network_variants(tls: TLSMaterial, proxies: dict[float, ProxyProcess]) -> list[Variant]:
    variants = []
    for rtt, proxy in proxies.items():
        http_port, https_port = proxy.ports
        where = (
            f"through the latency proxy (`benchmarks/proxy.py`, its own process): every chunk forwarded "
            f"{rtt / 2:g} ms after it arrived, in order, and a new connection's first byte held one more "
            f"{rtt:g} ms round trip (the TCP handshake a real network charges)"
        )
        variants.append(
            Variant(
                variant_key(rtt, "http"),
                f"HTTP, {rtt:g} ms RTT",
                f"http://127.0.0.1:{http_port}",
                setup=f"plain HTTP {where}.",
            )
        )
        variants.append(
            Variant(
                variant_key(rtt, "tls"),
                f"TLS, test CA, {rtt:g} ms RTT",
                f"https://127.0.0.1:{https_port}",
                context=tls.context(system_store=False),
                verify=tls.ca,
                official_env=partial(cert_env, tls.ca, tls.empty_dir),
                setup=f"HTTPS {where}; TLS end to end, trusted as in the loopback test-CA scenario (the official "
                "SDK's cheapest context: with the system store it also pays the loopback row's context cost).",
            )
        )
    return variants
