#!/usr/bin/env python3
"""Generate the redaction corpora of tests/redaction/ (run by hand; the files are committed).

    python3 -m venv /tmp/rv && /tmp/rv/bin/pip install rstr faker
    /tmp/rv/bin/python scripts/redaction-corpus.py [--gitleaks PATH/TO/gitleaks/config/gitleaks.toml]

Writes (seeded, but not byte-for-byte reproducible: rstr's choices also depend on Python's
hash order, so a rerun gives other samples of the same rules):

* tests/redaction/rules.json: for every provider rule of src/request_log/rules.rs, samples
  generated from its own expression (rstr), and near misses (the same sample with its secret cut
  to three characters, which no rule should take for a secret).  The test puts each sample in
  free text, under a neutral key, in a URL and in JSON inside a string.
* tests/redaction/gitleaks.json (with --gitleaks): samples generated from the expressions of a
  public scanner's rule set (gitleaks' config/gitleaks.toml, MIT), which we did not write: the
  held-out measurement of recall.  Only the generated samples are kept, with the rule id and the
  part gitleaks calls the secret; no gitleaks code.
* tests/redaction/ordinary.json: ordinary values (Faker's providers, and the formats of trace
  ids, ETags, commit SHAs, object ids, short base64 blobs), which must be kept intact.
"""
import argparse
import base64
import json
import os
import random
import re
import sys
import tomllib

import rstr
from faker import Faker

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "redaction")
SEED = 20261130
PER_RULE = 4


def rust_to_python(pattern):
    """Our expressions in Python's dialect (close: named groups, scoped flags)."""
    p = pattern.replace(r"\z", r"\Z").replace(r"\x22", '"')
    return p


def our_rules():
    """(id, pattern) of every rule in src/request_log/rules.rs."""
    text = open(os.path.join(ROOT, "src", "request_log", "rules.rs")).read()
    rules = []
    for m in re.finditer(r'rule!\(\s*"([^"]+)",\s*"[^"]+",\s*\[[^\]]*\],\s*(?:back \d+,\s*)?r(#*)"(.*?)"\2\)', text, re.S):
        rules.append((m.group(1), m.group(3)))
    return rules


def secret_of(rx, sample, group=None):
    m = rx.search(sample)
    if not m:
        return None
    if group is not None:
        return m.group(group)
    gd = m.groupdict()
    for name in ("s", "l"):
        if gd.get(name):
            return gd[name]
    return m.group(0)


def gen_ours(gen):
    out = []
    for rid, pat in our_rules():
        pp = rust_to_python(pat)
        try:
            rx = re.compile(pp)
        except re.error as e:
            print(f"skip {rid}: {e}", file=sys.stderr)
            continue
        samples, misses = [], []
        tries = 0
        while len(samples) < PER_RULE and tries < 50:
            tries += 1
            try:
                s = gen.xeger(pp)
            except Exception as e:  # noqa: BLE001
                print(f"skip {rid}: {e}", file=sys.stderr)
                break
            secret = secret_of(rx, s)
            if not secret or len(secret) < 6 or "\n" in s and len(s) > 4000:
                continue
            samples.append({"sample": s, "secret": secret})
            cut = s.replace(secret, secret[:3], 1)
            if not rx.search(cut):
                misses.append(cut)
        out.append({"rule": rid, "positives": samples, "near_misses": misses})
    return out


def gen_gitleaks(gen, path):
    data = tomllib.load(open(path, "rb"))
    out = []
    for r in data["rules"]:
        pat = r.get("regex")
        if not pat:
            continue
        pp = pat.replace(r"\z", r"\Z")
        # Go's (?i) in the middle of an expression applies to the rest: Python wants it first.
        pp = re.sub(r"\(\?i\)", "", pp)
        flags = re.I if "(?i)" in pat else 0
        try:
            rx = re.compile(pp, flags)
        except re.error as e:
            print(f"gitleaks skip {r['id']}: {e}", file=sys.stderr)
            continue
        group = r.get("secretGroup")
        samples = []
        tries = 0
        while len(samples) < PER_RULE and tries < 60:
            tries += 1
            try:
                s = gen.xeger(pp)
            except Exception as e:  # noqa: BLE001
                print(f"gitleaks skip {r['id']}: {e}", file=sys.stderr)
                break
            m = rx.search(s)
            if not m:
                continue
            if group is not None:
                secret = m.group(group)
            elif m.re.groups >= 1 and m.group(1):
                secret = m.group(1)
            else:
                secret = m.group(0)
            if not secret or len(secret) < 6 or len(s) > 4000:
                continue
            samples.append({"sample": s, "secret": secret})
        if samples:
            out.append({"rule": r["id"], "positives": samples})
    return out


