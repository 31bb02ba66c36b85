"""lsml's gunicorn worker: a selectors loop owns every client wait, a thread pool runs the app.

Why not stock gthread: its main thread closes `Connection: close` sockets
"gracefully", waiting up to 2 s for the peer's FIN, so a client that does not
close promptly stalls every other client of the worker (issue 13); its pool
threads read request heads and bodies and write responses with blocking socket
calls, so eight slow-loris or slow-reading clients take all eight threads. Here
every wait on a client happens in the main loop, without blocking:

* a request is read into memory on the main loop (non-blocking) and handed to
  a pool thread only once its head and body are complete (`request_state`;
  bodies above `LSML_MAX_BODY_BYTES` (refused by the app with 413), chunked bodies and `Expect: 100-continue`
  are read by the thread, each socket call bounded by `LSML_CLIENT_TIMEOUT`);
* a response is gathered in memory and sent by the thread with one
  non-blocking send; what the peer cannot take yet is sent by the main loop
  as the socket drains. A kept-alive connection whose answer went out whole
  goes straight back to waiting from that thread: no main-loop wake-up and no
  poller change per request (issue 21);
* a `Connection: close` socket is half-closed and drained for its FIN on the
  main loop (at most `LINGER_SECONDS`), never waited for;
* a client gets `keepalive` s to start a request and `LSML_CLIENT_TIMEOUT` s
  to finish sending it or to take its response, then its socket is closed.

Also: a worker that holds more connections than the least busy of its
siblings lets them take a new one (`ConnectionBoard`, least connections;
stock gunicorn lets whichever worker wakes first take it, so keep-alive
connections piled onto one process); SIGTERM stops accepting, answers what is
in flight (a request arriving on a kept-alive connection within
`STOP_LINGER_SECONDS` gets its answer with `Connection: close`) and exits once
no connection is left or `graceful_timeout` has passed; SIGQUIT/SIGINT exit at
once (no `ThreadPoolExecutor.shutdown` from a signal handler, which deadlocks
when the signal lands inside `submit`: the orphaned worker of issue 13); and a
worker dies with its master (`PR_SET_PDEATHSIG`). Plain HTTP/1.1 only: TLS and
HTTP/2 belong to the ingress in front, and the worker refuses to start with
either configured rather than ignore it.

The gunicorn API this relies on, all of it public and present from gunicorn
23.0 to 27 (the CI matrix, hack/gunicorn-matrix.sh, runs the serving tests on
the oldest and newest release pyproject.toml allows):

* `gunicorn.workers.base.Worker`: `init_process()` (ours sets up, then calls
  it last, which loads the app into `self.wsgi` and calls `run()`), `run()`,
  `notify()`, `handle_exit`/`handle_quit` (signal hooks), `handle_error()`
  (the 4xx/5xx answer to a request that failed), `self.cfg`, `self.log`,
  `self.sockets`, `self.alive`, `self.age`, `self.ppid`, `self.nr`,
  `self.max_requests`;
* `gunicorn.http.Request(cfg, unreader, peer_addr, req_number)` and
  `gunicorn.http.errors`: the HTTP/1.1 parser, reading from our own
  `gunicorn.http.unreader.Unreader` subclass (`_Inbox`: its `chunk()` is the
  documented source hook), whose `read()` hands back what the parser read ahead;
* `gunicorn.http.wsgi.create(req, sock, client, server, cfg)` and the
  `Response` it returns (`start_response`, `write`, `write_file`, `close`,
  `force_close`, `should_close`, `headers_sent`), writing to `sock.sendall`
  (and `sock.sendfile` when `sendfile` is on);
* the server hooks `cfg.pre_request`, `cfg.post_request`, `cfg.worker_int`
  and the access log `self.log.access`.
"""

from __future__ import annotations

import mmap
import os
import queue
import re
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from gunicorn import http, util
from gunicorn.http import wsgi
from gunicorn.http.unreader import Unreader
from gunicorn.workers.base import Worker

from lsml.procs import die_with_parent
from lsml.settings import ServingSettings, Settings

