"""Whoever writes the bucket chooses key names and event fields: none of
their bytes may forge a log line or drive the terminal of whoever reads the
daemon's log, `wivaudit doctor` or `wivaudit cache`. Keys with a newline or
ESC go through the local-directory source (the test S3 server cannot list
keys holding control bytes); event fields and a C1 control in an org name go
through S3 too."""

import gzip
import json
import os

import pytest

from conftest import ACCESS_KEY, SECRET, daemon_bin, run, walk

BUCKET = "escaping"
KEY_MS = 1769558400000  # 2026-01-28 00:00 UTC
TITLE = "\u001b]0;pwned\u0007"  # sets the terminal's title
CSI = "\u009b"  # a one-byte CSI on some terminals

# Raw bytes that must never reach any output.
RAW = [b"\x1b", b"\x07", b"\xc2\x9b", b"\xff"]
FORGED = "ORG/bad\nFAKE: error: x.json.gz"
ESC_KEY = "ORG/\x1b[31mred\x1b]0;title\x07.json.gz"
# A valid org name (no C0, DEL or C1) holding a backslash escape that must
# not pass for a real one, and an invalid UTF-8 byte.
ODD_ORG = b"odd\\x1b\xff"


def events():
    return [
        {"id": TITLE, "event_type": "X" + TITLE, "created_at": 1769558300},
        {"id": "a" + CSI + "b", "event_type": CSI + "31m",
         "created_at": 1769558301},
        {"id": "plain", "event_type": "login", "created_at": 1769558302},
    ]


def body():
    return gzip.compress(json.dumps(events()).encode())


