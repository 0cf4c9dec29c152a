"""Reading a config file and wording what is wrong with it:
YAML read strictly (no key given twice, no nesting past MAX_DEPTH, never a
traceback), converted into a schema (msgspec), and every error one line
naming the key path and what was expected. `agent.config` and
`collector.config` hold the schemas; this module knows none of them.
"""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path

import msgspec
import yaml

class ConfigError(Exception):
    """A config cannot be used; str() is the one line shown to the user."""


def load_as(path: str | Path, root: type, problems, empty_ok: bool = False):
    """`load` for any schema (the collector's too): same reading, same wording."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ConfigError(f"{path}: cannot read the file: {reason}") from None
    return parse_as(text, str(path), root, problems, empty_ok)


MAX_DEPTH = 64        # nesting levels a config may use (the schema needs about 8)


def read_yaml(text: str, source: str, empty_ok: bool = False) -> dict:
    """The YAML mapping at the top of a config; ConfigError (one line) otherwise."""
    if (deep := _too_deep(text)) is not None:
        raise ConfigError(f"{source}: line {deep}: nested more than {MAX_DEPTH} levels deep "
                          f"(expected a config of at most {MAX_DEPTH})")
    try:
        loader = _StrictLoader(text)
        try:
            node = loader.get_single_node()
            if (dup := _duplicate_key(node)) is not None:
                raise ConfigError(f"{source}: {dup}")
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: {_yaml_problem(e)}") from None
    except RecursionError:     # aliases can nest deeper than the text shows
        raise ConfigError(f"{source}: nested too deep (expected a config of at most "
                          f"{MAX_DEPTH} levels)") from None
    if data is None and empty_ok:
        data = {}
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise ConfigError(f"{source}: expected a mapping of settings at the top level, got {got}")
    return data


def parse_as(text: str, source: str, root: type, problems, empty_ok: bool = False):
    """Parse YAML into `root`; `problems(config)` yields (key, problem) rules."""
    data = read_yaml(text, source, empty_ok)
    try:
        config = msgspec.convert(data, root, str_keys=True)
    except msgspec.ValidationError as e:
        raise ConfigError(f"{source}: {_explain(str(e), root)}") from None
    for key, problem in problems(config):
        raise ConfigError(f"{source}: {key}: {problem}")
    return config


def every_problem(data: dict, root: type, problems) -> tuple[object | None, list[str]]:
    """(config or None, every "key: problem" line) for a YAML mapping: each schema
    error is reported, the bad value set aside and the rest checked again, then
    the rules a type cannot say (those touching a key already reported are
    consequences of it, and left out)."""
    import copy
    data, found, reported = copy.deepcopy(data), [], []
    tainted = []     # objects a bad value was set aside in: their rules would only echo it
    removed: dict[tuple, list[int]] = {}          # list path -> original indexes removed
    for _ in range(200):
        try:
            config = msgspec.convert(data, root, str_keys=True)
            break
        except msgspec.ValidationError as e:
            line = _explain(str(e), root)
            m = _MSGSPEC.match(str(e))
            parts = _parts((m["path"] or "").lstrip("."))
            field = re.match(r"Object (?:contains unknown|missing required) field `(.*)`",
                             m["msg"])
            here = parts + ([field[1]] if field else [])
            key = _key(_original(here, removed))
            # Name the key as the file numbers it, not as the pruned data does.
            line = line.replace(_key(here) + ": ", key + ": ", 1) if _key(here) else line
            if not any(keys_overlap(key, k) for k in reported):
                found.append(line)
                reported.append(key)
            missing = m["msg"].startswith("Object missing required")
            if not parts and (missing or not field):
                return None, found            # nothing left to set aside
            if not (field and not missing):   # an unknown key changes nothing when removed
                tainted.append(_key(_original(parts[:-1], removed)) or key)
            _set_aside(data, parts if missing or not field else parts + [field[1]], removed)
    else:
        return None, found
    for key, problem in problems(config):
        if not any(keys_overlap(key, k) for k in reported + tainted):
            found.append(f"{key}: {problem}")
    return config, found


def _parts(path: str) -> list:
    return [int(p[1:-1]) if p.startswith("[") else p
            for p in re.findall(r"[^.\[\]]+|\[\d+\]", path)]


def _key(parts: list) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


def keys_overlap(a: str, b: str) -> bool:
    """One key path is the other or inside it (a problem caused by another)."""
    def inside(x, y):
        return x == y or x.startswith(y + ".") or x.startswith(y + "[")
    return inside(a, b) or inside(b, a)


def _original(parts: list, removed: dict) -> list:
    """A path in the pruned data as a path in the file (list items removed before)."""
    out = []
    for p in parts:
        if isinstance(p, int):
            for r in sorted(removed.get(tuple(out), [])):
                if r <= p:
                    p += 1
        out.append(p)
    return out


def _set_aside(data, parts: list, removed: dict) -> None:
    """Remove the value at a path (so the schema's default, or the next error, shows)."""
    parent = data
    for p in parts[:-1]:
        parent = parent[p]
    last = parts[-1]
    if isinstance(parent, list):
        removed.setdefault(tuple(_original(parts[:-1], removed)), []).append(
            _original(parts, removed)[-1])
        parent.pop(last)
    elif isinstance(parent, dict):
        parent.pop(last, None)


def _too_deep(text: str) -> int | None:
    """The line where the YAML nests deeper than MAX_DEPTH (scanned, not parsed: a
    parser would recurse), or None."""
    depth = 0
    try:
        for tok in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(tok, (yaml.BlockMappingStartToken, yaml.BlockSequenceStartToken,
                                yaml.FlowMappingStartToken, yaml.FlowSequenceStartToken)):
                depth += 1
                if depth > MAX_DEPTH:
                    return tok.start_mark.line + 1
            elif isinstance(tok, (yaml.BlockEndToken, yaml.FlowMappingEndToken,
                                  yaml.FlowSequenceEndToken)):
                depth -= 1
    except yaml.YAMLError:
        return None           # the parser words it
    return None


_MSGSPEC = re.compile(r"^(?P<msg>.*?)(?: - at (?P<key>`key` in )?`\$(?P<path>[^`]*)`)?$")


def _explain(message: str, root: type) -> str:
    """Turn msgspec's wording into 'key.path: what was expected'."""
    m = _MSGSPEC.match(message)
    msg, path = m["msg"], (m["path"] or "").lstrip(".")
    if m["key"]:
        return f"{path or '(top level)'}: expected str keys, found a key that is not text " \
               f"(quote it: YAML reads on/off/yes/no as true/false and 1 as a number)"
    if found := re.match(r"Object missing required field `(.*)`", msg):
        return f"{_join(path, found[1])}: missing, and it is required"
    if found := re.match(r"Object contains unknown field `(.*)`", msg):
        allowed = ", ".join(_fields_at(path, root)) or "none"
        return f"{_join(path, found[1])}: unknown key (expected one of: {allowed})"
    msg = re.sub(r"`([^`]*)`", r"\1", msg)
    for word, said in (("array", "a list"), ("object", "a mapping"), ("null", "nothing")):
        msg = re.sub(rf"\b(Expected|got) {word}\b", rf"\1 {said}", msg)
    if msg.startswith("Invalid enum value"):
        allowed = ", ".join(typing.get_args(_type_at(path, root)))
        msg = f"{msg.replace('Invalid enum value', 'invalid value')} (expected one of: {allowed})"
    return f"{path or '(top level)'}: {msg[0].lower() + msg[1:]}"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _fields_at(path: str, root: type) -> list[str]:
    """The keys allowed at a key path, by walking the schema's types."""
    t = _unwrap(_type_at(path, root))
    return list(t.__struct_fields__) if hasattr(t, "__struct_fields__") else []


def _type_at(path: str, root: type):
    """The schema type at a key path."""
    t: typing.Any = root
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        t = _unwrap(t)
        if part.startswith("["):
            t = typing.get_args(t)[0]
        else:
            t = typing.get_type_hints(t)[part]
    return t


def _unwrap(t):
    """Strip Optional[...] and Annotated[...] down to the struct or list type."""
    while True:
        origin = typing.get_origin(t)
        if origin is typing.Annotated:
            t = typing.get_args(t)[0]
        elif origin in (typing.Union, types.UnionType):
            t = next(a for a in typing.get_args(t) if a is not type(None))
        else:
            return t


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice (YAML would keep the last)."""


def _no_duplicates(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, (str, int, float, bool, type(None))):
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a plain value, not a list or mapping",
                key_node.start_mark)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is given twice", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def _duplicate_key(root) -> str | None:
    """'key.path: line L column C: key 'k' is given twice' for the first key given twice
    in a mapping (YAML would keep the last silently), or None. Walked without recursion."""
    stack = [(root, [])]
    while stack:
        node, path = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, value in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                if key is not None and key in seen:
                    m = key_node.start_mark
                    return (f"{_key(path + [key])}: line {m.line + 1} column {m.column + 1}: "
                            f"key {key!r} is given twice (expected each key once)")
                seen.add(key)
                stack.append((value, path + [key if key is not None else "?"]))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, path + [i]) for i, item in enumerate(node.value))
    return None


def _yaml_problem(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    where = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    if isinstance(e, yaml.reader.ReaderError):  # bad character: says where by offset only
        problem = f"{problem} at character {e.position}"
    return f"{where}not valid YAML: {problem}"