READ_CHUNK = 262_144
THREAD_READ_CHUNK = 1_048_576  # a pool thread reading the rest of a large body: few recv() calls, few GIL hand-offs
HEAD_LIMIT = 65_536  # a head this long without its blank line goes to the parser, which refuses it
LINGER_SECONDS = 2.0
LINGER_DRAIN = 65_536
STOP_LINGER_SECONDS = 2.0  # how long a stopping worker still waits for a request on a kept-alive connection
SWEEP_INTERVAL = 0.1  # seconds between looks for clients out of time (while any connection is open)
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


class _Inbox(Unreader):
    """What the parser reads: the bytes the main loop received, then (PARTIAL requests only) the socket.

    `pending` is filled by the main loop while no thread serves the connection;
    `sock` is set by the pool thread only while it may block on the rest of a
    request (with the client timeout on the socket).
    """

    def __init__(self) -> None:
        super().__init__()
        self.pending = bytearray()
        self.sock: socket.socket | None = None

    def chunk(self, size_hint: int | None = None) -> bytes:  # gunicorn 23 calls chunk(), 24+ chunk(size_hint)
        if self.pending:
            data = bytes(self.pending)
            self.pending = bytearray()
            return data
        if self.sock is None:
            return b""  # everything the main loop saw was handed over: the parser sees the end
        return self.sock.recv(THREAD_READ_CHUNK)

    def take_back(self) -> None:
        """After a request: every byte received and not parsed (a pipelined next request) goes back to `pending`."""
        self.sock = None
        rest = self.read()  # the parser's read-ahead if any, else `pending` (through chunk)
        if rest:
            self.pending = bytearray(rest) + self.pending


