"""One frozen configuration tree, loaded from YAML overrides of dataclass defaults.

Sections live next to the code they configure (``jotr.models.config`` etc.); this module composes them into
:class:`JOTRConfig` and provides the generic machinery:

* :func:`load_config` -- defaults, then YAML files (later wins), then ``--set a.b=value`` overrides;
* unknown keys are errors (with the list of valid keys), values are type-checked and coerced;
* :func:`config_to_dict` / :func:`save_config` -- the resolved tree, saved with every checkpoint.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from jotr.body.config import BodyConfig
from jotr.data.config import DataConfig
from jotr.engine.config import EvalConfig, TrainConfig
from jotr.errors import ConfigError
from jotr.losses.config import LossConfig
from jotr.models.config import ModelConfig

T = TypeVar("T")


@dataclass(frozen=True)
class JOTRConfig:
    body: BodyConfig = field(default_factory=BodyConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


# --------------------------------------------------------------------------------------------- conversion


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert a YAML value to the annotated type ``tp`` or raise ConfigError naming ``where``."""
    tp, optional = _strip_optional(tp)
    if value is None:
        if optional or tp is Any:
            return None
        raise ConfigError(f"{where}: null is not allowed (expected {tp})")
    if tp is Any:
        return value
    if is_dataclass(tp):
        if is_dataclass(value) and isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {type(value).__name__}")
        return _merge(_instantiate(tp, value, where), value, where)
    origin = typing.get_origin(tp)
    if origin in (tuple, Sequence, list, typing.Sequence) or tp in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item_tp = args[0] if args else Any
        return tuple(_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping, typing.Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{where}: {value!r} is not one of {allowed}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):
            # PyYAML (YAML 1.1) reads exponents without a dot, e.g. ``1e-4``, as strings.
            try:
                return float(value)
            except ValueError:
                raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _instantiate(tp: Any, value: Mapping[str, Any], where: str) -> Any:
    """``tp()``, or for dataclasses with required fields (e.g. DatasetSpec's ``name``) ``tp(required...)``."""
    required = [
        f.name
        for f in fields(tp)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]  # type: ignore[misc]
    if not required:
        return tp()
    missing = [n for n in required if n not in value]
    if missing:
        raise ConfigError(f"{where}: missing required key(s) {missing} for {tp.__name__}")
    hints = typing.get_type_hints(tp)
    return tp(**{n: _coerce(value[n], hints[n], f"{where}.{n}") for n in required})


def _merge(base: T, updates: Mapping[str, Any], where: str = "") -> T:
    """Return a copy of dataclass ``base`` with ``updates`` (a nested mapping) applied; unknown keys raise."""
    hints = typing.get_type_hints(type(base))
    names = {f.name for f in fields(base)}
    changes: dict[str, Any] = {}
    for key, value in updates.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in names:
            raise ConfigError(f"unknown config key '{path}'; valid keys here: {sorted(names)}")
        current = getattr(base, key)
        tp, _ = _strip_optional(hints[key])
        if is_dataclass(tp) and isinstance(value, Mapping):
            changes[key] = _merge(current if current is not None else tp(), value, path)
        else:
            changes[key] = _coerce(value, hints[key], path)
    try:
        return dataclasses.replace(base, **changes)
    except (TypeError, ValueError, ArithmeticError) as exc:  # __post_init__ validation
        raise ConfigError(f"{where or 'config'}: {exc}") from exc


def merge_config(cfg: T, updates: Mapping[str, Any]) -> T:
    """Apply a nested mapping of overrides to a config dataclass (unknown keys are errors)."""
    if not is_dataclass(cfg) or not isinstance(updates, Mapping):
        raise ConfigError(
            f"merge_config needs a config and a mapping of updates, got {type(cfg).__name__} and "
            f"{type(updates).__name__}"
        )
    return _merge(cfg, updates)


def parse_override(text: str) -> dict[str, Any]:
    """``'model.dec_layers=4'`` -> ``{'model': {'dec_layers': 4}}`` (the value is parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key.path=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override '{text}' has an empty key")
    try:
        value = safe_yaml_load(raw, f"override '{text}'") if raw.strip() else ""
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())
        raise ConfigError(f"override '{text}': the value is not valid YAML ({reason})") from None
    out: dict[str, Any] = {}
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


class _ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader without anchors and aliases (a 469-byte "billion laughs" file expands to
    gigabytes) and with a node count limit (:data:`jotr.limits.MAX_CONFIG_NODES`)."""

    source = "config"

    def compose_node(self, parent: Any, index: Any) -> Any:
        from jotr.limits import MAX_CONFIG_NODES

        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise ConfigError(
                f"{self.source} uses YAML anchors/aliases (&{event.anchor} / *{event.anchor}); jotr configs "
                "do not allow them: write the values out"
            )
        self._jotr_nodes = getattr(self, "_jotr_nodes", 0) + 1
        if self._jotr_nodes > MAX_CONFIG_NODES:
            raise ConfigError(f"{self.source} has more than {MAX_CONFIG_NODES} YAML nodes; not a jotr config")
        return super().compose_node(parent, index)


