"""The reference cache (suites/refcache.py): reused only when intact, under the same key and
verified by recomputing its first steps; a candidate's work is never kept."""

import hashlib
import io
import json
import zipfile

import numpy as np
import pytest

from twinbench.impls import frameworks, networks, registry
from twinbench.suites import refcache, runstate, training

pytestmark = pytest.mark.selftest

NET = "mnist_cnn"  # the network whose work the entries below are (a reference: the key covers it)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache folder of its own, the mode "use", and a clean event log and session state."""
    monkeypatch.setattr(refcache, "folder", lambda: tmp_path / refcache.key())
    run = runstate.RunState([], [], refcache_mode="use")  # this test's own run state, as a session's
    runstate.activate(run)
    yield tmp_path / refcache.key()
    runstate.deactivate(run)


def _entry(calls):
    def compute():
        calls.append(1)
        return {"x": np.arange(5, dtype=np.float32)}, {"n": 5}
    return compute


def _outcomes():
    return [(e["outcome"], e["reason"]) for e in refcache.events()]


def test_a_users_pair_work_is_never_kept(cache):
    """The key hashes this repository's code, never a user's file: work on a network given with
    --network is computed every time, stored nowhere, and never looked up."""
    calls = []
    for _ in range(2):
        arrays, _meta = refcache.get("e", _entry(calls), lambda a, m: pytest.fail("verified"), network="my_pair")
        assert np.array_equal(arrays["x"], np.arange(5))
    assert len(calls) == 2 and not cache.exists() and _outcomes() == []
    refcache.put("e", {"x": np.arange(3)}, {}, 0.0, network="my_pair")
    assert refcache.load("e", lambda a, m: "", network="my_pair") is None and not cache.exists()
    assert refcache.covers(NET) and not refcache.covers("my_pair")


def test_an_entry_that_depends_on_code_outside_the_key_is_versioned_by_it(cache, tmp_path, monkeypatch):
    """``get(..., code=...)`` (diagnosis's hypothesis probes): the entry is reused while those files
    are unchanged, computed afresh when one changes, and the version it supersedes is deleted;
    other entries stay."""
    monkeypatch.setattr(refcache, "ROOT", tmp_path)
    monkeypatch.setattr(refcache, "versioned", refcache.versioned.__wrapped__)  # no memo: the file changes here
    (tmp_path / "gen.py").write_text("v1")
    calls = []
    refcache.get("probes-net-other", _entry([]), lambda a, m: "", code=("gen.py",), network=NET)  # a name "probes-net" begins
    other = refcache.versioned("probes-net-other", ("gen.py",))
    refcache.get("trajectory-x", _entry([]), lambda a, m: "", network=NET)
    for text in ("v1", "v1", "v2", "v2"):
        (tmp_path / "gen.py").write_text(text)
        refcache.get("probes-net", _entry(calls), lambda a, m: "", code=("gen.py",), network=NET)
    assert len(calls) == 2
    v2 = refcache.versioned("probes-net", ("gen.py",))
    assert sorted(p.name for p in cache.glob("*.npz")) == sorted(
        [f"{v2}.npz", f"{other}.npz", "trajectory-x.npz"]), v2
    assert len({p.stem for p in cache.glob("*.json")}) == 3
    refcache.set_mode("off")  # computes afresh, stores nothing, deletes nothing
    (tmp_path / "gen.py").write_text("v3")
    refcache.get("probes-net", _entry(calls), lambda a, m: "", code=("gen.py",), network=NET)
    assert len(calls) == 3 and (cache / f"{v2}.npz").exists() and len(list(cache.glob("*.npz"))) == 3


def test_a_stored_entry_is_reused_with_when_it_was_made(cache):
    calls = []
    refcache.get("e", _entry(calls), lambda a, m: "", network=NET)
    arrays, meta = refcache.get("e", _entry(calls), lambda a, m: "", network=NET)
    assert len(calls) == 1 and np.array_equal(arrays["x"], np.arange(5)) and meta["n"] == 5
    assert meta["cached"]["key"] == refcache.key() and meta["cached"]["created"]
    assert [o for o, _ in _outcomes()] == ["computed", "reused"]


