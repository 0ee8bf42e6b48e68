#!/usr/bin/env python3
"""faasnap guest agent: runs functions for the host over the agent channel.

Protocol: docs/agent-protocol.md (4-byte big-endian length + UTF-8 JSON per frame). Standard
library only, so it runs on the small image (python3-minimal + libpython3-stdlib).

Threads:
  reader  reads the channel, answers pings, queues invocations, completes storage requests.
  main    runs one invocation at a time, in this process, so imported modules and globals stay
          warm and are captured by VM snapshots (as in the paper's guest daemon).
  watchdog  armed per invocation: at the deadline it reports `timeout` and interrupts the main
          thread (SIGUSR1, whose handler raises InvocationTimeout in the handler's frame).

Why not fork a child per invocation (killable)? The child's imports and globals would die
with it, so nothing would stay warm across invocations or snapshots, and fork itself is slow
where the guest kernel is emulated. The cost of the thread design: a handler stuck inside C
code is interrupted only when that code returns; the host already has its timeout result and
can recycle the VM. JS handlers run in a separate Node process, which is killed on timeout.

Usage: agent.py [--channel SPEC] [--functions DIR]
  SPEC: port:NAME (default port:faasnap.agent: the virtio-console port of that name, waited
  for), a device path (e.g. /dev/hvc0; a tty is put in raw mode), unix:PATH (connect to a
  Unix socket) or fd:N / fd:R,W (inherited file descriptors, for tests).
  Environment: FAASNAP_AGENT_CHANNEL, FAASNAP_FUNCTIONS_DIR (defaults for the options),
  FAASNAP_AGENT_SET_CLOCK=0 (do not set the wall clock after a restore; for hosts).
"""

import binascii
import collections
import fcntl
import hashlib
import importlib.util
import json
import os
import re
import signal
import socket
import struct
import sys
import threading
import time

MAX_FRAME = 0xFFFFFF  # 16 MiB - 1: the first byte of a frame is always 0x00 (resync point)
# Bytes per storage.get/put message: base64 of 8 MiB fits a frame (protocol.ts STORAGE_CHUNK_BYTES).
STORAGE_CHUNK = 8 << 20
# Uploaded functions (`define`): tmpfs, so they live in guest memory and snapshots.
DEFINED_DIR = os.environ.get("FAASNAP_DEFINED_DIR", "/run/faasnap/functions")
# Where handlers keep temporary files (ctx.scratch_path); tests on the host point it elsewhere.
SCRATCH_DIR = os.environ.get("FAASNAP_SCRATCH_DIR", "/dev/shm")
# The virtio-console port the VMM names for the agent (vmm/boot/linux-vm.ts AGENT_PORT_NAME).
DEFAULT_CHANNEL = "port:faasnap.agent"
VIRTIO_PORTS = "/sys/class/virtio-ports"
DEFAULT_FUNCTIONS = "/opt/faasnap/functions"
NODE_RUNTIME = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node-runtime.mjs")
FUNCTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
LOG_LEVELS = ("debug", "info", "warn", "error")
# A restored guest's clock is off by the time the snapshot sat on disk; smaller skews are noise.
CLOCK_TOLERANCE_S = 0.02


class ProtocolError(Exception):
    """A malformed frame or message on a channel."""


class InvocationTimeout(BaseException):
    """Raised in the main thread when the running invocation passed its deadline.

    A BaseException so that a handler's `except Exception` does not swallow it.
    """


class StorageError(Exception):
    """The host could not serve a storage request."""