def safe_yaml_load(text: str, source: str) -> Any:
    """``yaml.safe_load`` without anchors/aliases, with a node limit and a nesting limit (ConfigError naming
    ``source``); other YAML syntax errors propagate as ``yaml.YAMLError``."""
    loader = _ConfigLoader(text)
    loader.source = source
    try:
        return loader.get_single_data()
    except RecursionError:
        raise ConfigError(f"{source} is nested too deeply") from None
    finally:
        loader.dispose()


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML config file as a mapping; ConfigError (one line, naming the file) for a missing, non-regular,
    too large, binary or invalid file, anchors/aliases, or too deep nesting."""
    import stat

    from jotr.limits import MAX_CONFIG_BYTES

    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        raise ConfigError(f"config file not found: {p}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"config file {p} is not a regular file")
    if st.st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {p} is {st.st_size} bytes; the limit is {MAX_CONFIG_BYTES} bytes")
    try:
        raw = p.read_bytes()
        text = raw.decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"config file {p} cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {p} is not text (not UTF-8): a binary file?") from None
    if "\0" in text:
        raise ConfigError(f"config file {p} is not text (it holds NUL bytes): a binary file?")
    try:
        data = safe_yaml_load(text, f"config file {p}")
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())
        raise ConfigError(f"config file {p} is not valid YAML: {reason}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file {p} must hold a mapping at the top level")
    return dict(data)


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A path, or the name of a shipped config (``paper_main`` -> ``jotr/configs/paper_main.yaml``)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    if p.exists():  # a folder, FIFO or device: never read (a FIFO would block)
        raise ConfigError(f"config file {p} is not a regular file")
    shipped = Path(__file__).parent / "configs" / f"{Path(str(name_or_path)).stem}.yaml"
    if shipped.is_file() and not p.suffix:
        return shipped
    if shipped.is_file() and p.name == shipped.name and not p.exists():
        return shipped
    raise ConfigError(
        f"config file not found: {name_or_path} (shipped configs: {', '.join(shipped_configs()) or 'none'})"
    )


def shipped_configs() -> list[str]:
    return sorted(p.stem for p in (Path(__file__).parent / "configs").glob("*.yaml"))


def load_config(
    paths: str | Path | Sequence[str | Path] | None = None, overrides: Sequence[str] = ()
) -> JOTRConfig:
    """Defaults, then each YAML file in order (a file may name ``base: other.yaml``), then overrides."""
    cfg = JOTRConfig()
    if paths is None:
        paths = []
    elif isinstance(paths, (str, Path)):
        paths = [paths]
    if not isinstance(paths, Sequence) or not all(isinstance(p, (str, Path)) for p in paths):
        raise ConfigError(f"config paths must be a file name or a list of file names, got {paths!r}"[:200])
    if isinstance(overrides, str) or not all(isinstance(o, str) for o in overrides):
        raise ConfigError(f"config overrides must be a list of 'key=value' strings, got {overrides!r}"[:200])
    for path in paths:
        cfg = _apply_file(cfg, resolve_config_path(path), seen=())
    for text in overrides:
        cfg = merge_config(cfg, parse_override(text))
    return cfg


def _apply_file(cfg: JOTRConfig, path: Path, seen: tuple[Path, ...]) -> JOTRConfig:
    if path.resolve() in seen:
        raise ConfigError(f"config {path} includes itself through 'base'")
    data = read_yaml(path)
    base = data.pop("base", None)
    if base is not None:
        base_path = (path.parent / base) if not Path(base).is_absolute() else Path(base)
        if not base_path.is_file():
            base_path = resolve_config_path(base)
        cfg = _apply_file(cfg, base_path, seen + (path.resolve(),))
    try:
        return merge_config(cfg, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def config_to_dict(cfg: Any) -> Any:
    """Plain nested dict/list version of a config (YAML/JSON serialisable)."""
    if is_dataclass(cfg):
        return {f.name: config_to_dict(getattr(cfg, f.name)) for f in fields(cfg)}
    if isinstance(cfg, (tuple, list)):
        return [config_to_dict(v) for v in cfg]
    if isinstance(cfg, Mapping):
        return {str(k): config_to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, Path):
        return str(cfg)
    return cfg


def config_from_dict(data: Mapping[str, Any]) -> JOTRConfig:
    return merge_config(JOTRConfig(), data)


def dump_config(cfg: Any) -> str:
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)


def save_config(cfg: Any, path: str | Path) -> None:
    from jotr.utils.io import atomic_write_text

    atomic_write_text(Path(path), dump_config(cfg))
