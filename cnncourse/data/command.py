"""``python -m cnncourse data fetch|verify|where [NAMES...]``: the dataset cache from the shell.

Every file gets one line on standard output (dataset, file, status, path); explanations and
fixes go to standard error. The exit status is 0 when every file asked about is usable, 1 when
one is not, 2 for a usage error or a broken manifest. Nothing here imports Keras.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence

from cnncourse.data import checksums, download, lookup, registry
from cnncourse.data.errors import ChecksumError, DownloadError, ManifestError, UnreadableFileError


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cnncourse data",
        description="Find, verify and download the course's datasets.",
        epilog="fetch verifies every copy it finds and downloads what is missing or fails, into the course's "
        "cache; it replaces only files the course downloaded itself, never a file of yours.",
    )
    parser.add_argument("action", choices=("fetch", "verify", "where"),
                        help="fetch: download what is missing or fails; verify: hash every file; where: list the copies")
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"datasets (default: all of {', '.join(registry.NAMES)})")
    parser.add_argument("--force", action="store_true",
                        help="fetch only: download again even what verifies (the course's own copies are replaced)")
    parser.add_argument("--deadline", type=_seconds, default=None, metavar="SECONDS",
                        help=f"fetch only: give up on a file after this long (default {download.DOWNLOAD_DEADLINE_S} s)")
    parser.add_argument("--quiet", action="store_true", help="fetch only: no progress lines")
    return parser


def _line(name: str, file: str, status: str, where: object) -> str:
    return f"{name:<14} {file:<24} {status:<12} {where}"


def _where(name: str) -> bool:
    ok = True
    for filename in registry.dataset(name)["files"]:
        found = lookup.candidates(name, filename)
        print(_line(name, filename, "found" if found else "MISSING", found[0] if found else "-"))
        for other in found[1:]:
            print(f"{'':<14} {'':<24} {'also':<12} {other}")
        ok &= bool(found)
    return ok


def _verify(name: str) -> bool:
    checks = checksums.verify(name)
    for c in checks:
        line = _line(name, c.file, c.status, c.path if c.path is not None else "-")
        print(line + (f"  sha256 {c.sha256}" if c.sha256 else ""))
        if not c.ok and c.status != "missing":
            print(f"    {c.detail}".replace("\n", "\n    "), file=sys.stderr)
        for path, status, _ in c.skipped:
            if status != "unverifiable":
                print(f"    skipped {path}: {status} (a later copy verified; this one was left alone)", file=sys.stderr)
    missing = [c.file for c in checks if c.status == "missing"]
    if missing:
        print(f"{name}: {len(missing)} of {len(checks)} file(s) missing; to get them:\n{lookup.fix_text(name)}",
              file=sys.stderr)
    return all(c.ok for c in checks)


def _fetch(name: str, args: argparse.Namespace) -> bool:
    deadline = args.deadline or download.DOWNLOAD_DEADLINE_S
    try:
        results = download.fetch_files(name, force=args.force, deadline_s=deadline, progress=not args.quiet)
    except DownloadError as exc:
        missing = [f for f, p in lookup.where(name).items() if p is None]
        print(lookup.not_found(name, missing, exc) if missing else f"{name}: fetch failed: {exc}", file=sys.stderr)
        return False
    except (ChecksumError, UnreadableFileError) as exc:
        print(f"{name}: fetch failed: {exc}", file=sys.stderr)
        return False
    for r in results:
        print(_line(name, r.file, r.action, r.path))
        if r.detail:
            print(f"    {r.detail}", file=sys.stderr)
    return all(r.ok for r in results)


def cli(argv: Sequence[str] | None = None) -> int:
    """``python -m cnncourse data fetch|verify|where [NAMES...]``; non-zero exit on failure."""
    parser = _parser()
    args = parser.parse_intermixed_args(list(argv) if argv is not None else None)  # options anywhere
    if args.action != "fetch" and (args.force or args.deadline is not None or args.quiet):
        parser.error("--force, --deadline and --quiet apply to fetch only")
    try:
        known = tuple(registry.manifest()["datasets"])
    except ManifestError as exc:
        print(exc, file=sys.stderr)
        return 2
    bad = [n for n in args.names if n not in known]
    if bad:
        print(f"unknown dataset(s) {', '.join(bad)}; valid names: {', '.join(known)}", file=sys.stderr)
        return 2
    names = list(dict.fromkeys(args.names)) or list(known)
    ok = True
    for name in names:
        if args.action == "where":
            ok &= _where(name)
        elif args.action == "verify":
            ok &= _verify(name)
        else:
            ok &= _fetch(name, args)
    return 0 if ok else 1
