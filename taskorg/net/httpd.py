"""The WSGI server under every service: cheroot, guarded against idle and greedy clients.

cheroot (unlike waitress) serves TLS with client-certificate verification.
Out of the box it would still let idle clients stop a service: it does the
TLS handshake inside its accept loop, and hands every new connection to a
worker thread that then waits for the request line. Here:

- a new connection waits in cheroot's selector until it has bytes to read,
  so idle connections hold no worker thread (and are closed after
  `IDLE_TIMEOUT`); once it sends, its request line and headers must be in
  within `HEADER_DEADLINE`, however slowly the bytes trickle;
- TLS handshakes run non-blocking in one thread of their own, bounded by
  `HANDSHAKE_TIMEOUT`, so a client that never sends its hello stops nobody;
- one source address may hold at most `PER_SOURCE_LIMIT` connections, and
  the whole server `TOTAL_LIMIT`: past that, a new connection is closed at once.
  This machine's own 127.0.0.1 counts only towards the total: on loopback
  every process of a local cluster (100 nodes in the scale bench) connects
  from it, while on a LAN each node has its own address.
"""

from __future__ import annotations

import logging
import resource
import selectors
import socket
import ssl
import threading
import time
from collections import Counter
from typing import Any, Callable

from cheroot import connections, server as cheroot_server, wsgi
from cheroot.makefile import MakeFile
from cheroot.ssl.builtin import BuiltinSSLAdapter

from taskorg.logs import get_logger
from taskorg.net import sdnotify
from taskorg.net.sdnotify import Beat

log = get_logger("http")

IDLE_TIMEOUT = 5.0  # a connection with no request for this long is closed; also the limit of each read
HANDSHAKE_TIMEOUT = 3.0
HEADER_DEADLINE = 5.0
PER_SOURCE_LIMIT = 64
TOTAL_LIMIT = 4096
LOCAL_SOURCES = ("127.0.0.1", "::1")


class _Slots:
    """Open connections per source address, with the limits above."""

    def __init__(self, per_source: int, total: int) -> None:
        self.per_source = per_source
        self.total = total
        self._open: Counter[str] = Counter()
        self._lock = threading.Lock()

    def take(self, source: str) -> bool:
        with self._lock:
            greedy = self._open[source] >= self.per_source and source not in LOCAL_SOURCES
            if greedy or sum(self._open.values()) >= self.total:
                return False
            self._open[source] += 1
            return True

    def give_back(self, source: str) -> None:
        with self._lock:
            self._open[source] -= 1
            if self._open[source] <= 0:
                del self._open[source]

    def count(self, source: str) -> int:
        with self._lock:
            return self._open[source]


