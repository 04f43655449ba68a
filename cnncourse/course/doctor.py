"""``python -m cnncourse doctor``: is this machine ready to run the course?

The first thing to run on a new machine, and the first thing to paste into a bug report: it
names the versions, the device Keras computes on, the active profile, and for every dataset
whether its files are present, verified against the manifest, and where they were found, or
what to do to get them. Missing optional datasets are normal (offline machines have only
Fashion-MNIST), so they do not make the exit status non-zero, and neither does a dataset file
that is corrupt or that this user may not read (it is reported, with the fix); a broken
environment (Keras, the backend, the profile, the dataset manifest) does. The report never
stops half-way on a traceback: whatever cannot be checked is one line saying why.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


def _dataset_lines(name: str, quick: bool) -> tuple[list[str], bool]:
    """Report lines for one dataset, and whether it is usable as found."""
    from cnncourse import data

    title = data.info(name).title
    if quick:
        found = data.where(name)
        missing = [f for f, p in found.items() if p is None]
        if missing:
            return [f"  {title:<14} missing ({len(missing)} of {len(found)} files)", *_fix(name)], False
        folders = sorted({str(p.parent) for p in found.values() if p is not None})
        return [f"  {title:<14} present (not hashed: --quick) in {', '.join(folders)}"], True
    checks = data.verify(name)
    missing = [c for c in checks if c.status == "missing"]
    bad = [c for c in checks if c.status not in ("missing", "verified")]
    if bad:
        unreadable = sum(c.status == "unreadable" for c in bad)
        what = (f"{len(bad)} file(s) failed verification" if not unreadable else
                f"{len(bad)} file(s) cannot be read ({unreadable}) or failed verification ({len(bad) - unreadable})")
        lines = [f"  {title:<14} PROBLEM: {what} and will not be loaded"]
        lines += [f"    {c.detail}".replace("\n", "\n    ") for c in bad]
        return lines, False
    if missing:
        what = "missing" if len(missing) == len(checks) else f"incomplete ({len(missing)} of {len(checks)} files missing)"
        return [f"  {title:<14} {what}", *_fix(name)], False
    folders = sorted({str(c.path.parent) for c in checks if c.path is not None})
    lines = [f"  {title:<14} present, {len(checks)} files verified, in {', '.join(folders)}"]
    skipped = [(p, s) for c in checks for p, s, _ in c.skipped if s != "unverifiable"]
    lines += [f"    note: {p} is skipped ({s}): a later copy verified; move it away or fix it" for p, s in skipped]
    return lines, True


def _fix(name: str) -> list[str]:
    from cnncourse.data import lookup

    return ["    to get it:", *(f"  {line}" for line in lookup.fix_text(name).splitlines())]


def _data_dirs_line() -> str:
    from cnncourse.data import lookup, registry

    dirs = lookup.data_env_dirs()
    if not dirs:
        return f"{registry.DATA_ENV_VAR}: (not set)"
    return f"{registry.DATA_ENV_VAR}: {os.pathsep.join(f'{d}{lookup.dir_note(d)}' for d in dirs)}"


def cli(argv: Sequence[str] | None = None) -> int:
    """Print the environment report; exit 0 unless Keras, the backend, the profile or the manifest is broken."""
    parser = argparse.ArgumentParser(prog="python -m cnncourse doctor", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="check dataset files are present without hashing them")
    args = parser.parse_args(list(argv) if argv is not None else None)

    import cnncourse

    try:
        import keras

        line = cnncourse.environment_line()
        active = cnncourse.profile()
        device = cnncourse.device_description()
    except Exception as exc:  # noqa: BLE001 - any failure here means the environment is broken
        print(f"environment: BROKEN: {type(exc).__name__}: {exc}", file=sys.stderr)
        print("fix: `make setup` (or `pip install -e .[test]`) in a fresh virtual environment; "
              "check $KERAS_BACKEND and $CNNCOURSE_PROFILE", file=sys.stderr)
        return 1
    print(line)
    print(f"Keras backend: {keras.backend.backend()} (set KERAS_BACKEND to change)")
    print(f"device:        {device}")
    print(f"profile:       {active.name} — {active.description} (set CNNCOURSE_PROFILE to change)")

    from cnncourse.data import errors, lookup, registry

    print(_data_dirs_line())
    try:
        print(f"dataset cache:  {lookup.cache_dir()}")
        print(f"searched, in order: {', '.join(str(d) for d in lookup.search_dirs())}")
        names = [n for n in registry.NAMES if n in registry.manifest()["datasets"]]
    except errors.ManifestError as exc:
        print(f"datasets: BROKEN: {exc}", file=sys.stderr)
        return 1
    except (OSError, RuntimeError, KeyError) as exc:  # e.g. no home directory to put a cache in
        print(f"datasets: cannot locate the dataset cache: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print("datasets:")
    usable = []
    for name in names:
        try:
            lines, ok = _dataset_lines(name, args.quick)
        except Exception as exc:  # noqa: BLE001 - one dataset must not stop the report on the others
            lines, ok = [f"  {name:<14} could not be checked: {type(exc).__name__}: {exc}"], False
        print("\n".join(lines))
        if ok:
            usable.append(name)
    if usable:
        print(f"ready: the course runs on {', '.join(usable)}")
    else:
        print("no dataset is available yet: the notebooks need at least Fashion-MNIST (see the fixes above)")
    return 0
