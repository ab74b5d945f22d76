"""Training runs shared by the suites: convergence (time-to-accuracy) and trajectories.

Each run happens once per session and is cached here, so that the convergence gates, the
agreement check, the baselines and the speed suite reuse it. Nothing here asserts: the checks in
``suites/test_convergence.py`` and ``suites/test_trajectory.py`` judge what these functions
return.

Convergence follows the MLPerf training rules: the test accuracy is evaluated after every epoch
(correct answers counted exactly, never a rounded percentage); time-to-accuracy is the number of
epochs to the first evaluation at or above the gate; over N seeds, the olympic mean (fastest and
slowest dropped) of epochs-to-target is gated, with at most one run that does not converge.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

from twinbench.fixtures import expected as E
from twinbench.fixtures import tolerances as T
from twinbench.impls import networks, registry
from twinbench.suites import refcache, runstate


# ------------------------------------------------------------------------------------------
# Convergence
# ------------------------------------------------------------------------------------------
def meets_gate(correct: int, total: int, network: str) -> bool:
    """The gate, in integers: correct * 1000 >= GATE_PERMILLE * total."""
    return correct * 1000 >= networks.get(network).gate_permille * total


@dataclass
class Run:
    """One twin trained under its own recipe, evaluated after every epoch."""

    spec: object
    seed: int
    device: str = "cpu"
    variant: str = "eager"  # a speed variant of torch training (test_speed: "graph")
    epochs: list = field(default_factory=list)  # one record per trained epoch
    twin: object = field(default=None, repr=False)
    started: float = field(default_factory=time.perf_counter)
    stored: list = field(default_factory=list, repr=False)  # epochs of the reference cache, verified
    cached: dict | None = None  # the reference cache's manifest while the epochs come from it
    rng: object = field(default=None, repr=False)  # the global generators' state after its last live epoch
    fingerprint: object = field(default=None, repr=False)  # its first steps' losses (_fingerprint), once known

    @property
    def network(self) -> str:
        return self.spec.network

    @property
    def epochs_to_target(self):
        """The first epoch (1-based) whose evaluation met the gate; None if none did."""
        return next((e["epoch"] for e in self.epochs if meets_gate(e["correct"], e["total"], self.network)), None)

    @property
    def seconds_to_target(self):
        n = self.epochs_to_target
        return sum(e["seconds"] for e in self.epochs[:n]) if n else None

    @property
    def curve(self) -> list:
        return [e["accuracy"] for e in self.epochs]

    def record(self) -> dict:
        return {"impl": self.spec.id, "framework": self.spec.framework, "network": self.network,
                "seed": self.seed, "device": self.device, "variant": self.variant, "epochs": list(self.epochs),
                "epochs_to_target": self.epochs_to_target, "seconds_to_target": self.seconds_to_target,
                "wall_seconds": time.perf_counter() - self.started,
                "reference_cache": self.cached if self.twin is None and self.epochs else None}


# This session's convergence runs, reference trajectories and latest subject run are kept in its
# run state (suites/runstate.py: runs, trajectories, subject).
# The networks whose partner trajectories are kept in the data cache: an MNIST one takes ~10 s
# to train and ~96 MB to keep (20 weight snapshots); a tweets one 0.8 s and ~110 MB (the 1M-entry
# embedding in every snapshot), which takes longer to read back than to retrain. An mnist_bn one
# takes ~17 s (four of them: 70 s of make test, 2026-12-07) and ~18 MB (225,706 values).
CACHED_TRAJECTORIES = {"mnist_cnn", "mnist_bn"}
VERIFY_STEPS = 2  # the steps of a reused reference run (data cache) recomputed live and compared bit for bit


def _progress_line(run: Run, rec: dict) -> str:
    budget = networks.get(run.network).budget_epochs
    return (f"  [{run.spec.id} seed {run.seed}] epoch {rec['epoch']}/{budget}: loss {rec['train_loss']:.4f}, "
            f"test {rec['correct']}/{rec['total']} = {100 * rec['accuracy']:.2f}%, {rec['train_seconds']:.1f} s")


def _train_one_epoch(run: Run, progress=None) -> dict:
    xtr, ytr = networks.get(run.network).split("train")
    xte, yte = networks.get(run.network).split("test")
    if run.twin is None:
        run.twin = registry.build(run.spec, seed=run.seed)
        if run.device != "cpu":
            run.twin.place(run.device)
        if run.variant != "eager":
            run.twin.use_variant(run.variant)
    epoch = len(run.epochs)
    if run.rng is not None:  # whatever was built or reseeded since its last epoch does not count
        registry.set_rng_state(run.rng)
    t0 = time.perf_counter()
    loss = run.twin.fit_epoch(xtr, ytr, epoch, networks.get(run.network).train_batch, run.seed)
    train_s = time.perf_counter() - t0
    run.rng = registry.rng_state(cuda=run.variant == "eager")
    correct = run.twin.count_correct(xte, yte, E.TEST_BATCH)
    rec = {"epoch": epoch + 1, "train_loss": loss, "correct": correct, "total": len(yte),
           "accuracy": correct / len(yte), "train_seconds": train_s, "seconds": time.perf_counter() - t0}
    run.epochs.append(rec)
    if progress is not None:
        progress(_progress_line(run, rec))
    return rec


def train(spec, seed: int, epochs: int | None = None, to_gate: bool = True, device: str = "cpu",
          progress=None, variant: str = "eager") -> Run:
    """Train ``spec`` (resuming this session's run if there is one) until it has trained
    ``epochs`` epochs, or, with ``to_gate``, until it first meets the gate, whichever comes first
    within the budget. ``epochs=None`` means the whole budget.

    A primary reference on the CPU is reference work: its epochs come from the data cache when
    stored under this environment and code (suites/refcache.py), and a run that trains further
    than the stored epochs is retrained from its start (the reused epochs must come out equal)
    and stored again."""
    key = (spec.id, seed, device, variant)
    runs = runstate.current().runs
    run = runs.get(key)
    if run is None:
        run = runs[key] = Run(spec, seed, device, variant)
        if _cacheable(run):
            entry = refcache.load(_run_name(run), lambda arrays, meta: _verify_run(run, arrays), network=run.spec.network)
            if entry is not None:
                run.stored, run.cached = entry[1]["epochs"], entry[1]["cached"]
    want = min(epochs or networks.get(spec.network).budget_epochs, networks.get(spec.network).budget_epochs)
    while len(run.epochs) < want and not (to_gate and run.epochs_to_target):
        _next_epoch(run, progress)
    if _cacheable(run) and run.twin is not None and len(run.epochs) > len(run.stored):
        started = time.perf_counter()
        if run.fingerprint is None:
            run.fingerprint = _fingerprint(run)
        refcache.put(_run_name(run), {"fingerprint": run.fingerprint}, {"epochs": run.epochs},
                     sum(e["seconds"] for e in run.epochs) + time.perf_counter() - started,
                     f"{_run_name(run)}: trained past its {len(run.stored)} stored epochs" if run.stored else None,
                     outcome="extended" if run.stored else None, network=run.spec.network)
        run.stored = list(run.epochs)
    return run


def _cacheable(run: Run) -> bool:
    """A reference twin's CPU run (refcache.covers decides whether its network's work is kept: a
    pair given with --network is always trained afresh)."""
    return (run.spec.role == "reference" and run.device == "cpu" and run.variant == "eager"
            and refcache.covers(run.spec.network))


def _run_name(run: Run) -> str:
    return f"run-{run.spec.id}-seed{run.seed}"


def _fingerprint(run: Run) -> np.ndarray:
    """The first VERIFY_STEPS steps of the seed's model on the seed's first batches (eval mode):
    what a reused run's arithmetic is checked by."""
    x, y = networks.get(run.network).split("train")
    twin = registry.build(run.spec, seed=run.seed)
    return np.asarray(twin.train_steps(x, y, networks.get(run.network).train_batch, VERIFY_STEPS, run.seed))