class FunctionError(Exception):
    """An invocation failed for a reason other than the handler raising."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


def log_local(msg):
    sys.stderr.write("faasnap-agent: %s\n" % msg)
    sys.stderr.flush()


# ---- framing ---------------------------------------------------------------------------------


def encode_frame(msg, max_frame=MAX_FRAME):
    # ensure_ascii: lone surrogates (legal in Python str) cannot be encoded as UTF-8.
    # allow_nan=False: NaN/Infinity are not JSON and the host's parser rejects them.
    data = json.dumps(msg, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    data = data.encode("ascii")
    if len(data) > max_frame:
        raise ProtocolError("frame of %d bytes exceeds %d" % (len(data), max_frame))
    return struct.pack(">I", len(data)) + data


class FrameDecoder:
    """Incremental decoder; feed() returns a list of dicts and ProtocolErrors, never raises."""

    def __init__(self, max_frame=MAX_FRAME):
        self.max_frame = max_frame
        self.buf = bytearray()
        self.resyncing = False

    def feed(self, data):
        self.buf += data
        out = []
        while True:
            if self.resyncing:
                at = self.buf.find(b"\x00")
                if at < 0:
                    self.buf.clear()
                    break
                del self.buf[:at]
                self.resyncing = False
            if len(self.buf) < 4:
                break
            (n,) = struct.unpack_from(">I", self.buf)
            if n == 0 or n > self.max_frame:
                out.append(ProtocolError("bad frame length %d" % n))
                del self.buf[:4]  # then skip to the next 0x00, where a frame starts
                self.resyncing = True
                continue
            if len(self.buf) < 4 + n:
                break
            payload = bytes(self.buf[4 : 4 + n])
            del self.buf[: 4 + n]
            out.append(decode_payload(payload))
        return out


def decode_payload(payload):
    try:
        msg = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        return ProtocolError("frame is not UTF-8 JSON: %s" % e)
    if (
        not isinstance(msg, dict)
        or not isinstance(msg.get("type"), str)
        or not isinstance(msg.get("id"), int)
        or isinstance(msg.get("id"), bool)
        or msg["id"] < 0
    ):
        return ProtocolError("frame is not an object with an integer id and a type")
    return msg


# ---- channel ---------------------------------------------------------------------------------


def set_raw(fd):
    """cfmakeraw(): no echo, no line editing, no signal characters, no CR/LF translation."""
    import termios

    attrs = termios.tcgetattr(fd)
    attrs[0] &= ~(
        termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP | termios.INLCR
        | termios.IGNCR | termios.ICRNL | termios.IXON
    )
    attrs[1] &= ~termios.OPOST
    attrs[2] &= ~(termios.CSIZE | termios.PARENB)
    attrs[2] |= termios.CS8
    attrs[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    attrs[6][termios.VMIN] = 1
    attrs[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, attrs)
    # Bytes that arrived before raw mode were line-edited and possibly echoed: drop them. The
    # host does not send before it has seen `ready` (or retries its ping).
    termios.tcflush(fd, termios.TCIFLUSH)


class Channel:
    """A byte stream to the host: read() blocks, write() sends everything or raises."""

    def __init__(self, rfd, wfd, keep=None):
        self.rfd = rfd
        self.wfd = wfd
        self._keep = keep  # a socket object whose fds we use
        self._lock = threading.Lock()

    @classmethod
    def open(cls, spec):
        if spec.startswith("fd:"):
            fds = [int(x) for x in spec[3:].split(",")]
            return cls(fds[0], fds[-1])
        if spec.startswith("unix:"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(spec[5:])
            return cls(s.fileno(), s.fileno(), keep=s)
        if spec.startswith("port:"):
            spec = wait_port(spec[5:])
        fd = wait_open(spec)
        if os.isatty(fd):
            set_raw(fd)
        return cls(fd, fd)

    def read(self):
        return os.read(self.rfd, 1 << 16)

    def send(self, msg):
        frame = encode_frame(msg)
        with self._lock:
            view = memoryview(frame)
            while view:
                n = os.write(self.wfd, view)
                view = view[n:]


def find_port(name):
    """/dev/<port> of the virtio-console port called `name`, or None (not announced yet)."""
    try:
        ports = os.listdir(VIRTIO_PORTS)
    except OSError:
        return None
    for port in ports:
        try:
            with open(os.path.join(VIRTIO_PORTS, port, "name")) as f:
                if f.read().strip() == name:
                    return "/dev/" + port
        except OSError:
            continue
    return None


def wait_port(name):
    """Waits until the driver has been told the port's name (after its control handshake)."""
    warned = False
    while True:
        path = find_port(name)
        if path is not None:
            return path
        if not warned:
            log_local("waiting for virtio port %s" % name)
            warned = True
        time.sleep(0.05)


