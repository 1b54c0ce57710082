"""The JSON schema of the spec files (``trb schema``; ``trb schema --sweep``), so an editor
completes and checks them as they are written.

With the YAML language server (VS Code's YAML extension, Neovim, Helix, Zed, Emacs'
lsp-mode; JetBrains IDEs read the same comment), write the schema once::

    trb schema > trb-spec.schema.json
    trb schema --sweep > trb-sweep.schema.json

and name it in the first line of each spec file, relative to the file or as a URL::

    # yaml-language-server: $schema=../trb-spec.schema.json
    name: quickstart
    models: ...

(or map file patterns to it once, in the editor's ``yaml.schemas`` setting). The editor
then offers every field with its description, and marks an unknown key, a wrong type or a
value outside its range as it is typed. The schema describes the shape; ``trb run
--dry-run`` still checks what it cannot say (exactly one of ``path`` and ``arch``, a
task the model can run, files that exist, what this machine offers).
"""

from __future__ import annotations

from typing import Any, Dict

from ._model import ExperimentSpec
from ._sweep import SweepSpec

#: the dialect pydantic writes
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def json_schema(sweep: bool = False) -> Dict[str, Any]:
    """The JSON schema of an experiment spec (``ExperimentSpec``), or with ``sweep`` of a
    sweep spec (``SweepSpec``), as a dict (``json.dumps`` it)."""
    model = SweepSpec if sweep else ExperimentSpec
    schema = model.model_json_schema()
    title = "trt_ray_bench sweep spec (trb sweep)" if sweep else "trt_ray_bench experiment spec (trb run)"
    return {"$schema": DIALECT, **schema, "title": title}