def _verify_run(run: Run, arrays: dict) -> str:
    live = _fingerprint(run)
    if np.array_equal(live, arrays["fingerprint"]):
        run.fingerprint = live
        return ""
    return f"losses of the first {VERIFY_STEPS} steps {live.tolist()} vs stored {arrays['fingerprint'].tolist()}"


def _next_epoch(run: Run, progress=None) -> None:
    """One more epoch: the next stored one while the run has not trained live, else trained."""
    done = len(run.epochs)
    if run.twin is None and done < len(run.stored):
        run.epochs.append(dict(run.stored[done]))
        if progress is not None:
            progress(_progress_line(run, run.epochs[-1]) + f" (reference cache, {run.cached['created']})")
        return
    if run.twin is None and done:  # past the stored epochs: retrain from the start, the reused ones included
        reused, run.epochs = run.epochs, []
        while len(run.epochs) < done:
            _train_one_epoch(run, progress)
        differ = [a["epoch"] for a, b in zip(reused, run.epochs)
                  if (a["correct"], a["train_loss"]) != (b["correct"], b["train_loss"])]
        if differ:
            refcache.note(_run_name(run), f"retrained, epochs {differ} differ from the stored ones (the live ones are used)")
    _train_one_epoch(run, progress)


def train_to_gate(spec, seed: int, full: bool, progress=None, device: str = "cpu", variant: str = "eager") -> Run:
    """Time-to-accuracy: the first epoch at or above the gate; ``full`` trains the whole budget."""
    return train(spec, seed, None, to_gate=not full, device=device, progress=progress, variant=variant)