def wait_open(path):
    """Opens the channel device, waiting for it to appear (the driver may probe after init)."""
    warned = False
    while True:
        try:
            return os.open(path, os.O_RDWR | os.O_NOCTTY)
        except FileNotFoundError:
            if not warned:
                log_local("waiting for %s" % path)
                warned = True
            time.sleep(0.1)


# ---- invocations -----------------------------------------------------------------------------


# <linux/random.h>: _IOW('R', 0x03, int[2]) and _IO('R', 0x07).
RNDADDENTROPY = 0x40085203
RNDRESEEDCRNG = 0x5207


def reseed_kernel_rng(data):
    """Credits `data` to the kernel's input pool and reseeds the CRNG from it (root only)."""
    req = struct.pack("ii", len(data) * 8, len(data)) + data
    fd = os.open("/dev/urandom", os.O_WRONLY)
    try:
        fcntl.ioctl(fd, RNDADDENTROPY, req)
        fcntl.ioctl(fd, RNDRESEEDCRNG)
    finally:
        os.close(fd)


def b64(data):
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def now_ns():
    # CLOCK_MONOTONIC, the clock Node's process.hrtime uses too, and immune to restore-time
    # wall-clock corrections.
    return time.monotonic_ns()


class Invocation:
    def __init__(self, msg, t_start):
        self.id = msg["id"]
        self.function = msg.get("function")
        self.params = msg.get("params")
        self.timeout_ms = msg.get("timeoutMs")
        self.t_start = t_start
        self.t1 = None
        self.t2 = None
        self.t_end = None
        self.runtime = None  # "python" or "node", once the handler is found
        self.done = False  # a result has been sent (by the main thread or the watchdog)
        self.lock = threading.Lock()


class Context:
    """What a handler gets as `ctx`."""

    def __init__(self, agent, inv, directory):
        self._agent = agent
        self._inv = inv
        self.id = inv.id
        self.function = inv.function
        self.dir = directory

    def t1(self):
        """Marks the end of the read phase (the paper's t1)."""
        self._inv.t1 = now_ns()

    def t2(self):
        """Marks the end of the process phase (the paper's t2)."""
        self._inv.t2 = now_ns()

    def remaining_ms(self):
        return max(0, self._inv.timeout_ms - (now_ns() - self._inv.t_start) / 1e6)

    def storage_get(self, key):
        """The bytes stored under `key` on the host, or None."""
        return self._agent.storage_get(key)

    def storage_put(self, key, value):
        if isinstance(value, str):
            value = value.encode("utf-8")
        self._agent.storage_put(key, value)

    def get_object(self, key):
        """The bytes stored under `key`; KeyError when there are none."""
        data = self.storage_get(key)
        if data is None:
            raise KeyError("no object %r" % key)
        return data

    def scratch_path(self, name):
        """A path for `name` (its last component) in the scratch directory (a tmpfs: the guest
        root is read-only). Object keys name files there, so ".." and "" are refused."""
        base = os.path.basename(str(name))
        if base in ("", ".", ".."):
            raise ValueError("%r does not name a file" % name)
        return os.path.join(SCRATCH_DIR, base)

    def fetch(self, key, directory=None):
        """Writes the object `key` to scratch_path(key) (or under `directory`); its path."""
        path = self.scratch_path(key)
        if directory is not None:
            path = os.path.join(directory, os.path.basename(path))
        with open(path, "wb") as f:
            f.write(self.get_object(key))
        return path

    def log(self, msg, level="info"):
        self._agent.log(msg, level, self.id)


