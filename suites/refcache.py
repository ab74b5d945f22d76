"""Reference work kept in the data cache: computed once per pinned environment, then reused and
verified.

What is kept is work that is a pure function of the pinned versions, the reference code and the
data, and never a candidate's: the partners' trajectories (``training.partner_trajectory``), the
primary references' convergence runs on the CPU (``training.train``), the optimizer checks'
recorded gradients (``oracle.recording``; its float64 oracle is rerun) and the MNIST diagnosis
hypotheses' probes (mutants of the torch reference, ``diagnosis._hypothesis_probes``). The last
two are stored under ``versioned(name, code)``, which also hashes the code they need beyond
this key (suites/oracle.py; the mutant generator).

- **Key.** sha256 over the numeric environment (``frameworks.numeric_environment()``: the
  versions, torch's thread count and CPU kernel path, TF's thread pools, the determinism
  settings) and the bytes of every file of the reference code (``CODE``: impls/*.py, the network
  specs impls/networks/*.py, fixtures/*.py, this module and suites/training.py, less
  ``NOT_REFERENCE_CODE``). Any change to them is a new key: nothing made under another key is
  ever reused. Entries live in
  ``<data cache>/refcache/<key>/``; the ``KEEP_KEYS`` most recently used keys are kept, older ones
  deleted.
- **Integrity.** Each entry is ``NAME.npz`` (arrays, and its metadata as JSON) and ``NAME.json``
  (the npz's sha256, when and in how long it was made), both written atomically, the npz first.
  An entry whose npz does not hash to its manifest is damaged: it is recomputed, never trusted.
  The pair is written and read under the key folder's lock (``_locked``), so concurrent runs
  (pytest-xdist workers, clones sharing a data cache) never mix two writers' halves, and a key
  folder in use by another process is not evicted.
- **Verified on reuse.** The first steps of every entry are recomputed live (the caller's
  ``verify``) and must equal the stored ones bit for bit. The same code on a machine whose
  arithmetic differs gets a fresh run, not a stale one, and the run says so.
- ``--reference-cache off`` (or ``TWINBENCH_REFCACHE=off``) computes everything afresh and keeps
  nothing; ``refresh`` recomputes and overwrites.

Every use is logged (``events()``); the run's terminal summary and conformance.json (its
"refcache" list) say what was reused, computed, recomputed or extended, and why.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import io
import json
import math
import mmap
import os
import shutil
import struct
import time
import zipfile
from pathlib import Path

import numpy as np

from twinbench.fixtures import data as D
from twinbench.fixtures import expected as E
from twinbench.fixtures.files import atomic_write
from twinbench.suites import runstate

ROOT = Path(__file__).resolve().parents[1]
CODE = ("impls/*.py", "impls/networks/*.py", "fixtures/*.py", "suites/refcache.py", "suites/training.py")
# Code no reference run touches: the mutant generator, diagnosis's hypotheses, the self-test's literals and lists.
NOT_REFERENCE_CODE = ("impls/mutants.py", "impls/hypotheses.py", "fixtures/detection.py", "fixtures/xfails.py", "fixtures/golden.py")
KEEP_KEYS = 4
MODES = ("use", "refresh", "off")

# The mode (set_mode; default TWINBENCH_REFCACHE or "use"), the events logged and the reasons
# pending (entry -> why the stored one was not used, until the fresh one is put) live in the
# session's run state (suites/runstate.py: refcache_mode, refcache_events, refcache_pending).


class RefCacheError(ValueError):
    """A bad --reference-cache / TWINBENCH_REFCACHE value."""


def valid_mode(mode: str) -> str:
    if mode not in MODES:
        raise RefCacheError(f"reference cache mode must be one of {', '.join(MODES)}, got {mode!r} "
                            "(--reference-cache or TWINBENCH_REFCACHE)")
    return mode


def set_mode(mode: str) -> None:
    runstate.current().refcache_mode = valid_mode(mode)


def mode() -> str:
    return valid_mode(runstate.current().refcache_mode)  # an environment value is checked on first use


def events() -> list:
    """What this process did with the cache: dicts of name, outcome (reused, computed,
    recomputed, extended), reason and seconds."""
    return list(runstate.current().refcache_events)


def code_files() -> list:
    return sorted({p for pattern in CODE for p in ROOT.glob(pattern)
                   if p.is_file() and p.relative_to(ROOT).as_posix() not in NOT_REFERENCE_CODE})


def _hash_files(h, paths) -> None:
    """Each file's path (relative to the repository) and bytes into the hash ``h``."""
    for path in paths:
        h.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")


@functools.cache
def key() -> str:
    from twinbench.impls import frameworks

    h = hashlib.sha256(json.dumps(frameworks.numeric_environment(), sort_keys=True).encode())
    _hash_files(h, code_files())
    return h.hexdigest()[:24]


