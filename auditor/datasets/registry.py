"""The dataset registry: `datasets.yaml`, read with a `yaml.SafeLoader` (no Python tags).

Anything the file gets wrong is refused (exit 2) with one sentence naming the file and line: a
path that is not a regular file, more than `MAX_BYTES`, text that is not UTF-8 or not YAML, a
key given twice in one mapping (YAML would silently keep the last: a second entry of the same
name), a dataset name that could not be a folder name, a key of the wrong type, null entries.
Anchors and aliases are allowed (`defaults: *shared`), but a document whose aliases expand to
more than `MAX_NODES` values (a "billion laughs") or refer to themselves is refused before
anything reads the expansion. Keys a kind's loader reads are checked against what the kind
declares when the kind is looked up (`auditor.datasets.kinds.kind_for`); the names under
`defaults` are checked against the run options by `audit run` (`auditor.config.resolve`),
which `audit datasets` does not import. The optional `mirror_symmetric` (true or false) says
whether a mirrored image keeps its class (`auditor.symmetry`); absent or null: not declared.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from auditor.errors import UserError
from auditor.fsutil import user_path

DEFAULT_REGISTRY = Path(__file__).resolve().parents[2] / "datasets.yaml"
KNOWN_KEYS = {"kind", "description", "root", "env", "classes", "defaults", "mirror_symmetric"}
MAX_BYTES = 1 << 20  # the shipped registry is 5 kB
MAX_NODES = 100_000  # YAML values after expanding aliases; the shipped registry has ~300
# A dataset name becomes a folder name (reports/<name>/, the image cache): no separators.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
OPTION = re.compile(r"[a-z][a-z0-9_]*")  # a run option's config key (`image_size`)
SCALARS = (str, int, float, bool, type(None))
TYPE_WORDS = {
    str: "text",
    int: "a whole number",
    float: "a number",
    list: "a list",
    dict: "a mapping",
    bool: "true or false",
}


class Located(dict):
    """A YAML mapping that remembers the 1-based line of each of its keys."""

    lines: dict[Any, int]


class RegistryLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses duplicate keys and alias bombs, and builds `Located`
    mappings. `source` names the file in the errors."""

    source: str = "<registry>"

    def compose_document(self) -> yaml.Node:
        node = super().compose_document()
        expanded_size(node, self.source)
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base`: the merged keys may be overridden here
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.setdefault(key, line)
            except TypeError:
                continue  # unhashable: the base class refuses it
            if first != line:
                raise UserError(
                    f"{self.source}, line {line}: {key!r} is given twice in one mapping "
                    f"(first on line {first}); YAML would silently keep the last"
                )
        return super().construct_mapping(node, deep)


def construct_located(loader: RegistryLoader, node: yaml.MappingNode) -> Iterator[Located]:
    data = Located()
    yield data
    data.update(loader.construct_mapping(node))
    data.lines = {loader.construct_object(k): k.start_mark.line + 1 for k, _ in node.value}


RegistryLoader.add_constructor("tag:yaml.org,2002:map", construct_located)


def expanded_size(root: yaml.Node, source: str) -> int:
    """The number of values `root` holds once every alias is expanded; refuses more than
    MAX_NODES, and an alias inside the node it names (a cycle), without expanding anything."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        where = f"{source}, line {node.start_mark.line + 1}"
        if id(node) in open_nodes:
            raise UserError(f"{where}: an alias refers to the value that contains it")
        open_nodes.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = []
        total = 1 + sum(size(child) for child in children)
        if total > MAX_NODES:
            raise UserError(
                f"{where}: its aliases expand to more than {MAX_NODES:,} values; a dataset "
                "registry needs far fewer (an alias bomb?)"
            )
        open_nodes.discard(id(node))
        sizes[id(node)] = total
        return total

    return size(root)


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    kind: str
    root: str | None
    env: str | None
    classes: list[str] | None
    defaults: dict[str, Any]
    description: str = ""
    options: dict[str, Any] = field(default_factory=dict)  # loader-specific keys
    # does a mirrored image keep its class (`auditor.symmetry`)? None: not declared
    mirror_symmetric: bool | None = None
    origin: str = ""  # where the entry is written: "<registry>, line N"

    def resolve_root(self, override: str | os.PathLike | None = None) -> Path | None:
        """--root, then the environment variable `env`, then `root` from the registry."""
        chosen = override or (os.environ.get(self.env) if self.env else None) or self.root
        return user_path(chosen, f"the root of dataset {self.name!r}") if chosen else None

    def root_hint(self) -> str:
        """How a user points the tool at this dataset's files."""
        via_env = f" or set {self.env}=DIR" if self.env else ""
        return f"pass --root DIR{via_env}"

    def where(self) -> str:
        """The entry's place in the registry, for messages."""
        return f"{self.origin or 'the dataset registry'} (dataset {self.name!r})"

    def class_list(self) -> list[str]:
        """The `classes` the registry lists; refused when a kind that needs them has none."""
        if self.classes is None:
            raise UserError(
                f"{self.where()}: a {self.kind} entry needs `classes`, the class names in label "
                "order"
            )
        return list(self.classes)


def registry_path() -> Path:
    return Path(os.environ.get("AUDIT_DATASETS") or DEFAULT_REGISTRY)  # empty: unset


def describe(value: Any) -> str:
    """What a YAML value is, in the words of an error message."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool | int | float):
        return f"{'true/false' if isinstance(value, bool) else 'a number'} ({value!r})"
    names = {str: "text", list: "a list", dict: "a mapping"}
    return next((n for t, n in names.items() if isinstance(value, t)), type(value).__name__)


def read_yaml(path: Path) -> Any:
    """The YAML document at `path`, refused (naming the file and line) unless it is a regular
    file of at most MAX_BYTES of UTF-8 YAML without duplicate keys or alias bombs."""
    try:
        if not path.is_file():
            what = "a folder" if path.is_dir() else "not a regular file"
            if not path.exists():
                raise UserError(
                    f"dataset registry {path} not found (set AUDIT_DATASETS to its path)"
                )
            raise UserError(f"dataset registry {path} is {what}; it must be a YAML file")
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as err:
        raise UserError(f"dataset registry {path} cannot be read ({err.strerror})") from None
    if len(data) > MAX_BYTES:
        raise UserError(f"dataset registry {path} is larger than {MAX_BYTES // 1024} kB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise UserError(f"{path}, line {line}: not UTF-8 text (save the file as UTF-8)") from None
    try:
        loader = RegistryLoader(text)  # its reader refuses control characters
        loader.source = str(path)
        return loader.get_single_data()
    except yaml.YAMLError as err:
        raise UserError(f"{path} is not plain YAML: {err}") from None
    except RecursionError:
        raise UserError(f"{path}: values nested too deeply") from None


def checked(body: Located, key: str, path: Path, name: str, allowed: tuple[type, ...]) -> Any:
    """`body[key]` when it is one of `allowed` (absent: None); else refused naming its line."""
    value = body.get(key)
    if isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed):
        return value
    shown = " or ".join(TYPE_WORDS[t] for t in allowed if t in TYPE_WORDS)
    raise UserError(
        f"{path}, line {body.lines[key]}: `{key}` of dataset {name!r} must be {shown}, "
        f"found {describe(value)}"
    )


def parse_entry(name: Any, body: Any, path: Path, line: int) -> DatasetEntry:
    """One registry entry, every known key type-checked."""
    where = f"{path}, line {line}"
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise UserError(
            f"{where}: dataset name {name!r} must be text of letters, digits, '.', '_' and '-' "
            "(it names folders)"
        )
    if not isinstance(body, Located) or "kind" not in body:
        raise UserError(f"{where}: entry {name!r} must be a mapping with a 'kind'")
    kind = checked(body, "kind", path, name, (str,))
    root = checked(body, "root", path, name, (str, type(None)))
    env = checked(body, "env", path, name, (str, type(None)))
    description = checked(body, "description", path, name, (str, type(None)))
    classes = checked(body, "classes", path, name, (list, type(None)))
    defaults = checked(body, "defaults", path, name, (dict, type(None))) or {}
    mirror_symmetric = checked(body, "mirror_symmetric", path, name, (bool, type(None)))
    at = f"{path}, line {{}}: dataset {name!r}:"
    if classes is not None:
        bad = [c for c in classes if not isinstance(c, str) or not c.strip()]
        repeated = [c for c, n in Counter(map(repr, classes)).items() if n > 1]
        if bad or repeated or len(classes) < 2:
            problem = (
                f"class {bad[0]!r} is not text (quote it)"
                if bad
                else f"class {repeated[0]} is listed twice"
                if repeated
                else "a classifier needs at least 2 classes"
            )
            raise UserError(f"{at.format(body.lines['classes'])} `classes`: {problem}")
    for key, value in defaults.items():
        key_at = at.format(defaults.lines[key])
        if not isinstance(key, str) or not OPTION.fullmatch(key):
            dashed = isinstance(key, str) and "-" in key
            hint = f" (write {key.replace('-', '_')})" if dashed else ""
            raise UserError(f"{key_at} `defaults` key {key!r} is not an option name{hint}")
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(item, SCALARS) for item in items):
            raise UserError(
                f"{key_at} `defaults.{key}` must be a value or a list of values, "
                f"found {describe(value)} inside"
            )
    return DatasetEntry(
        name=name,
        kind=kind,
        root=root,
        env=env,
        classes=classes,
        defaults=dict(defaults),
        description=description or "",
        options={k: v for k, v in body.items() if k not in KNOWN_KEYS},
        origin=where,
        mirror_symmetric=mirror_symmetric,
    )


def load_registry(path: Path | None = None) -> dict[str, DatasetEntry]:
    """Every entry of the registry at `path` (default: $AUDIT_DATASETS, else the shipped one)."""
    path = Path(path or registry_path())
    raw = read_yaml(path)
    if not isinstance(raw, Located):
        raise UserError(f"{path}: expected a mapping of dataset names to entries")
    return {str(name): parse_entry(name, body, path, raw.lines[name]) for name, body in raw.items()}


def get_entry(name: str, registry: dict[str, DatasetEntry]) -> DatasetEntry:
    if name not in registry:
        raise UserError(
            f"unknown dataset {name!r}; known: {', '.join(registry)} (see `audit datasets`)"
        )
    return registry[name]