def test_a_damaged_entry_is_recomputed_never_trusted(cache):
    calls = []
    refcache.get("e", _entry(calls), lambda a, m: "", network=NET)
    npz = cache / "e.npz"
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    npz.write_bytes(bytes(data))
    refcache.get("e", _entry(calls), lambda a, m: "", network=NET)
    assert len(calls) == 2
    outcome, reason = _outcomes()[-1]
    assert outcome == "recomputed" and "e.npz is damaged" in reason
    assert refcache.get("e", _entry(calls), lambda a, m: "", network=NET)[1]["cached"]  # the fresh one was stored intact
    assert len(calls) == 2


def test_a_reused_entry_is_every_array_as_stored_and_writable(cache):
    """Reused arrays are mapped from the npz (refcache._read_npz), not copied out by np.load: the
    same values, dtypes, shapes and memory order as np.load gives, of every kind a reference
    entry holds, and writable without touching the stored file."""
    kinds = {"f32": np.arange(12, dtype=np.float32).reshape(3, 4), "f64": np.linspace(-1, 1, 7),
             "fortran": np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)), "scalar": np.array(2.5),
             "empty": np.zeros((0, 5), np.float32), "mask": np.array([True, False, True]),
             "ints": np.array([1, -2, 3], np.int64), "text": np.array("a name")}
    refcache.get("e", lambda: (kinds, {"note": "meta"}), lambda a, m: "", network=NET)
    arrays, meta = refcache.get("e", lambda: pytest.fail("recomputed"), lambda a, m: "", network=NET)
    with np.load(cache / "e.npz", allow_pickle=False) as f:
        loaded = {k: f[k] for k in f.files if k != "__meta__"}
    assert sorted(arrays) == sorted(kinds) and meta["note"] == "meta"
    for name, want in loaded.items():
        got = arrays[name]
        assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want), name
        assert got.flags.f_contiguous == want.flags.f_contiguous and got.flags.writeable, name
    stored = (cache / "e.npz").read_bytes()
    arrays["f32"][0, 0] = 99.0
    assert (cache / "e.npz").read_bytes() == stored


def test_an_entry_that_is_not_a_plain_npz_is_recomputed(cache):
    """An npz that hashes to its manifest but holds what _store never writes (a compressed member)
    is unreadable: recomputed, with the reason."""
    calls = []
    refcache.get("e", _entry(calls), lambda a, m: "", network=NET)
    buf = io.BytesIO()
    np.savez_compressed(buf, __meta__=np.array("{}"), x=np.zeros(3))
    (cache / "e.npz").write_bytes(buf.getvalue())
    manifest = json.loads((cache / "e.json").read_text())
    (cache / "e.json").write_text(json.dumps(dict(manifest, sha256=hashlib.sha256(buf.getvalue()).hexdigest())))
    assert zipfile.ZipFile(cache / "e.npz").infolist()[0].compress_type == zipfile.ZIP_DEFLATED
    refcache.get("e", _entry(calls), lambda a, m: "", network=NET)
    outcome, reason = _outcomes()[-1]
    assert len(calls) == 2 and outcome == "recomputed" and "e.npz is unreadable" in reason, reason


def test_an_entry_whose_first_steps_differ_is_recomputed(cache):
    calls = []
    refcache.get("e", _entry(calls), lambda a, m: "", network=NET)
    refcache.get("e", _entry(calls), lambda a, m: "step 0: 0.5 vs 0.25", network=NET)
    assert len(calls) == 2 and _outcomes()[-1] == ("recomputed", "e: the stored entry did not verify: step 0: 0.5 vs 0.25")
    assert "recomputed because: e: the stored entry did not verify" in refcache.summary()