@functools.cache
def versioned(name: str, code: tuple) -> str:
    """``name`` for an entry that also depends on ``code`` (paths relative to the repository)
    beyond the key: ``name@<hash of those files>``."""
    h = hashlib.sha256()
    _hash_files(h, [ROOT / rel for rel in code])
    return f"{name}@{h.hexdigest()[:12]}"


def folder() -> Path:
    return D.cache_root() / "refcache" / key()


@contextlib.contextmanager
def _locked(here: Path, wait: bool = True):
    """Hold ``here``'s lock (yields False when ``wait`` is off and another process holds it): an
    entry's npz and manifest are written and read as one, so concurrent runs (pytest-xdist
    workers, two clones sharing a data cache) never pair one writer's npz with another's
    manifest, and a folder is never evicted while another process reads or writes it."""
    if wait:
        here.mkdir(parents=True, exist_ok=True)
    elif not here.is_dir():  # gone meanwhile
        yield False
        return
    with open(here / ".lock", "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _load(name: str):
    """(arrays, meta), or (None, why) when the entry is absent or damaged."""
    if not folder().is_dir():
        return None, "not in the cache"
    with _locked(folder()):
        return _load_unlocked(name)


def _load_unlocked(name: str):
    npz, manifest = folder() / f"{name}.npz", folder() / f"{name}.json"
    if not npz.exists() or not manifest.exists():
        return None, "not in the cache"
    try:
        want = json.loads(manifest.read_text())["sha256"]
    except (ValueError, KeyError) as exc:
        return None, f"its manifest {manifest} is unreadable ({exc})"
    got = D.sha256_file(npz)
    if got != want:
        return None, f"{npz.name} is damaged (sha256 {got[:12]}, manifest says {want[:12]})"
    try:
        arrays = _read_npz(npz)
        meta = json.loads(str(arrays.pop("__meta__")))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        return None, f"{npz.name} is unreadable ({exc})"
    return (arrays, meta), ""


def _read_npz(path: Path) -> dict:
    """The arrays of an npz as ``_store`` writes it (np.savez: each member a stored, uncompressed
    .npy), mapped from the file copy-on-write instead of read out of it. np.load copies each
    member through zipfile into fresh memory, 0.2-2 s for the 381 MB of the MNIST diagnosis
    probes; the map takes about 0.02 s, and a page is read when an array's values are. The arrays
    are writable, and what is written stays in this process. Any other member (compressed, not a
    plain array) raises ValueError: the entry is then unreadable, so it is recomputed."""
    arrays = {}
    with open(path, "rb") as fh:
        mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)
        with zipfile.ZipFile(fh) as zf:
            for info in zf.infolist():
                if info.compress_type != zipfile.ZIP_STORED or not info.filename.endswith(".npy"):
                    raise ValueError(f"member {info.filename} is not a stored .npy")
                fh.seek(info.header_offset)
                local = fh.read(30)
                if len(local) != 30 or local[:4] != b"PK\x03\x04":
                    raise ValueError(f"member {info.filename} has no local header")
                name_length, extra_length = struct.unpack("<HH", local[26:30])
                fh.seek(info.header_offset + 30 + name_length + extra_length)
                version = np.lib.format.read_magic(fh)
                if version not in ((1, 0), (2, 0)):
                    raise ValueError(f"member {info.filename} is .npy format {version}")
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, fortran, dtype = read_header(fh)
                if dtype.hasobject:
                    raise ValueError(f"member {info.filename} holds Python objects")
                flat = np.frombuffer(mapped, dtype=dtype, count=math.prod(shape), offset=fh.tell())
                arrays[info.filename[:-len(".npy")]] = flat.reshape(shape, order="F" if fortran else "C")
    return arrays


def _store(name: str, arrays: dict, meta: dict, seconds: float) -> None:
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.array(json.dumps(meta)), **arrays)
    data = buf.getvalue()
    here = folder()
    with _locked(here):
        atomic_write(here / f"{name}.npz", data)
        atomic_write(here / f"{name}.json", json.dumps({
            "sha256": hashlib.sha256(data).hexdigest(), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "seconds": round(seconds, 3)}, indent=1) + "\n")
    _evict(here)


