"""wivaudit setup: the policy files and the configuration for Wiv, the
printed aws commands, and --apply through a fake `aws` on PATH that records
its arguments (nothing here contacts AWS)."""

import json
import os
import re
import stat

import pytest

from conftest import run

PRINCIPAL = "arn:aws:iam::111122223333:role/wiv-delivery"
ACCOUNT = "123456789012"

FAKE_AWS = r"""#!/bin/sh
# Records each call, one JSON array per line; fails where told.
python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' "$@" \
    >> "$AWS_CALLS"
case "$1 $2" in
"sts get-caller-identity") echo 444455556666 ;;
"$AWS_FAIL") echo "An error occurred (EntityAlreadyExists)" >&2; exit 254 ;;
esac
exit 0
"""


def cli():
    path = os.environ.get("WIVAUDIT_CLI") or os.path.join(
        os.environ.get("WIVAUDIT_SRC", "."), "build", "src", "wivaudit")
    if not os.access(path, os.X_OK):
        pytest.skip("no wivaudit binary at %s" % path)
    return path


@pytest.fixture
def fake_aws(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    aws = bindir / "aws"
    aws.write_text(FAKE_AWS)
    aws.chmod(aws.stat().st_mode | stat.S_IXUSR)
    calls = tmp_path / "calls"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(PATH="%s:%s" % (bindir, os.environ.get("PATH", "/usr/bin")),
               AWS_CALLS=str(calls), AWS_FAIL="", AWS_REGION="eu-west-1",
               AWS_CONFIG_FILE=str(tmp_path / "none"),
               HOME=str(tmp_path))

    def calls_made():
        if not calls.exists():
            return []
        return [json.loads(ln) for ln in calls.read_text().splitlines()]
    return env, calls_made


def run_setup(env, *args):
    p = run([cli(), "setup"] + list(args), env=env, check=False, timeout=30)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def load(d, name):
    with open(os.path.join(d, name)) as f:
        return json.load(f)


def test_files_config_and_commands(fake_aws, tmp_path):
    env, calls = fake_aws
    out = tmp_path / "out"
    out.mkdir()
    rc, stdout, err = run_setup(env, "--bucket", "acme-audit", "--wiv-principal",
                            PRINCIPAL, "--account-id", ACCOUNT, "--prefix",
                            "wiv", "--out", str(out))
    assert rc == 0, err
    assert calls() == [], "without --apply nothing is run"

    cfg = load(out, "config.json")
    ext = cfg["external_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", ext)
    assert cfg == {"bucket_name": "acme-audit", "region": "eu-west-1",
                   "prefix": "wiv/",
                   "role_arn": "arn:aws:iam::%s:role/wiv-audit-log-delivery"
                   % ACCOUNT, "external_id": ext}
    # The configuration printed for Wiv support is the file's.
    start = stdout.index("{\n")
    assert json.loads(stdout[start:stdout.index("\n}\n") + 2]) == cfg

    trust = load(out, "trust-policy.json")["Statement"]
    assert trust == [{
        "Sid": "WivAssumesWithExternalId", "Effect": "Allow",
        "Principal": {"AWS": PRINCIPAL}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"sts:ExternalId": ext}}}]
    perms = load(out, "permissions-policy.json")["Statement"]
    assert {(s["Action"], s["Resource"]) for s in perms} == {
        ("s3:PutObject", "arn:aws:s3:::acme-audit/wiv/*"),
        ("s3:GetBucketLocation", "arn:aws:s3:::acme-audit")}
    reader = load(out, "reader-policy.json")["Statement"]
    assert [(s["Action"], s["Resource"]) for s in reader] == [
        ("s3:ListBucket", "arn:aws:s3:::acme-audit"),
        ("s3:GetObject", "arn:aws:s3:::acme-audit/wiv/*")]
    assert reader[0]["Condition"] == {"StringLike": {"s3:prefix": ["wiv/*"]}}

    cmds = [ln.strip() for ln in stdout.splitlines()
            if ln.startswith("  aws ")]
    assert [c.split()[1:3] for c in cmds] == [
        ["s3api", "create-bucket"], ["s3api", "put-public-access-block"],
        ["s3api", "put-bucket-encryption"], ["iam", "create-role"],
        ["iam", "put-role-policy"]]
    assert "LocationConstraint=eu-west-1" in cmds[0]
    assert "file://%s/trust-policy.json" % out in cmds[3]
    assert "mount -t wivaudit s3://acme-audit/wiv/ /mnt/audit" in stdout

    # Run again: the external id already sent to Wiv is kept.
    rc, stdout, err = run_setup(env, "--bucket", "acme-audit", "--wiv-principal",
                            PRINCIPAL, "--account-id", ACCOUNT, "--prefix",
                            "wiv", "--out", str(out))
    assert rc == 0, err
    assert "(kept from" in stdout
    assert load(out, "config.json")["external_id"] == ext