def same_epochs(runs_: list, progress=None) -> int:
    """Extend every run to the epochs of the longest one (agreement compares equal curves)."""
    n = max(len(r.epochs) for r in runs_)
    for r in runs_:
        train(r.spec, r.seed, n, to_gate=False, device=r.device, progress=progress, variant=r.variant)
    return n


def olympic(values: list) -> dict:
    """MLPerf scoring of epochs-to-target over N runs: a run that never converged counts as the
    slowest; the fastest and the slowest are dropped when N >= 3; at most one run may fail to
    converge. ``mean`` is None when more than one run failed."""
    n = len(values)
    failed = sum(v is None for v in values)
    ranked = sorted(values, key=lambda v: float("inf") if v is None else v)
    kept = ranked[1:-1] if n >= 3 else ranked
    ok = failed <= T.CONVERGENCE_MAX_FAILED_RUNS and all(v is not None for v in kept)
    return {"runs": n, "failed": failed, "kept": [v for v in kept if v is not None],
            "mean": float(np.mean(kept)) if ok and kept else None, "values": values}


def summarise(accuracies: list) -> dict:
    """Accuracies over N runs: the olympic mean (best and worst dropped when N >= 3), min, max."""
    acc = sorted(accuracies)
    kept = acc[1:-1] if len(acc) >= 3 else acc
    return {"mean": float(np.mean(kept)), "min": acc[0], "max": acc[-1], "std": float(np.std(acc)),
            "runs": len(acc), "dropped_best_and_worst": len(acc) >= 3}


def mean_curve(runs_: list, epochs: int) -> np.ndarray:
    """The per-epoch test accuracy averaged over seeds, the first ``epochs`` epochs."""
    return np.mean([r.curve[:epochs] for r in runs_], axis=0)


def progress_printer(config):
    """One line per epoch in interactive runs (make conform); quiet under CI."""
    if os.environ.get("CI"):
        return None
    reporter = config.pluginmanager.getplugin("terminalreporter")
    capture = config.pluginmanager.getplugin("capturemanager")
    if reporter is None or capture is None:
        return None

    def write(line):
        with capture.global_and_fixture_disabled():  # past pytest's output capture, to the terminal
            reporter.write_line(line)

    return write


# ------------------------------------------------------------------------------------------
# Trajectories
# ------------------------------------------------------------------------------------------
ANCHOR_FRAMEWORK = "torch"  # whose reference's free run every other trajectory is set back to


