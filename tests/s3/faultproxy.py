#!/usr/bin/python3
"""Fault-injecting HTTP proxy for wivaudit's filesystem tests.

Sits between the daemon and tests/s3/server.js on 127.0.0.1 and, driven by
rules set per test over a control port, answers chosen requests with the
faults S3 and networks produce: throttling, 5xx, connections reset or cut
mid-body, stalls. Everything else is forwarded byte for byte (the Host,
Authorization, Range and If-Match headers untouched, so signatures still
verify upstream) and streamed back.

    faultproxy.py UPSTREAM_PORT LOG_FILE

Prints "READY <proxy_port> <control_port>" once both listen; exits when its
stdin is closed, or on SIGTERM.

Client connections are kept alive (HTTP/1.1) unless a fault ends them; each
request goes upstream on a fresh connection.

Control API (JSON over HTTP on the control port):
    POST   /rules      a rule object or a list of them -> {"ids": [...]}
    GET    /rules      every rule with its "fired" count
    DELETE /rules      removes every rule
    DELETE /rules/ID   removes one rule

A rule (only "fault" is required):
    fault     slowdown      503 SlowDown, S3's XML error body
              internal      500 InternalError
              forbidden     403 AccessDenied
              archived      403 InvalidObjectState: what S3 answers a GET
                            of a GLACIER or DEEP_ARCHIVE object
              storage_class forward a listing with the StorageClass of
                            the keys in "classes" ({key: class}) replaced,
                            as a lifecycle rule leaves them
              drop          close the connection without answering
              reset         forward, send the headers and part of the body,
                            then reset the connection (RST)
              cut           same, but close cleanly (FIN): the body is
                            shorter than its Content-Length
              cut_close     send part of the body without Content-Length and
                            close: a close-delimited body, cut short
              cut_length    send part of the body with a Content-Length that
                            matches the part: a short but well-framed body
              stall         answer nothing for stall_s seconds, then close
              stall_body    send the headers and part of the body, then
                            nothing for stall_s seconds, then close
    op        "get" (object GET), "list" (ListObjectsV2: GET with
              list-type=2), or "any" (default)
    key       substring of the object key (get) or of the prefix parameter
              (list); default: any
    query     substring of the raw query string, e.g. "continuation-token"
              to fail only the pages after the first one
    count     fire this many times in all (default: no limit)
    per_key   with count: fire count times for each distinct path+query
    skip      let this many matching requests through first (per key with
              per_key)
    prob      fire with this probability (seeded by "seed", default 0)
    classes   storage_class: {key: storage class}
    fraction  part of the body sent before a cut or reset (default 0.5;
              at least one byte is held back)
    stall_s   seconds a stall lasts (default 30; it ends early when the
              client hangs up)

The log file gets one JSON line per request: time, method, op, key (the
decoded object key, or the list prefix), query, the upstream status (null
when the request never went upstream) and "fault" (the rule's fault and id,
or null when the request went through untouched).
"""

import http.client
import json
import os
import random
import re
import select
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.parse
import xml.sax.saxutils

FAULTS = {"slowdown", "internal", "forbidden", "archived", "drop", "reset",
          "cut", "cut_close", "cut_length", "stall", "stall_body",
          "storage_class"}
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection",
              "transfer-encoding", "te", "trailer", "upgrade",
              "content-length"}
ERRORS = {
    "slowdown": (503, "Service Unavailable", "SlowDown",
                 "Please reduce your request rate."),
    "internal": (500, "Internal Server Error", "InternalError",
                 "We encountered an internal error. Please try again."),
    "forbidden": (403, "Forbidden", "AccessDenied", "Access Denied"),
    "archived": (403, "Forbidden", "InvalidObjectState",
                 "The operation is not valid for the object's storage "
                 "class"),
}
CONTENTS_RE = re.compile(rb"<Contents>.*?</Contents>", re.S)
KEY_RE = re.compile(rb"<Key>(.*?)</Key>", re.S)
CLASS_RE = re.compile(rb"<StorageClass>.*?</StorageClass>", re.S)