class _Deadlines:
    """Shuts a connection down when its request headers take too long (one thread for all)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._watched: dict[int, tuple[float, socket.socket]] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        threading.Thread(target=self._run, name="header-deadlines", daemon=True).start()

    def watch(self, sock: socket.socket) -> int:
        key = id(sock)
        with self._lock:
            self._watched[key] = (time.monotonic() + self.seconds, sock)
        return key

    def release(self, key: int) -> None:
        with self._lock:
            self._watched.pop(key, None)

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.wait(0.25):
            now = time.monotonic()
            with self._lock:
                late = [key for key, (deadline, _) in self._watched.items() if deadline < now]
                socks = [self._watched.pop(key)[1] for key in late]
            for sock in socks:
                try:
                    # The plain socket's shutdown (an SSLSocket's own would unwrap under the reader's feet):
                    # the worker's blocked read ends, and cheroot closes the connection.
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
                except OSError:
                    pass


class _DeadlineRequest(cheroot_server.HTTPRequest):
    def parse_request(self) -> None:
        deadlines = self.server.deadlines
        key = deadlines.watch(self.conn.socket)
        try:
            super().parse_request()
        finally:
            deadlines.release(key)


class _CountedConnection(cheroot_server.HTTPConnection):
    """Gives its source's slot back when it closes (once); its requests' headers have a deadline."""

    RequestHandlerClass = _DeadlineRequest
    slot_source: str | None = None

    def close(self) -> None:
        source, self.slot_source = self.slot_source, None
        try:
            super().close()
        finally:
            if source is not None:
                self.server.slots.give_back(source)


class _Handshakes:
    """Non-blocking TLS handshakes in one thread; finished connections go to cheroot's selector."""

    def __init__(self, server: "GuardedServer") -> None:
        self.server = server
        self._selector = selectors.DefaultSelector()
        self._pending: dict[int, tuple[ssl.SSLSocket, str, int, float]] = {}
        self._incoming: list[tuple[socket.socket, str, int]] = []
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="tls-handshakes", daemon=True)
        self._thread.start()

    def add(self, sock: socket.socket, source: str, port: int) -> None:
        with self._lock:
            self._incoming.append((sock, source, port))
        self._wake_w.send(b"x")

    def stop(self) -> None:
        self._stop = True
        self._wake_w.send(b"x")

    def _run(self) -> None:
        while not self._stop:
            try:
                self._round()
            except Exception:  # this thread must outlive any one connection's surprise
                log.exception("TLS handshake loop error")

    def _round(self) -> None:
        """Advance every handshake that can move, take new connections, drop the overdue."""
        context = self.server.ssl_adapter.context
        for key, events in self._selector.select(timeout=0.5):
            if key.data is None:
                try:
                    self._wake_r.recv(4096)
                except BlockingIOError:
                    pass
                continue
            self._step(key.fd)
        with self._lock:
            incoming, self._incoming = self._incoming, []
        for sock, source, port in incoming:
            sock.setblocking(False)
            try:
                wrapped = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            except (OSError, ssl.SSLError):
                self._drop_raw(sock, source)
                continue
            self._pending[wrapped.fileno()] = (wrapped, source, port, time.monotonic() + HANDSHAKE_TIMEOUT)
            self._selector.register(wrapped.fileno(), selectors.EVENT_READ, "tls")
            self._step(wrapped.fileno())
        now = time.monotonic()
        for fd in [fd for fd, item in self._pending.items() if item[3] < now]:
            self._drop(fd)

    def _step(self, fd: int) -> None:
        sock, source, port, _ = self._pending[fd]
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self._selector.modify(fd, selectors.EVENT_READ, "tls")
            return
        except ssl.SSLWantWriteError:
            self._selector.modify(fd, selectors.EVENT_WRITE, "tls")
            return
        except (OSError, ssl.SSLError) as exc:
            log.debug("TLS handshake failed", extra={"peer": source, "error": str(exc)})
            self._drop(fd)
            return
        self._selector.unregister(fd)
        del self._pending[fd]
        sock.setblocking(True)
        sock.settimeout(self.server.timeout)
        adapter = self.server.ssl_adapter
        try:
            environ = adapter.get_environ(sock)
        except (OSError, ssl.SSLError):
            sock.close()
            self.server.slots.give_back(source)
            return
        self.server.adopt(sock, adapter.makefile, environ, source, port)

    def _drop(self, fd: int) -> None:
        sock, source, _, _ = self._pending.pop(fd)
        self._selector.unregister(fd)
        self._drop_raw(sock, source)

    def _drop_raw(self, sock: socket.socket, source: str) -> None:
        try:
            sock.close()
        finally:
            self.server.slots.give_back(source)


class _GuardedConnections(connections.ConnectionManager):
    def _expire(self, threshold: float) -> None:
        # cheroot's accept loop calls this every expiration_interval (0.5 s): proof the loop turns.
        self.server.loop_beat.mark()
        super()._expire(threshold)

    def _from_server_socket(self, server_socket: socket.socket) -> None:
        try:
            sock, addr = server_socket.accept()
        except OSError:
            return None  # a client gave up between readiness and accept, or EMFILE: try again next round
        source, port = addr[0], addr[1]
        if not self.server.slots.take(source):
            log.debug("connection refused: too many from this source", extra={"peer": source})
            sock.close()
            return None
        connections.prevent_socket_inheritance(sock)
        if self.server.ssl_adapter is not None:
            self.server.handshakes.add(sock, source, port)
        else:
            sock.settimeout(self.server.timeout)
            self.server.adopt(sock, MakeFile, {}, source, port)
        return None


