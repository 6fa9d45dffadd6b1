#!/usr/bin/env python3
"""Prints which tests of a ctest run failed, each with the last lines of its output.

run-all.sh prints this at the very end of a run, so that a CI log whose middle is cut still
shows what failed and why. Usage: failure_digest.py BUILD_DIR [LINES_PER_TEST] [MAX_BYTES]
"""
import os
import re
import sys


def main():
    build = sys.argv[1]
    per_test = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    budget = int(sys.argv[3]) if len(sys.argv) > 3 else 6000
    tmp = os.path.join(build, "Testing", "Temporary")
    try:
        with open(os.path.join(tmp, "LastTestsFailed.log"), errors="replace") as f:
            failed = [line.strip().split(":", 1)[1] for line in f if ":" in line]
    except OSError:
        return
    if not failed:
        return
    outputs = {}
    try:
        with open(os.path.join(tmp, "LastTest.log"), errors="replace") as f:
            log = f.read()
        # Each test's block: '"NAME" start time: ...' then 'Output:' ... '<end of output>'.
        for m in re.finditer(r'^"([^\n]*)" start time:[^\n]*\nOutput:\n-+\n(.*?)<end of output>', log,
                             re.S | re.M):
            outputs[m.group(1)] = m.group(2)
    except OSError:
        pass
    out = [f"== {len(failed)} failed test(s) in {build}:"]
    out += [f"   {name}" for name in failed]
    for name in failed:
        lines = outputs.get(name, "(no output recorded)").rstrip().splitlines()
        # Catch2's first failure (what was expected, and its message), then the output's end.
        first = next((i for i, line in enumerate(lines)
                      if "FAILED:" in line or "due to unexpected exception" in line), None)
        if first is not None:
            head = lines[first:first + per_test // 2]
            out.append(f"== first failure of: {name}")
            out += ["   " + line[:300] for line in head]
            lines = lines[first + len(head):]
        tail = lines[-(per_test // 2):] if first is not None else lines[-per_test:]
        if tail:
            out.append(f"== last {len(tail)} lines of: {name}")
            out += ["   " + line[:300] for line in tail]
    text = "\n".join(out)
    if len(text) > budget:
        text = text[:budget] + "\n   ... (digest cut at %d bytes)" % budget
    print(text)


if __name__ == "__main__":
    main()