class Agent:
    def __init__(self, channel, functions_dir):
        self.channel = channel
        self.functions_dir = functions_dir
        self.work = collections.deque()
        self.work_cv = threading.Condition()
        self.modules = {}  # function name -> loaded handler module
        self.inventory = None  # functions and runtimes, for `ready`
        self.paths = {}  # function name -> handler file (the image is read-only)
        self.watchdog = Watchdog(self.on_deadline)
        self.storage_lock = threading.Lock()
        self.storage_next = 1
        self.storage_waiting = {}  # id -> [threading.Event, reply]
        self.current = None  # the Invocation the main thread is running
        self.interrupt_for = None  # the Invocation whose watchdog fired
        self.node = None
        self.closed = False

    # -- sending --

    def send(self, msg):
        try:
            self.channel.send(msg)
        except ProtocolError as e:
            log_local("dropped an oversized %s: %s" % (msg.get("type"), e))
        except OSError as e:
            log_local("channel write failed: %s" % e)

    def log(self, msg, level="info", inv_id=0):
        if level not in LOG_LEVELS:
            level = "info"
        self.send({"id": inv_id, "type": "log", "level": level, "msg": str(msg)[:65536]})

    def send_ready(self, msg_id, restored):
        # What the image holds is read-only: listed once at start, not again on every restore,
        # where each stat is an emulated system call on the critical path.
        if self.inventory is None:
            self.inventory = {
                "functions": self.list_functions(),
                "runtimes": ["python"] + (["node"] if find_node() else []),
            }
        self.send(
            {
                "id": msg_id,
                "type": "ready",
                "restored": restored,
                "pid": os.getpid(),
                "python": sys.version.split()[0],
                **self.inventory,
            }
        )

    def list_functions(self):
        try:
            names = sorted(os.listdir(self.functions_dir))
        except OSError:
            return []
        return [n for n in names if FUNCTION_NAME.match(n) and handler_path(self.functions_dir, n)]

    # -- reader thread --

    def read_loop(self):
        decoder = FrameDecoder()
        try:
            while True:
                try:
                    data = self.channel.read()
                except InterruptedError:
                    continue
                if not data:
                    break  # the host closed the channel (sockets and pipes; a tty never does)
                t = now_ns()
                for item in decoder.feed(data):
                    if isinstance(item, ProtocolError):
                        log_local("protocol error: %s" % item)
                        self.log("protocol error: %s" % item, "error")
                    else:
                        self.dispatch(item, t)
        except OSError as e:
            log_local("channel read failed: %s" % e)
        finally:
            with self.work_cv:
                self.closed = True
                self.work_cv.notify()

    def dispatch(self, msg, t_arrival):
        kind = msg["type"]
        if kind == "ping":
            self.send({"id": msg["id"], "type": "pong"})
            self.sync_clock(msg.get("wallClockMs"), t_arrival)
            if msg.get("restore") is True:
                self.after_restore(msg)
                self.send_ready(msg["id"], True)
        elif kind == "define":
            self.send(dict(self.define(msg), id=msg["id"], type="defined"))
        elif kind == "invoke":
            with self.work_cv:
                self.work.append(Invocation(msg, t_arrival))
                self.work_cv.notify()
        elif kind == "storage.result":
            with self.storage_lock:
                waiter = self.storage_waiting.get(msg["id"])
                if waiter:
                    waiter[1] = msg
                    waiter[0].set()
        else:
            self.log("unknown message type %r" % kind, "warn")

    def sync_clock(self, wall_ms, t_arrival):
        """Sets the wall clock to the host's `wall_ms`, taken when the message was sent.

        Counted from the message's arrival, so time spent here does not add to the error; what
        remains is the channel's delivery delay (the host sends a second sync right after a
        restore, when the guest's pages are back and delivery is quick).
        """
        # Off for agents run on a host (tests): never touch the host's clock.
        if os.environ.get("FAASNAP_AGENT_SET_CLOCK", "1") == "0":
            return
        if not isinstance(wall_ms, (int, float)) or isinstance(wall_ms, bool):
            return
        target = wall_ms / 1000.0 + (now_ns() - t_arrival) / 1e9
        if abs(target - time.time()) > CLOCK_TOLERANCE_S:
            try:
                time.clock_settime(time.CLOCK_REALTIME, target)
            except (OSError, OverflowError, ValueError) as e:
                self.log("cannot set the clock: %s" % e, "warn")

    def define(self, msg):
        """Installs uploaded source as a function: a file on tmpfs (captured by snapshots, as
        guest memory), imported on the next invocation like a bundled handler."""
        name, language, source = msg.get("function"), msg.get("language"), msg.get("source")
        if not isinstance(name, str) or not FUNCTION_NAME.match(name):
            return {"error": "invalid function name %r" % (name,)}
        if language not in ("python", "node") or not isinstance(source, str):
            return {"error": "language must be python or node, source a string"}
        data = source.encode("utf-8")
        # A directory per version: the Node runtime caches modules by path.
        version = hashlib.sha256(data).hexdigest()[:16]
        file = "handler.py" if language == "python" else "handler.js"
        path = os.path.join(DEFINED_DIR, name, version, file)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
        except OSError as e:
            return {"error": "cannot write %s: %s" % (path, e)}
        with self.work_cv:  # the main thread reads these between invocations
            self.paths[name] = path
            self.modules.pop(name, None)
            if self.inventory is not None and name not in self.inventory["functions"]:
                self.inventory["functions"].append(name)
        return {}

    def after_restore(self, msg):
        """Undoes what a snapshot clones (the clock is synced by the ping): identical RNG state."""
        # Clones share the kernel's RNG state: mix in the host's fresh bytes and force a
        # reseed, so /dev/urandom (and what seeds from it, below) differs per clone.
        seed = msg.get("entropy")
        if isinstance(seed, str) and seed:
            try:
                reseed_kernel_rng(binascii.a2b_base64(seed))
            except (OSError, binascii.Error) as e:
                self.log("cannot reseed the kernel RNG: %s" % e, "warn")
        rnd = sys.modules.get("random")
        if rnd is not None:
            rnd.seed()

    # -- storage (called from the main thread, answered through the reader thread) --

    def storage_get(self, key):
        """The bytes stored under `key` on the host, or None. Large values come in chunks."""
        req = {"type": "storage.get", "key": key, "offset": 0, "length": STORAGE_CHUNK}
        first, size = self.storage_request(req)
        if first is None or size is None or len(first) >= size:
            return first
        parts = [first]
        got = len(first)
        while got < size:
            req = {"type": "storage.get", "key": key, "offset": got, "length": STORAGE_CHUNK}
            chunk, _ = self.storage_request(req)
            if not chunk:
                raise StorageError("%s changed while it was read" % key)
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    def storage_put(self, key, value):
        view = memoryview(value)
        offset = 0
        while True:  # at least one write, so an empty value is stored too
            chunk = bytes(view[offset : offset + STORAGE_CHUNK])
            req = {"type": "storage.put", "key": key, "value": chunk, "offset": offset}
            self.storage_request(req)
            offset += len(chunk)
            if offset >= len(value):
                break

    def storage_request(self, msg):
        key = msg.get("key")
        if not isinstance(key, str) or not key:
            raise ValueError("storage key must be a non-empty string")
        if "value" in msg:
            msg["value"] = b64(bytes(msg["value"]))
        event = threading.Event()
        with self.storage_lock:
            sid = self.storage_next
            self.storage_next += 1
            waiter = [event, None]
            self.storage_waiting[sid] = waiter
        msg["id"] = sid
        try:
            try:
                self.channel.send(msg)
            except ProtocolError as e:
                raise StorageError("value too large for one frame: %s" % e) from None
            event.wait()  # interruptible: the watchdog's signal raises InvocationTimeout
        finally:
            with self.storage_lock:
                self.storage_waiting.pop(sid, None)
        reply = waiter[1]
        if reply.get("error") is not None:
            raise StorageError(str(reply["error"]))
        if msg["type"] == "storage.get":
            value = reply.get("value")
            if value is None:
                return None, None
            try:
                return binascii.a2b_base64(value), reply.get("size")
            except (binascii.Error, TypeError) as e:
                raise StorageError("host sent invalid base64: %s" % e) from None
        return None, None

    # -- main thread --

    def serve(self):
        signal.signal(signal.SIGUSR1, self.on_interrupt)
        while True:
            try:
                with self.work_cv:
                    while not self.work and not self.closed:
                        self.work_cv.wait()
                    if not self.work:
                        return
                    inv = self.work.popleft()
                self.run(inv)
            except InvocationTimeout:
                pass  # a late interrupt for an invocation that already ended

    def on_interrupt(self, signum, frame):
        inv = self.interrupt_for
        if inv is not None and inv is self.current:
            self.interrupt_for = None
            raise InvocationTimeout()

    def run(self, inv):
        error = None
        result = None
        self.current = inv
        armed = False
        try:
            bad = validate_invoke(inv)
            if bad:
                raise FunctionError("bad_request", bad)
            self.watchdog.arm(inv, inv.t_start + inv.timeout_ms * 1_000_000)
            armed = True
            result = self.call(inv)
        except InvocationTimeout:
            error = {"type": "timeout", "message": "exceeded %d ms" % inv.timeout_ms}
            if self.node is not None and inv.runtime == "node":
                self.node.kill()  # its state is unknown now; restarted on the next JS call
        except FunctionError as e:
            error = {"type": e.kind, "message": str(e)}
        except BaseException as e:  # SystemExit/KeyboardInterrupt from a handler included
            error = exception_info(e)
        finally:
            if armed:
                self.watchdog.disarm()
            if inv.t_end is None:
                inv.t_end = now_ns()
            self.current = None
        self.finish(inv, result, error)

    def call(self, inv):
        path = self.paths.get(inv.function)
        if path is None:
            path = handler_path(self.functions_dir, inv.function)
            if path is not None:
                self.paths[inv.function] = path
        if path is None:
            raise FunctionError("not_found", "no function %r" % inv.function)
        if path.endswith(".py"):
            inv.runtime = "python"
            module = self.load(inv.function, path)
            handle = getattr(module, "handle", None)
            if not callable(handle):
                raise FunctionError("not_found", "%s has no handle(params, ctx)" % path)
            ctx = Context(self, inv, os.path.dirname(path))
            t_call = now_ns()
            out = handle(inv.params, ctx)
            inv.t_end = now_ns()
            # Unmarked phases: the call itself is the process phase.
            if inv.t1 is None:
                inv.t1 = t_call
            if inv.t2 is None:
                inv.t2 = inv.t_end
            return out
        inv.runtime = "node"
        if self.node is None:
            self.node = NodeRuntime(self)
        return self.node.invoke(inv, path)

    def load(self, name, path):
        module = self.modules.get(name)
        if module is None:
            modname = "faasnap_fn_" + re.sub(r"[^A-Za-z0-9_]", "_", name)
            spec = importlib.util.spec_from_file_location(modname, path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            self.modules[name] = module
        return module

    def on_deadline(self, inv):  # called by the watchdog thread
        """Watchdog: report the timeout now, then interrupt the handler."""
        with inv.lock:
            if inv.done:
                return
            inv.done = True
        error = {"type": "timeout", "message": "exceeded %d ms" % inv.timeout_ms}
        self.send_result(inv, None, error)
        self.interrupt_for = inv
        signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)

    def finish(self, inv, result, error):
        with inv.lock:
            if inv.done:
                return  # the watchdog already answered
            inv.done = True
        self.send_result(inv, result, error)

    def send_result(self, inv, result, error):
        now = now_ns()
        t_end = inv.t_end if inv.t_end is not None else now
        t1 = inv.t1 if inv.t1 is not None else t_end
        t2 = inv.t2 if inv.t2 is not None else max(t1, t_end)
        timings = {
            "readMs": max(0, t1 - inv.t_start) / 1e6,
            "processMs": max(0, t2 - t1) / 1e6,
            "writeMs": max(0, t_end - t2) / 1e6,
        }
        msg = {"id": inv.id, "type": "result", "timings": timings}
        if error is None:
            msg["result"] = result
        else:
            msg["error"] = error
        try:
            self.channel.send(msg)
            return
        except (TypeError, ValueError) as e:
            fallback = {"type": "exception", "message": "result is not JSON-serialisable: %s" % e}
        except ProtocolError as e:
            fallback = {"type": "result_too_large", "message": str(e)}
        except OSError as e:
            log_local("channel write failed: %s" % e)
            return
        msg.pop("result", None)
        msg["error"] = fallback
        self.send(msg)