class GuardedServer(wsgi.Server):
    ConnectionClass = _CountedConnection

    def __init__(self, *args: Any, per_source: int = PER_SOURCE_LIMIT, total: int = TOTAL_LIMIT,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slots = _Slots(per_source, total)
        self.deadlines = _Deadlines(HEADER_DEADLINE)
        self.handshakes: _Handshakes | None = None
        self.loop_beat = Beat("the HTTP server's accept loop")
        # Idle connections wait in the selector; cheroot's default of 10 would turn keep-alive off
        # for everyone as soon as ten idle clients are connected.
        self.keep_alive_conn_limit = total

    def prepare(self) -> None:
        super().prepare()
        self._connections.close()
        self._connections = _GuardedConnections(self)
        if self.ssl_adapter is not None:
            self.handshakes = _Handshakes(self)

    def adopt(self, sock: socket.socket, makefile: Any, ssl_env: dict[str, Any], source: str, port: int) -> None:
        """A connection ready for HTTP: into the selector, to a worker once its request arrives."""
        conn = self.ConnectionClass(self, sock, makefile)
        conn.remote_addr, conn.remote_port = source, port
        conn.ssl_env = ssl_env
        conn.slot_source = source
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            self.process_conn(conn)  # the request arrived with the handshake: the selector would not see it
        else:
            self._connections.put(conn)

    def stop(self) -> None:
        if self.handshakes:
            self.handshakes.stop()
        self.deadlines.stop()
        super().stop()

    def error_log(self, msg: str = "", level: int = 20, traceback: bool = False) -> None:
        # Mostly a client that vanished or was cut off (a header deadline): one quiet line, the trace
        # only when debugging.
        if level >= 40:
            log.warning("http connection error", extra={"detail": msg},
                        exc_info=traceback and log.isEnabledFor(logging.DEBUG))


def raise_open_file_limit() -> None:
    """Idle connections cost a descriptor each: take the hard limit (a unit's default soft one is 1024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def make_server(app: Any, host: str, port: int, threads: int,
                context: ssl.SSLContext | None, cert_file: str = "", key_file: str = "") -> GuardedServer:
    server = GuardedServer((host, port), app, numthreads=threads, max=threads, timeout=int(IDLE_TIMEOUT),
                           request_queue_size=1024, accepted_queue_size=-1, server_name="taskorg")
    if context is not None:
        adapter = BuiltinSSLAdapter(cert_file, key_file or None)
        adapter.context = context
        server.ssl_adapter = adapter
    return server


LOOP_STALE_AFTER = 5.0  # an accept loop turns every 0.5 s; this long without a turn is a hang


def run_servers(servers: list[GuardedServer], on_ready: Callable[[], None] | None = None) -> None:
    """Serve every server until the first stops (the others in threads of their own); all are
    bound before `on_ready` and systemd's READY=1, and all stop together. The watchdog pings only
    while every accept loop turns."""
    raise_open_file_limit()
    watchdog = sdnotify.process_watchdog()
    checks: list[Any] = []
    try:
        for server in servers:
            server.prepare()
            checks.append(watchdog.watch(lambda server=server: server.loop_beat.stale(LOOP_STALE_AFTER)))
        if on_ready:
            on_ready()
        sdnotify.ready()
        for extra in servers[1:]:
            threading.Thread(target=extra.serve, daemon=True, name=f"http-{extra.bind_addr[1]}").start()
        servers[0].serve()
    finally:
        for check in checks:
            watchdog.unwatch(check)
        for server in servers:
            server.stop()
