"""Plugin registries for architectures, losses and augmentations.

Modelled on timm's ``register_model`` / ``create_model``: a decorator maps a factory to a
name, ``create_*`` drops keyword arguments that are ``None`` (so generic CLI flags never
break a plugin that does not take them) and rejects the ones a plugin does not accept.
Built-in plugins live in the top-level ``architectures``, ``losses`` and ``augmentations``
packages; third parties add theirs through the entry-point groups ``harness.architectures``,
``harness.losses`` and ``harness.augmentations`` (an entry point may name a module that registers itself on import, or
a factory that is registered under the entry point's name).

Each registry holds its kind's contract (``harness.contracts``): a factory that is a class, or whose
return annotation names one, is checked when it registers; what any factory builds is checked when
it is built. A plugin that breaks its contract is a one-line ``ConfigError`` naming it.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import typing
import warnings
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable

from harness.errors import ConfigError, HarnessError
from harness.options import Kind, kind_of, parse_value

#: Arguments every architecture factory receives from the runner; not shown as options.
ARCH_STANDARD_ARGS = ("n_mels", "n_frames", "in_channels", "n_classes")


@dataclass
class Plugin:
    """One registered factory with what ``harness list`` shows about it."""

    name: str
    factory: Callable[..., Any]
    description: str
    module: str

    def parameters(self, hidden: tuple[str, ...] = (), positional: int = 0) -> dict[str, inspect.Parameter]:
        """The factory's declared options: its parameters less ``hidden``, ``*args``/``**kwargs``
        and the first ``positional`` ones (a prefix resolver's name)."""
        params = list(inspect.signature(self.factory).parameters.values())[positional:]
        return {p.name: p for p in params
                if p.name not in hidden and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}

    def options(self, hidden: tuple[str, ...] = (), positional: int = 0) -> dict[str, Any]:
        """Keyword options and their defaults, read from the factory's signature."""
        return {name: None if p.default is p.empty else p.default
                for name, p in self.parameters(hidden, positional).items()}

    def takes_any(self) -> bool:
        """Whether the factory also takes options it does not declare (``**options``)."""
        return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(self.factory).parameters.values())


