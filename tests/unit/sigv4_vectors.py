#!/usr/bin/python3
"""Prints SigV4 cases signed by botocore (the AWS SDK for Python), as JSON, for
test_sigv4 to recompute in C. Each case has awkward keys and query values, so
encoding and sorting are checked against AWS's own signer, not against our
reading of the documentation. Exits 77 when botocore is not installed."""

import datetime
import json
import sys
import types

try:
    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    from botocore.utils import percent_encode
except ImportError:
    sys.exit(77)

NOW = datetime.datetime(2026, 1, 28, 9, 5, 7)


class FixedClock(datetime.datetime):
    @classmethod
    def utcnow(cls):
        return NOW


# botocore reads the clock through its module's `datetime` name.
botocore.auth.datetime = types.SimpleNamespace(datetime=FixedClock)

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEP//////////wEaCXVzLWVhc3QtMSJH+token/with=padding=="

CASES = [
    {
        "name": "path-style object on a local endpoint",
        "host": "127.0.0.1:9000",
        "region": "us-east-1",
        "path": "/audit-bucket/3f7539ad/org-audit-logs-1769590000000.json.gz",
        "params": [],
        "token": None,
    },
    {
        "name": "virtual-hosted object with awkward key bytes",
        "host": "my-audit.s3.eu-west-1.amazonaws.com",
        "region": "eu-west-1",
        "path": "/org id/a b+c~d/\u00fc\u20ac\U0001F600/x=y&z%41!'()*:@,;$.json",
        "params": [],
        "token": None,
    },
    {
        "name": "list page with continuation token and session token",
        "host": "my-audit.s3.us-west-2.amazonaws.com",
        "region": "us-west-2",
        "path": "/",
        "params": [
            ["list-type", "2"],
            ["prefix", "logs/3f75 a+b/"],
            ["delimiter", "/"],
            ["continuation-token", "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4+vbOwM="],
            ["start-after", "logs/k~\u00fc"],
        ],
        "token": TOKEN,
    },
    {
        "name": "list with empty prefix, path-style",
        "host": "localhost:4568",
        "region": "us-east-1",
        "path": "/bucket/",
        "params": [["list-type", "2"], ["prefix", ""], ["delimiter", "/"]],
        "token": None,
    },
    {
        "name": "object with session token on a region with a hyphenated name",
        "host": "bucket.s3.ap-southeast-2.amazonaws.com",
        "region": "ap-southeast-2",
        "path": "/a/%2F/~tilde/plus+space .json",
        "params": [],
        "token": TOKEN,
    },
]


def sign(case):
    creds = Credentials("AKIDEXAMPLE", SECRET, case["token"])
    # The wire path as botocore's serializer quotes an S3 key.
    url = "http://%s%s" % (case["host"], percent_encode(case["path"], safe="/~"))
    request = AWSRequest(
        method="GET", url=url, params=[tuple(p) for p in case["params"]]
    )
    botocore.auth.S3SigV4Auth(creds, "s3", case["region"]).add_auth(request)
    auth = request.headers["Authorization"]
    signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
    headers = []
    for name in signed:
        value = case["host"] if name == "host" else request.headers[name]
        headers.append([name, value])
    out = dict(case)
    out.update(
        method="GET",
        access_key="AKIDEXAMPLE",
        secret=SECRET,
        amz_date=request.context["timestamp"],
        headers=headers,
        payload_hash=request.headers["X-Amz-Content-SHA256"],
        authorization=auth,
    )
    return out


json.dump([sign(c) for c in CASES], sys.stdout, ensure_ascii=False, indent=1)
print()