def set_storage_classes(body, classes):
    """A ListObjectsV2 body with the StorageClass of the keys in classes
    ({key: class}) replaced (or added)."""
    def one(m):
        block = m.group(0)
        k = KEY_RE.search(block)
        key = xml.sax.saxutils.unescape(
            k.group(1).decode(), {"&quot;": '"', "&apos;": "'"}) if k else None
        if key not in classes:
            return block
        tag = b"<StorageClass>%s</StorageClass>" % classes[key].encode()
        if CLASS_RE.search(block):
            return CLASS_RE.sub(lambda _: tag, block, count=1)
        return block.replace(b"</Contents>", tag + b"</Contents>")
    return CONTENTS_RE.sub(one, body)
MAX_HEADER = 64 * 1024
CHUNK = 64 * 1024


class Rule:
    def __init__(self, rid, spec):
        if not isinstance(spec, dict) or spec.get("fault") not in FAULTS:
            raise ValueError("a rule needs \"fault\", one of " +
                             ", ".join(sorted(FAULTS)))
        unknown = set(spec) - {"fault", "op", "key", "query", "count",
                               "per_key", "skip", "prob", "seed",
                               "fraction", "stall_s", "classes", "id"}
        if unknown:
            raise ValueError("unknown rule fields: " +
                             ", ".join(sorted(unknown)))
        self.id = rid
        self.spec = dict(spec, id=rid)
        self.fault = spec["fault"]
        self.op = spec.get("op", "any")
        if self.op not in ("get", "list", "any"):
            raise ValueError("op must be get, list or any")
        self.key = spec.get("key")
        self.query = spec.get("query")
        self.count = spec.get("count")
        self.per_key = bool(spec.get("per_key"))
        self.skip = int(spec.get("skip", 0))
        self.prob = spec.get("prob")
        self.rng = random.Random(spec.get("seed", 0))
        self.fraction = float(spec.get("fraction", 0.5))
        self.stall_s = float(spec.get("stall_s", 30))
        self.classes = dict(spec.get("classes") or {})
        self.fired = 0
        self.seen = {}   # per-key (or "") -> matching requests seen
        self.fired_by = {}

    def matches(self, req):
        if self.op != "any" and req.op != self.op:
            return False
        if self.key is not None and self.key not in req.key:
            return False
        if self.query is not None and self.query not in req.query:
            return False
        return True

    def take(self, req):
        """Called under the rules lock for a matching request: decides
        whether this one gets the fault, and counts it."""
        slot = req.path_query if self.per_key else ""
        seen = self.seen.get(slot, 0)
        self.seen[slot] = seen + 1
        if seen < self.skip:
            return False
        if self.count is not None and \
                self.fired_by.get(slot, 0) >= int(self.count):
            return False
        if self.prob is not None and self.rng.random() >= float(self.prob):
            return False
        self.fired += 1
        self.fired_by[slot] = self.fired_by.get(slot, 0) + 1
        return True

    def describe(self):
        return dict(self.spec, fired=self.fired)


class State:
    def __init__(self, upstream_port, log_path):
        self.upstream_port = upstream_port
        self.lock = threading.Lock()
        self.rules = []
        self.next_id = 1
        self.log = open(log_path, "a", buffering=1)
        self.log_lock = threading.Lock()

    def add(self, specs):
        if isinstance(specs, dict):
            specs = [specs]
        with self.lock:
            made = []
            for s in specs:
                rid = str(s.get("id") or "r%d" % self.next_id)
                self.next_id += 1
                made.append(Rule(rid, s))
            self.rules.extend(made)
            return [r.id for r in made]

    def remove(self, rid=None):
        with self.lock:
            before = len(self.rules)
            self.rules = [r for r in self.rules
                          if rid is not None and r.id != rid]
            return before - len(self.rules)

    def describe(self):
        with self.lock:
            return [r.describe() for r in self.rules]

    def pick(self, req):
        """The first rule that fires for req, or None."""
        with self.lock:
            for r in self.rules:
                if r.matches(req) and r.take(req):
                    return r
        return None

    def record(self, req, status, rule):
        line = json.dumps({
            "time": round(time.time(), 3), "method": req.method,
            "op": req.op, "key": req.key, "query": req.query,
            "status": status,
            "fault": rule.fault if rule else None,
            "rule": rule.id if rule else None,
        })
        with self.log_lock:
            self.log.write(line + "\n")