@dataclass
class Registry:
    """Name → factory, with prefix resolvers (``timm/<model>``) and entry-point discovery."""

    kind: str  # "architecture", "loss" or "augmentation"
    builtin_package: str
    entry_point_group: str
    flag: str  # the command-line flag of its options: --arch-opt / --loss-opt
    hidden_args: tuple[str, ...] = ()
    #: The name of this kind's ``harness.contracts.Contract`` (imported when a plugin is checked:
    #: the contracts import torch, the registry's names and options need not).
    contract: str = ""
    plugins: dict[str, Plugin] = field(default_factory=dict)
    prefixes: dict[str, Plugin] = field(default_factory=dict)
    _loaded: bool = False

    # -- registration -------------------------------------------------------------------
    def register(self, name: str, description: str = "", *, prefix: bool = False):
        """Decorator: ``@register_architecture("fcnn", "…")`` on a factory function.

        With ``prefix=True`` the factory serves every name that starts with ``name``
        and receives the rest of the name as its first argument.
        """

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            table = self.prefixes if prefix else self.plugins
            if name in table and table[name].factory is not fn:
                warnings.warn(f"{self.kind} {name!r} registered again by {fn.__module__}; the later one wins")
            doc = description or (inspect.getdoc(fn) or "").split("\n")[0]
            declared = fn if inspect.isclass(fn) else _return_class(fn)
            if declared is not None:
                self.check(name, fn.__module__, declared)
            table[name] = Plugin(name, fn, doc, fn.__module__)
            return fn

        return decorate

    def check(self, name: str, module: str, obj: Any) -> None:
        """A one-line error if ``obj`` (a plugin's class, or what its factory built) breaks this kind's contract."""
        if not self.contract:
            return
        contract = getattr(importlib.import_module("harness.contracts"), self.contract)
        problem = contract.violation(obj)
        if problem:
            raise ConfigError(f"{self.kind} plugin {name!r} ({module}) breaks the {self.kind} contract: {problem}")

    # -- discovery ----------------------------------------------------------------------
    def load(self) -> None:
        """Import the built-in plugins and every installed entry point, once."""
        if self._loaded:
            return
        self._loaded = True
        importlib.import_module(self.builtin_package)
        for ep in entry_points(group=self.entry_point_group):
            try:
                obj = ep.load()
            except HarnessError:  # it loaded, and registered a plugin that breaks its contract
                raise
            except Exception as exc:  # a broken third-party plugin must not break the rest
                warnings.warn(f"{self.entry_point_group} entry point {ep.name!r} failed to load: {exc}")
                continue
            if callable(obj) and not inspect.ismodule(obj) and ep.name not in self.plugins:
                self.register(ep.name)(obj)

    def names(self) -> list[str]:
        self.load()
        return sorted(self.plugins)

    def get(self, name: str) -> tuple[Plugin, tuple[Any, ...]]:
        """The plugin for ``name`` and the positional arguments a prefix resolver needs."""
        self.load()
        if name in self.plugins:
            return self.plugins[name], ()
        for prefix, plugin in self.prefixes.items():
            if name.startswith(prefix) and len(name) > len(prefix):
                return plugin, (name[len(prefix):],)
        known = self.names() + [p + "<name>" for p in sorted(self.prefixes)]
        close = difflib.get_close_matches(name, self.names(), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown {self.kind} {name!r}{hint} Known: {', '.join(known)}")

    def resolve_options(self, name: str, options: dict[str, Any], *, defaults: bool = True) -> dict[str, Any]:
        """``options`` typed from the factory's declaration, checked, and (``defaults``) completed
        with the declared defaults: the one spelling of a plugin's settings that a run is hashed by.

        Values may be text (``"0.5"``, ``"no"``, ``"32,64"``) or already typed; ``None`` means the
        default. An undeclared option is an error unless the factory takes ``**options``, where
        it is read as JSON or text.
        """
        plugin, args = self.get(name)
        declared = plugin.parameters(self.hidden_args, len(args))
        out: dict[str, Any] = {}
        if defaults:
            out = {k: p.default for k, p in declared.items() if p.default is not p.empty}
        for key, value in options.items():
            if value is None:
                continue
            if key not in declared:
                if key in self.hidden_args or not plugin.takes_any():
                    opts = ", ".join(declared) or "none"
                    raise ConfigError(f"{self.kind} {name!r} takes no option {key!r} (its options: {opts})")
                out[key] = parse_value(value, Kind(None), f"{self.flag} {key}")
                continue
            out[key] = parse_value(value, kind_of(declared[key]), f"{self.flag} {key}")
        return out

    def create(self, name: str, **kwargs: Any) -> Any:
        """Build ``name``; ``None`` values are dropped, values are typed and unknown options are an error."""
        plugin, args = self.get(name)
        standard = {k: kwargs.pop(k) for k in self.hidden_args if k in kwargs}
        options = self.resolve_options(name, kwargs, defaults=False)
        built = plugin.factory(*args, **standard, **options)
        self.check(name, plugin.module, built)
        return built


ARCHITECTURES = Registry("architecture", "architectures", "harness.architectures", "--arch-opt", ARCH_STANDARD_ARGS,
                         contract="ARCHITECTURE")
LOSSES = Registry("loss", "losses", "harness.losses", "--loss-opt", contract="LOSS")
#: Augmentation factories take ``ctx`` (a ``harness.contracts.AugmentContext``) and their options.
AUGMENTATIONS = Registry("augmentation", "augmentations", "harness.augmentations", "--aug-opt", ("ctx",),
                         contract="AUGMENTATION")

register_architecture = ARCHITECTURES.register
register_loss = LOSSES.register
register_augmentation = AUGMENTATIONS.register


def _return_class(factory: Callable[..., Any]) -> type | None:
    """The class a factory's return annotation names, where it resolves to one (else None:
    unannotated, or a name the factory's module cannot resolve; checked when built instead)."""
    try:
        annotation = typing.get_type_hints(factory).get("return")
    except Exception:  # names the module cannot resolve: nothing to check here
        return None
    return annotation if inspect.isclass(annotation) else None


def create_architecture(name: str, **kwargs: Any):
    """Build a registered architecture: ``create_architecture("fcnn", n_mels=40, n_frames=500)``."""
    return ARCHITECTURES.create(name, **kwargs)


def create_loss(name: str, **kwargs: Any):
    """Build a registered loss: ``create_loss("triplet-city", alpha=0.2, gamma=10)``."""
    return LOSSES.create(name, **kwargs)


def create_augmentation(name: str, ctx: Any, **options: Any):
    """Build a registered augmentation: ``create_augmentation("freq-mixstyle", ctx, p=0.4)``."""
    return AUGMENTATIONS.create(name, ctx=ctx, **options)
