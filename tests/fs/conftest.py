"""Fixtures for wivaudit's filesystem tests.

A test gets a local S3 (tests/s3/server.js: s3rver behind a proxy that
verifies SigV4 signatures), seeds buckets with the real `aws` CLI, mounts
$WIVAUDIT_BIN in the foreground and compares what it serves with refmodel.py.

Every wait is bounded, every mount is unmounted in cleanup (lazily if need
be) and its daemon killed if it lingers; a daemon that printed a sanitizer
report or exited non-zero after unmount fails the test.

Environment: WIVAUDIT_BIN (mount.wivaudit), WIVAUDIT_SRC (source root).
"""

import json
import os
import pickle
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("WIVAUDIT_SRC") or os.path.dirname(os.path.dirname(HERE))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import refmodel  # noqa: E402

AWS = "/usr/bin/aws"
PYTHON = sys.executable or "/usr/bin/python3"
GEN = os.path.join(SRC, "contrib", "gen-sample.py")
SERVER_JS = os.path.join(SRC, "tests", "s3", "server.js")
FSPROBE = os.path.join(HERE, "fsprobe.py")
ACCESS_KEY = "S3RVER"
# Not the access key id, so that a secret printed anywhere can be told from
# the key id that may be shown.
SECRET = "wivTestSecret/2Qk+8Zr"
REGION = "us-east-1"

SANITIZER_RE = re.compile(
    r"ERROR: AddressSanitizer|runtime error:|LeakSanitizer|"
    r"WARNING: ThreadSanitizer|ERROR: MemorySanitizer")

MOUNT_TIMEOUT = 15
UNMOUNT_TIMEOUT = 10
EXIT_TIMEOUT = 15


def _fuse_missing():
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    if shutil.which("fusermount3") is None:
        return "no fusermount3"
    return None


def daemon_bin():
    """Path of mount.wivaudit; skips when FUSE is missing, fails when the
    binary named by WIVAUDIT_BIN does not exist."""
    why = _fuse_missing()
    if why:
        pytest.skip("FUSE unavailable: " + why)
    path = os.environ.get("WIVAUDIT_BIN")
    if not path:
        path = os.path.join(SRC, "build", "src", "mount.wivaudit")
        if not os.path.exists(path):
            pytest.skip("WIVAUDIT_BIN not set and %s does not exist" % path)
    if not os.access(path, os.X_OK):
        pytest.fail("WIVAUDIT_BIN=%s is not an executable" % path)
    return path


def cli_bin():
    """Path of the wivaudit command (WIVAUDIT_CLI, else beside the daemon);
    fails when it is not an executable."""
    path = os.environ.get("WIVAUDIT_CLI") or os.path.join(
        os.path.dirname(daemon_bin()), "wivaudit")
    if not os.access(path, os.X_OK):
        pytest.fail("wivaudit CLI not found at %s" % path)
    return path