@dataclass
class Trajectory:
    losses: np.ndarray
    weights: dict      # step -> canonical weights after that step's update (the compared steps)
    complete: bool


def trajectory_start(network: str) -> dict:
    """The shared start: the torch reference's weights for seed 0, in canonical layout."""
    kept, key = runstate.current().trajectories, ("start", network)
    if key not in kept:
        kept[key] = registry.build(registry.reference("torch", network), seed=0).get_weights()
    return kept[key]


def _trajectory_examples(network: str) -> int:
    spec = networks.get(network)  # batches of the recipe's size, then one of the epoch's last batch's
    return T.TRAJECTORY_PASS_BATCHES * spec.train_batch + spec.last_batch


def trajectory_data(network: str) -> tuple:
    """The trajectory's examples: the train split's first TRAJECTORY_PASS_BATCHES full batches and
    one of the size of the epoch's last batch (the spec's last_batch), so that each pass over them ends in
    a shorter batch, as every epoch of the recipe does, and the next pass is reshuffled."""
    return networks.get(network).split("train", _trajectory_examples(network))


def pass_steps(network: str) -> int:
    """The steps of one pass over ``trajectory_data``: its batches, the last one shorter."""
    return -(-_trajectory_examples(network) // networks.get(network).train_batch)


def anchor_id(network: str) -> str:
    return registry.reference(ANCHOR_FRAMEWORK, network).id


def compared_steps(network: str) -> set:
    """The steps after which weights are kept and compared: the first max(window, FIT_STEPS) (at
    most 20; the fit path compares each), every TRAJECTORY_WEIGHT_EVERY-th, and the first pass's
    last step (the shorter batch) and the next (the reshuffled pass's first)."""
    w, every = networks.get(network).trajectory_window, T.TRAJECTORY_WEIGHT_EVERY
    edge = pass_steps(network) - 1
    return (set(range(min(every, max(w, T.FIT_STEPS)))) | {edge, edge + 1}
            | {s for s in range(T.TRAJECTORY_STEPS) if s % every == every - 1})


def _window_ends(network: str) -> set:
    """The steps after which an anchored run is set back: each window's last but the run's."""
    w = networks.get(network).trajectory_window
    return {s for s in range(T.TRAJECTORY_STEPS - 1) if s % w == w - 1}


def loss_tolerance(network: str, steps: int) -> np.ndarray:
    """Per step of an anchored trajectory: exact at every step (each window starts from the
    anchor's weights, so fp32's reordering drift has at most a window to grow)."""
    return np.full(steps, T.TRAJECTORY_LOSS_ATOL_EXACT)


def weight_tolerance(network: str, step: int) -> float:
    return networks.get(network).trajectory_weight_rtol_exact


def state_allowance(network: str, name: str) -> float:
    """How far a canonical weight may be from its partner's, relative to its value, by what the
    frameworks do differently by design; 0 for all but a BatchNorm's moving variance. torch updates
    ``running_var`` with the unbiased batch variance, n/(n-1) times Keras's biased one, n the values
    per channel in a training batch: the moving variance then differs by at most 1/(n-1) of its
    value (the smallest n: the epoch's last batch, times the positions per channel). A dense
    BatchNorm at batch 128 gives 0.79%, one after a 26x26 convolution 1e-5."""
    spec = networks.get(network)
    layer, _, tensor = name.rpartition(".")
    row = next((r for r in spec.param_layers or () if r[0] == layer), None)
    if row is None or row[1] != "batchnorm" or tensor != "moving_variance":
        return 0.0
    batch = min(b for b in (spec.train_batch, spec.last_batch) if b)
    n = batch * int(np.prod([d for d in row[2][1:-1]]))
    return 1.0 / (n - 1)


def free_run_loss_tolerance(network: str, steps: int) -> np.ndarray:
    """Two free runs (never set back: the speed suite's variants over whole epochs): exact in the
    first window, the measured drift envelope times the margin after."""
    exact = networks.get(network).trajectory_exact_steps
    drift = np.array([T.TRAJECTORY_LOSS_DRIFT[min(i // 20, len(T.TRAJECTORY_LOSS_DRIFT) - 1)] for i in range(steps)])
    return np.where(np.arange(steps) < exact, T.TRAJECTORY_LOSS_ATOL_EXACT, drift * T.TRAJECTORY_DRIFT_MARGIN)


def free_run_weight_tolerance(network: str, step: int) -> float:
    if step < networks.get(network).trajectory_exact_steps:
        return networks.get(network).trajectory_weight_rtol_exact
    drift = T.TRAJECTORY_WEIGHT_DRIFT
    return drift[min(step // 20, len(drift) - 1)] * T.TRAJECTORY_DRIFT_MARGIN


def partner_trajectory(impl_id: str, dropout: bool) -> Trajectory:
    """A reference's complete run: ``impl_id`` (a partner, or any build style of a reference)
    trained TRAJECTORY_STEPS steps from the shared start (eval mode, or training mode with shared
    masks), once per session and reused by every subject compared with it. As a subject, a
    reference is this complete run, cut for each partner at its first step out of tolerance, as
    a run stopped there would be (training.subject_trajectory)."""
    kept, key = runstate.current().trajectories, (impl_id, dropout)
    if key not in kept:
        spec = registry.by_id(impl_id)
        build = lambda: registry.build(spec, seed=1)  # noqa: E731
        if spec.role != "reference" or spec.network not in CACHED_TRAJECTORIES:
            kept[key] = _train_trajectory(build(), dropout)
        else:  # reference work: kept in the data cache (suites/refcache.py), its first steps re-run on reuse
            arrays, meta = refcache.get(f"trajectory-{impl_id}-{'dropout' if dropout else 'eval'}",
                                        lambda: _pack(_train_trajectory(build(), dropout)),
                                        lambda arrays, meta: _verify_trajectory(build(), dropout, _unpack(arrays, meta)),
                                        network=spec.network)
            kept[key] = _unpack(arrays, meta)
    return kept[key]


def _pack(run: Trajectory) -> tuple:
    arrays = {"losses": np.asarray(run.losses)}
    arrays.update(refcache.flatten({f"w{step}": ws for step, ws in run.weights.items()}))
    return arrays, {"complete": run.complete}


def _unpack(arrays: dict, meta: dict) -> Trajectory:
    weights = {int(group[1:]): ws for group, ws in refcache.grouped(arrays).items()}
    return Trajectory(arrays["losses"], dict(sorted(weights.items())), bool(meta["complete"]))


def _verify_trajectory(twin, dropout: bool, stored: Trajectory) -> str:
    """'' when the first VERIFY_STEPS steps, recomputed, equal the stored run bit for bit."""
    live = _train_trajectory(twin, dropout, stop=lambda i, loss: i >= VERIFY_STEPS - 1)
    if not np.array_equal(live.losses, stored.losses[:len(live.losses)]):
        return f"losses of the first {len(live.losses)} steps {live.losses.tolist()} vs stored {stored.losses[:len(live.losses)].tolist()}"
    for step, ws in live.weights.items():
        bad = refcache.differing(ws, stored.weights[step])
        if bad:
            return f"weights after step {step} differ in {', '.join(bad)}"
    return ""


def subject_trajectory(twin, dropout: bool, partner: str, partners: dict) -> Trajectory:
    """The subject's run as ``partner`` sees it. The subject is trained once for all of
    ``partners`` (id -> complete Trajectory) and stops at the first step whose loss is out of
    tolerance against every one of them; each partner's view is cut at its own first such step
    (that loss included, the weights before it), exactly as a run stopped against that partner
    alone. A run that raises (an unrecognised random op, a shape error) raises for the partners
    it had not yet diverged from; the others see their cut, as they would have alone. Only the
    latest subject run is kept (its ~20 CNN weight snapshots are ~100 MB); the checks of one
    subject run partner after partner, so the second reuses the first's training."""
    key = (twin.name, repr(twin.spec), dropout, tuple(partners))
    latest = runstate.current().subject  # key, run, first step out of tolerance per partner, error
    if latest.get("key") != key:
        latest.clear()
        run, error = None, None
        if twin.spec is not None and twin.spec.role == "reference":  # every build style of a reference is
            run = partner_trajectory(twin.spec.id, dropout)           # reference work: trained once, cached
        if run is None:
            tols = {p: loss_tolerance(twin.network, len(t.losses)) for p, t in partners.items()}
            seen, weights = [], {}

            def stop(i, loss):  # out of tolerance against every partner (NaN too)
                seen.append(loss)
                return all(not abs(loss - t.losses[i]) <= tols[p][i] for p, t in partners.items())

            try:
                run = _train_trajectory(twin, dropout, stop, weights)
            except Exception as exc:  # noqa: BLE001 -- kept for the partners whose view reaches it
                run, error = Trajectory(np.asarray(seen), weights, False), exc
        first_bad = {}
        for p, t in partners.items():
            n = min(len(run.losses), len(t.losses))
            bad = np.flatnonzero(~(np.abs(run.losses[:n] - t.losses[:n]) <= loss_tolerance(twin.network, n)))
            first_bad[p] = int(bad[0]) if len(bad) else None
        latest.update(key=key, run=run, first_bad=first_bad, error=error)
    run, s = latest["run"], latest["first_bad"][partner]
    if s is None:
        if latest["error"] is not None:  # it failed before diverging from this partner: as a run of its own would
            raise latest["error"]
        return run
    return Trajectory(run.losses[:s + 1], {k: w for k, w in run.weights.items() if k < s}, False)


def reference_free_run(framework: str, network: str, steps: int, dropout: bool = True) -> Trajectory:
    """The first ``steps`` steps of ``framework``'s reference, never set back (the fit path's
    per-step path: a twin's own fit is a free run), once per session."""
    kept, key = runstate.current().trajectories, ("free", framework, network, steps, dropout)
    if key not in kept:
        twin = registry.build(registry.reference(framework, network), seed=1)
        kept[key] = _train_trajectory(twin, dropout, stop=lambda i, loss: i >= steps, anchored=False,
                                      keep=set(range(steps)))
    return kept[key]


def _train_trajectory(twin, dropout: bool, stop=None, weights: dict | None = None,
                      anchored: bool | None = None, keep: set | None = None) -> Trajectory:
    """The twin trained TRAJECTORY_STEPS steps from the shared start on ``trajectory_data``.
    Anchored (``anchored=None``: every twin but the anchor itself): after the last step of every
    window of TRAJECTORY_WINDOW steps its weights are set to the anchor's after that step, while
    its optimizer, optimizer state and schedule carry on, so that every window starts from the
    same weights and a difference in training shows where it acts instead of being lost in fp32's
    drift. ``anchored=False``: a free run; ``True``: anchored even when it is the anchor's own
    code (suites/drift.py measures it run at other thread counts). ``weights``: where the
    snapshots go as they are taken (a caller keeps them if training raises); ``keep``: the steps
    after which they are taken (default: the compared steps, and the anchor's window ends)."""
    network = twin.network
    twin.set_weights(trajectory_start(network))
    x, y = trajectory_data(network)
    is_anchor = twin.spec is not None and twin.spec.id == anchor_id(network)
    anchored = not is_anchor if anchored is None else anchored
    ends = _window_ends(network)
    keep = (compared_steps(network) | (ends if is_anchor else set())) if keep is None else keep
    weights = {} if weights is None else weights

    def after(i):
        if i in keep:
            weights[i] = twin.get_weights()
        if anchored and i in ends:
            twin.set_weights(partner_trajectory(anchor_id(network), dropout).weights[i])

    losses = twin.train_steps(x, y, twin.net.train_batch, T.TRAJECTORY_STEPS, T.TRAJECTORY_SEED, stop=stop,
                              dropout_seed=T.TRAJECTORY_DROPOUT_SEED if dropout else None, after_step=after)
    return Trajectory(np.asarray(losses), weights, len(losses) == T.TRAJECTORY_STEPS)