def gen_ordinary(rnd):
    fake = Faker()
    Faker.seed(SEED)
    b62 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

    def base62(n):
        return "".join(rnd.choice(b62) for _ in range(n))

    def hexs(n):
        return "".join(rnd.choice("0123456789abcdef") for _ in range(n))

    makers = {
        "uuid": lambda: str(fake.uuid4()),
        "sha1": fake.sha1,
        "sha256": fake.sha256,
        "md5": fake.md5,
        "iso8601": lambda: fake.date_time().isoformat() + "Z",
        "date": lambda: str(fake.date()),
        "email": fake.email,
        "url": fake.url,
        "uri": fake.uri,
        "ipv4": fake.ipv4,
        "ipv6": fake.ipv6,
        "mac": fake.mac_address,
        "user_name": fake.user_name,
        "slug": fake.slug,
        "file_path": fake.file_path,
        "mime_type": fake.mime_type,
        "user_agent": fake.user_agent,
        "company": fake.company,
        "sentence": fake.sentence,
        "amount": lambda: fake.pricetag(),
        "integer": lambda: str(fake.random_int(0, 10**9)),
        "iban": fake.iban,
        "phone": fake.phone_number,
        "isbn13": fake.isbn13,
        "ean13": fake.ean13,
        "color": fake.hex_color,
        "semver": lambda: f"{rnd.randint(0, 20)}.{rnd.randint(0, 40)}.{rnd.randint(0, 99)}",
        "traceparent": lambda: f"00-{hexs(32)}-{hexs(16)}-01",
        "etag": lambda: f'W/"{fake.md5()}"',
        "commit_sha": fake.sha1,
        "stripe_object_id": lambda: rnd.choice(["cus_", "pi_", "ch_", "evt_", "sub_", "in_", "price_", "prod_", "seti_"]) + base62(14 + rnd.randint(0, 10)),
        "request_id": lambda: "req_" + base62(14),
        "base64_blob": lambda: base64.b64encode(rnd.randbytes(rnd.randint(4, 18))).decode(),
        "unix_time": lambda: str(rnd.randint(1_500_000_000, 1_900_000_000)),
        "duration": lambda: f"{rnd.randint(1, 999)}ms",
        "http_status_line": lambda: f"HTTP/1.1 {rnd.choice([200, 201, 204, 301, 400, 404, 429, 500, 503])}",
        "iso_duration": lambda: f"PT{rnd.randint(1, 59)}M",
        "zip": fake.postcode,
        "address": lambda: fake.address().replace("\n", ", "),
        "ulid": lambda: "".join(rnd.choice("0123456789ABCDEFGHJKMNPQRSTVWXYZ") for _ in range(26)),
    }
    out = []
    for kind, make in makers.items():
        for _ in range(25):
            out.append({"kind": kind, "value": make()})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gitleaks", help="path of gitleaks' config/gitleaks.toml")
    args = ap.parse_args()
    rnd = random.Random(SEED)
    gen = rstr.Rstr(rnd)
    os.makedirs(OUT, exist_ok=True)

    def dump(name, value):
        with open(os.path.join(OUT, name), "w") as f:
            json.dump(value, f, indent=0, ensure_ascii=False)
            f.write("\n")

    dump("rules.json", gen_ours(gen))
    if args.gitleaks:
        dump("gitleaks.json", gen_gitleaks(gen, args.gitleaks))
    dump("ordinary.json", gen_ordinary(rnd))


if __name__ == "__main__":
    main()
