"""The structure the code promises: kinds described in one place, imports in
one direction, a worker for every queue. Read from the source, so a change
that breaks a rule fails here before it fails in production."""

import ast
import re
from pathlib import Path

import pytest
import yaml
from django.conf import settings

from deployments import queue
from workers.targets import registry
from workers.targets.base import CAPABILITY_METHODS, TargetAdapter

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("dashboard", "deployments", "workers")
# Where kinds may be named and compared: the registry and the kind packages.
KIND_HOME = ROOT / "workers" / "targets"


def _sources(*packages: str):
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _mentions_kind(node: ast.AST) -> bool:
    """`target.kind`, `deployment.target.kind`, `self.target.kind`, or a bare `kind`."""
    if isinstance(node, ast.Attribute) and node.attr == "kind":
        return "target" in ast.unparse(node.value).lower()
    return isinstance(node, ast.Name) and node.id == "kind"


def _kind_constants(node: ast.AST) -> bool:
    values = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
    return any(isinstance(v, ast.Constant) and v.value in registry.KINDS for v in values)


def kind_comparisons(path: Path, root: Path = ROOT) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        target_kind = any(isinstance(o, ast.Attribute) and _mentions_kind(o) for o in operands)
        named_kind = any(_mentions_kind(o) for o in operands) and any(_kind_constants(o) for o in operands)
        if target_kind or named_kind:
            found.append(f"{path.relative_to(root)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_code_outside_the_registry_and_kind_packages_branches_on_a_kind():
    outside = [p for p in _sources(*PACKAGES) if KIND_HOME not in p.parents]
    assert outside, "the walk found no source files"
    found = [hit for path in outside for hit in kind_comparisons(path)]
    assert found == []


def test_the_kind_check_finds_what_it_is_meant_to_find(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "if deployment.target.kind == 'local': pass\n"
        "if kind in ('azureml_v2_kubernetes', 'azureml_v2_managed'): pass\n"
        "if operation.kind == 'deploy': pass\n"  # an operation's kind, not a target's
    )
    hits = [hit.split(": ", 1)[1] for hit in kind_comparisons(sample, root=tmp_path)]
    assert hits == ["deployment.target.kind == 'local'", "kind in ('azureml_v2_kubernetes', 'azureml_v2_managed')"]


def test_templates_ask_capabilities_not_kinds():
    names = "|".join(registry.KINDS)
    pattern = re.compile(rf"target\.(kind\b(?!_label)|is_azure)|\.kind\s*==\s*\"({names})\"")
    found = [
        f"{path.relative_to(ROOT)}: {line.strip()[:120]}"
        for path in sorted((ROOT / "templates").rglob("*.html"))
        for line in path.read_text().splitlines()
        if pattern.search(line)
    ]
    assert found == []


def test_no_template_comment_spans_lines():
    # Django's {# #} is one line only: a longer one is printed on the page.
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "templates").rglob("*.html"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if line.count("{#") != line.count("#}")
    ]
    assert found == []


def _top_level_imports(path: Path, known: set[str]) -> set[str]:
    """Modules of ours imported when `path` is imported (not those inside functions)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    imported = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for child in [node] if not isinstance(node, (ast.Try, ast.If)) else ast.walk(node):
            if isinstance(child, ast.Import):
                imported.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join([*package.split(".")[: len(package.split(".")) - child.level + 1], base]).strip(".")
                imported.add(base)
                imported.update(f"{base}.{alias.name}" for alias in child.names)
    return {name for name in imported if name in known and name != module}


def import_graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in _sources(*PACKAGES)}
    return {module: _top_level_imports(path, set(paths)) for module, path in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_modules():
    graph = import_graph()
    assert "deployments.services.operations" in graph
    assert cycles(graph) == []


def test_the_cycle_check_sees_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_imports_run_one_way():
    graph = import_graph()
    # Tasks reach services inside their functions; services send tasks by name.
    assert not {m for m in graph["workers.tasks"] if m.startswith("deployments.")}
    assert not [m for m, deps in graph.items() if "workers.tasks" in deps]
    # Models use policy for .visible_to(); policy imports no model, not even inside a function.
    policy = ast.parse((ROOT / "deployments" / "policy.py").read_text())
    imported = [ast.unparse(n) for n in ast.walk(policy) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert [line for line in imported if "models" in line] == []
    # Kinds know nothing of the app above them but two leaves: its error type and its secret box.
    for module, deps in graph.items():
        if module.startswith("workers.targets"):
            allowed = {"deployments.errors", "deployments.crypto"}
            assert {d for d in deps if d.startswith("deployments")} <= allowed, module


@pytest.mark.parametrize("kind", sorted(registry.KINDS))
def test_every_capability_of_a_kind_has_its_adapter_method(kind):
    descriptor = registry.KINDS[kind]
    adapter = descriptor.adapter_class()
    assert issubclass(adapter, TargetAdapter)
    for method in ("deploy", "status", "delete", "test_connection"):
        assert getattr(adapter, method) is not getattr(TargetAdapter, method), f"{kind} lacks {method}"
    for method, capability in CAPABILITY_METHODS.items():
        overridden = getattr(adapter, method) is not getattr(TargetAdapter, method)
        assert overridden == descriptor.has(capability), f"{kind}: {method} vs capability {capability}"


def test_every_queue_has_a_worker_in_the_procfile_and_in_compose():
    routed = set(queue.worker_queues(host="HOST")) - {"host.HOST"}
    procfile = (ROOT / "Procfile").read_text()
    consumed = set()
    for line in procfile.splitlines():
        found = re.search(r"--queues (\S+)", line)
        if found:
            consumed.update(found.group(1).split(","))
    assert routed <= consumed
    assert "host.${WORKER_HOST:-$(hostname)}" in consumed
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    compose_consumed = set()
    for service in compose["services"].values():
        command = service.get("command") or []
        if "worker" in command and "--queues" in command:
            compose_consumed.update(command[command.index("--queues") + 1].split(","))
    assert routed <= compose_consumed
    assert any(q.startswith("host.") for q in compose_consumed)
    assert settings.CELERY_TASK_DEFAULT_QUEUE in routed