class Request:
    """One parsed client request."""

    def __init__(self, method, target, version, headers, body):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers  # [(name, value)] as sent
        self.body = body
        u = urllib.parse.urlsplit(target)
        self.path_query = target
        self.query = u.query
        params = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        parts = u.path.split("/", 2)  # path-style: /bucket/key
        is_object = len(parts) == 3 and parts[2] != ""
        if method == "GET" and is_object:
            self.op = "get"
            self.key = urllib.parse.unquote(parts[2])
        elif method == "GET" and params.get("list-type") == ["2"]:
            self.op = "list"
            self.key = params.get("prefix", [""])[0]
        else:
            self.op = "other"
            self.key = urllib.parse.unquote(u.path)

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def wants_close(self):
        c = (self.header("connection") or "").lower()
        return "close" in c or self.version == "HTTP/1.0"


class ClientGone(Exception):
    pass


class Handler(socketserver.BaseRequestHandler):
    def setup(self):
        self.sock = self.request
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def recv_request(self):
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > MAX_HEADER:
                return None
            data = self.sock.recv(CHUNK)
            if not data:
                return None
            self.buf += data
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            return None
        headers = []
        for ln in lines[1:]:
            if ":" in ln:
                k, v = ln.split(":", 1)
                headers.append((k, v.strip()))
        length = 0
        for k, v in headers:
            if k.lower() == "content-length":
                length = int(v)
        while len(self.buf) < length:
            data = self.sock.recv(CHUNK)
            if not data:
                return None
            self.buf += data
        body, self.buf = self.buf[:length], self.buf[length:]
        return Request(method, target, version, headers, body)

    def send(self, data):
        try:
            self.sock.sendall(data)
        except OSError:
            raise ClientGone()

    def reset(self):
        """Closes with RST rather than FIN."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.sock.close()

    def wait_or_hangup(self, seconds):
        """Sleeps up to seconds, returning early when the client closes."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            r, _, _ = select.select([self.sock], [], [], min(left, 0.2))
            if r:
                try:
                    if not self.sock.recv(CHUNK, socket.MSG_PEEK):
                        return
                except OSError:
                    return
                time.sleep(min(left, 0.2))

    def handle(self):
        state = self.server.state
        try:
            while True:
                req = self.recv_request()
                if req is None:
                    return
                rule = state.pick(req)
                if not self.serve(state, req, rule):
                    return
                if req.wants_close():
                    return
        except ClientGone:
            return
        except Exception as e:  # keep the proxy up, but say why
            sys.stderr.write("faultproxy: %r\n" % (e,))
            return

    def error_response(self, req, rule, keep):
        status, reason, code, message = ERRORS[rule.fault]
        rid = "%016X" % random.getrandbits(64)
        body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s"
                "</Code><Message>%s</Message><RequestId>%s</RequestId>"
                "<HostId>faultproxy</HostId></Error>" % (
                    code, message, rid)).encode()
        head = ("HTTP/1.1 %d %s\r\nContent-Type: application/xml\r\n"
                "Content-Length: %d\r\nx-amz-request-id: %s\r\n"
                "Connection: %s\r\n\r\n" % (
                    status, reason, len(body), rid,
                    "keep-alive" if keep else "close")).encode()
        self.send(head + (body if req.method != "HEAD" else b""))

    def serve(self, state, req, rule):
        """Answers one request; returns whether the connection lives on."""
        keep = not req.wants_close()
        fault = rule.fault if rule else None
        if fault in ERRORS:
            state.record(req, None, rule)
            self.error_response(req, rule, keep)
            return keep
        if fault == "drop":
            state.record(req, None, rule)
            self.sock.close()
            return False
        if fault == "stall":
            state.record(req, None, rule)
            self.wait_or_hangup(rule.stall_s)
            self.sock.close()
            return False

        up = http.client.HTTPConnection("127.0.0.1", state.upstream_port,
                                        timeout=60)
        try:
            up.putrequest(req.method, req.target, skip_host=True,
                          skip_accept_encoding=True)
            for k, v in req.headers:
                if k.lower() not in HOP_BY_HOP:
                    up.putheader(k, v)
            if req.body or req.method in ("PUT", "POST"):
                up.putheader("Content-Length", str(len(req.body)))
            up.putheader("Connection", "close")
            up.endheaders(req.body or None)
            resp = up.getresponse()
        except (OSError, http.client.HTTPException) as e:
            up.close()
            state.record(req, 502, rule)
            msg = ("upstream: %s" % e).encode()
            self.send(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: %d\r\n"
                      b"Connection: close\r\n\r\n%s" % (len(msg), msg))
            return False
        try:
            return self.relay(state, req, rule, resp, keep)
        finally:
            up.close()

    def relay(self, state, req, rule, resp, keep):
        """Streams resp to the client, or the fault rule asks for."""
        state.record(req, resp.status, rule)
        fault = rule.fault if rule else None
        headers = [(k, v) for k, v in resp.getheaders()
                   if k.lower() not in HOP_BY_HOP]
        head = self.status_line(resp) + self.header_lines(headers)
        no_body = req.method == "HEAD" or resp.status in (204, 304) or \
            100 <= resp.status < 200
        clen = resp.getheader("Content-Length")
        total = int(clen) if clen is not None else None

        if fault == "storage_class" and not no_body:
            body = set_storage_classes(resp.read(), rule.classes)
            head += "Content-Length: %d\r\nConnection: %s\r\n\r\n" % (
                len(body), "keep-alive" if keep else "close")
            self.send(head.encode("latin-1") + body)
            return keep

        if fault is None or no_body:
            chunked = total is None and not no_body
            if chunked:
                head += "Transfer-Encoding: chunked\r\n"
            elif clen is not None:
                head += "Content-Length: %s\r\n" % clen
            head += "Connection: %s\r\n\r\n" % ("keep-alive" if keep
                                                 else "close")
            self.send(head.encode("latin-1"))
            if no_body:
                return keep
            while True:
                data = resp.read1(CHUNK)
                if not data:
                    break
                self.send(b"%x\r\n%s\r\n" % (len(data), data) if chunked
                          else data)
            if chunked:
                self.send(b"0\r\n\r\n")
            if total is not None and resp.length:
                return False  # upstream ended early: so do we
            return keep

        if total is None:
            body = resp.read()
            total = len(body)
            resp = None
        part = min(int(total * rule.fraction), max(total - 1, 0))
        if fault in ("reset", "cut", "stall_body"):
            head += "Content-Length: %d\r\n" % total
        elif fault == "cut_length":
            head += "Content-Length: %d\r\n" % part
        head += "Connection: close\r\n\r\n"
        self.send(head.encode("latin-1"))
        sent = 0
        while sent < part:
            if resp is None:
                data = body[sent:part]
            else:
                data = resp.read1(min(CHUNK, part - sent))
                if not data:
                    break
            self.send(data)
            sent += len(data)
        if fault == "reset":
            time.sleep(0.05)  # let the part arrive before the RST
            self.reset()
        elif fault == "stall_body":
            self.wait_or_hangup(rule.stall_s)
            self.sock.close()
        else:
            self.sock.close()
        return False

    @staticmethod
    def status_line(resp):
        return "HTTP/1.1 %d %s\r\n" % (resp.status, resp.reason)

    @staticmethod
    def header_lines(headers):
        return "".join("%s: %s\r\n" % (k, v) for k, v in headers)


class ProxyServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class Control(socketserver.StreamRequestHandler):
    """The tiny JSON control API (one request per connection)."""

    def handle(self):
        state = self.server.state
        line = self.rfile.readline(MAX_HEADER).decode("latin-1").split()
        if len(line) < 2:
            return
        method, path = line[0], line[1]
        length = 0
        while True:
            h = self.rfile.readline(MAX_HEADER).decode("latin-1")
            if h in ("\r\n", "\n", ""):
                break
            k, _, v = h.partition(":")
            if k.strip().lower() == "content-length":
                length = int(v.strip())
        body = self.rfile.read(length) if length else b""
        try:
            if method == "POST" and path == "/rules":
                out = {"ids": state.add(json.loads(body or b"null"))}
            elif method == "GET" and path == "/rules":
                out = {"rules": state.describe()}
            elif method == "DELETE" and path == "/rules":
                out = {"removed": state.remove()}
            elif method == "DELETE" and path.startswith("/rules/"):
                out = {"removed": state.remove(path[len("/rules/"):])}
            else:
                self.reply(404, {"error": "no such control call"})
                return
        except (ValueError, TypeError) as e:
            self.reply(400, {"error": str(e)})
            return
        self.reply(200, out)

    def reply(self, status, obj):
        data = json.dumps(obj).encode()
        self.wfile.write(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n"
                         % (status, len(data)) + data)


class ControlServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


# --- for tests: start one and drive it ----------------------------------------

class FaultProxy:
    """Runs faultproxy.py in a child process on free ports.

        fp = FaultProxy(upstream_port, log_path)
        fp.add(fault="slowdown", op="get", count=2, per_key=True)
        fp.faults()   # the log lines of injected faults
        fp.clear(); fp.stop()
    """

    def __init__(self, upstream_port, log_path, python=None):
        import subprocess
        self.log_path = log_path
        open(log_path, "w").close()
        self.proc = subprocess.Popen(
            [python or sys.executable or "/usr/bin/python3",
             os.path.abspath(__file__), str(upstream_port), log_path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        line = b""
        deadline = time.monotonic() + 15
        while b"\n" not in line and time.monotonic() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if r:
                data = os.read(self.proc.stdout.fileno(), 256)
                if not data:
                    break
                line += data
        parts = line.decode().split()
        if len(parts) != 3 or parts[0] != "READY":
            self.stop()
            raise RuntimeError("faultproxy did not start: %r" % line)
        self.port = int(parts[1])
        self.control_port = int(parts[2])
        self.endpoint = "http://127.0.0.1:%d" % self.port

    def _call(self, method, path, obj=None):
        c = http.client.HTTPConnection("127.0.0.1", self.control_port,
                                       timeout=10)
        try:
            body = json.dumps(obj).encode() if obj is not None else None
            c.request(method, path, body=body,
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            out = json.loads(r.read() or b"{}")
            if r.status != 200:
                raise RuntimeError("faultproxy %s %s: %s" % (method, path,
                                                             out))
            return out
        finally:
            c.close()

    def add(self, **rule):
        """Adds one rule; returns its id."""
        return self._call("POST", "/rules", rule)["ids"][0]

    def rules(self):
        return self._call("GET", "/rules")["rules"]

    def remove(self, rid):
        self._call("DELETE", "/rules/" + urllib.parse.quote(rid))

    def clear(self):
        self._call("DELETE", "/rules")

    def mark(self):
        return os.path.getsize(self.log_path)

    def log(self, since=0):
        """Log lines (dicts) written after `since` (a mark())."""
        with open(self.log_path, "rb") as f:
            f.seek(since)
            data = f.read().decode()
        # Only whole lines: a line being written is picked up next time.
        return [json.loads(ln) for ln in data.split("\n")[:-1] if ln]

    def faults(self, since=0, **match):
        """Log lines of injected faults, optionally filtered by field."""
        return [e for e in self.log(since) if e["fault"] and
                all(e.get(k) == v for k, v in match.items())]

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(5)
            except Exception:
                self.proc.kill()
                self.proc.wait(5)
        self.proc.stdout.close()


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: faultproxy.py UPSTREAM_PORT LOG_FILE\n")
        return 2
    state = State(int(argv[1]), argv[2])
    proxy = ProxyServer(("127.0.0.1", 0), Handler)
    proxy.state = state
    control = ControlServer(("127.0.0.1", 0), Control)
    control.state = state
    for srv in (proxy, control):
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    sys.stdout.write("READY %d %d\n" % (proxy.server_address[1],
                                        control.server_address[1]))
    sys.stdout.flush()
    try:
        # Until stdin closes (the test harness went away) or SIGTERM.
        while sys.stdin.buffer.read(4096):
            pass
    except KeyboardInterrupt:
        pass
    proxy.shutdown()
    control.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