def run(argv, timeout=60, check=True, **kw):
    """subprocess.run with a bound; returns the CompletedProcess."""
    try:
        p = subprocess.run(argv, capture_output=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired:
        pytest.fail("timed out after %ss: %s" % (timeout, " ".join(
            map(str, argv))))
    if check and p.returncode != 0:
        pytest.fail("%s exited %d\nstdout: %s\nstderr: %s" % (
            " ".join(map(str, argv)), p.returncode,
            p.stdout.decode(errors="replace")[-2000:],
            p.stderr.decode(errors="replace")[-2000:]))
    return p


def is_mounted(path):
    """Asks the mount table, never the mount itself (a root that answers EIO
    must not look unmounted)."""
    try:
        p = subprocess.run(["findmnt", "-M", str(path)],
                           capture_output=True, timeout=10)
    except subprocess.TimeoutExpired:
        return True
    return p.returncode == 0


def probe(*args, timeout=120):
    """Runs fsprobe.py in a child (killed on timeout) and unpickles its
    answer."""
    p = run([PYTHON, FSPROBE] + [os.fsencode(a) if isinstance(a, str) else a
                                 for a in args], timeout=timeout)
    return pickle.loads(p.stdout)


def walk(mnt, content=True, timeout=120):
    """{relpath bytes: entry dict} of the whole mounted tree."""
    args = ["walk", str(mnt)] + ([] if content else ["--no-content"])
    return probe(*args, timeout=timeout)


# --- the local S3 ------------------------------------------------------------

class S3Server:
    """tests/s3/server.js on free ports, with a request log."""

    def __init__(self, workdir, secret=SECRET, token=None, tls=None):
        """tls: (key.pem, cert.pem) to serve HTTPS only."""
        if shutil.which("node") is None:
            pytest.fail("node is not installed (needed for tests/s3)")
        if not os.path.isdir(os.path.join(SRC, "tests", "s3", "node_modules",
                                          "s3rver")):
            pytest.fail("tests/s3/node_modules is missing: run `npm ci` in "
                        "tests/s3 first")
        if not os.access(AWS, os.X_OK):
            pytest.fail("%s (Debian's awscli) is not installed" % AWS)
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.log = os.path.join(self.workdir, "requests.log")
        open(self.log, "w").close()
        self.stderr_path = os.path.join(self.workdir, "server.err")
        self.aws_config = os.path.join(self.workdir, "aws-config")
        self.aws_creds = os.path.join(self.workdir, "aws-credentials")
        for f in (self.aws_config, self.aws_creds):
            open(f, "w").close()
        self.faults_path = os.path.join(self.workdir, "faults.json")
        self.token = token
        env = dict(os.environ, WIV_S3_SECRET=secret, WIV_S3_LOG=self.log,
                   WIV_S3_REGION=REGION, WIV_S3_FAULTS=self.faults_path,
                   WIV_S3_TOKEN=token or "",
                   WIV_S3_TLS_KEY=tls[0] if tls else "",
                   WIV_S3_TLS_CERT=tls[1] if tls else "")
        self.cafile = tls[1] if tls else None
        env.pop("WIV_S3_DIR", None)
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            ["node", SERVER_JS], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._err, env=env,
            cwd=self.workdir)
        line = self._read_ready(30)
        m = re.fullmatch(r"READY (\d+) (\d+)", line.strip())
        if not m:
            self.stop()
            pytest.fail("tests/s3/server.js did not start: %r\n%s" % (
                line, self.server_stderr()))
        self.port = int(m.group(1))
        self.s3rver_port = int(m.group(2))
        self.endpoint = "%s://127.0.0.1:%d" % ("https" if tls else "http",
                                                self.port)

    def _read_ready(self, timeout):
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        buf = b""
        deadline = time.monotonic() + timeout
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                break
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
        sel.close()
        return buf.decode(errors="replace")

    def server_stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc.stdout.close()
        self._err.close()

    def aws_env(self, secret=SECRET, access_key=ACCESS_KEY):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AWS_")}
        env.update(AWS_ACCESS_KEY_ID=access_key,
                   AWS_SECRET_ACCESS_KEY=secret, AWS_REGION=REGION,
                   AWS_DEFAULT_REGION=REGION, AWS_CONFIG_FILE=self.aws_config,
                   AWS_SHARED_CREDENTIALS_FILE=self.aws_creds, AWS_PAGER="",
                   AWS_EC2_METADATA_DISABLED="true",
                   HOME=self.workdir)
        if self.token:
            env["AWS_SESSION_TOKEN"] = self.token
        return env

    def aws(self, *args, secret=SECRET, access_key=ACCESS_KEY, check=True,
            timeout=300):
        """Runs /usr/bin/aws against this server."""
        ca = ["--ca-bundle", self.cafile] if self.cafile else []
        return run([AWS, "--endpoint-url", self.endpoint] + ca + list(args),
                   env=self.aws_env(secret, access_key), check=check,
                   timeout=timeout)

    def make_bucket(self, name):
        self.aws("s3", "mb", "s3://" + name)

    def sync(self, src, url):
        """Uploads a local mirror with `aws s3 sync`."""
        self.aws("s3", "sync", str(src), url, "--only-show-errors")

    def seed(self, name, mirror):
        """Creates bucket name holding the local mirror."""
        self.make_bucket(name)
        self.sync(mirror, "s3://%s/" % name)

    def set_faults(self, rules):
        """Replaces the server's fault rules (see server.js); [] clears."""
        tmp = self.faults_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(rules, f)
        os.rename(tmp, self.faults_path)

    def mark(self):
        """A position in the request log, for requests(since=...)."""
        return os.path.getsize(self.log)

    def requests(self, since=0):
        """[(method, status, op, url, note)] logged after `since`; op is
        list|get|head|put|other, note an error code or injected FAULT:..."""
        with open(self.log, "rb") as f:
            f.seek(since)
            lines = f.read().decode(errors="replace").splitlines()
        out = []
        for ln in lines:
            parts = ln.split("\t")
            if len(parts) >= 4:
                out.append((parts[0], int(parts[1]), parts[2], parts[3],
                            parts[4] if len(parts) > 4 else ""))
        return out

    def object_gets(self, since=0):
        """URLs of object GETs after `since` (answered or not)."""
        return [r[3] for r in self.requests(since)
                if r[0] == "GET" and r[2] == "get"]

    def faults_fired(self, since=0):
        """Requests after `since` that got an injected fault."""
        return [r for r in self.requests(since)
                if r[1] == 0 or r[1] >= 500 or r[4].startswith("FAULT")]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    srv = S3Server(tmp_path_factory.mktemp("s3"))
    yield srv
    srv.stop()


