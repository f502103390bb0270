"""KFP components whose inputs come from the settings dataclasses: a setting is declared once.

A step's component function names its settings by type, not one by one:

    def train(dataset: Input[Dataset], model: Output[Model], config: TrainConfig,
              run: RunContext) -> str: ...

`step_component(train, image)` gives kfp a function with one typed input per field of each
dataclass parameter (`epochs: int, batch_size: int, ...`; a name two of them share is one
input), and the other parameters as written. That function is generated source, so kfp ships
it to the task like any lightweight component; in the task it builds the dataclasses from its
inputs and calls the step's own function (`call_step`). Adding a setting is adding its field.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import linecache
import textwrap
import typing
from collections.abc import Callable, Mapping
from typing import Any

from components.common.settings.component_docs import setting_docs
from components.common.settings.config import TASK_INPUT_TYPES


def expanded_types(func: Callable) -> dict[str, type]:
    """`func`'s parameters typed with one of TASK_INPUT_TYPES: name -> the dataclass."""
    hints = typing.get_type_hints(func)
    return {
        name: hints[name]
        for name in inspect.signature(func).parameters
        if hints.get(name) in TASK_INPUT_TYPES
    }


def step_inputs_of(func: Callable) -> dict[str, str]:
    """The generated component's inputs in order: name -> annotation source."""
    arguments = _arguments(func)
    inputs: dict[str, str] = {}
    expanded = expanded_types(func)
    for name, (annotation, default) in arguments.items():
        if name in expanded:
            for field in dataclasses.fields(expanded[name]):
                inputs.setdefault(field.name, _type_name(field.type))
        elif default is None:
            inputs[name] = annotation
    # kfp wants the inputs with defaults after those without
    inputs.update(
        {
            name: f"{annotation} = {default}"
            for name, (annotation, default) in arguments.items()
            if default is not None
        }
    )
    return inputs


def step_component(func: Callable, image: str):
    """The kfp component of step function `func`, running in `image`."""
    from kfp import dsl

    shim = _shim(func)
    return dsl.component(base_image=image, install_kfp_package=False)(shim)


def call_step(module: str, name: str, inputs: Mapping[str, Any]):
    """In the task: step function `module.name` called with its dataclasses built from `inputs`
    (every field must be an input: none falls back to its default on the way)."""
    func = getattr(importlib.import_module(module), name)
    expanded = expanded_types(func)
    arguments = {}
    for parameter in inspect.signature(func).parameters:
        if parameter in expanded:
            arguments[parameter] = from_inputs(expanded[parameter], inputs)
        elif parameter in inputs:
            arguments[parameter] = inputs[parameter]
    return func(**arguments)


def from_inputs(kind: type, inputs: Mapping[str, Any]):
    """Dataclass `kind` built from a task's inputs; a field missing from them is an error."""
    names = [f.name for f in dataclasses.fields(kind)]
    missing = [name for name in names if name not in inputs]
    if missing:
        raise TypeError(f"{kind.__name__} fields missing from the task's inputs: {missing}")
    return kind(**{name: inputs[name] for name in names})


def _shim(func: Callable) -> Callable:
    """A function named like `func` with the expanded signature, calling `call_step`."""
    inputs = step_inputs_of(func)
    signature = ",\n    ".join(f"{name}: {text}" for name, text in inputs.items())
    returns = _return_annotation(func)
    source = (
        f"def {func.__name__}(\n    {signature},\n){returns}:\n"
        "    from components.common.settings.step_component import call_step\n\n"
        f"    return call_step({func.__module__!r}, {func.__name__!r}, locals())\n"
    )
    filename = f"<segpipe step {func.__module__}.{func.__name__}>"
    # kfp reads the function's source (inspect.getsource): keep it where linecache finds it
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {}
    exec(compile(source, filename, "exec", dont_inherit=True), dict(func.__globals__), namespace)  # noqa: S102
    shim = namespace[func.__name__]
    shim.__module__, shim.__qualname__ = func.__module__, func.__name__
    # kfp reads `Args:` into each input's description: each setting's help goes there
    shim.__doc__ = setting_docs(inspect.cleandoc(func.__doc__ or ""), list(inputs))
    return shim


def _arguments(func: Callable) -> dict[str, tuple[str, str | None]]:
    """name -> (annotation source, default source or None), as `func` is written."""
    definition, source = _definition(func)
    args = definition.args
    defaults = [None] * (len(args.args) - len(args.defaults)) + list(args.defaults)
    return {
        arg.arg: (
            ast.get_source_segment(source, arg.annotation),
            None if default is None else ast.get_source_segment(source, default),
        )
        for arg, default in zip(args.args, defaults, strict=True)
    }


def _return_annotation(func: Callable) -> str:
    definition, source = _definition(func)
    if definition.returns is None:
        return ""
    return f" -> {ast.get_source_segment(source, definition.returns)}"


def _definition(func: Callable) -> tuple[ast.FunctionDef, str]:
    """`func`'s parsed definition and the source it was parsed from."""
    source = textwrap.dedent(inspect.getsource(func))
    (definition,) = ast.parse(source).body
    return definition, source


def _type_name(annotation: Any) -> str:
    """A setting's type as source: int, float, str or bool."""
    name = annotation if isinstance(annotation, str) else annotation.__name__
    if name not in ("int", "float", "str", "bool"):
        raise TypeError(f"a setting must be int, float, str or bool, not {name}")
    return name
