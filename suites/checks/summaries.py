"""Summaries: torchinfo and keras.Model.summary side by side in reports/summaries/, each
checked against the literal parameter total."""

import re

from twinbench.fixtures.files import atomic_write
from twinbench.impls import networks, registry
from twinbench.suites.helpers import fmt
from twinbench.suites.runstate import REPORTS

def _total(text: str) -> int:
    m = re.search(r"Total params:\s*([\d,]+)", text)
    assert m, f"no 'Total params' line in summary:\n{text}"
    return int(m.group(1).replace(",", ""))


def check_summaries_side_by_side(network):
    specs = [registry.reference("torch", network), registry.reference("keras", network)]
    twins = {s.id: registry.build(s) for s in specs}
    texts = {name: twin.summary() for name, twin in twins.items()}
    models = REPORTS / "models"
    models.mkdir(parents=True, exist_ok=True)
    for name, twin in twins.items():
        if twin.framework == "keras":
            note = twin.diagram(str(models / f"{name}.png"))
            if "skipped" in note:  # the report shows why there is no diagram
                atomic_write(models / f"{name}.txt", note + "\n")
            else:
                (models / f"{name}.txt").unlink(missing_ok=True)
    body = "\n\n".join(f"## {name}\n\n```\n{text}\n```" for name, text in texts.items())
    atomic_write(REPORTS / "summaries" / f"{network}.md", f"# {network}: torchinfo and keras summaries\n\n{body}\n")
    spec = networks.get(network)
    for name, text in texts.items():
        got, want = _total(text), spec.total_params
        if twins[name].framework == "torch":  # torchinfo counts parameters; a BatchNorm's statistics are buffers
            want -= spec.state_size
        assert got == want, f"{name}: the framework's summary says {fmt(got)} parameters, expected {fmt(want)}"
