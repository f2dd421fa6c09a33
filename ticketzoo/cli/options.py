"""CLI options defined once and shared by commands: one flag name per concept.

Each group is a decorator factory; a command stacks the groups it needs::

    @click.command("finetune")
    @data_options()
    @training_options(notes=PROTOCOL_NOTES)
    @runtime_options()
    @publish_options()
    @output_options()
    def command(ref, **opts): ...

``defaults`` gives a group's options shown defaults (``find`` trains with the paper's
recipe); without it an option left out is ``None``, so the library decides (``finetune``'s
protocol). ``notes`` appends a bracketed note to an option's help. Old spellings stay as
hidden aliases (``--max-epochs`` for ``--epochs``); :func:`gather` folds them in. ``only`` and
``without`` pick options of a group. The
training options are made from :class:`~ticketzoo.config.train.TrainConfig`'s fields
(:func:`config_specs`: help, flag, choices and the paper's defaults written once, there).
Nothing here imports torch: ``--help`` stays instant.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Callable, Mapping

import click

from ticketzoo.config.data import DATA_FIELDS, DataConfig
from ticketzoo.config.train import TrainConfig

_ALIAS = "__alias_of__"


class FloatList(click.ParamType):
    """Comma-separated numbers (``0.8,0.1,0.1``); ``count`` fixes how many."""

    name = "floats"

    def __init__(self, count: int | None = None) -> None:
        self.count = count

    def convert(self, value: Any, param, ctx) -> tuple[float, ...]:
        if isinstance(value, tuple):
            return value
        try:
            numbers = tuple(float(x) for x in str(value).split(",") if x.strip())
        except ValueError:
            self.fail(f"must be comma-separated numbers, got {value!r}", param, ctx)
        if self.count is not None and len(numbers) != self.count:
            self.fail(f"needs {self.count} comma-separated numbers, got {value!r}", param, ctx)
        return numbers


def floats(text: str, count: int | None = None) -> tuple[float, ...]:
    """Parse comma-separated numbers the way every option does (a usage error if malformed)."""
    return FloatList(count).convert(text, None, None)


Spec = tuple[tuple[str, ...], dict[str, Any]]


def _group(specs: list[Spec]) -> Callable[..., Callable]:
    def factory(*, defaults: Mapping[str, Any] | None = None, notes: Mapping[str, str] | None = None,
                only: tuple[str, ...] | None = None, without: tuple[str, ...] = ()):
        def decorate(f: Callable) -> Callable:
            for decls, attrs in reversed(specs):
                name = attrs.get(_ALIAS) or _name(decls)
                if (only is not None and name not in only) or name in without:
                    continue
                attrs = dict(attrs)
                alias_of = attrs.pop(_ALIAS, None)
                if alias_of is None and defaults is not None and name in defaults:
                    attrs.update(default=defaults[name], show_default=True)
                if alias_of is None and notes and name in notes:
                    attrs["help"] = f"{attrs.get('help', '')} [{notes[name]}]".strip()
                f = click.option(*decls, **attrs)(f)
            return f
        return decorate
    return factory


def _name(decls: tuple[str, ...]) -> str:
    plain = [d for d in decls if not d.startswith("-")]
    if plain:
        return plain[0]
    longest = max((d for d in decls if d.startswith("--")), key=len)
    return longest[2:].split("/")[0].replace("-", "_")


def alias(flag: str, of: str, **attrs: Any) -> Spec:
    """A hidden old spelling of option ``of`` (its Python name); :func:`gather` folds it in."""
    return (flag, f"{of}{_ALIAS}"), {"hidden": True, "default": None, _ALIAS: of, **attrs}


def alias_option(flag: str, of: str, **attrs: Any) -> Callable:
    """:func:`alias` as a decorator, for a command's own old spellings."""
    decls, spec = alias(flag, of, **attrs)
    return click.option(*decls, **{k: v for k, v in spec.items() if k != _ALIAS})