def test_off_keeps_nothing_and_refresh_overwrites(cache, monkeypatch):
    calls = []
    refcache.set_mode("off")
    refcache.get("e", _entry(calls), lambda a, m: "", network=NET)
    assert not cache.exists() and _outcomes() == [("computed", "the reference cache is off")]
    refcache.set_mode("refresh")
    refcache.get("e", _entry(calls), lambda a, m: "", network=NET)
    refcache.set_mode("use")
    refcache.get("e", _entry(calls), lambda a, m: "", network=NET)
    assert len(calls) == 2 and [o for o, _ in _outcomes()] == ["computed", "recomputed", "reused"]
    with pytest.raises(refcache.RefCacheError, match="one of use, refresh, off.*TWINBENCH_REFCACHE"):
        refcache.set_mode("yes")


def test_the_key_covers_the_environment_and_the_reference_code(monkeypatch):
    files = {p.relative_to(refcache.ROOT).as_posix() for p in refcache.code_files()}
    assert {"impls/torch_mnist_cnn.py", "impls/keras_adapter.py", "impls/torch_adapter.py", "impls/randomness.py",
            "fixtures/tolerances.py", "fixtures/data.py", "suites/training.py", "suites/refcache.py"} <= files
    assert not any(f.startswith(("impls/known_", "suites/test_")) for f in files)
    before = refcache.key.__wrapped__()
    env = frameworks.numeric_environment()
    monkeypatch.setattr(frameworks, "numeric_environment", lambda: dict(env, torch_threads=env["torch_threads"] + 1))
    assert refcache.key.__wrapped__() != before


def test_only_the_newest_keys_are_kept(tmp_path, monkeypatch):
    import os

    for i in range(refcache.KEEP_KEYS + 2):
        (tmp_path / f"k{i}").mkdir()
        os.utime(tmp_path / f"k{i}", (i, i))
    refcache._evict(tmp_path / "k0")  # k0 is used now: the newest
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert len(kept) == refcache.KEEP_KEYS and "k0" in kept and "k1" not in kept and "k2" not in kept


def test_a_reference_run_is_stored_reused_and_retrained_when_it_must_grow(cache):
    spec = registry.reference("torch", "tweet_fasttext")
    first = training.train(spec, 1, epochs=1, to_gate=False)
    stored = json.loads(str(np.load(cache / f"run-{spec.id}-seed1.npz")["__meta__"]))
    assert stored["epochs"] == first.epochs and first.record()["reference_cache"] is None
    runstate.current().runs.clear()
    again = training.train(spec, 1, epochs=1, to_gate=False)
    assert again.epochs == first.epochs and again.twin is None and again.record()["reference_cache"]["created"]
    grown = training.train(spec, 1, epochs=2, to_gate=False)  # past the stored epoch: retrained from the start
    assert grown.twin is not None and grown.epochs[0]["correct"] == first.epochs[0]["correct"]
    assert grown.epochs[0]["train_loss"] == first.epochs[0]["train_loss"] and len(grown.epochs) == 2
    assert _outcomes()[1:] == [("reused", ""), ("extended", f"run-{spec.id}-seed1: trained past its 1 stored epochs")]
    assert "1 extended" in refcache.summary()
    assert len(json.loads(str(np.load(cache / f"run-{spec.id}-seed1.npz")["__meta__"]))["epochs"]) == 2


def test_a_runs_later_epochs_do_not_depend_on_what_was_built_between_them(cache, monkeypatch):
    """Dropout draws from torch's global generator, which every registry.build reseeds: a run
    extended after other twins were built (the reference cache's fingerprint, another test's
    twins) must train on as if nothing had happened in between."""
    from twinbench.fixtures import data as D

    split = D.split
    monkeypatch.setattr(D, "split", lambda network, part: tuple(a[:640 if part == "train" else 200]
                                                                for a in split(network, part)))
    monkeypatch.setattr(networks, "_DATA", {})  # the specs' loaded splits: loaded again, through the patch
    assert len(networks.get("mnist_cnn").split("train")[0]) == 640
    spec = registry.reference("torch", "mnist_cnn")
    refcache.set_mode("off")
    straight = [e["train_loss"] for e in training.train(spec, 3, epochs=2, to_gate=False).epochs]
    runstate.current().runs.clear()
    refcache.set_mode("use")
    training.train(spec, 3, epochs=1, to_gate=False)  # stored: its fingerprint builds the twin anew
    registry.build(registry.reference("keras", "mnist_cnn"), seed=99)
    interrupted = [e["train_loss"] for e in training.train(spec, 3, epochs=2, to_gate=False).epochs]
    assert interrupted == straight