# --- corpora -----------------------------------------------------------------

def generate(out, *args):
    """Runs contrib/gen-sample.py into `out`; returns its summary line."""
    p = run([PYTHON, GEN, str(out)] + [str(a) for a in args], timeout=120)
    return p.stdout.decode().strip()


SMALL = ["--orgs", "3", "--days", "10", "--objects-per-day", "2",
         "--events-per-object", "5", "--seed", "7"]


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    """A clean corpus (3 orgs x 10 days x 3 types) and its model."""
    d = tmp_path_factory.mktemp("corpus") / "mirror"
    generate(d, *SMALL)
    return d, refmodel.Model(str(d))


@pytest.fixture(scope="module")
def messy_corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("messy") / "mirror"
    generate(d, "--orgs", "3", "--days", "6", "--objects-per-day", "1",
             "--events-per-object", "4", "--seed", "11", "--messy")
    return d, refmodel.Model(str(d))


# --- mounting ----------------------------------------------------------------

class Mount:
    def __init__(self, path, proc, stderr_path, cache_dir, argv):
        self.path = str(path)
        self.proc = proc
        self.stderr_path = stderr_path
        self.cache_dir = cache_dir
        self.argv = argv
        self.unmounted = False

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")

    def unmount(self):
        """Unmounts (lazily if need be), reaps the daemon, and returns a list
        of problems: sanitizer reports, a non-zero exit, a leftover mount."""
        if self.unmounted:
            return []
        self.unmounted = True
        problems = []
        killed = False
        if is_mounted(self.path):
            try:
                p = subprocess.run(["fusermount3", "-u", self.path],
                                   capture_output=True,
                                   timeout=UNMOUNT_TIMEOUT)
                ok = p.returncode == 0
            except subprocess.TimeoutExpired:
                ok = False
            if not ok:
                problems.append("fusermount3 -u failed; unmounted lazily")
                subprocess.run(["fusermount3", "-uz", self.path],
                               capture_output=True, timeout=UNMOUNT_TIMEOUT)
        # The daemon finishes the background downloads in flight before it
        # exits, a retry's backoff included: seconds when the test server
        # answers 5xx under load. A daemon that hangs still fails here.
        try:
            self.proc.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            problems.append("daemon still running %d s after unmount; killed"
                            % EXIT_TIMEOUT)
            problems.append(thread_stacks(self.proc.pid))
            killed = True
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if is_mounted(self.path):
            subprocess.run(["fusermount3", "-uz", self.path],
                           capture_output=True, timeout=UNMOUNT_TIMEOUT)
            problems.append("still mounted after the daemon exited")
        rc = self.proc.returncode
        if not killed and rc != 0:
            problems.append("daemon exited with status %s" % rc)
        err = self.stderr()
        if SANITIZER_RE.search(err):
            problems.append("sanitizer report")
        if problems:
            problems.append("daemon stderr (%s):\n%s" % (
                " ".join(self.argv), err[-6000:]))
        return problems