def _evict(here: Path) -> None:
    """Keep the KEEP_KEYS most recently used key folders (another thread count, another clone's
    code), delete the rest."""
    os.utime(here)
    folders = sorted((p for p in here.parent.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in folders[KEEP_KEYS:]:
        with _locked(old, wait=False) as free:
            if free:  # else another process is using it now: it is the newest again, and stays
                shutil.rmtree(old, ignore_errors=True)


def covers(network: str) -> bool:
    """Whether the key hashes the code of ``network``'s work: a reference network's (its spec and
    twins are in impls/, its literals in fixtures/). A user's pair (--network) lives in files the
    key never reads, so that a change there could not invalidate an entry: its work is never kept."""
    return network in E.NETWORKS


def load(name: str, verify, *, network: str):
    """The stored entry ``name`` (work on ``network``) as (arrays, meta) when it is under this key,
    intact, and ``verify(arrays, meta)`` (which recomputes its first steps live) returns "" (equal
    bit for bit; else what differs). None otherwise: the reason is kept for the event logged when
    the entry is computed. meta["cached"] says when a reused entry was made. Always None for a
    network the key does not cover (``covers``)."""
    started = time.perf_counter()
    how = mode()
    if not covers(network):
        return None
    if how != "use":
        runstate.current().refcache_pending[name] = {"off": "the reference cache is off", "refresh": "--reference-cache refresh"}[how]
        return None
    entry, reason = _load(name)
    if entry is not None:
        arrays, meta = entry
        reason = verify(arrays, meta)
        if not reason:
            manifest = json.loads((folder() / f"{name}.json").read_text())
            runstate.current().refcache_events.append({"name": name, "outcome": "reused", "reason": "",
                            "seconds": round(time.perf_counter() - started, 3)})
            os.utime(folder())
            return arrays, dict(meta, cached={"created": manifest["created"], "key": key()})
        reason = f"{name}: the stored entry did not verify: {reason}"
    runstate.current().refcache_pending[name] = reason
    return None


def put(name: str, arrays: dict, meta: dict, seconds: float, reason: str | None = None,
        outcome: str | None = None, *, network: str) -> None:
    """Store a freshly computed entry (not with the cache off, nor for a network the key does not
    cover) and log it, with the reason the stored one was not used (``reason``, or the one
    ``load`` found). ``outcome="extended"``: a reused entry grown past what was stored (a run
    trained further), not a replaced one."""
    if not covers(network):
        return
    reason = runstate.current().refcache_pending.pop(name, "not in the cache") if reason is None else reason
    if mode() != "off":
        _store(name, arrays, meta, seconds)
    if outcome is None:
        outcome = "computed" if reason in ("not in the cache", "the reference cache is off") else "recomputed"
    runstate.current().refcache_events.append({"name": name, "outcome": outcome, "reason": reason, "seconds": round(seconds, 3)})


def note(name: str, problem: str) -> None:
    """A reused entry found wrong later (a run retrained past its stored epochs that differs)."""
    runstate.current().refcache_events.append({"name": name, "outcome": "recomputed", "reason": f"{name}: {problem}", "seconds": 0.0})


def get(name: str, compute, verify, code: tuple = (), *, network: str):
    """``load(name, verify)``, else ``compute()`` (returning (arrays, meta): numpy arrays and
    JSON-able metadata), stored with ``put``. ``code``: files outside the key that the entry also
    depends on (say, the mutant generator): the entry is stored as ``versioned(name, code)``, and
    the versions of other code are deleted (a key folder is evicted whole, so they would otherwise
    stay as long as it does)."""
    if not covers(network):
        return compute()
    if code:
        full = versioned(name, tuple(code))
        try:
            return get(full, compute, verify, network=network)
        finally:
            if mode() != "off":  # off keeps nothing, and leaves what is stored alone
                _drop_others(f"{name}@", keep=full)
    entry = load(name, verify, network=network)
    if entry is not None:
        return entry
    started = time.perf_counter()
    arrays, meta = compute()
    put(name, arrays, meta, time.perf_counter() - started, network=network)
    return arrays, meta


def _drop_others(prefix: str, keep: str) -> None:
    """Delete this key's entries whose name starts with ``prefix``, but ``keep``."""
    here = folder()
    with _locked(here, wait=False) as held:
        if held:
            for path in here.glob(f"{prefix}*"):
                if path.name.rsplit(".", 1)[0] != keep:
                    path.unlink(missing_ok=True)


def flatten(groups: dict) -> dict:
    """Groups of named arrays (``{group: {name: array}}``: a step's weights, say) as one dict for an
    npz, keyed ``group|name``."""
    return {f"{group}|{name}": a for group, named in groups.items() for name, a in named.items()}


def grouped(arrays: dict) -> dict:
    """``flatten``'s inverse, in stored order; keys without ``|`` (other arrays) are left out."""
    groups: dict = {}
    for key, a in arrays.items():
        group, sep, name = key.partition("|")
        if sep:
            groups.setdefault(group, {})[name] = a
    return groups


def differing(live: dict, stored: dict) -> list:
    """The names of ``live``'s arrays that ``stored`` lacks or holds other bits for, and those
    ``stored`` has beyond ``live``: what a verification reports."""
    return sorted({n for n in live if n not in stored or not np.array_equal(live[n], stored[n])} | (set(stored) - set(live)))


def summary() -> str:
    """One line for the terminal: counts by outcome, the time spent, the key."""
    events = runstate.current().refcache_events
    if not events:
        return ""
    counts = {o: sum(e["outcome"] == o for e in events) for o in ("reused", "computed", "recomputed", "extended")}
    why = sorted({e["reason"] for e in events if e["outcome"] == "recomputed"})
    return (f"reference cache ({mode()}, key {key()[:12]}): " + ", ".join(f"{n} {o}" for o, n in counts.items() if n)
            + f" in {sum(e['seconds'] for e in events):.1f} s" + (f"; recomputed because: {'; '.join(why)}" if why else ""))
