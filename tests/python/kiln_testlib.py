"""Shared helpers of kiln's Python end-to-end tests: a pass/fail tally that
prints the closing 'N passed, N failed' line, and test-data discovery."""
import glob
import os
import sys


class Tally:
    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0
        self.max_shown = 40
        self.shown = 0

    def ok(self, cond, what, detail=""):
        """Counts one check; prints a FAIL line when it does not hold."""
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            if self.shown < self.max_shown:
                print(f"FAIL {what}" + (f": {detail}" if detail else ""), flush=True)
                self.shown += 1
            elif self.shown == self.max_shown:
                print("(further failures not shown)", flush=True)
                self.shown += 1
        return cond

    def fail(self, what, detail=""):
        return self.ok(False, what, detail)

    def finish(self):
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        sys.exit(1 if self.failed or not self.passed else 0)


SUITES = ("node", "simple", "pytorch-converted", "pytorch-operator")


def test_dirs(data):
    """Every test folder (holding model.onnx) of the four suites, sorted."""
    out = []
    for s in SUITES:
        out += sorted(os.path.dirname(p) for p in glob.glob(os.path.join(data, s, "*", "model.onnx")))
    return out