def put(root, key, data):
    path = os.path.join(root, key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """A local mirror of a hostile bucket: a good object whose events carry
    ESC and C1 in id and event_type, keys forging a log line or carrying
    ESC/BEL, orgs with ESC and C1, and a good object under ODD_ORG."""
    root = os.fsencode(str(tmp_path_factory.mktemp("escaping") / "mirror"))
    good = b"ORG/org-audit-logs-%d.json.gz" % KEY_MS
    put(root, good, body())
    for key in (FORGED, ESC_KEY,
                "ORG\x1b[31m/org-audit-logs-%d.json.gz" % KEY_MS,
                "ORG" + CSI + "/org-audit-logs-%d.json.gz" % KEY_MS):
        put(root, key.encode(), body())
    put(root, ODD_ORG + b"/org-audit-logs-%d.json.gz" % (KEY_MS - 1000),
        body())
    return root


def cli():
    path = os.environ.get("WIVAUDIT_CLI") or os.path.join(
        os.path.dirname(daemon_bin()), "wivaudit")
    if not os.access(path, os.X_OK):
        pytest.fail("wivaudit CLI not found at %s" % path)
    return path


def assert_name_clean(path):
    """File names are bytes (ODD_ORG keeps its 0xff): only controls are
    encoded."""
    for raw in (b"\x1b", b"\x07", b"\n", b"\xc2\x9b"):
        assert raw not in path, "file name %r holds %r" % (path, raw)


def assert_clean(what, out):
    """No raw control, C1 or invalid byte, and no line that a key forged."""
    for raw in RAW:
        assert raw not in out, "%s holds %r:\n%r" % (what, raw, out[-3000:])
    lines = out.split(b"\n")
    assert not [ln for ln in lines if ln.startswith(b"FAKE:")], \
        "%s has a forged line:\n%r" % (what, out[-3000:])


def daemon_log(m):
    with open(m.stderr_path, "rb") as f:
        return f.read()


def test_hostile_keys_and_fields_in_log(mirror, mounter):
    """Every hostile key is logged once, escaped; event names percent-encode
    ESC, BEL and C1; the log holds no raw byte and no forged line."""
    m = mounter.mount(os.fsdecode(mirror))
    tree = walk(m.path)
    mounter.unmount(m)
    names = {os.path.basename(p) for p in tree}
    assert b"%1B]0;pwned%07.json" in names, sorted(names)
    assert b"a%C2%9Bb.json" in names, sorted(names)
    assert b"plain.json" in names, sorted(names)
    assert ODD_ORG in names, sorted(names)
    for p in tree:
        assert_name_clean(p)

    log = daemon_log(m)
    assert_clean("the daemon's log", log)
    assert b"ORG/bad\\nFAKE: error: x.json.gz" in log, log
    assert b"ORG/\\x1b[31mred\\x1b]0;title\\x07.json.gz" in log, log
    assert b"ORG\\x1b[31m/" in log, log
    assert b"ORG\\u009b/" in log, log


def test_doctor_escapes(mirror, tmp_path):
    """doctor quotes an ignored key and the first event's event_type of the
    newest object: both escaped."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and k != "WIVAUDIT_CONFIG"}
    env["HOME"] = str(tmp_path)
    p = run([cli(), "doctor", os.fsdecode(mirror)], check=False, env=env)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out.decode(errors="replace")
    assert_clean("doctor's output", out)
    assert b"the first a X\\x1b]0;pwned\\x07" in p.stdout, p.stdout
    assert b"other keys:" in p.stdout, p.stdout
    assert b"(e.g. ORG" in p.stdout, p.stdout


def test_cache_stats_and_verify_escape(mirror, mounter, tmp_path):
    """A cache directory whose path holds ESC, and damaged entries of the
    object under ODD_ORG: stats and verify print both escaped."""
    cache = str(tmp_path / "cache\x1b[31m")
    m = mounter.mount(os.fsdecode(mirror), cache_dir=cache)
    walk(m.path)
    mounter.unmount(m)

    p = run([cli(), "cache", "stats", "--cache-dir", cache], check=False)
    assert p.returncode == 0, p.stderr
    assert_clean("cache stats", p.stdout + p.stderr)
    assert b"cache\\x1b[31m" in p.stdout, p.stdout

    # Damage every entry's header: verify names each with its key.
    objects = os.path.join(cache, "objects")
    entries = [os.path.join(d, f) for d, _, fs in os.walk(objects)
               for f in fs]
    assert entries, "no cache entry under %s" % objects
    for e in entries:
        with open(e, "r+b") as f:
            f.seek(16)
            c = f.read(1)
            f.seek(16)
            f.write(bytes([c[0] ^ 0x10]))
    p = run([cli(), "cache", "verify", "--cache-dir", cache], check=False)
    assert p.returncode == 1, p.stdout + p.stderr
    assert_clean("cache verify", p.stdout + p.stderr)
    assert b"(key odd\\\\x1b\\xff/org-audit-logs-" in p.stdout, p.stdout
    assert b"cache\\x1b[31m" not in p.stdout  # paths are relative


def test_event_fields_through_s3(s3, mounter, tmp_path):
    """The same events from S3, and an org named with a C1 control: the C1
    org is ignored and logged escaped, names are encoded, nothing raw."""
    s3.make_bucket(BUCKET)
    obj = tmp_path / "obj.json.gz"
    obj.write_bytes(body())
    for key in ("ORG/org-audit-logs-%d.json.gz" % KEY_MS,
                "ORG" + CSI + "/org-audit-logs-%d.json.gz" % KEY_MS):
        s3.aws("s3", "cp", str(obj), "s3://%s/%s" % (BUCKET, key))
    m = mounter.mount("s3://" + BUCKET)
    tree = walk(m.path)
    mounter.unmount(m)
    names = {os.path.basename(p) for p in tree}
    assert b"%1B]0;pwned%07.json" in names, sorted(names)
    assert b"a%C2%9Bb.json" in names, sorted(names)
    for p in tree:
        assert_name_clean(p)
    log = daemon_log(m)
    assert_clean("the daemon's log", log)
    assert b"ORG\\u009b/" in log, log

    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and k != "WIVAUDIT_CONFIG"}
    env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET,
               AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
               AWS_CONFIG_FILE=s3.aws_config,
               AWS_SHARED_CREDENTIALS_FILE=s3.aws_creds, HOME=str(tmp_path))
    p = run([cli(), "doctor", "s3://" + BUCKET, "-o",
             "endpoint=" + s3.endpoint], check=False, env=env)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out.decode(errors="replace")
    assert_clean("doctor's output", out)
    assert b"the first a X\\x1b]0;pwned\\x07" in p.stdout, p.stdout
