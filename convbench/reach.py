"""The code a kernel reaches: the object the registry names, and of the modules of its package
only the definitions it uses, followed name by name.

Results carry a hash of each kernel's code so that ``compare``, ``history`` and ``ab`` can tell a
kernel whose code changed from one that ran the same code on a slower machine. A hash of every file
a kernel imports (``code_hash``) marks every CPU kernel as changed when one helper in
``kernels/cpu/_common.py`` changes; the comparison is then left with no unchanged kernel to show how
far the machine itself moved. :func:`reach_hash` hashes less, and still everything that runs:

- the kernel's object (the registry's target, ``module:name``), and what it names in its module;
- in each module of the package it imports from, the top-level definitions (functions, classes,
  names assigned) it names, then the ones those name, and so on, each import followed to the
  module it names; a module used as an object (``import kernels.common``) counts whole;
- the statements each of those modules, and the packages above them, run on import that bind no
  name (``if``, ``try``, calls): ``kernels/cpu/__init__.py`` sets the OpenMP wait policy that way.

Code is compared as :func:`convbench.machine.code_text` writes it, so comments, docstrings and
layout do not count. A name is followed wherever it is written, even where a local variable of
the same name hides the module's (that only adds code). What it cannot see: a definition reached
through a string (``getattr(module, "name")``); the kernels have none.
"""

import ast
import functools
import hashlib
import importlib.util
from pathlib import Path

from .machine import strip_prose

WHOLE = "<whole>"        # a module used as an object: all of it
AT_IMPORT = "<import>"   # the statements a module runs on import that bind no name
ON_IMPORT = "(code run on import)"   # their label in :meth:`Reach.definitions`


class _Module:
    """One parsed module: which statements bind which top-level name, and what runs on import."""

    def __init__(self, name, path, is_package):
        self.name = name
        self.package = name if is_package else name.rpartition(".")[0]
        self.body = strip_prose(ast.parse(path.read_text(encoding="utf-8"))).body
        self.binds = {}       # name -> [index of a statement that binds it]
        self.imports = {}     # name -> [(index, alias)]: "import a.b" and "import a.c" both bind a
        self.at_import = []   # indices of statements binding no name
        for index, statement in enumerate(self.body):
            if isinstance(statement, (ast.Import, ast.ImportFrom)):
                for alias in statement.names:
                    bound = alias.asname or alias.name.split(".")[0]
                    if alias.name == "*":
                        self.at_import.append(index)
                    else:
                        self.imports.setdefault(bound, []).append((index, alias))
                continue
            names = _bound_names(statement)
            if names is None:
                self.at_import.append(index)
            for name in names or ():
                self.binds.setdefault(name, []).append(index)


def _bound_names(statement):
    """The top-level names ``statement`` binds, or None when it is not a plain definition."""
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [statement.name]
    if isinstance(statement, ast.Assign):
        targets = statement.targets
    elif isinstance(statement, (ast.AnnAssign, ast.AugAssign)):
        targets = [statement.target]
    else:
        return None
    names = []
    for target in targets:
        for node in ast.walk(target):
            if isinstance(node, (ast.Attribute, ast.Subscript)):
                return None        # it changes something else: runs on import
            if isinstance(node, ast.Name):
                names.append(node.id)
    return names


@functools.lru_cache(maxsize=256)
def _parse(path, mtime_ns, size, name, is_package):
    return _Module(name, Path(path), is_package)


def _load(root, name):
    """The parsed module ``name`` under ``root``, or None where it has no Python source there."""
    base = Path(root, *name.split("."))
    for path, is_package in ((base / "__init__.py", True), (base.with_suffix(".py"), False)):
        if path.is_file():
            stat = path.stat()
            return _parse(str(path), stat.st_mtime_ns, stat.st_size, name, is_package)
    return None


def _import_target(module, statement, alias):
    """(module name, attribute or None) that ``alias`` of an import in ``module`` names."""
    if isinstance(statement, ast.Import):
        return alias.name, None
    base = imported_module(module.package, statement.level, statement.module)
    return base, (None if alias.name == "*" else alias.name)


