"""Measure the MNIST trajectory drift envelope: the data behind fixtures/tolerances.py's
TRAJECTORY_LOSS_DRIFT and TRAJECTORY_WEIGHT_DRIFT.

MNIST under Adadelta (lr 1.0) is chaotic: two correct runs whose arithmetic differs by one
rounding drift apart, and when they start to depends on which roundings differ: on the thread
count too (torch and TF split their reductions by thread). One pair of runs on one machine is
one draw of that; the envelope must hold for the draws a user's machine makes. So it is measured
over an ensemble of arithmetic realisations: the torch and the Keras reference trained at each of
several thread counts, dropout off and on, and every pair of those runs compared (a thread count
changes the roundings as a port does; nothing else is perturbed). Per 20-step window it reports
the largest |loss diff| and the largest per-layer weight diff relative to that layer's movement
(the measures test_trajectory uses), and which pair set it.

    python -m twinbench.suites.drift --threads 1,2,3,4,8 [--json reports/drift.json]

These are free runs: the speed suite compares two of them over whole epochs with this envelope.
The trajectory check's runs are anchored (every TRAJECTORY_WINDOW steps set back to the torch
reference's weights, suites/checks/trajectory.py); ``--anchored`` measures those: one anchor
(the torch reference's run at 2 threads), every run of the ensemble set back to it, the anchor
itself one of the runs, and the largest differences over all 200 steps against the exact
tolerances the check holds them to.

Each thread count runs in a process of its own (torch.set_num_threads; TF_NUM_INTRAOP_THREADS,
read when TensorFlow starts); determinism is set as under pytest. Nothing here is run by the
suites: it prints the envelope for a human to argue into the literal.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from twinbench.impls import networks

NETWORK = "mnist_cnn"
WINDOW = 20


def _windows(values_by_step: dict, steps: int) -> list:
    """Max of ``values_by_step`` (step -> value) per WINDOW-step window."""
    out = [0.0] * ((steps + WINDOW - 1) // WINDOW)
    for step, v in values_by_step.items():
        out[step // WINDOW] = max(out[step // WINDOW], float(v))
    return out


def _compare(a, b, start: dict, steps: int, exact: int) -> dict:
    """Per-window drift of run ``a`` from run ``b`` (both complete), and the largest loss and
    weight differences within the exact window (the first ``exact`` steps)."""
    loss = {i: abs(float(x) - float(y)) for i, (x, y) in enumerate(zip(a.losses, b.losses))}
    weight = {}
    for step in sorted(set(a.weights) & set(b.weights)):
        worst = 0.0
        for name, wb in b.weights[step].items():
            scale = float(np.abs(wb - start[name]).max()) or float(np.abs(start[name]).max())
            worst = max(worst, float(np.abs(a.weights[step][name] - wb).max()) / scale)
        weight[step] = worst
    return {"loss": _windows(loss, steps), "weight": _windows(weight, steps),
            "exact_loss": max(v for i, v in loss.items() if i < exact),
            "exact_weight": max(v for i, v in weight.items() if i < exact)}


def _load(path: str):
    from twinbench.suites import training

    with np.load(path) as f:
        return training._unpack({k: f[k] for k in f.files}, {"complete": True})


def worker(threads: int, folder: str, anchored: bool = False) -> dict:
    """One thread count, in this process: the two references' trajectories, saved to ``folder``;
    ``anchored``: each set back to the anchor's run saved there (``anchor-on/off.npz``)."""
    from twinbench.impls import frameworks, registry
    from twinbench.suites import runstate, training

    frameworks.torch.set_num_threads(threads)
    frameworks.set_determinism()
    began, saved = time.perf_counter(), []
    for dropout in (False, True):
        if anchored:
            key = (training.anchor_id(NETWORK), dropout)
            runstate.current().trajectories[key] = _load(os.path.join(folder, f"anchor-{'on' if dropout else 'off'}.npz"))
        for fw in ("torch", "keras"):
            run = training._train_trajectory(registry.build(registry.reference(fw, NETWORK), seed=1), dropout,
                                             anchored=anchored)
            arrays, meta = training._pack(run)
            name = f"{fw}@{threads}-{'on' if dropout else 'off'}"
            np.savez(os.path.join(folder, name + ".npz"), **arrays)
            saved.append(name)
    env = frameworks.numeric_environment()
    return {"torch_threads": env["torch_threads"], "environ": env["environ"], "runs": saved,
            "seconds": round(time.perf_counter() - began, 1)}