def validate_invoke(inv):
    if not isinstance(inv.function, str) or not FUNCTION_NAME.match(inv.function):
        return "invalid function name %r" % (inv.function,)
    t = inv.timeout_ms
    if not isinstance(t, int) or isinstance(t, bool) or t <= 0:
        return "timeoutMs must be a positive integer"
    return None


class JsError(Exception):
    """A JS invocation failed; carries the runtime's error type and the JS stack."""

    def __init__(self, kind, message, stack):
        super().__init__(str(message or "error"))
        self.kind = kind if isinstance(kind, str) else "exception"
        self.stack = stack if isinstance(stack, str) else None


def exception_info(e):
    if isinstance(e, JsError):
        info = {"type": e.kind, "message": str(e)}
        if e.stack:
            info["traceback"] = e.stack
        return info
    import traceback

    return {
        "type": "exception",
        "message": "%s: %s" % (type(e).__name__, e),
        "traceback": "".join(traceback.format_exception(type(e), e, e.__traceback__)),
    }


class Watchdog:
    """One long-lived thread that fires `on_deadline(inv)` when the armed invocation runs past
    its deadline. Not a threading.Timer per invocation: creating a thread is a handful of
    system calls, each emulated (slow) on a PVM guest, on every invocation's path."""

    def __init__(self, on_deadline):
        self._on_deadline = on_deadline
        self._cv = threading.Condition()
        self._armed = None  # (inv, deadline in now_ns() time)
        threading.Thread(target=self._loop, name="watchdog", daemon=True).start()

    def arm(self, inv, deadline_ns):
        with self._cv:
            self._armed = (inv, deadline_ns)
            self._cv.notify()

    def disarm(self):
        with self._cv:
            self._armed = None
            self._cv.notify()

    def _loop(self):
        while True:
            with self._cv:
                while self._armed is None:
                    self._cv.wait()
                inv, deadline = self._armed
                left = (deadline - now_ns()) / 1e9
                if left > 0:
                    self._cv.wait(left)
                    continue  # disarmed, re-armed or woken early: look again
                self._armed = None
            self._on_deadline(inv)


