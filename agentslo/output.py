"""Writing generated files, or checking that the files on disk match (`--check`)."""

from __future__ import annotations

import difflib
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO


def write_or_check(
    files: Mapping[str, str], outdir: str | Path, check: bool, out: TextIO | None = None
) -> int:
    """Write `files` (relative path → content) under `outdir`; with `check`, write nothing and
    return 1 when any file is missing or differs (printing a short diff), else 0."""
    out = out or sys.stdout  # looked up per call, so redirected stdout (tests, callers) is honoured
    root = Path(outdir)
    drift = 0
    for rel, content in sorted(files.items()):
        path = root / rel
        if check:
            current = path.read_text(encoding="utf-8") if path.exists() else None
            if current != content:
                drift += 1
                if current is None:
                    print(f"missing: {path}", file=out)
                else:
                    diff = difflib.unified_diff(
                        current.splitlines(),
                        content.splitlines(),
                        f"{path} (on disk)",
                        f"{path} (generated)",
                        lineterm="",
                        n=1,
                    )
                    print("\n".join(list(diff)[:40]), file=out)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            path.write_text(content, encoding="utf-8")
    if check:
        if drift:
            print(f"{drift} generated file(s) differ from the spec; regenerate them", file=out)
            return 1
        print(f"{len(files)} generated file(s) match the spec", file=out)
    return 0
