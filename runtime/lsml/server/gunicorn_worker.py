"""lsml's gunicorn worker: gthread's thread pool runs the app, and no client can make anyone else wait.

Why not stock gthread (gunicorn 27): its main thread polls every connection and
also closes `Connection: close` sockets "gracefully", waiting up to 2 s for the
peer's FIN; a client that does not close promptly stalls every other client of
the worker (issue 13). Its pool threads also read request heads and bodies and
write responses with blocking, untimed socket calls, so eight slow-loris or
slow-reading clients take all eight threads. Here every wait on a client
happens in the main loop, without blocking:

* a request is read into memory on the main loop (non-blocking) and handed to
  a pool thread only once its head and body are complete (`request_state`;
  bodies above `LSML_MAX_BODY_BYTES` (refused by the app with 413), chunked bodies and `Expect: 100-continue`
  are read by the thread, each socket call bounded by `LSML_CLIENT_TIMEOUT`);
* a response is gathered in memory and sent by the thread with one
  non-blocking send; what the peer cannot take yet is sent by the main loop
  as the socket drains;
* a `Connection: close` socket is half-closed and drained for its FIN on the
  main loop (at most `LINGER_SECONDS`), never waited for;
* a client gets `keepalive` s to start a request and `LSML_CLIENT_TIMEOUT` s
  to finish sending it or to take its response, then its socket is closed.

Also: a worker that holds more connections than the least busy of its
siblings lets them take a new one (`ConnectionBoard`, least connections;
stock gunicorn lets whichever worker wakes first take it, so keep-alive
connections piled onto one process); SIGQUIT/SIGINT exit at once instead of calling
`ThreadPoolExecutor.shutdown` from a signal handler (which deadlocks when the
signal lands inside `submit`, the orphaned worker of issue 13); and a worker
dies with its master (`PR_SET_PDEATHSIG`). Plain HTTP/1.1 only: TLS belongs to
the ingress in front.
"""

from __future__ import annotations

import mmap
import os
import re
import selectors
import socket
import struct
import time
from functools import partial
from typing import Any

from gunicorn import http, util
from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, TConn
from gunicorn.workers.gthread import ThreadWorker as GThreadWorker

from lsml.procs import die_with_parent
from lsml.settings import ServingSettings, Settings

READ_CHUNK = 262_144
HEAD_LIMIT = 65_536  # a head this long without its blank line goes to the parser, which refuses it
LINGER_SECONDS = 2.0
LINGER_DRAIN = 65_536
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)[ \t]*(?=\r\n|$)")


WAIT, WHOLE, PARTIAL = 0, 1, 2  # what `request_state` says about a buffer


def request_state(buf: bytes | bytearray, body_limit: int) -> int:
    """WAIT for more bytes; WHOLE: the request is all in `buf`; PARTIAL: a thread must read the rest itself.

    PARTIAL: bodies above `body_limit`, chunked bodies, `Expect: 100-continue`,
    and heads too long to be valid (the parser refuses those).
    """
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return PARTIAL if len(buf) > HEAD_LIMIT else WAIT
    head = bytes(buf[:end]).lower()
    if b"\r\ntransfer-encoding:" in head or b"\r\nexpect:" in head:
        return PARTIAL
    match = _CONTENT_LENGTH.search(head)
    if match is None:
        return WHOLE  # no body, or a malformed length: the parser answers 400
    length = int(match.group(1))
    if length > body_limit:
        return PARTIAL
    return WHOLE if len(buf) >= end + 4 + length else WAIT


