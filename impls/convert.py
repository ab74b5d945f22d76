"""Convert a checkpoint between the frameworks, through the canonical layout, and prove it.

    python -m twinbench.impls.convert torch2keras NETWORK IN.pt OUT.weights.h5
    python -m twinbench.impls.convert keras2torch NETWORK IN.weights.h5 OUT.pt

IN is a checkpoint of the reference architecture (a torch ``state_dict`` saved with
``torch.save``; Keras weights saved with ``save_weights``). The converted model must pass
forward parity with the source on real test data (fixtures/tolerances.py) before anything
is written; the output is written atomically. Exit status 0 on success, 1 if parity fails,
2 on bad input.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from twinbench.impls import frameworks  # noqa: F401  (import order)
import numpy as np
import torch

from twinbench.fixtures import expected as E
from twinbench.fixtures import tolerances as T
from twinbench.impls import networks, registry


class ConversionError(RuntimeError):
    pass


def _test_batch(network: str, n: int = 256) -> np.ndarray:
    return networks.get(network).split("test", n)[0]


def _suffix(direction: str) -> str:
    """The file suffix of the checkpoint that ``direction`` writes."""
    return ".weights.h5" if direction == "torch2keras" else ".pt"


def _check_arguments(direction: str, network: str, src: str, dst: str) -> None:
    """Refuse an unknown network or direction, a missing input, or an output with the wrong suffix."""
    if network not in E.NETWORKS:
        raise ConversionError(f"unknown network {network!r}; use one of {', '.join(E.NETWORKS)}")
    if direction not in ("torch2keras", "keras2torch"):
        raise ConversionError(f"unknown direction {direction!r}; use torch2keras or keras2torch")
    if not Path(src).is_file():
        raise ConversionError(f"input checkpoint {src} not found")
    want_suffix = _suffix(direction)
    if not dst.endswith(want_suffix):
        raise ConversionError(f"output {dst} must end in {want_suffix}")


def _load_source(source, direction: str, network: str, src: str) -> None:
    """Load the checkpoint ``src`` into the source twin, or say it is not of the reference architecture."""
    try:
        if direction == "torch2keras":
            source.model.load_state_dict(torch.load(src, weights_only=True))
        else:
            source.model.load_weights(src)
    except Exception as exc:
        raise ConversionError(f"{src} is not a {network} checkpoint of the reference architecture: {exc}") from exc


def _check_parity(source, target, network: str) -> float:
    """The max |diff| of the two twins' outputs on real test data; raise if beyond the forward tolerance."""
    x = _test_batch(network)
    a, b = source.forward(x), target.forward(x)
    diff = float(np.abs(a - b).max())
    if not np.all(np.abs(a - b) <= T.FORWARD_ATOL + T.FORWARD_RTOL * np.abs(a)):
        raise ConversionError(f"forward parity failed after conversion: max |diff| {diff:.3g}, tolerance "
                              f"atol {T.FORWARD_ATOL} + rtol {T.FORWARD_RTOL}; nothing written")
    return diff


def _save_atomically(target, direction: str, dst: str) -> None:
    """Write the target twin's checkpoint to a temporary file beside ``dst``, then rename it."""
    out = Path(dst)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=_suffix(direction))
    os.close(fd)
    try:
        if direction == "torch2keras":
            target.model.save_weights(tmp, overwrite=True)
        else:
            torch.save(target.model.state_dict(), tmp)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def convert(direction: str, network: str, src: str, dst: str) -> float:
    """Convert ``src`` into ``dst``; return the measured max |diff| of the outputs."""
    _check_arguments(direction, network, src, dst)
    torch_twin = registry.build(registry.reference("torch", network))
    keras_twin = registry.build(registry.reference("keras", network))
    source, target = (torch_twin, keras_twin) if direction == "torch2keras" else (keras_twin, torch_twin)
    _load_source(source, direction, network, src)
    target.set_weights(source.get_weights())
    diff = _check_parity(source, target, network)
    _save_atomically(target, direction, dst)
    return diff


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m twinbench.impls.convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("direction", choices=["torch2keras", "keras2torch"])
    parser.add_argument("network", choices=list(E.NETWORKS))
    parser.add_argument("src", help="input checkpoint (.pt state_dict, or Keras .weights.h5)")
    parser.add_argument("dst", help="output checkpoint (.weights.h5 for torch2keras, .pt for keras2torch)")
    args = parser.parse_args(argv)
    try:
        diff = convert(args.direction, args.network, args.src, args.dst)
    except ConversionError as exc:
        print(f"convert: {exc}", file=sys.stderr)
        return 1 if "parity" in str(exc) else 2
    print(f"wrote {args.dst}; forward parity on 256 test examples: max |diff| {diff:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
