"""Writes the reference pages at `mkdocs build` (mkdocs-gen-files): each from the code it
documents (ablate/reference.py), so the reference cannot drift from the code."""

import mkdocs_gen_files

from ablate.reference import cli_reference, registries_reference, results_reference, schema_reference, spec_reference

for page, text in {"reference/spec.md": spec_reference(), "reference/cli.md": cli_reference(),
                   "reference/results.md": results_reference(), "reference/registries.md": registries_reference(),
                   "reference/schema.md": schema_reference()}.items():
    with mkdocs_gen_files.open(page, "w") as out:
        out.write(text)