def test_kms_and_existing_bucket(fake_aws, tmp_path):
    env, _calls = fake_aws
    key = "arn:aws:kms:eu-west-1:%s:key/1234" % ACCOUNT
    rc, stdout, err = run_setup(env, "--bucket", "acme-audit", "--wiv-principal",
                            "111122223333", "--account-id", ACCOUNT,
                            "--kms-key", key, "--existing-bucket",
                            "--external-id", "given-id-1", "--out",
                            str(tmp_path))
    assert rc == 0, err
    assert "create-bucket" not in stdout and "iam create-role" in stdout
    trust = load(tmp_path, "trust-policy.json")["Statement"][0]
    assert trust["Principal"] == {"AWS": "arn:aws:iam::111122223333:root"}
    assert trust["Condition"]["StringEquals"]["sts:ExternalId"] == \
        "given-id-1"
    reader = load(tmp_path, "reader-policy.json")["Statement"]
    assert ("kms:Decrypt", key) == (reader[-1]["Action"],
                                    reader[-1]["Resource"])
    assert "Condition" not in reader[0]
    perms = load(tmp_path, "permissions-policy.json")["Statement"]
    assert perms[-1]["Action"] == ["kms:GenerateDataKey", "kms:Encrypt"]


def test_apply_runs_the_commands(fake_aws, tmp_path):
    env, calls = fake_aws
    rc, stdout, err = run_setup(env, "--bucket", "acme-audit", "--wiv-principal",
                            PRINCIPAL, "--profile", "admin", "--apply",
                            "--out", str(tmp_path))
    assert rc == 0, err
    made = calls()
    assert [c[:2] for c in made] == [
        ["sts", "get-caller-identity"], ["s3api", "create-bucket"],
        ["s3api", "put-public-access-block"],
        ["s3api", "put-bucket-encryption"], ["iam", "create-role"],
        ["iam", "put-role-policy"]]
    assert all(c[2:4] == ["--profile", "admin"] for c in made)
    create_role = made[4]
    doc = create_role[create_role.index("--assume-role-policy-document") + 1]
    assert doc == "file://%s/trust-policy.json" % tmp_path
    enc = made[3][made[3].index("--server-side-encryption-configuration")
                  + 1]
    assert json.loads(enc)["Rules"][0][
        "ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    # The account came from the aws CLI.
    assert load(tmp_path, "config.json")["role_arn"] == \
        "arn:aws:iam::444455556666:role/wiv-audit-log-delivery"


def test_apply_stops_at_the_first_failure(fake_aws, tmp_path):
    env, calls = fake_aws
    env["AWS_FAIL"] = "iam create-role"
    rc, _stdout, err = run_setup(env, "--bucket", "acme-audit", "--wiv-principal",
                             PRINCIPAL, "--account-id", ACCOUNT, "--apply",
                             "--out", str(tmp_path))
    assert rc == 1
    assert "'aws iam create-role' failed (status 254)" in err
    assert [c[1] for c in calls()][-1] == "create-role"


@pytest.mark.parametrize("args,message", [
    (["--bucket", "acme-audit"], "--wiv-principal ARN is required"),
    (["--wiv-principal", PRINCIPAL], "--bucket NAME is required"),
    (["--bucket", "acme-audit", "--wiv-principal", PRINCIPAL],
     "--account-id is required without --apply"),
    (["--bucket", "Bad_Bucket", "--wiv-principal", PRINCIPAL,
      "--account-id", ACCOUNT], "not a valid S3 bucket name"),
    (["--bucket", "acme-audit", "--wiv-principal", "wiv",
      "--account-id", ACCOUNT], "neither an ARN nor a 12-digit"),
    (["--bucket", "acme-audit", "--wiv-principal", PRINCIPAL,
      "--account-id", "12345"], "not a 12-digit AWS account id"),
])
def test_usage_errors(fake_aws, tmp_path, args, message):
    env, calls = fake_aws
    rc, _stdout, err = run_setup(env, *args, "--out", str(tmp_path))
    assert rc == 2
    assert message in err, err
    assert calls() == [] and os.listdir(tmp_path) == ["bin"]
