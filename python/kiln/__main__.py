"""python -m kiln: the kiln command line (info, run, freeze, check, bench, show).

Runs the kiln executable the package ships (kiln/_bin/kiln, built from the
same sources as the extension)."""
from __future__ import annotations

import os
import sys
from typing import List, Optional


def executable() -> str:
    """Path of the kiln CLI shipped with the package."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bin", "kiln")


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    exe = executable()
    if not os.access(exe, os.X_OK):
        sys.stderr.write(f"kiln: the command-line tool is missing from the package ({exe}); reinstall kiln\n")
        return 1
    sys.stdout.flush()
    sys.stderr.flush()
    if argv is None:
        os.execv(exe, ["kiln"] + args)  # does not return
    import subprocess

    return subprocess.call([exe] + args)


if __name__ == "__main__":
    sys.exit(main())