def config_specs(cls: type, names: tuple[str, ...], shown: Any = None) -> list[Spec]:
    """One option per field of config class ``cls`` named in ``names``, from the field's
    :func:`ticketzoo.config.option` metadata; the option's Python name is the field's. Its
    default is ``shown``'s value of the field, shown in the help (a config instance), or
    without ``shown`` ``None``: not given, the library decides. A bool that defaults to
    False is a plain flag; a tuple of numbers is written comma-separated."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    specs: list[Spec] = []
    for name in names:
        meta, tp = fields[name].metadata, hints[name]
        flag = meta.get("flag") or "--" + name.replace("_", "-")
        attrs: dict[str, Any] = {"help": meta["help"], "default": None}
        if shown is not None:
            attrs.update(default=getattr(shown, name), show_default=True)
        if tp is bool and (shown is not None and getattr(shown, name) is False):
            decls: tuple[str, ...] = (flag, name)
            attrs = {"help": meta["help"], "is_flag": True}
        elif tp is bool:
            decls = (f"{flag}/--no-{flag[2:]}", name)
        else:
            decls = (flag, name)
            if "choices" in meta:
                attrs["type"] = click.Choice(list(meta["choices"]))
            elif tp == tuple[str, ...]:  # comma-separated words; the config splits them
                if isinstance(attrs["default"], tuple):
                    attrs["default"] = ",".join(attrs["default"])
                    if not attrs["default"]:  # nothing: not worth a "[default: ]"
                        attrs["show_default"] = False
            elif tp == tuple[float, ...]:
                attrs["type"] = FloatList()
                if attrs["default"] == ():
                    attrs.update(default=None, show_default=False)
            elif typing.get_origin(tp) is tuple and set(typing.get_args(tp)) == {float}:  # T,V,T
                attrs["type"] = FloatList(len(typing.get_args(tp)))
                if isinstance(attrs["default"], tuple):
                    attrs["default"] = ",".join(f"{x:g}" for x in attrs["default"])
            elif tp in (int, float) or tp in (int | None, float | None):
                attrs["type"] = float if float in typing.get_args(tp) or tp is float else int
            if "metavar" in meta:
                attrs["metavar"] = meta["metavar"]
        specs.append((decls, attrs))
    return specs


def config_options(cls: type, names: tuple[str, ...], shown: Any = None) -> Callable:
    """:func:`config_specs` as a decorator, for a command's own config fields."""
    specs = config_specs(cls, names, shown)

    def decorate(f: Callable) -> Callable:
        for decls, attrs in reversed(specs):
            f = click.option(*decls, **attrs)(f)
        return f
    return decorate