class ConnectionBoard:
    """Open connections per worker, in memory the master maps before forking and every worker shares.

    Why: keep-alive connections stay with the worker that accepted them, so who
    accepts decides how the load is spread. Each worker writes its own count and a
    heartbeat into its slot (aligned 8-byte stores, no lock) and reads the others'
    before it accepts. Slots are `worker.age % SLOTS`; the master clears a dead
    worker's (`forget`, from gunicorn_conf's `child_exit`), and a worker whose main
    loop has not beaten for STALE_AFTER s is not waited for (a stuck sibling must
    not keep connections from the others). A board created after the fork is
    private to one worker: it then never yields, as stock gunicorn.
    """

    SLOTS = 64
    EMPTY = -1
    STALE_AFTER = 3.0

    def __init__(self) -> None:
        self._map = mmap.mmap(-1, 16 * self.SLOTS)
        for slot in range(self.SLOTS):
            self.set(slot, self.EMPTY)

    def set(self, slot: int, count: int) -> None:
        struct.pack_into("q", self._map, 16 * (slot % self.SLOTS), count)

    def beat(self, slot: int) -> None:
        struct.pack_into("q", self._map, 16 * (slot % self.SLOTS) + 8, time.monotonic_ns())

    def others_min(self, slot: int) -> int | None:
        """The fewest connections any other live, beating worker holds (None: no such worker)."""
        fresh = time.monotonic_ns() - int(self.STALE_AFTER * 1e9)
        counts = [
            count
            for i, (count, beat) in enumerate(struct.iter_unpack("qq", self._map))
            if count != self.EMPTY and beat >= fresh and i != slot % self.SLOTS
        ]
        return min(counts) if counts else None


BOARD = ConnectionBoard()  # imported by the master when gunicorn loads the worker class, before any fork
ACCEPT_PAUSE = 0.002  # how long a busier worker leaves new connections to its siblings
NOTIFY_INTERVAL = 1.0  # seconds between heartbeats to the arbiter


def forget(worker: Any) -> None:
    """The master's half of the board: a dead worker's slot no longer counts."""
    BOARD.set(worker.age, ConnectionBoard.EMPTY)


def refuse_taken_addresses(addresses: list[Any]) -> None:
    """RuntimeError (gunicorn prints it and exits 1) when something already listens on a TCP address.

    Why: a second `start` on a busy port (or one still held by a stale server)
    should say so at once; gunicorn alone retries the bind for 5 s and then
    reports "Can't connect".
    """
    for address in addresses:
        if not isinstance(address, tuple):
            continue  # a unix socket
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address[:2])
            except OSError as exc:
                raise RuntimeError(
                    f"{address[0]}:{address[1]} is already in use ({exc.strerror}); "
                    "stop the other server or choose another PORT"
                ) from None


