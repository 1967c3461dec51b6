"""The node agent's kube-proxy stand-in: each Service's ClusterIP:port forwards TCP to its ready pods.

ClusterIPs come from a loopback range (127.S.0.0/16), so a listener on ClusterIP:port is all it
takes to make a Service routable from the host, from pods and from kube-apiserver (webhook
Services). Bytes are copied both ways untouched, so TLS passes through. Backends rotate round-robin
per connection; a backend that refuses is skipped (as the old userspace kube-proxy did). A Service
port without ready backends has no listener at all, so a client is refused at once - what
kube-proxy's REJECT rule gives. Established connections are left alone when backends change.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .services import Frontend, backends, frontends

log = logging.getLogger("localcluster.proxy")

CONNECT_TIMEOUT = 3.0
CHUNK = 256 * 1024

# Reports a frontend that cannot listen (say, a port below 1024 without root): (frontend, reason).
ListenProblem = Callable[[Frontend, str], None]


@dataclass
class _Listener:
    frontend: Frontend
    server: asyncio.Server
    backends: list[tuple[str, int]]
    turn: itertools.count[int] = field(default_factory=itertools.count)


class ServiceProxy:
    """Follows Services and pods (fed by the agent's watches) and keeps the listeners in step."""

    def __init__(self, apiserver: tuple[str, int], on_listen_problem: ListenProblem | None = None) -> None:
        self.apiserver = apiserver
        self.on_listen_problem = on_listen_problem
        self._services: dict[str, dict[str, Any]] = {}
        self._pods: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._listeners: dict[tuple[str, int], _Listener] = {}
        self._failed: dict[tuple[str, int], str] = {}  # address -> reason already reported
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="service-proxy", daemon=True)
        self._dirty = False
        self._reconciling = asyncio.Lock()  # one pass at a time: a pass awaits while binding

    # -- feeding (any thread) -------------------------------------------------------------------
    def set_service(self, service: dict[str, Any]) -> None:
        with self._lock:
            self._services[service["metadata"]["uid"]] = service
        self._schedule()

    def remove_service(self, uid: str) -> None:
        with self._lock:
            self._services.pop(uid, None)
        self._schedule()

    def replace_services(self, services: list[dict[str, Any]]) -> None:
        with self._lock:
            self._services = {s["metadata"]["uid"]: s for s in services}
        self._schedule()

    def set_pod(self, pod: dict[str, Any]) -> None:
        with self._lock:
            self._pods[pod["metadata"]["uid"]] = pod
        self._schedule()

    def remove_pod(self, uid: str) -> None:
        with self._lock:
            self._pods.pop(uid, None)
        self._schedule()

    def replace_pods(self, pods: list[dict[str, Any]]) -> None:
        with self._lock:
            self._pods = {p["metadata"]["uid"]: p for p in pods}
        self._schedule()

    def services(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._services.values())

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._close_all(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def listening(self) -> dict[tuple[str, int], list[tuple[str, int]]]:
        """ClusterIP:port -> backends now served (for tests and `status`)."""
        return {a: list(lst.backends) for a, lst in list(self._listeners.items())}

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(self._tick)
        self._loop.run_forever()

    def _tick(self) -> None:
        # Listeners that failed (a port taken for a moment) are retried every few seconds.
        if self._failed:
            self._dirty = True
            self._loop.create_task(self._reconcile())
        self._loop.call_later(5, self._tick)

    def _schedule(self) -> None:
        if not self._thread.is_alive():
            self._dirty = True
            return

        def mark() -> None:
            if not self._dirty:
                self._dirty = True
                self._loop.create_task(self._reconcile())

        self._loop.call_soon_threadsafe(mark)

    # -- reconciling (event loop) ---------------------------------------------------------------
    def desired(self) -> dict[tuple[str, int], tuple[Frontend, list[tuple[str, int]]]]:
        with self._lock:
            services, pods = list(self._services.values()), list(self._pods.values())
        wanted: dict[tuple[str, int], tuple[Frontend, list[tuple[str, int]]]] = {}
        for service in services:
            for frontend in frontends(service):
                found = backends(service, frontend, pods, self.apiserver)
                if found:
                    wanted[frontend.address] = (frontend, found)
        return wanted

    async def _reconcile(self) -> None:
        async with self._reconciling:
            if self._dirty:
                self._dirty = False
                await self._apply(self.desired())

    async def _apply(self, wanted: dict[tuple[str, int], tuple[Frontend, list[tuple[str, int]]]]) -> None:
        for address in [a for a in self._listeners if a not in wanted or wanted[a][0] != self._listeners[a].frontend]:
            listener = self._listeners.pop(address)
            listener.server.close()
            log.info("stopped proxying %s", listener.frontend)
        for address, (frontend, found) in wanted.items():
            if address in self._listeners:
                self._listeners[address].backends = found
                continue
            try:
                server = await asyncio.start_server(
                    functools.partial(self._forward, address), address[0], address[1], reuse_address=True
                )
            except OSError as e:
                reason = f"cannot listen on {address[0]}:{address[1]}: {e.strerror}"
                if self._failed.get(address) != reason:
                    self._failed[address] = reason
                    log.warning("service %s: %s", frontend, reason)
                    if self.on_listen_problem:
                        problem = self.on_listen_problem
                        self._loop.run_in_executor(None, problem, frontend, reason)
                continue
            self._failed.pop(address, None)
            self._listeners[address] = _Listener(frontend, server, found)
            log.info("proxying %s -> %s", frontend, ", ".join(f"{ip}:{p}" for ip, p in found))
        for address in [a for a in self._failed if a not in wanted]:
            del self._failed[address]

    async def _close_all(self) -> None:
        for listener in self._listeners.values():
            listener.server.close()
        self._listeners.clear()

    async def _forward(self, address: tuple[str, int], reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        listener = self._listeners.get(address)
        candidates = list(listener.backends) if listener else []
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        if candidates and listener:
            first = next(listener.turn)
            for i in range(len(candidates)):
                ip, port = candidates[(first + i) % len(candidates)]
                try:
                    upstream = await asyncio.wait_for(asyncio.open_connection(ip, port), CONNECT_TIMEOUT)
                    break
                except (OSError, TimeoutError):
                    continue
        if upstream is None:
            writer.transport.abort()  # a reset, as when no backend answers
            return
        up_reader, up_writer = upstream
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                w.close()
                with contextlib.suppress(OSError, ConnectionError):
                    await w.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy one direction until EOF, then half-close (protocols that rely on it keep working)."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, ConnectionError):
        writer.transport.abort()

