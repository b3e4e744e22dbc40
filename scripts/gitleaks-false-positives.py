#!/usr/bin/env python3
"""Extract the false positives of gitleaks' rule tests, to measure what redaction over-redacts.

    git -C GITLEAKS show HEAD:cmd/generate/config/rules/...  (or a checkout's directory)
    python3 scripts/gitleaks-false-positives.py GITLEAKS/cmd/generate/config/rules /tmp/fps.json
    PGT_REDACTION_FPS=/tmp/fps.json cargo test --lib --no-default-features \\
        --features "pg15 pg_test" -- --ignored corpus_dev --nocapture

Each rule file of gitleaks (MIT) lists, in `fps := []string{...}`, strings its rule must not
match.  The literal ones (not built by a function) are written to the output, outside this
repository: they are gitleaks' test data, not ours, and stay out of the tree.  Many are
placeholders under a secret's name (`API_KEY=xxxx…`), which redaction rightly cuts; the harness
prints each string that was changed and by which rule, to be read rather than scored.
"""
import glob
import json
import os
import re
import sys


def literals(body):
    lines = [l for l in body.split("\n") if not l.strip().startswith("//")]
    body = "\n".join(lines)
    for it in re.finditer(r'(`[^`]*`|"(?:[^"\\\n]|\\.)*")\s*(,|\+)?', body):
        if it.group(2) == "+" or body[: it.start()].rstrip().endswith("+"):
            continue  # part of a concatenation with a generated secret
        lit = it.group(1)
        if lit[0] == "`":
            yield lit[1:-1]
        else:
            try:
                yield json.loads(lit)
            except ValueError:
                continue


def main():
    src, out = sys.argv[1], sys.argv[2]
    found = []
    for f in sorted(glob.glob(os.path.join(src, "*.go"))):
        text = open(f).read()
        for m in re.finditer(r"fps\s*:?=\s*\[\]string\{(.*?)\n\t\}", text, re.S):
            for s in literals(m.group(1)):
                if len(s.strip()) >= 4:
                    found.append({"rule": os.path.basename(f)[:-3], "text": s})
    with open(out, "w") as f:
        json.dump(found, f, indent=0)
    print(f"{len(found)} strings -> {out}")


if __name__ == "__main__":
    main()