def handler_path(functions_dir, name):
    if not FUNCTION_NAME.match(name or ""):
        return None
    for file in ("handler.py", "handler.js", "handler.mjs"):
        p = os.path.join(functions_dir, name, file)
        if os.path.isfile(p):
            return p
    return None


def find_node():
    for d in os.environ.get("PATH", "/usr/bin:/bin").split(":"):
        p = os.path.join(d or ".", "node")
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


# ---- Node.js runtime -------------------------------------------------------------------------


class NodeRuntime:
    """A long-lived `node node-runtime.mjs` child, spoken to with the same framing over a
    socketpair. Started on the first JS invocation; killed (and restarted on the next one) when
    an invocation times out or the child dies."""

    def __init__(self, agent):
        self.agent = agent
        self.proc = None
        self.sock = None
        self.decoder = None

    def start(self):
        import subprocess

        node = find_node()
        if node is None:
            raise FunctionError("runtime", "node is not installed")
        ours, theirs = socket.socketpair()
        try:
            self.proc = subprocess.Popen(
                [node, *NODE_FLAGS, NODE_RUNTIME, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        self.sock = ours
        self.decoder = FrameDecoder()

    def kill(self):
        if self.proc is not None:
            try:
                self.proc.kill()
                self.proc.wait()
            except OSError:
                pass
        if self.sock is not None:
            self.sock.close()
        self.proc = None
        self.sock = None

    def send(self, msg):
        self.sock.sendall(encode_frame(msg))

    def invoke(self, inv, path):
        if self.proc is None:
            self.start()
        self.send(
            {
                "id": inv.id,
                "type": "invoke",
                "function": inv.function,
                "path": path,
                "params": inv.params,
            }
        )
        while True:
            data = self.sock.recv(1 << 16)
            if not data:
                code = self.proc.poll()
                self.kill()
                raise FunctionError("runtime", "node runtime exited (status %s)" % code)
            for msg in self.decoder.feed(data):
                if isinstance(msg, ProtocolError):
                    self.kill()
                    raise FunctionError("runtime", "node runtime: %s" % msg)
                done = self.handle(inv, msg)
                if done is not None:
                    return done[0]

    def handle(self, inv, msg):
        kind = msg["type"]
        if kind == "result" and msg["id"] == inv.id:
            inv.t_end = now_ns()
            for mark in ("t1", "t2"):
                v = msg.get(mark + "Ns")
                if isinstance(v, int) and not isinstance(v, bool):
                    setattr(inv, mark, v)
            if msg.get("error") is not None:
                err = msg["error"]
                raise JsError(err.get("type"), err.get("message"), err.get("traceback"))
            return (msg.get("result"),)
        if kind in ("storage.get", "storage.put"):
            reply = {"id": msg["id"], "type": "storage.result"}
            try:
                # The runtime chunks large values itself: relay each request as it is.
                req = {"type": kind, "key": msg.get("key")}
                for field in ("offset", "length"):
                    if isinstance(msg.get(field), int):
                        req[field] = msg[field]
                if kind == "storage.put":
                    req["value"] = binascii.a2b_base64(msg.get("value") or "")
                value, size = self.agent.storage_request(req)
                if kind == "storage.get":
                    reply["value"] = None if value is None else b64(value)
                    if size is not None:
                        reply["size"] = size
            except (StorageError, ValueError, binascii.Error) as e:
                reply["error"] = str(e)
            self.send(reply)
        elif kind == "log":
            self.agent.log(msg.get("msg", ""), msg.get("level", "info"), inv.id)
        return None


# ---- main ------------------------------------------------------------------------------------


# Set by faasnap-init when the kernel does not save AVX state across task switches (noxsave):
# the libraries' own CPU dispatch must stay on SSE too (docs/linux-guest.md).
NO_AVX = os.environ.get("FAASNAP_NO_AVX") == "1"
NODE_FLAGS = ["--no-enable-avx", "--no-enable-avx2", "--no-enable-fma3"] if NO_AVX else []
NO_AVX_ENV = {
    "OPENBLAS_CORETYPE": "Nehalem",
    "ATEN_CPU_CAPABILITY": "default",
    "DNNL_MAX_CPU_ISA": "SSE41",
    "NPY_DISABLE_CPU_FEATURES": "F16C FMA3 AVX AVX2 AVX512F AVX512CD AVX512_SKX AVX512_CLX "
    "AVX512_CNL AVX512_ICL",
}


def avoid_avx():
    """Before any handler imports a library: read at import/load time, inherited by children."""
    import warnings

    for k, v in NO_AVX_ENV.items():
        os.environ.setdefault(k, v)
    # NumPy warns about listed features this CPU lacks; nothing to act on.
    warnings.filterwarnings("ignore", message="During parsing environment variable")


def main(argv):
    channel_spec = os.environ.get("FAASNAP_AGENT_CHANNEL", DEFAULT_CHANNEL)
    functions_dir = os.environ.get("FAASNAP_FUNCTIONS_DIR", DEFAULT_FUNCTIONS)
    args = list(argv)
    while args:
        opt = args.pop(0)
        if opt == "--channel" and args:
            channel_spec = args.pop(0)
        elif opt == "--functions" and args:
            functions_dir = args.pop(0)
        else:
            sys.stderr.write(__doc__)
            return 2
    if NO_AVX:
        avoid_avx()
    channel = Channel.open(channel_spec)
    agent = Agent(channel, functions_dir)
    agent.send_ready(0, False)
    reader = threading.Thread(target=agent.read_loop, name="reader", daemon=True)
    reader.start()
    agent.serve()
    if agent.node is not None:
        agent.node.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