def test_concurrent_writers_never_pair_one_npz_with_anothers_manifest(cache):
    """Writers of one entry (pytest-xdist workers, two clones on one data cache) and a reader at
    the same time: the reader only ever sees an npz with its own manifest, never "damaged"."""
    import threading

    done, seen = threading.Event(), []

    def write(i):
        for _ in range(8):
            refcache._store("e", {"x": np.full(100_000, i, dtype=np.float32)}, {"writer": i}, 0.0)

    def read():
        while not done.is_set():
            entry, reason = refcache._load("e")
            seen.append(reason if entry is None else ("" if entry[0]["x"][0] == entry[1]["writer"] else "mixed"))

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write, args=(i,)) for i in range(3)]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    done.set()
    reader.join()
    assert set(seen) <= {"", "not in the cache"} and "" in seen


def test_a_stored_run_whose_first_steps_differ_is_not_used(cache):
    spec = registry.reference("torch", "tweet_fasttext")
    run = training.Run(spec, 1)
    fingerprint = training._fingerprint(run)
    assert training._verify_run(run, {"fingerprint": fingerprint}) == ""
    tampered = fingerprint.copy()
    tampered[1] = np.nextafter(tampered[1], np.inf)
    assert "losses of the first 2 steps" in training._verify_run(run, {"fingerprint": tampered})


def test_a_stored_trajectory_whose_first_steps_differ_is_not_used():
    spec = registry.reference("torch", "tweet_fasttext")
    stored = training._train_trajectory(registry.build(spec, seed=1), True)
    assert training._verify_trajectory(registry.build(spec, seed=1), True, stored) == ""
    name = next(iter(stored.weights[0]))
    stored.weights[0][name] = np.nextafter(stored.weights[0][name], np.float32(np.inf))  # one ulp
    assert training._verify_trajectory(registry.build(spec, seed=1), True, stored) == \
        f"weights after step 0 differ in {name}"


def test_a_candidate_is_never_kept(cache):
    spec = registry.reference("torch", "tweet_fasttext")
    candidate = registry.ImplSpec("candidate-tweets", spec.network, spec.framework, "c", spec.factory, "candidate")
    training.train(candidate, 1, epochs=1, to_gate=False)
    assert not cache.exists() and not refcache.events()


def test_the_optimizer_gradients_are_stored_reused_and_verified(cache, monkeypatch):
    """The optimizer checks' recorded gradients (suites/oracle.py): a reused recording is the
    computed one exactly, the oracle run on them included, and stored gradients whose start or
    early steps are off by one ulp are not used."""
    from twinbench.suites import oracle

    monkeypatch.setattr(oracle, "recording", oracle.recording.__wrapped__)  # no session cache
    fresh = oracle.recording("tweet_fasttext")
    again = oracle.recording("tweet_fasttext")
    assert [e["outcome"] for e in refcache.events()] == ["computed", "reused"]
    assert again.scale == fresh.scale and len(again.grads) == len(fresh.grads)
    for mine, theirs in [(again.start, fresh.start), (again.half_ulp, fresh.half_ulp)] + \
            list(zip(again.grads, fresh.grads)) + list(zip(again.moved, fresh.moved)):
        assert mine.keys() == theirs.keys() and all(np.array_equal(mine[k], theirs[k]) for k in mine)
    grads = list(fresh.grads)
    assert oracle._verify("tweet_fasttext", fresh.start, grads) == ""
    one_ulp = lambda d, k: {**d, k: np.nextafter(d[k], np.float32(np.inf))}  # noqa: E731
    name = "fc.bias"
    assert oracle._verify("tweet_fasttext", one_ulp(fresh.start, name), grads) == f"the start weights differ in {name}"
    assert oracle._verify("tweet_fasttext", fresh.start, [grads[0], one_ulp(grads[1], name)] + grads[2:]) == \
        f"gradient 2 differs in {name}"
    assert "1 gradients stored" in oracle._verify("tweet_fasttext", fresh.start, grads[:1])
