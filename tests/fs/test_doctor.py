"""wivaudit doctor against the test S3 (which checks every signature) and a
local mirror: one line per check, plain answers, exit 1 at the first
failing check, and never a secret in what it prints."""

import gzip
import json
import os
import re

import pytest

from conftest import ACCESS_KEY, SECRET, generate, run

GOOD, EMPTY, CORRUPT = "doc-good", "doc-empty", "doc-corrupt"


def cli():
    path = os.environ.get("WIVAUDIT_CLI") or os.path.join(
        os.environ.get("WIVAUDIT_SRC", "."), "build", "src", "wivaudit")
    if not os.access(path, os.X_OK):
        pytest.skip("no wivaudit binary at %s" % path)
    return path


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    d = tmp_path_factory.mktemp("doctor") / "mirror"
    generate(d, "--orgs", "2", "--days", "3", "--objects-per-day", "1",
             "--events-per-object", "3", "--seed", "5")
    return d


@pytest.fixture(scope="module")
def buckets(s3, mirror, tmp_path_factory):
    for b in (GOOD, EMPTY, CORRUPT):
        s3.make_bucket(b)
    s3.sync(mirror, "s3://%s/" % GOOD)
    s3.sync(mirror, "s3://%s/" % CORRUPT)
    # The newest object of the bucket, not a gzip: the one doctor parses.
    org = sorted(os.listdir(mirror))[0]
    bad = tmp_path_factory.mktemp("bad") / "bad.json.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00this is not deflate data")
    key = "%s/org-audit-logs-9999999999999.json.gz" % org
    s3.aws("s3", "cp", str(bad), "s3://%s/%s" % (CORRUPT, key))
    return key


def doctor(s3, *args, secret=SECRET, env_extra=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and k != "WIVAUDIT_CONFIG"}
    env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=secret,
               AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
               AWS_CONFIG_FILE=s3.aws_config,
               AWS_SHARED_CREDENTIALS_FILE=s3.aws_creds, HOME=s3.workdir)
    env.update(env_extra or {})
    p = run([cli(), "doctor"] + list(args), check=False, timeout=60,
            env=env)
    out, err = p.stdout.decode(), p.stderr.decode()
    assert secret not in out + err
    return p.returncode, out.splitlines(), err


def statuses(lines):
    return [(ln[:5].strip(), ln[6:].split(":")[0]) for ln in lines]


def test_good_bucket(s3, buckets):
    rc, lines, err = doctor(s3, "s3://" + GOOD, "-o",
                            "endpoint=" + s3.endpoint)
    assert rc == 0, "\n".join(lines) + err
    st = statuses(lines)
    assert all(s == "ok" for s, _ in st), lines
    assert [c for _, c in st if c != "latest delivery"] == [
        "source", "credentials", "bucket", "region", "list permission",
        "org prefixes", "get permission", "parse"]
    creds = lines[1]
    assert "environment" in creds and "...RVER" in creds
    assert "org prefixes: 2 (" in lines[5]
    latest = [ln for ln in lines if "latest delivery" in ln]
    assert len(latest) == 2 * 3
    assert all(re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC \(\d+ \w+ ago\)",
                         ln) for ln in latest), latest
    assert re.search(r"parse: .*-audit-logs-\d+\.json\.gz: \d+ events?",
                     lines[-1])


def test_wrong_secret_fails_at_list(s3, buckets):
    rc, lines, err = doctor(s3, "s3://" + GOOD, "-o",
                            "endpoint=" + s3.endpoint,
                            secret="not-the-secret-at-all")
    assert rc == 1
    assert lines[-1].startswith("FAIL  list permission: access denied")
    assert statuses(lines)[:3] == [("ok", "source"), ("ok", "credentials"),
                                   ("ok", "bucket")]


def test_missing_bucket(s3, buckets):
    rc, lines, _err = doctor(s3, "s3://no-such-bucket", "-o",
                             "endpoint=" + s3.endpoint)
    assert rc == 1
    assert lines[-1].startswith("FAIL  bucket: 'no-such-bucket' does not "
                                "exist")


def test_empty_bucket(s3, buckets):
    rc, lines, _err = doctor(s3, "s3://" + EMPTY, "-o",
                             "endpoint=" + s3.endpoint)
    assert rc == 1
    assert lines[-1].startswith("FAIL  org prefixes: no org prefixes found")


def test_corrupt_object_is_reported(s3, buckets):
    rc, lines, _err = doctor(s3, "s3://" + CORRUPT, "-o",
                             "endpoint=" + s3.endpoint)
    assert rc == 1
    assert ("ok", "get permission") in statuses(lines)
    assert lines[-1].startswith("FAIL  parse: %s is not a readable audit "
                                "object" % buckets)


def test_wrong_region_is_a_warning(s3, buckets):
    rc, lines, _err = doctor(s3, "s3://" + GOOD, "-o",
                             "endpoint=%s,region=eu-west-1" % s3.endpoint)
    assert rc == 0, lines
    region = [ln for ln in lines if ln[6:].startswith("region")]
    assert region and region[0].startswith(
        "warn  region: the bucket is in us-east-1, not eu-west-1")


def test_bucket_from_configuration_file(s3, buckets, tmp_path):
    """What `wivaudit setup` writes is what doctor (and the mount) read."""
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"bucket_name": GOOD, "region": "us-east-1",
                               "external_id": "x"}))
    rc, lines, _err = doctor(s3, "-o", "endpoint=" + s3.endpoint,
                             env_extra={"WIVAUDIT_CONFIG": str(cfg)})
    assert rc == 0, lines
    assert lines[0] == "ok    source: s3://%s/ (from %s)" % (GOOD, cfg)


def test_local_mirror(s3, mirror, tmp_path):
    rc, lines, _err = doctor(s3, str(mirror))
    assert rc == 0, lines
    assert [c for _, c in statuses(lines) if c != "latest delivery"] == [
        "source", "org prefixes", "parse"]
    # A mirror with a key that is not a delivery: a warning, still 0.
    other = tmp_path / "mirror2"
    run(["cp", "-a", str(mirror), str(other)])
    org = sorted(os.listdir(other))[0]
    with gzip.open(other / org / "notes.json.gz", "wb") as f:
        f.write(b"[]")
    rc, lines, _err = doctor(s3, str(other))
    assert rc == 0, lines
    assert any(ln.startswith("warn  other keys: 1 key that is not") and
               "notes.json.gz" in ln for ln in lines), lines


def test_usage(s3):
    rc, _lines, err = doctor(s3, "a", "b")
    assert rc == 2 and "one SOURCE at most" in err
    rc, lines, _err = doctor(s3, "--help")
    assert rc == 0 and lines[0].startswith("usage: wivaudit doctor")