def thread_stacks(pid):
    """Every thread's stack of a hung process, for the report."""
    if not shutil.which("gdb"):
        return "(no gdb: thread stacks not shown)"
    try:
        p = subprocess.run(["gdb", "-batch", "-nx", "-p", str(pid),
                            "-ex", "thread apply all bt"],
                           capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "(gdb timed out: thread stacks not shown)"
    return "thread stacks:\n" + p.stdout[-12000:]


class Mounter:
    """Starts mount.wivaudit in the foreground and keeps track of mounts."""

    def __init__(self, tmpdir, s3=None):
        self.tmpdir = str(tmpdir)
        self.s3 = s3
        self.mounts = []
        self.n = 0
        self.home = os.path.join(self.tmpdir, "home")
        os.makedirs(self.home, exist_ok=True)
        self.aws_config = os.path.join(self.home, "aws-config")
        self.aws_creds = os.path.join(self.home, "aws-credentials")
        for f in (self.aws_config, self.aws_creds):
            open(f, "w").close()

    def env(self, secret=SECRET, access_key=ACCESS_KEY, extra=None):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AWS_") and k != "WIVAUDIT_CONFIG"}
        env.update(AWS_ACCESS_KEY_ID=access_key,
                   AWS_SECRET_ACCESS_KEY=secret, AWS_REGION=REGION,
                   AWS_CONFIG_FILE=self.aws_config,
                   AWS_SHARED_CREDENTIALS_FILE=self.aws_creds,
                   AWS_EC2_METADATA_DISABLED="true", HOME=self.home,
                   XDG_CACHE_HOME=os.path.join(self.home, ".cache"),
                   XDG_CONFIG_HOME=os.path.join(self.home, ".config"))
        if extra:
            for k, v in extra.items():
                if v is None:
                    env.pop(k, None)
                else:
                    env[k] = v
        return env

    def new_cache_dir(self):
        self.n += 1
        d = os.path.join(self.tmpdir, "cache%d" % self.n)
        return d

    def s3_source(self, bucket, prefix=""):
        return "s3://%s%s" % (bucket, "/" + prefix if prefix else "")

    def start(self, source, opts=(), cache_dir=None, env=None, endpoint=True,
              args=()):
        """Starts the daemon; returns (Mount, argv) without waiting."""
        binary = daemon_bin()
        self.n += 1
        mnt = os.path.join(self.tmpdir, "mnt%d" % self.n)
        os.makedirs(mnt)
        if cache_dir is None:
            cache_dir = self.new_cache_dir()
        o = []
        if endpoint and self.s3 is not None and (source is None or
                                                 source.startswith("s3://")):
            o.append("endpoint=" + self.s3.endpoint)
        if cache_dir:
            o.append("cache_dir=" + cache_dir)
        o.extend(opts)
        argv = [binary] + ([source] if source is not None else []) + \
            [mnt, "-f"] + list(args) + (["-o", ",".join(o)] if o else [])
        stderr_path = os.path.join(self.tmpdir, "daemon%d.err" % self.n)
        with open(stderr_path, "wb") as err:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                    stdout=err, stderr=err,
                                    env=env or self.env(), cwd=self.tmpdir)
        m = Mount(mnt, proc, stderr_path, cache_dir, argv)
        self.mounts.append(m)
        return m

    def mount(self, source, opts=(), cache_dir=None, env=None,
              endpoint=True, args=()):
        """Mounts and waits (bounded) until the mount table shows it; fails
        fast with the daemon's stderr if it exits first. source None: from
        the config file."""
        m = self.start(source, opts, cache_dir, env, endpoint, args)
        deadline = time.monotonic() + MOUNT_TIMEOUT
        while True:
            if is_mounted(m.path):
                return m
            if m.proc.poll() is not None:
                m.unmounted = True
                pytest.fail("mount.wivaudit exited with status %d before "
                            "mounting: %s\n%s" % (m.proc.returncode,
                                                  " ".join(m.argv),
                                                  m.stderr()))
            if time.monotonic() > deadline:
                problems = m.unmount()
                pytest.fail("not mounted after %d s: %s\n%s" % (
                    MOUNT_TIMEOUT, " ".join(m.argv), "\n".join(problems)))
            time.sleep(0.05)

    def mount_fails(self, source, opts=(), cache_dir=None, env=None,
                    endpoint=True, timeout=60, args=()):
        """Starts a mount that must fail: waits (bounded) for the daemon to
        exit; returns (status, stderr). Fails if it ever mounts."""
        m = self.start(source, opts, cache_dir, env, endpoint, args)
        deadline = time.monotonic() + timeout
        was_mounted = False
        while m.proc.poll() is None and time.monotonic() < deadline:
            if is_mounted(m.path):
                was_mounted = True
                break
            time.sleep(0.05)
        if was_mounted or m.proc.poll() is None:
            problems = m.unmount()
            pytest.fail("%s: expected the mount to fail, but it %s\n%s" % (
                " ".join(m.argv),
                "mounted" if was_mounted else "did not exit within %ds"
                % timeout, "\n".join(problems)))
        m.unmounted = True
        if is_mounted(m.path):
            subprocess.run(["fusermount3", "-uz", m.path],
                           capture_output=True, timeout=UNMOUNT_TIMEOUT)
            pytest.fail("a failed mount left %s mounted" % m.path)
        err = m.stderr()
        if SANITIZER_RE.search(err):
            pytest.fail("sanitizer report from a failed mount:\n" + err)
        return m.proc.returncode, err

    def unmount(self, m):
        problems = m.unmount()
        if problems:
            pytest.fail("\n".join(problems))

    def cleanup(self):
        problems = []
        for m in self.mounts:
            problems += m.unmount()
        self.mounts = []
        return problems