class _Gathered:
    """Stands in for the socket while the app writes its response: `sendall` bytes are kept, sent later in one go."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.buffer = bytearray()

    def sendall(self, data: bytes) -> None:
        self.buffer += data

    # `send` goes to the socket: gunicorn uses it only for "100 Continue", which must reach the
    # client before it sends the body the app is about to read.

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class ThreadWorker(GThreadWorker):
    """gthread with every client wait on the main loop (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client_timeout = ServingSettings.from_env().client_timeout
        self.body_limit = Settings.from_env().max_body_bytes  # what the app accepts is buffered whole
        self._reading: dict[TConn, float] = {}
        self._writing: dict[TConn, float] = {}
        self._lingering: dict[TConn, float] = {}

    # ---- process ------------------------------------------------------------------------------
    def init_process(self) -> None:
        if self.cfg.is_ssl:
            raise RuntimeError("lsml's worker serves plain HTTP; terminate TLS in front of it")
        die_with_parent()
        self._accept_paused_until = 0.0
        BOARD.beat(self.age)
        BOARD.set(self.age, 0)
        super().init_process()

    def notify(self) -> None:
        """The heartbeat, at most every NOTIFY_INTERVAL s: gthread's loop did one utime() syscall per wake-up.

        A profile of a no-op /predict at concurrency 1 put 12% of the worker's samples
        in it; the arbiter only needs it within `timeout` (300 s).
        """
        now = time.monotonic()
        if now - getattr(self, "_notified_at", -NOTIFY_INTERVAL) >= NOTIFY_INTERVAL:
            self._notified_at = now
            BOARD.beat(self.age)
            super().notify()

    @property
    def nr_conns(self) -> int:
        return self._nr_conns

    @nr_conns.setter
    def nr_conns(self, value: int) -> None:
        """Every change is published on the board, where siblings read it before accepting."""
        self._nr_conns = value
        if getattr(self, "_accept_paused_until", None) is not None:  # set once this is the worker process
            BOARD.set(self.age, value)

    def set_accept_enabled(self, enabled: bool) -> None:
        if enabled and time.monotonic() < getattr(self, "_accept_paused_until", 0.0):
            return  # yielding to a less busy sibling for a moment
        super().set_accept_enabled(enabled)

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        paused = getattr(self, "_accept_paused_until", 0.0) - time.monotonic()
        super().wait_for_and_dispatch_events(min(timeout, paused) if paused > 0 else timeout)

    def handle_quit(self, sig: int, frame: Any) -> None:
        """Exit now: gthread's `tpool.shutdown()` here can deadlock on the executor's lock (see module doc)."""
        self.alive = False
        try:
            self.cfg.worker_int(self)
        finally:
            os._exit(0)

    # ---- reading requests on the main loop ----------------------------------------------------
    def accept(self, listener: Any) -> None:
        fewest = BOARD.others_min(self.age)
        if fewest is not None and self.nr_conns > fewest:  # a sibling is less busy: let it take this one
            self._accept_paused_until = time.monotonic() + ACCEPT_PAUSE
            self.set_accept_enabled(False)
            return
        try:
            client, addr = listener.accept()
        except (BlockingIOError, ConnectionAbortedError):
            return  # another worker took it, or the client gave up
        except OSError as exc:  # EMFILE, ENOBUFS...: do not spin on a listener that stays readable
            self.log.warning("accept failed (%s): pausing accepts for 0.1 s", exc)
            self._accept_paused_until = time.monotonic() + 0.1
            self.set_accept_enabled(False)
            return
        self.nr_conns += 1
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = TConn(self.cfg, client, addr, listener.getsockname())  # non-blocking
        conn.lsml_in = bytearray()
        self._read(conn)

    def _read(self, conn: TConn) -> None:
        """Wait for a whole request on `conn` (keepalive s to start it, client_timeout s to finish it)."""
        now = time.monotonic()
        conn.lsml_state = request_state(conn.lsml_in, self.body_limit)
        if conn.lsml_state != WAIT:
            self.enqueue_req(conn)
            return
        deadline = now + (self.client_timeout if conn.lsml_in else self.cfg.keepalive)
        if not self.alive:
            deadline = min(deadline, now + STOP_KEEPALIVE_LINGER)
        self._reading[conn] = deadline
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))

    def _on_readable(self, conn: TConn, _sock: Any) -> None:
        started = bool(conn.lsml_in)
        try:
            while True:
                data = conn.sock.recv(READ_CHUNK)
                if not data:
                    self._drop(conn, self._reading)
                    return
                conn.lsml_in += data
                if len(data) < READ_CHUNK:
                    break
        except BlockingIOError:
            pass
        except OSError:
            self._drop(conn, self._reading)
            return
        conn.lsml_state = request_state(conn.lsml_in, self.body_limit)
        if conn.lsml_state != WAIT:
            self.poller.unregister(conn.sock)
            del self._reading[conn]
            self.enqueue_req(conn)
        elif not started:
            self._reading[conn] = time.monotonic() + self.client_timeout

    def on_client_socket_readable(self, conn: TConn, client: Any) -> None:  # not used: kept-alive conns are in _read
        raise AssertionError("lsml's worker keeps no connection in gthread's keep-alive queue")

    # ---- serving, in a pool thread --------------------------------------------------------------
    def handle(self, conn: TConn) -> bool:
        """Serve the buffered request; return whether to keep the connection. Runs in a pool thread."""
        req = None
        sock = conn.sock
        conn.lsml_out = None
        try:
            conn.init()  # the first time: makes the socket blocking
            if conn.lsml_state == PARTIAL:
                sock.settimeout(self.client_timeout)  # each read of the rest waits this long at most
            elif sock.gettimeout() != 0.0:
                sock.setblocking(False)  # all is buffered: nothing to wait for (no syscall when kept alive)
            if conn.lsml_in:
                conn.parser.unreader.unread(bytes(conn.lsml_in))
                conn.lsml_in = bytearray()
            req = next(conn.parser)
            if not req:
                return False
            out = _Gathered(sock)
            conn.sock = out
            try:
                keep = self.handle_request(req, conn)
            finally:
                conn.sock = sock
            keep = self._keepalive_after(conn, keep)
            conn.lsml_out = out.buffer
            self._send_now(conn)
            return keep
        except http.errors.NoMoreData:
            pass
        except StopIteration:
            pass
        except (TimeoutError, ConnectionError):
            self.log.debug("client too slow or gone: %s", conn.client)
        except OSError as exc:
            self.log.debug("socket error serving %s: %s", conn.client, exc)
        except Exception as exc:  # a parse error: gunicorn writes the 4xx and logs it
            conn.sock = sock
            self.handle_error(req, sock, conn.client, exc)
        return False

    @staticmethod
    def _send_now(conn: TConn) -> None:
        """Send what the socket takes right now; the rest (a slow reader's) is left for the main loop."""
        out = getattr(conn, "lsml_out", None)
        if not out:
            return
        if conn.sock.gettimeout() != 0.0:
            conn.sock.setblocking(False)
        try:
            while out:
                del out[: conn.sock.send(out)]
        except BlockingIOError:
            pass

    # ---- after the response, on the main loop -------------------------------------------------
    def finish_request(self, conn: TConn, fs: Any) -> None:
        try:
            keep = bool(fs.result()) if not fs.cancelled() else False
        except Exception:
            keep = False
        try:
            if conn.sock.gettimeout() != 0.0:  # a PARTIAL request, or an error before _send_now
                conn.sock.setblocking(False)
            if getattr(conn, "lsml_out", None):
                self._writing[conn] = time.monotonic() + self.client_timeout
                self.poller.register(conn.sock, selectors.EVENT_WRITE, partial(self._on_writable, conn, keep))
            else:
                self._after_response(conn, keep)
        except (OSError, ValueError):  # ValueError: the socket was closed while serving
            self.nr_conns -= 1
            util.close(conn.sock)

    def _on_writable(self, conn: TConn, keep: bool, _sock: Any) -> None:
        out = conn.lsml_out
        try:
            while out:
                del out[: conn.sock.send(out)]
        except BlockingIOError:
            return
        except OSError:
            self._drop(conn, self._writing)
            return
        self.poller.unregister(conn.sock)
        del self._writing[conn]
        self._after_response(conn, keep)

    def _after_response(self, conn: TConn, keep: bool) -> None:
        if keep:
            conn.lsml_in = bytearray(conn.parser.unreader.take_buffered())  # a pipelined next request
            self._read(conn)
            return
        self.nr_conns -= 1
        self._linger(conn)

    def _linger(self, conn: TConn) -> None:
        """Half-close and let the main loop drain the peer's last bytes, so the kernel sends no RST over the answer."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            util.close(conn.sock)
            return
        if len(self._lingering) >= self.worker_connections:
            util.close(conn.sock)
            return
        conn.lsml_drained = 0
        self._lingering[conn] = time.monotonic() + LINGER_SECONDS
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_linger, conn))

    def _on_linger(self, conn: TConn, _sock: Any) -> None:
        try:
            while conn.lsml_drained < LINGER_DRAIN:
                data = conn.sock.recv(READ_CHUNK)
                if not data:
                    break
                conn.lsml_drained += len(data)
        except BlockingIOError:
            if conn.lsml_drained < LINGER_DRAIN:
                return
        except OSError:
            pass
        self._forget(conn, self._lingering)

    # ---- timeouts and stopping ----------------------------------------------------------------
    def _forget(self, conn: TConn, table: dict[TConn, float]) -> None:
        table.pop(conn, None)
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass
        util.close(conn.sock)

    def _drop(self, conn: TConn, table: dict[TConn, float]) -> None:
        self.nr_conns -= 1
        self._forget(conn, table)

    def murder_pending(self) -> None:
        """Close the connections whose client ran out of time (gthread calls this every loop)."""
        super().murder_pending()
        now = time.monotonic()
        for table, counted in ((self._reading, True), (self._writing, True), (self._lingering, False)):
            for conn in [c for c, deadline in table.items() if deadline <= now]:
                if counted:
                    self._drop(conn, table)
                else:
                    self._forget(conn, table)

    def _cap_keepalive(self, deadline: float) -> None:
        """Stopping: a client gets STOP_KEEPALIVE_LINGER s more to send its request or take its answer."""
        super()._cap_keepalive(deadline)
        for table in (self._reading, self._writing):  # nor can a client that does not read its answer
            for conn, current in list(table.items()):
                table[conn] = min(current, deadline)

    def run(self) -> None:
        super().run()
        for table in (self._reading, self._writing, self._lingering):
            for conn in list(table):
                util.close(conn.sock)