class _Gathered:
    """Stands in for the socket while the app writes its response: `sendall` bytes are kept, sent later in one go."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.buffer = bytearray()

    def sendall(self, data: bytes) -> None:
        self.buffer += data

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        """`Response.write_file` with `sendfile` on: read into the buffer like everything else."""
        file.seek(offset)
        data = file.read() if count is None else file.read(count)
        self.buffer += data
        return len(data)

    # `send` goes to the socket: gunicorn uses it only for "100 Continue", which must reach the
    # client before it sends the body the app is about to read.

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _Connection:
    """One client socket and where it is: read into `inbox`, served by a thread, answer in `out`.

    `armed`: the events the poller watches on the socket (0: none). A socket stays armed for
    reading while a thread serves it, so a kept-alive connection costs no poller change per
    request; `serving` says a thread has it (the main loop then leaves it alone).
    """

    __slots__ = (
        "sock",
        "client",
        "server",
        "inbox",
        "requests",
        "partial",
        "out",
        "keep",
        "drained",
        "armed",
        "serving",
        "on_read",
    )

    def __init__(self, sock: socket.socket, client: Any, server: Any, on_read: Callable[[], None]) -> None:
        self.sock = sock
        self.client = client
        self.server = server
        self.inbox = _Inbox()
        self.requests = 0
        self.partial = False
        self.out = bytearray()
        self.keep = False
        self.drained = 0
        self.armed = 0
        self.serving = False
        self.on_read = on_read


class _Wakeup:
    """Pool threads hand finished connections to the main loop: a queue, and one byte on a pipe to wake it.

    A byte is written only when none is pending already: under load several
    answers share one wake-up (one `write` and one `read` syscall fewer per request).
    """

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._queue: queue.SimpleQueue[_Connection] = queue.SimpleQueue()
        self._armed = False

    def fileno(self) -> int:
        return self._read

    def wake(self) -> None:
        try:
            os.write(self._write, b"\0")
        except OSError:
            pass  # the pipe is full: the main loop is awake anyway

    def put(self, conn: _Connection) -> None:
        self._queue.put(conn)
        if not self._armed:
            self._armed = True
            self.wake()

    def drain(self) -> list[_Connection]:
        try:
            os.read(self._read, 4096)
        except OSError:
            pass
        self._armed = False  # before draining: a put from now on wakes the loop again
        done = []
        while True:
            try:
                done.append(self._queue.get_nowait())
            except queue.Empty:
                return done

    def close(self) -> None:
        for fd in (self._read, self._write):
            try:
                os.close(fd)
            except OSError:
                pass


class _Pool:
    """`threads` daemon threads taking connections from one queue: what the main loop hands over.

    Not a ThreadPoolExecutor: a connection needs no Future, and its `submit` takes two
    locks and a semaphore on every call, on the main loop.
    """

    def __init__(self, threads: int, serve: Callable[[_Connection], None]) -> None:
        self._queue: queue.SimpleQueue[_Connection | None] = queue.SimpleQueue()
        self._serve = serve
        self._threads = [
            threading.Thread(target=self._loop, name=f"lsml-request-{i}", daemon=True) for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, conn: _Connection) -> None:
        self._queue.put(conn)

    def _loop(self) -> None:
        while (conn := self._queue.get()) is not None:
            self._serve(conn)

    def shutdown(self) -> None:
        """The threads end once the connections queued before this are served (none waits for them)."""
        for _ in self._threads:
            self._queue.put(None)


class ThreadWorker(Worker):
    """A selectors main loop for every client wait, a thread pool for the app (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client_timeout = ServingSettings.from_env().client_timeout
        self.body_limit = Settings.from_env().max_body_bytes  # what the app accepts is buffered whole
        self.worker_connections = self.cfg.worker_connections
        self.nr_conns = 0
        self._reading: dict[_Connection, float] = {}
        self._writing: dict[_Connection, float] = {}
        self._lingering: dict[_Connection, float] = {}
        self._accepting = False
        self._accept_paused_until = 0.0
        self._notified_at = -NOTIFY_INTERVAL
        self._next_sweep = 0.0
        self._lock = threading.Lock()  # a pool thread giving a connection back to `_reading` vs the main loop

    # ---- process ------------------------------------------------------------------------------
    def init_process(self) -> None:
        if self.cfg.is_ssl:
            raise RuntimeError("lsml's worker serves plain HTTP; terminate TLS in front of it")
        if "h2" in (getattr(self.cfg, "http_protocols", None) or ["h1"]):  # gunicorn >= 25 has HTTP/2
            raise RuntimeError("lsml's worker serves HTTP/1.1; terminate HTTP/2 in front of it")
        die_with_parent()
        self.pool = _Pool(self.cfg.threads, self._serve)
        self.poller = selectors.DefaultSelector()
        self.wakeup = _Wakeup()
        BOARD.beat(self.age)
        BOARD.set(self.age, 0)
        super().init_process()  # loads the app into self.wsgi, then calls run()

    def notify(self) -> None:
        """The heartbeat, at most every NOTIFY_INTERVAL s (one utime() per loop wake-up was 12% of a no-op request).

        The arbiter only needs it within `timeout` (300 s).
        """
        now = time.monotonic()
        if now - self._notified_at >= NOTIFY_INTERVAL:
            self._notified_at = now
            BOARD.beat(self.age)
            super().notify()

    def _count(self, delta: int) -> None:
        """Every change of the open-connection count is published on the board, where siblings read it."""
        self.nr_conns += delta
        BOARD.set(self.age, self.nr_conns)

    def handle_exit(self, sig: int, frame: Any) -> None:
        """SIGTERM: stop gracefully (see `run`); wake the loop so it starts now."""
        self.alive = False
        self.wakeup.wake()

    def handle_quit(self, sig: int, frame: Any) -> None:
        """SIGQUIT/SIGINT: exit now, without shutting the pool down from a signal handler (see module doc)."""
        self.alive = False
        try:
            self.cfg.worker_int(self)
        finally:
            os._exit(0)

    def run(self) -> None:
        self.poller.register(self.wakeup, selectors.EVENT_READ, self._on_wakeup)
        while self.alive:
            self.notify()
            self._set_accepting(
                self.nr_conns < self.worker_connections and time.monotonic() >= self._accept_paused_until
            )
            self._dispatch(self._select_timeout())
            if self.ppid != os.getppid():
                self.log.info("Parent changed, shutting down: %s", self)
                break
            self._sweep()
        self._stop()

    def _stop(self) -> None:
        """Answer what is in flight, give kept-alive clients STOP_LINGER_SECONDS, then close what is left."""
        self._set_accepting(False)
        cap = time.monotonic() + STOP_LINGER_SECONDS
        with self._lock:  # no pool thread adds a kept-alive connection from now on (`_serve`: not alive)
            for table in (self._reading, self._writing):  # nor can a client that does not read its answer
                for conn, current in list(table.items()):
                    table[conn] = min(current, cap)
        graceful_deadline = time.monotonic() + self.cfg.graceful_timeout
        while self.nr_conns > 0 and time.monotonic() < graceful_deadline:
            self.notify()
            self._dispatch(self._select_timeout())
            self._sweep()
        for table in (self._reading, self._writing, self._lingering):
            for conn in list(table):
                util.close(conn.sock)
        self.pool.shutdown()
        self.poller.close()
        self.wakeup.close()
        for listener in self.sockets:
            listener.close()

    def _select_timeout(self) -> float:
        if self._reading or self._writing or self._lingering:
            return SWEEP_INTERVAL
        paused = self._accept_paused_until - time.monotonic()
        return min(1.0, paused) if paused > 0 else 1.0

    def _dispatch(self, timeout: float) -> None:
        for key, _ in self.poller.select(timeout):
            callback: Callable[[], None] = key.data
            callback()

    def _set_accepting(self, enabled: bool) -> None:
        if enabled == self._accepting:
            return
        for listener in self.sockets:
            if enabled:
                listener.setblocking(False)
                self.poller.register(listener, selectors.EVENT_READ, lambda sock=listener: self._accept(sock))
            else:
                self.poller.unregister(listener)
        self._accepting = enabled

    # ---- reading requests on the main loop ----------------------------------------------------
    def _accept(self, listener: Any) -> None:
        fewest = BOARD.others_min(self.age)
        if fewest is not None and self.nr_conns > fewest:  # a sibling is less busy: let it take this one
            self._pause_accepts(ACCEPT_PAUSE)
            return
        try:
            client, addr = listener.accept()
        except (BlockingIOError, ConnectionAbortedError):
            return  # another worker took it, or the client gave up
        except OSError as exc:  # EMFILE, ENOBUFS...: do not spin on a listener that stays readable
            self.log.warning("accept failed (%s): pausing accepts for 0.1 s", exc)
            self._pause_accepts(0.1)
            return
        self._count(+1)
        client.setblocking(False)
        if client.family in (socket.AF_INET, socket.AF_INET6):
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Connection(client, addr, listener.getsockname(), lambda: self._on_readable(conn))
        self._wait_request(conn)

    def _pause_accepts(self, seconds: float) -> None:
        self._accept_paused_until = time.monotonic() + seconds
        self._set_accepting(False)

    def _wait_request(self, conn: _Connection) -> None:
        """Wait for a whole request on `conn` (keepalive s to start it, client_timeout s to finish it)."""
        state = request_state(conn.inbox.pending, self.body_limit)
        if state != WAIT:
            self._serve_in_pool(conn, state)
            return
        now = time.monotonic()
        idle = self.cfg.keepalive if conn.requests else (self.cfg.keepalive or self.client_timeout)
        deadline = now + (self.client_timeout if conn.inbox.pending else idle)
        if not self.alive:
            deadline = min(deadline, now + STOP_LINGER_SECONDS)
        self._reading[conn] = deadline
        self._arm(conn, selectors.EVENT_READ, conn.on_read)

    def _arm(self, conn: _Connection, events: int, callback: Callable[[], None]) -> None:
        """Watch `conn` for `events` (one poller call, none when it is watched for them already)."""
        if not conn.armed:
            self.poller.register(conn.sock, events, callback)
        else:
            self.poller.modify(conn.sock, events, callback)  # same events: no system call
        conn.armed = events

    def _disarm(self, conn: _Connection) -> None:
        if conn.armed:
            conn.armed = 0
            self.poller.unregister(conn.sock)

    def _on_readable(self, conn: _Connection) -> None:
        with self._lock:
            if conn.serving:  # bytes (pipelined, or the FIN) while a thread serves it: look again when it is back
                self._disarm(conn)
                return
        pending = conn.inbox.pending
        started = bool(pending)
        try:
            while True:
                data = conn.sock.recv(READ_CHUNK)
                if not data:
                    self._drop(conn, self._reading)
                    return
                pending += data
                if len(data) < READ_CHUNK:
                    break
        except BlockingIOError:
            pass
        except OSError:
            self._drop(conn, self._reading)
            return
        state = request_state(pending, self.body_limit)
        if state != WAIT:
            del self._reading[conn]
            self._serve_in_pool(conn, state)  # the socket stays armed: see _Connection
        elif not started and pending:
            self._reading[conn] = time.monotonic() + self.client_timeout

    def _serve_in_pool(self, conn: _Connection, state: int) -> None:
        conn.partial = state == PARTIAL
        if conn.partial:
            self._disarm(conn)  # the thread reads the rest itself
        conn.serving = True
        self.pool.submit(conn)

    # ---- serving, in a pool thread --------------------------------------------------------------
    def _serve(self, conn: _Connection) -> None:
        """Serve one request, send the answer, and have the connection wait for the next one.

        The common case (answer sent whole, connection kept, nothing more received, socket
        still armed) ends here: the connection goes back to `_reading` without waking the
        main loop, which sees the next request when its bytes arrive. Anything else (the
        rest of a slow reader's answer, a close, a pipelined request, a stop) is handed to
        the main loop.
        """
        try:
            conn.keep = self._serve_request(conn)
        except BaseException:  # never lose a connection: the main loop must get it back
            self.log.exception("Error serving %s", conn.client)
            conn.keep = False
        if conn.keep and not conn.out and not conn.inbox.pending:
            deadline = time.monotonic() + self.cfg.keepalive
            with self._lock:
                if self.alive and conn.armed == selectors.EVENT_READ:
                    self._reading[conn] = deadline
                    conn.serving = False
                    return
        self.wakeup.put(conn)

    def _serve_request(self, conn: _Connection) -> bool:
        """Parse, run the app, gather the answer; return whether to keep the connection."""
        req = None
        out = _Gathered(conn.sock)
        conn.out = out.buffer
        keep = False
        try:
            if conn.partial:
                conn.sock.settimeout(self.client_timeout)  # each read of the rest waits this long at most
                conn.inbox.sock = conn.sock
            conn.requests += 1
            req = http.Request(self.cfg, conn.inbox, conn.client, conn.requests)
            keep = self.handle_request(req, conn, out) and self._finish_body(req, conn)
        except http.errors.NoMoreData:
            pass
        except StopIteration:
            pass
        except (TimeoutError, ConnectionError):
            self.log.debug("client too slow or gone: %s", conn.client)
        except OSError as exc:
            self.log.debug("socket error serving %s: %s", conn.client, exc)
        except (
            Exception
        ) as exc:  # a parse error (gunicorn answers the 4xx and logs it) or an app error after its headers
            del out.buffer[:]
            self.handle_error(req, out, conn.client, exc)
        if keep:
            conn.inbox.take_back()
        if conn.partial:
            conn.sock.setblocking(False)
        self._send_now(conn)
        return keep

    def _finish_body(self, req: Any, conn: _Connection) -> bool:
        """Read what the app left of the body, so the next request starts where it should.

        Buffered bodies are in memory; the rest of a PARTIAL one is read from the
        socket for at most LINGER_DRAIN bytes, or the connection closes.
        """
        drained = 0
        while True:
            data = req.body.read(65_536)
            if not data:
                return True
            drained += len(data)
            if conn.partial and drained > LINGER_DRAIN:
                return False

    def handle_request(self, req: Any, conn: _Connection, out: _Gathered) -> bool:
        """Run the app on one parsed request, as gthread does; return whether the connection may stay open."""
        environ: dict[str, Any] = {}
        resp = None
        try:
            self.cfg.pre_request(self, req)
            request_start = datetime.now()
            resp, environ = wsgi.create(req, out, conn.client, conn.server, self.cfg)
            environ["wsgi.multithread"] = True
            self.nr += 1
            if self.nr >= self.max_requests:
                if self.alive:
                    self.log.info("Autorestarting worker after current request.")
                    self.alive = False
                resp.force_close()
            if not self.alive or not self.cfg.keepalive:
                resp.force_close()
            respiter = self.wsgi(environ, resp.start_response)
            try:
                if isinstance(respiter, environ["wsgi.file_wrapper"]):
                    resp.write_file(respiter)
                else:
                    for item in respiter:
                        resp.write(item)
                resp.close()
            finally:
                self.log.access(resp, req, environ, datetime.now() - request_start)
                if hasattr(respiter, "close"):
                    respiter.close()
            return not resp.should_close()
        finally:
            try:
                self.cfg.post_request(self, req, environ, resp)
            except Exception:
                self.log.exception("Exception in post_request hook")

    @staticmethod
    def _send_now(conn: _Connection) -> None:
        """Send what the socket takes right now; the rest (a slow reader's) is left for the main loop."""
        out = conn.out
        try:
            while out:
                del out[: conn.sock.send(out)]
        except BlockingIOError:
            pass
        except OSError:
            del out[:]  # the peer is gone; the main loop closes the socket

    # ---- after the response, on the main loop -------------------------------------------------
    def _on_wakeup(self) -> None:
        for conn in self.wakeup.drain():
            self._answered(conn)

    def _answered(self, conn: _Connection) -> None:
        conn.serving = False
        if conn.out:
            self._writing[conn] = time.monotonic() + self.client_timeout
            self._arm(conn, selectors.EVENT_WRITE, lambda: self._on_writable(conn))
        else:
            self._after_response(conn)

    def _on_writable(self, conn: _Connection) -> None:
        out = conn.out
        try:
            while out:
                del out[: conn.sock.send(out)]
        except BlockingIOError:
            return
        except OSError:
            self._drop(conn, self._writing)
            return
        del self._writing[conn]
        self._after_response(conn)

    def _after_response(self, conn: _Connection) -> None:
        if conn.keep:
            self._wait_request(conn)  # a pipelined next request may be in the inbox already
            return
        self._count(-1)
        self._linger(conn)

    def _linger(self, conn: _Connection) -> None:
        """Half-close and let the main loop drain the peer's last bytes, so the kernel sends no RST over the answer."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._forget(conn, self._lingering)
            return
        if len(self._lingering) >= self.worker_connections:
            self._forget(conn, self._lingering)
            return
        conn.drained = 0
        self._lingering[conn] = time.monotonic() + LINGER_SECONDS
        self._arm(conn, selectors.EVENT_READ, lambda: self._on_linger(conn))

    def _on_linger(self, conn: _Connection) -> None:
        try:
            while conn.drained < LINGER_DRAIN:
                data = conn.sock.recv(READ_CHUNK)
                if not data:
                    break
                conn.drained += len(data)
        except BlockingIOError:
            if conn.drained < LINGER_DRAIN:
                return
        except OSError:
            pass
        self._forget(conn, self._lingering)

    # ---- timeouts -----------------------------------------------------------------------------
    def _forget(self, conn: _Connection, table: dict[_Connection, float]) -> None:
        table.pop(conn, None)
        try:
            self._disarm(conn)
        except (KeyError, ValueError, OSError):
            pass
        util.close(conn.sock)

    def _drop(self, conn: _Connection, table: dict[_Connection, float]) -> None:
        self._count(-1)
        self._forget(conn, table)

    def _sweep(self) -> None:
        """Close the connections whose client ran out of time (at most every SWEEP_INTERVAL s)."""
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_INTERVAL
        with self._lock:  # a pool thread may be putting a connection back into `_reading`
            for table, counted in ((self._reading, True), (self._writing, True), (self._lingering, False)):
                for conn in [c for c, deadline in table.items() if deadline <= now]:
                    if counted:
                        self._drop(conn, table)
                    else:
                        self._forget(conn, table)