def _mounter_fixture(tmpdir, s3):
    mounter = Mounter(tmpdir, s3)
    yield mounter
    problems = mounter.cleanup()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def mounter(tmp_path, request):
    s3srv = request.getfixturevalue("s3") if "s3" in request.fixturenames \
        else None
    yield from _mounter_fixture(tmp_path, s3srv)


@pytest.fixture(scope="module")
def module_mounter(tmp_path_factory, s3):
    yield from _mounter_fixture(tmp_path_factory.mktemp("mounts"), s3)


# --- comparisons -------------------------------------------------------------

def show(path):
    return path.decode("utf-8", "backslashreplace") or "/"


def compare_tree(tree, model, content=True, uid=None, gid=None,
                 check_modes=True, max_report=30):
    """Checks a walk against the model; returns a list of differences."""
    diffs = []
    want = set(model.files) | set(model.dirs)
    got = set(tree)
    for p in sorted(want - got)[:max_report]:
        diffs.append("missing: " + show(p))
    for p in sorted(got - want)[:max_report]:
        diffs.append("unexpected: " + show(p))
    for p in sorted(want & got):
        e = tree[p]
        if "error" in e:
            diffs.append("%s: %s" % (show(p), e["error"]))
            continue
        if p in model.dirs:
            if (e["mode"] & 0o170000) != 0o040000:
                diffs.append("%s: not a directory" % show(p))
                continue
            if check_modes and e["mode"] & 0o7777 != 0o555:
                diffs.append("%s: mode %o, want 555" % (show(p),
                                                        e["mode"] & 0o7777))
            if e["children"] != model.listdir(p):
                diffs.append("%s: children differ" % show(p))
            nl = 2 + model.subdir_count(p)
            if e["nlink"] != nl:
                diffs.append("%s: nlink %d, want %d" % (show(p), e["nlink"],
                                                        nl))
        else:
            f = model.files[p]
            if (e["mode"] & 0o170000) != 0o100000:
                diffs.append("%s: not a regular file" % show(p))
                continue
            if check_modes and e["mode"] & 0o7777 != 0o444:
                diffs.append("%s: mode %o, want 444" % (show(p),
                                                        e["mode"] & 0o7777))
            if e["size"] != len(f.content):
                diffs.append("%s: size %d, want %d" % (show(p), e["size"],
                                                       len(f.content)))
            if e["mtime"] != f.mtime:
                diffs.append("%s: mtime %d, want %d" % (show(p), e["mtime"],
                                                        f.mtime))
            if e["nlink"] != 1:
                diffs.append("%s: nlink %d" % (show(p), e["nlink"]))
            if content and e.get("content") != f.content:
                diffs.append("%s: content differs (key %s, position %d)"
                             % (show(p), f.key, f.position))
        if uid is not None and e["uid"] != uid:
            diffs.append("%s: uid %d, want %d" % (show(p), e["uid"], uid))
        if gid is not None and e["gid"] != gid:
            diffs.append("%s: gid %d, want %d" % (show(p), e["gid"], gid))
        if len(diffs) > max_report:
            diffs.append("...")
            break
    return diffs


def assert_tree(tree, model, **kw):
    diffs = compare_tree(tree, model, **kw)
    assert not diffs, "%d+ differences from the model:\n%s" % (
        len(diffs), "\n".join(diffs))


# --- exit status 77 when the machine has no FUSE (meson's "skipped") ---------

_outcomes = {"passed": 0, "failed": 0, "skipped": 0}


def pytest_runtest_logreport(report):
    if report.when == "call" or report.outcome != "passed":
        if report.outcome in _outcomes:
            _outcomes[report.outcome] += 1


def pytest_sessionfinish(session, exitstatus):
    if exitstatus == 0 and _outcomes["skipped"] and \
            not _outcomes["passed"] and not _outcomes["failed"]:
        session.exitstatus = 77