def config_defaults(config: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """``config``'s values of ``names`` as shown defaults (tuples comma-joined, None as 0)."""
    out = {}
    for name in names:
        value = getattr(config, name)
        out[name] = ",".join(map(str, value)) if isinstance(value, tuple) else 0 if value is None else value
    return out



data_options = _group([
    (("--data",), {"required": True, "metavar": "NAME|DIR",
                   "help": "cifar10, cifar100, fashionmnist, mnist, svhn, or an image folder "
                           "(DIR/<class>/* or DIR/{train,val,test}/<class>/*); write ./NAME for a "
                           "folder named like a dataset."}),
    (("--data-root",), {"default": "data", "show_default": True, "metavar": "DIR",
                        "type": click.Path(file_okay=False),
                        "help": "Folder with a named dataset's files: the IDX files for (fashion)mnist, "
                                "e.g. /usr/share/datasets/fashion-mnist, or torchvision's dataset folder."}),
    (("--download",), {"is_flag": True, "help": "Download a named dataset into --data-root."}),
    *config_specs(DataConfig, DATA_FIELDS, DataConfig()),  # every field is an option
    alias("--data-seed", "split_seed", type=int),  # find's name until 2026-12
    # until 2026-12 find's pad-crop + flip and finetune's flip: now one meaning, the CIFAR standard
    (("--augment",), {"is_flag": True, "hidden": True, "help": "Old spelling of --crop-pad 4 --flip."}),
])


def data_config(opts: Mapping[str, Any], **values: Any) -> DataConfig:
    """The :class:`DataConfig` of the data options (``--augment``: ``--crop-pad 4 --flip``);
    ``values`` for what the command decides itself (find's input size, say)."""
    if opts.get("augment"):
        values = {"crop_pad": 4, "flip": True, **values}
    return config_from(DataConfig, opts, **values)


#: TrainConfig fields that are recipe choices on the command line (the training options).
TRAIN_FIELDS = ("optimizer", "lr", "momentum", "nesterov", "weight_decay", "batch_size", "max_epochs",
                "schedule", "warmup_epochs", "milestones", "gamma", "label_smoothing", "patience", "precise_bn")

#: Sabatelli et al.'s Table 4 training recipe: TrainConfig's defaults, as shown defaults.
PAPER = config_defaults(TrainConfig(), TRAIN_FIELDS)

training_options = _group([
    *config_specs(TrainConfig, TRAIN_FIELDS),
    alias("--max-epochs", "max_epochs", type=int),  # finetune's name until 2026-11
    (("--seed",), {"type": int, "default": 0, "show_default": True, "help": "Init and training seed."}),
    (("--weight-init",), {"type": click.Choice(["xavier", "default"]), "default": "xavier", "show_default": True,
                          "help": "How fresh weights are drawn (xavier: Sabatelli et al. Table 4)."}),
])

runtime_options = _group([
    (("--device",), {"help": "auto, cpu, cuda or cuda:N."}),
    (("--amp/--no-amp",), {"default": None, "help": "Mixed precision: bf16 (or fp16) autocast on CUDA, bf16 "
                                                      "on CPU; a runtime choice, recorded, not hashed [CUDA: on; CPU: "
                                                      "fp32 for finetune and compare; find: bf16 for torchvision "
                                                      "architectures where the CPU has it natively]."}),
    (("--channels-last/--no-channels-last",), {"default": None, "help": "NHWC memory format [CUDA: on; CPU: on "
                                                                       "for torchvision architectures]."}),
    (("--threads",), {"type": click.IntRange(min=1),
                      "help": "CPU threads for torch [1 for small models, every core for large ones]."}),
    (("--workers",), {"type": click.IntRange(min=0), "help": "DataLoader workers [by device]."}),
    *config_specs(TrainConfig, ("runtime",)),
])

publish_options = _group([
    (("--push",), {"is_flag": True, "help": "Publish the ticket(s) to --registry."}),
    (("--registry",), {"metavar": "URL", "help": "file:///DIR or hf://ORG[/REPO] [the local registry]."}),
])

output_options = _group([
    (("--quiet", "-q"), {"is_flag": True, "help": "No progress output."}),
    (("--json", "as_json"), {"is_flag": True, "help": "Print the results as JSON."}),
])

#: The option groups by name (``compare`` and tests read them).
GROUPS = {"data": data_options, "training": training_options, "runtime": runtime_options,
          "publish": publish_options, "output": output_options}


def gather(opts: dict[str, Any]) -> dict[str, Any]:
    """``opts`` with hidden aliases folded into their options (an explicit new flag wins)."""
    ctx = click.get_current_context(silent=True)
    out = {k: v for k, v in opts.items() if not k.endswith(_ALIAS)}
    for key, value in opts.items():
        if not key.endswith(_ALIAS) or value is None:
            continue
        target = key[: -len(_ALIAS)]
        source = ctx.get_parameter_source(target) if ctx is not None else None
        if source is not click.core.ParameterSource.COMMANDLINE:
            out[target] = value
    return out


def runtime_values(opts: Mapping[str, Any]) -> dict[str, Any]:
    """``TrainConfig``'s precision fields from ``--amp``/``--channels-last`` (``None``: not given).

    Given, a flag applies on every device; not given, CUDA keeps AMP and NHWC on and the CPU
    fields stay ``None`` ("auto"): the library resolves them per run
    (``ticketzoo.train.device.resolve_cpu_runtime``), from the architecture and the task."""
    out = {}
    for flag in ("amp", "channels_last"):
        value = opts.get(flag)
        out[flag] = True if value is None else value
        if value is not None:
            out[f"cpu_{flag}"] = value
    return out


def train_config(opts: Mapping[str, Any], values: Mapping[str, Any] | None = None):
    """The ``TrainConfig`` the training, runtime and seed options ask for, built the same way by
    every command that trains (``values``: the recipe fields, default :func:`train_values`)."""
    values = train_values(opts) if values is None else values
    where = {k: opts[k] for k in ("device", "seed", "runtime") if opts.get(k) is not None}
    return TrainConfig(**values, **where, **runtime_values(opts))


def train_values(opts: Mapping[str, Any]) -> dict[str, Any]:
    """The ``TrainConfig`` fields set by the training options given (``None``: not given).

    ``--patience 0`` is ``None`` (no early stopping); ``--milestones none`` is ``()``, and a
    cosine or linear schedule drops milestones not typed."""
    values = {k: opts[k] for k in TRAIN_FIELDS if opts.get(k) is not None and k not in ("milestones", "patience")}
    if opts.get("patience") is not None:
        values["patience"] = opts["patience"] or None
    ctx = click.get_current_context(silent=True)
    typed = ctx is not None and ctx.get_parameter_source("milestones") is click.core.ParameterSource.COMMANDLINE
    text = opts.get("milestones")
    if values.get("schedule") in ("cosine", "linear") and not typed:
        values["milestones"] = ()  # the step schedule's milestones
    elif text is not None and text.strip().lower() in ("", "none"):
        values["milestones"] = ()
    elif text is not None:
        try:
            numbers = floats(text)
        except click.BadParameter as e:  # parsed outside click: name the flag, as click would
            raise click.BadParameter(e.message, param_hint="--milestones") from None
        if not all(float(m).is_integer() for m in numbers):
            raise click.BadParameter(f"must be whole epochs, got {text!r}", param_hint="--milestones")
        values["milestones"] = tuple(int(m) for m in numbers)
    return values


def config_from(cls: type, opts: Mapping[str, Any], **values: Any):
    """``cls`` from the options named like its fields (``None``: not given, the field's default)
    and ``values`` (fields the command derives: the TrainConfig, a byte count, a name): no
    option is mapped to a field by hand."""
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    given = {k: v for k, v in opts.items() if k in names and v is not None}
    return cls(**{**given, **values})


def finetune_config(opts: Mapping[str, Any], **values: Any):
    """The ``FinetuneConfig`` of ``finetune``'s and ``compare``'s options, built the same way by
    both: its ``TrainConfig`` (:func:`train_config`), the recipe fields typed as ``overrides``,
    its :func:`data_config`; ``values`` for what the command decides itself."""
    from ticketzoo.config.finetune import FinetuneConfig

    given = train_values(opts)
    return config_from(FinetuneConfig, opts, train=train_config(opts, given), overrides=tuple(sorted(given)),
                       data=data_config(opts), **values)


def _completions(incomplete: str, *, local_only: bool = False, families: bool = False):
    """Ticket names starting with ``incomplete`` (local registry and catalog, or the local
    registry alone), plus with ``families`` the family names (``NAME`` of ``NAME-sNN``)."""
    from click.shell_completion import CompletionItem

    if "/" in incomplete or "@" in incomplete or incomplete.startswith("."):
        return []
    try:
        from ticketzoo.api import scan_entries

        rows, _ = scan_entries()
    except Exception:  # noqa: BLE001 - a completion must never print an error into the shell
        return []
    from ticketzoo.names import family_members, family_of

    names = {entry.name for entry, where, _ in rows if not local_only or where.startswith("local")}
    if families:
        names |= {f for f in map(family_of, names) if family_members(f, names)}
    return [CompletionItem(n) for n in sorted(n for n in names if n.startswith(incomplete))]


def complete_ticket_names(ctx: click.Context, param: click.Parameter, incomplete: str):
    """Shell completion of ticket names (local registry and catalog), for every REF argument.

    Enable it with ``eval "$(_TICKETZOO_COMPLETE=bash_source ticketzoo)"`` (zsh_source,
    fish_source); see the README. Paths, URLs and ``NAME@`` complete as typed."""
    return _completions(incomplete)


def complete_local_names(ctx: click.Context, param: click.Parameter, incomplete: str):
    """Completion for ``rm``: the local registry's tickets only (a catalog entry is not removable)."""
    return _completions(incomplete, local_only=True)


def complete_sweep_names(ctx: click.Context, param: click.Parameter, incomplete: str):
    """Completion for ``compare``: ticket names and family names (``NAME`` runs every ``NAME-sNN``)."""
    return _completions(incomplete, families=True)
