"""An import-linter contract type, `acyclic_modules`: no module imports itself through other modules.

import-linter's own `acyclic_siblings` squashes each package into one node,
so it also refuses package-level loops that are no module cycle
(`lsml.cli.start` imports `lsml.launcher`, which imports `lsml.cli.stack`). This
contract works on modules, with every import grimp finds: top-level ones and
those inside functions, which Python only resolves when the
function runs, so a cycle through them passes `import lsml` and hides until
then. A broken contract names each cycle as a chain with file lines.

Registered in pyproject.toml (`[tool.importlinter] contract_types`); `hack/lint`
runs `lint-imports` from the repository root, which puts `hack` on the path.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import grimp
from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck
from importlinter.domain.helpers import module_expressions_to_modules


class AcyclicModulesContract(Contract):
    """`containers`: packages (module expressions) whose modules, with all their descendants, form no cycle."""

    type_name = "acyclic_modules"

    containers = fields.ListField(subfield=fields.ModuleExpressionField())

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        roots = {m.name for m in module_expressions_to_modules(graph, self.containers, raise_if_unmatched=True)}
        modules = sorted(m for r in roots for m in {r} | graph.find_descendants(r))
        cycles = [cycle for component in _components(graph, modules) for cycle in _cycles(graph, sorted(component))]
        return ContractCheck(kept=not cycles, metadata={"cycles": cycles})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for cycle in check.metadata["cycles"]:
            output.print_error(f"Import cycle: {' -> '.join(cycle['modules'])}")
            for line in cycle["lines"]:
                output.print_error(f"  {line}")
            output.new_line()
        output.print_error(
            "Break each cycle: move what both sides need into a module of its own, or let the lower "
            "module offer a hook the higher one subscribes to (lsml.training.publishing)."
        )


def _components(graph: grimp.ImportGraph, modules: list[str]) -> list[set[str]]:
    """The strongly connected components with more than one module (a module and everything that both
    imports it and is imported by it, transitively)."""
    inside = set(modules)
    seen: set[str] = set()
    components = []
    for module in modules:
        if module in seen:
            continue
        component = graph.find_upstream_modules(module) & graph.find_downstream_modules(module) & inside
        if component:
            component.add(module)
            seen |= component
            components.append(component)
    return components


def _cycles(graph: grimp.ImportGraph, component: list[str]) -> list[dict[str, Any]]:
    """The shortest cycle through each module of the component, each named once, with the import line of each step."""
    found: dict[frozenset, list[str]] = {}
    for start in component:
        chains = [
            graph.find_shortest_chain(importer=step, imported=start)
            for step in sorted(graph.find_modules_directly_imported_by(start) & set(component))
        ]
        modules = [start, *min((c for c in chains if c), key=len)]
        found.setdefault(frozenset(pairwise(modules)), modules)  # a rotation is the same cycle
    return [{"modules": modules, "lines": _import_lines(graph, modules)} for modules in found.values()]


def _import_lines(graph: grimp.ImportGraph, modules: list[str]) -> list[str]:
    lines = []
    for importer, imported in pairwise(modules):
        for detail in graph.get_import_details(importer=importer, imported=imported)[:1]:
            lines.append(f"{importer}:{detail['line_number']}: {detail['line_contents'].strip()}")
    return lines