def save_anchor(folder: str) -> None:
    """The anchor's runs (dropout off and on), as every anchored worker loads them."""
    from twinbench.impls import frameworks
    from twinbench.suites import runstate, training

    frameworks.torch.set_num_threads(2)
    frameworks.set_determinism()
    runstate.activate(runstate.RunState([], [], refcache_mode="off"))
    for dropout in (False, True):
        arrays, _ = training._pack(training.partner_trajectory(training.anchor_id(NETWORK), dropout))
        np.savez(os.path.join(folder, f"anchor-{'on' if dropout else 'off'}.npz"), **arrays)


def main(argv=None) -> int:
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2,3,4,8", help="comma-separated thread counts (default 1,2,3,4,8)")
    ap.add_argument("--json", help="also write every pair's windows here")
    ap.add_argument("--anchored", action="store_true",
                    help="the check's runs: every run set back to one anchor's (the torch reference's free run, "
                         "2 threads) after each window; the anchor is one of the runs compared")
    ap.add_argument("--worker", nargs=2, metavar=("THREADS", "FOLDER"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(int(args.worker[0]), args.worker[1], args.anchored)))
        return 0
    from twinbench.fixtures import tolerances as T
    from twinbench.suites import training

    folder = tempfile.mkdtemp(prefix="twinbench-drift-")
    if args.anchored:
        code = ("from twinbench.suites import drift; drift.save_anchor(" + repr(folder) + ")")
        env = dict(os.environ, TF_NUM_INTRAOP_THREADS="2", TF_CPP_MIN_LOG_LEVEL="2")
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
    for n in (int(t) for t in args.threads.split(",")):
        env = dict(os.environ, TF_NUM_INTRAOP_THREADS=str(n), TF_CPP_MIN_LOG_LEVEL="2")
        done = subprocess.run([sys.executable, "-m", "twinbench.suites.drift", "--worker", str(n), folder]
                              + ["--anchored"] * args.anchored, env=env, capture_output=True, text=True)
        if done.returncode:
            sys.stderr.write(done.stderr)
            return done.returncode
        got = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"threads {n}: torch {got['torch_threads']}, env {got['environ']}, {got['seconds']} s", flush=True)
    start = training.trajectory_start(NETWORK)
    results = {}
    for mode in ("off", "on"):
        names = sorted(p[:-4] for p in os.listdir(folder) if p.endswith(f"-{mode}.npz"))
        runs = {name: _load(os.path.join(folder, name + ".npz")) for name in names}
        exact = T.TRAJECTORY_STEPS if args.anchored else networks.get(NETWORK).trajectory_exact_steps
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                results[f"{a} vs {b}"] = _compare(runs[a], runs[b], start, T.TRAJECTORY_STEPS, exact)
        del runs
    identical = sorted(k for k, r in results.items() if max(r["loss"]) == 0)
    print(f"\n{len(results)} pairs; bit-identical losses (not a draw of the drift): {', '.join(identical) or 'none'}")
    for kind, literal in (("loss", T.TRAJECTORY_LOSS_DRIFT), ("weight", T.TRAJECTORY_WEIGHT_DRIFT)):
        table = np.array([r[kind] for r in results.values()])
        worst = table.max(axis=0)
        who = [list(results)[j] for j in table.argmax(axis=0)]
        print(f"\n{kind} drift per 20-step window, max over the pairs (and the pair), vs the literal:")
        for w, (v, lit, pair) in enumerate(zip(worst, literal, who)):
            print(f"  steps {20 * w:3d}-{20 * w + 19:3d}: {v:.3g}  literal {lit:.3g}  ratio {v / lit:.2f}  ({pair})")
        print("  median over the pairs: " + " ".join(f"{v:.2g}" for v in np.median(table, axis=0)))
    for kind, tol in (("exact_loss", T.TRAJECTORY_LOSS_ATOL_EXACT),
                      ("exact_weight", networks.get(NETWORK).trajectory_weight_rtol_exact)):
        pair = max(results, key=lambda k: results[k][kind])
        where = (f"every step, anchored every {networks.get(NETWORK).trajectory_window}" if args.anchored
                 else f"the first {networks.get(NETWORK).trajectory_exact_steps} steps")
        print(f"\n{kind} ({where}): max {results[pair][kind]:.3g} ({pair}), tolerance {tol:g}")
    if args.json:
        from twinbench.fixtures.files import atomic_write

        atomic_write(args.json, json.dumps(results, indent=1) + "\n")
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