def imported_module(package, level, name):
    """The module ``from <level dots><name> import ...`` names, in ``package``."""
    if not level:
        return name or ""
    for _ in range(level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{name}" if name else package


class Reach:
    """What ``target`` reaches within its top-level package, under ``root``: :attr:`segments`, the
    code of each statement that counts, by (module, statement index, imported name).

    ``target``: a module (``kernels.cpu.fft``), all of which counts, or a name in one
    (``kernels.cpu.winograd:winograd_f4x4_3x3``), from which the rest of its module is followed
    as the other modules are: kernels that share a module differ where their code does."""

    def __init__(self, target, root):
        module_name, _, attribute = target.partition(":")
        self.root, self.top = Path(root), module_name.split(".")[0]
        self.segments = {}
        self.labels = {}      # segment key -> the name it defines, or ON_IMPORT
        self._seen = set()
        todo = [(module_name, attribute or WHOLE)]
        while todo:
            item = todo.pop()
            if item not in self._seen:
                self._seen.add(item)
                todo.extend(self._visit(*item))

    @property
    def modules(self):
        """Names of the modules some of whose code counts."""
        return sorted({module for module, _, _ in self.segments})

    def text(self):
        """The reached code, one module after another in name order, each in source order."""
        return "\n".join(f"# {module}\n{code}"
                         for (module, _, _), code in sorted(self.segments.items()))

    def digest(self, length=12):
        return hashlib.sha256(self.text().encode()).hexdigest()[:length]

    def definitions(self):
        """{"module:name": code} of the reached code, by the top-level name each piece binds
        (:data:`ON_IMPORT` for what a module runs on import and binds no name)."""
        found = {}
        for key, code in sorted(self.segments.items()):
            label = f"{key[0]}:{self.labels[key]}"
            found[label] = f"{found[label]}\n{code}" if label in found else code
        return found

    def _visit(self, name, what):
        module = _load(self.root, name)
        if module is None:
            return []
        follow = [(name, AT_IMPORT)]
        parent = name.rpartition(".")[0]
        if parent:
            follow.append((parent, AT_IMPORT))      # a package's __init__ runs first
        if what == WHOLE:
            return follow + [(name, bound) for bound in (*module.binds, *module.imports)]
        if what == AT_IMPORT:
            indices = module.at_import
        else:
            indices = module.binds.get(what, [])
            for index, alias in module.imports.get(what, ()):
                statement = module.body[index]
                key = (name, index, alias.name)
                self.segments[key] = ast.unparse(
                    type(statement)(**{**vars(statement), "names": [alias]}))
                self.labels[key] = what
                follow.extend(self._follow_import(module, statement, alias))
        for index in indices:
            statement = module.body[index]
            self.segments[(name, index, "")] = ast.unparse(statement)
            self.labels[(name, index, "")] = ON_IMPORT if what == AT_IMPORT else what
            follow.extend(self._references(module, statement))
        return follow

    def _follow_import(self, module, statement, alias):
        target, attribute = _import_target(module, statement, alias)
        if target.split(".")[0] != self.top:
            return []                                   # outside the package: not ours to hash
        if attribute is None:
            return [(target, WHOLE)]
        if _load(self.root, f"{target}.{attribute}") is not None:
            return [(f"{target}.{attribute}", WHOLE)]   # "from . import module"
        return [(target, attribute)]

    def _references(self, module, statement):
        """What ``statement`` leads to: each name it uses, in ``module``, and the imports it makes
        inside a function."""
        follow = []
        for node in ast.walk(statement):
            if isinstance(node, ast.Name):
                follow.append((module.name, node.id))
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    follow.extend(self._follow_import(module, node, alias))
        return follow


def module_root(module_name):
    """The folder that holds ``module_name``'s top-level package, as Python would import it."""
    top = module_name.split(".")[0]
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.origin:
        raise ImportError(f"no module named {top}")
    return Path(spec.origin).resolve().parent.parent


def reach_hash(target, root=None, length=12):
    """Short hash of the code ``target`` (a module, or ``module:name``) reaches (:class:`Reach`),
    from the checkout at ``root`` (by default where Python imports it from). None when the module
    is not there."""
    root = module_root(target.partition(":")[0]) if root is None else root
    reach = Reach(target, root)
    return reach.digest(length) if reach.segments else None


def changed_definitions(target, root_a, root_b):
    """What differs in the code ``target`` reaches between two checkouts: a sorted list of
    ``(name, how)``, ``name`` as :meth:`Reach.definitions` gives it and ``how`` one of "changed",
    "only in the first", "only in the second". Empty when the reached code is identical; None
    when the target's module is missing from either."""
    reaches = [Reach(target, root) for root in (root_a, root_b)]
    if not all(reach.segments for reach in reaches):
        return None
    first, second = (reach.definitions() for reach in reaches)
    found = []
    for name in sorted(set(first) | set(second)):
        if name not in second:
            found.append((name, "only in the first"))
        elif name not in first:
            found.append((name, "only in the second"))
        elif first[name] != second[name]:
            found.append((name, "changed"))
    return found


def describe(changes, limit=None):
    """:func:`changed_definitions`'s list as text, "`name`" each, marked "(new)" where only the
    second checkout has it and "(removed)" where only the first does; past ``limit`` names, how
    many more."""
    marks = {"changed": "", "only in the first": " (removed)", "only in the second": " (new)"}
    named = [f"`{name}`{marks[how]}" for name, how in changes[:limit]]
    if limit is not None and len(changes) > limit:
        named.append(f"and {len(changes) - limit} more")
    return ", ".join(named)
