"""The sandbox user templates render in, with limits on size and time that stop the work.

Jinja's sandbox keeps a template away from Python's internals, but not from the machine:
`{{ 'a' * 100000000 }}` builds a 100 MB string (and Jinja, folding constants, built it while
compiling), three nested loops over `range(100000)` never end. Here every place where a
template can make something big or spend time is a checkpoint:

- the operators that build (`*`, `**`, `+`, `%`) are intercepted and refused *before* a result
  would pass the size limit; `~` (concatenation), filters and calls are checked as they return;
- `{% for %}` iterates through a guard that looks at the clock every 256 items, and calls
  (macros, methods, `range`) look at it on every call;
- the output is collected by a writer that looks at the clock and the size every 16 chunks and
  stops the render once it has passed a limit;
- nothing a template computes is folded at compile time (constant folding would compute
  `'a' * 100000000` outside all of the above).

The limits hold inside a `limited(...)` block (one message: its parts together); outside one,
the environment renders without them.
"""

from __future__ import annotations

import re
import string
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from functools import wraps
from itertools import islice
from typing import TYPE_CHECKING, Any

from jinja2 import nodes, pass_eval_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import TemplateRuntimeError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

if TYPE_CHECKING:
    from jinja2 import Template
    from jinja2.nodes import EvalContext

    from tidings.config import Settings

# An integer a template computes stays below this many bits (a 30,000-digit number is far
# beyond anything a mail shows; multiplying such numbers is where time goes).
MAX_INT_BITS = 100_000
_CHECK_EVERY = 256  # loop items between two looks at the clock
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\d+|\*)?(?:\.(\d+|\*))?[hlL]?[a-zA-Z%]")
_FORMAT_SPEC = re.compile(r"(\d+)?[,_]?(?:\.(\d+))?[a-zA-Z%]?$")
_PADDING = frozenset({"center", "ljust", "rjust", "zfill"})
_SIZED = (str, bytes, list, tuple)
# Output chunks taken between two checks of the writer: a chunk is a `{{ … }}` value (checked
# on its own as it is made) or template text, so a batch overshoots the limit by a bounded
# amount, and the Python-level work per chunk stays off the path of ordinary templates.
_CHUNKS_PER_CHECK = 16


class RenderLimitExceeded(TemplateRuntimeError):
    """A template went past TIDINGS_TEMPLATE_MAX_BYTES or TIDINGS_TEMPLATE_MAX_SECONDS."""


@dataclass(frozen=True, slots=True)
class RenderLimits:
    max_bytes: int = 2_000_000
    max_seconds: float = 2.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RenderLimits:
        return cls(settings.template_max_bytes, settings.template_max_seconds)

    def describe_size(self) -> str:
        size = self.max_bytes
        text = f"{size // 1_000_000} MB" if size % 1_000_000 == 0 else f"{size:,} bytes"
        return f"output larger than {text} (TIDINGS_TEMPLATE_MAX_BYTES)"


class Budget:
    """What one render may still spend."""

    __slots__ = ("deadline", "limits", "used")

    def __init__(self, limits: RenderLimits) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.max_seconds
        self.used = 0  # characters of output so far

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderLimitExceeded(
                f"rendering takes longer than {self.limits.max_seconds:g} s "
                "(TIDINGS_TEMPLATE_MAX_SECONDS)"
            )

    def fits(self, size: int) -> None:
        if size > self.limits.max_bytes:
            raise RenderLimitExceeded(self.limits.describe_size())

    def bits(self, bits: int) -> None:
        if bits > MAX_INT_BITS:
            raise RenderLimitExceeded(f"a number larger than {MAX_INT_BITS} bits")

    def sized(self, value: Any) -> Any:
        if isinstance(value, _SIZED):
            if len(value) > self.limits.max_bytes:
                raise RenderLimitExceeded(self.limits.describe_size())
        elif isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
            self.bits(value.bit_length())
        return value


_BUDGET: ContextVar[Budget | None] = ContextVar("tidings_render_budget", default=None)


class _Limited:
    """The context manager `limited` returns (a class: it runs once per message sent)."""

    __slots__ = ("budget", "token")

    def __init__(self, limits: RenderLimits) -> None:
        self.budget = Budget(limits)

    def __enter__(self) -> Budget:
        self.token = _BUDGET.set(self.budget)
        return self.budget

    def __exit__(self, *exc: object) -> None:
        _BUDGET.reset(self.token)


def limited(limits: RenderLimits) -> _Limited:
    """Renders inside this block share one budget (a message's subject, HTML and text)."""
    return _Limited(limits)


def render_limited(template: Template, context: Context) -> str:
    """`template`'s output for `context`, stopped as soon as it passes the size limit (or the
    time limit, checked between chunks) of the budget in force."""
    budget = _BUDGET.get()
    if budget is None:
        return template.environment.concat(template.root_render_func(context))
    chunks: list[str] = []
    before = budget.used
    stream = template.root_render_func(context)
    while batch := list(islice(stream, _CHUNKS_PER_CHECK)):
        budget.used += sum(map(len, batch))
        budget.fits(budget.used)
        budget.tick()
        chunks += batch
    output: str = template.environment.concat(chunks)
    if budget.used * 4 > budget.limits.max_bytes:  # a character takes up to 4 bytes in UTF-8
        budget.used = before + len(output.encode("utf-8", "surrogatepass"))
        budget.fits(budget.used)
    return output


def _numbers_over(values: Iterable[Any], limit: int) -> bool:
    return any(isinstance(v, int) and not isinstance(v, bool) and v > limit for v in values)


def _check_percent(budget: Budget, fmt: str, args: Any) -> None:
    """`fmt % args` would pad to no more than the limit."""
    limit = budget.limits.max_bytes
    for spec in _PERCENT_SPEC.finditer(fmt):
        for number in spec.groups():
            if number == "*":
                values = args if isinstance(args, tuple) else (args,)
                if _numbers_over(values, limit):
                    budget.fits(limit + 1)
            elif number is not None:
                budget.fits(int(number))


def _check_format(budget: Budget, fmt: str, args: Any, kwargs: Any) -> None:
    """`fmt.format(*args, **kwargs)` would pad to no more than the limit."""
    limit = budget.limits.max_bytes
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # str.format raises the same error itself
    for _, _, spec, _ in fields:
        if not spec:
            continue
        if "{" in spec:  # a width taken from the arguments
            if _numbers_over([*args, *kwargs.values()], limit):
                budget.fits(limit + 1)
            continue
        found = _FORMAT_SPEC.search(spec)
        if found is not None:
            for number in found.groups():
                if number is not None:
                    budget.fits(int(number))


def _check_replace(budget: Budget, text: Any, old: Any, new: Any) -> None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        hits = text.count(old) if old else len(text) + 1
        budget.fits(len(text) + hits * (len(new) - len(old)))


def _precheck_call(budget: Budget, obj: Any, args: tuple[Any, ...]) -> None:
    """Refuse the str methods that would pad or grow past the limit before they run."""
    owner = getattr(obj, "__self__", None)
    if not isinstance(owner, str) or not args:
        return
    name = getattr(obj, "__name__", "")
    if name in _PADDING and isinstance(args[0], int):
        budget.fits(args[0])
    elif name == "expandtabs" and isinstance(args[0], int):
        budget.fits(len(owner) + owner.count("\t") * args[0])
    elif name == "replace" and len(args) >= 2:
        _check_replace(budget, owner, args[0], args[1])


_PRECHECKED_FILTERS = frozenset({"center", "indent", "replace", "format"})


def _precheck_filter(budget: Budget, name: str, args: tuple[Any, ...]) -> None:
    if len(args) < 2:
        return
    value, first = args[0], args[1]
    if name == "center" and isinstance(first, int):
        budget.fits(first)
    elif name == "indent" and isinstance(first, int) and isinstance(value, str):
        budget.fits(len(value) + (value.count("\n") + 1) * first)
    elif name == "replace" and len(args) >= 3:
        _check_replace(budget, value, first, args[2])
    elif name == "format" and isinstance(value, str):
        _check_percent(budget, value, args[1:])


def _guarded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    # A filter marked pass_context (…_eval_context, …_environment) gets that first.
    skip = 0 if getattr(function, "jinja_pass_arg", None) is None else 1
    precheck = name in _PRECHECKED_FILTERS

    @wraps(function)  # keeps Jinja's pass_context / pass_eval_context marks
    def guarded(*args: Any, **kwargs: Any) -> Any:
        budget = _BUDGET.get()
        if budget is None:
            return function(*args, **kwargs)
        if precheck:
            _precheck_filter(budget, name, args[skip:])
        return budget.sized(function(*args, **kwargs))

    return guarded


@pass_eval_context
def _finalize(eval_ctx: EvalContext, value: Any) -> Any:
    """Every `{{ … }}` output passes here unchanged. Being marked pass_eval_context stops Jinja
    from computing constant outputs while compiling (`{{ 'a' | center(100000000) }}` would
    run with no budget in force); the values themselves were checked where they were made."""
    return value


class _GuardedCodeGenerator(CodeGenerator):
    """Loops iterate through `environment.guard_iter`; `~` results pass `environment.sized`."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        guarded = nodes.Call(nodes.EnvironmentAttribute("guard_iter"), [node.iter], [], None, None)
        node.iter = guarded.set_lineno(node.lineno)
        super().visit_For(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.sized(")
        super().visit_Concat(node, frame)
        self.write(")")


class LimitedSandbox(ImmutableSandboxedEnvironment):
    """ImmutableSandboxedEnvironment that keeps to the budget of the render in progress."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _GuardedCodeGenerator

    def __init__(self, **options: Any) -> None:
        super().__init__(optimized=False, finalize=_finalize, **options)
        self.filters = {
            name: _guarded_filter(name, function) for name, function in self.filters.items()
        }

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget = _BUDGET.get()
        if budget is None:
            return super().call_binop(context, operator, left, right)
        budget.tick()
        if operator == "*":
            for items, times in ((left, right), (right, left)):
                if isinstance(items, str | list | tuple) and isinstance(times, int):
                    budget.fits(len(items) * times)
            if isinstance(left, int) and isinstance(right, int):
                budget.bits(left.bit_length() + right.bit_length() - 1)
        elif operator == "**" and isinstance(left, int) and isinstance(right, int):
            if abs(left) > 1 and right > 0:
                budget.bits((abs(left).bit_length() - 1) * right)
        elif operator == "+" and isinstance(left, str | list | tuple) and hasattr(right, "__len__"):
            budget.fits(len(left) + len(right))
        elif operator == "%" and isinstance(left, str):
            _check_percent(budget, left, right)
        return budget.sized(super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _BUDGET.get()
        if budget is None:
            return super().call(__context, __obj, *args, **kwargs)
        budget.tick()
        _precheck_call(budget, __obj, args)
        return budget.sized(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt: str = value.__self__
        format_map = value.__name__ == "format_map"

        def checked(*args: Any, **kwargs: Any) -> str:
            budget = _BUDGET.get()
            if budget is not None:
                mapping = args[0] if format_map and args and isinstance(args[0], dict) else kwargs
                _check_format(budget, fmt, () if format_map else args, mapping)
            return wrapped(*args, **kwargs)

        return checked

    def guard_iter(self, iterable: Iterable[Any]) -> Iterable[Any]:
        budget = _BUDGET.get()
        return iterable if budget is None else _guarded_iteration(iterable, budget)

    def sized(self, value: Any) -> Any:
        budget = _BUDGET.get()
        return value if budget is None else budget.sized(value)


def _guarded_iteration(iterable: Iterable[Any], budget: Budget) -> Iterator[Any]:
    for count, item in enumerate(iterable):
        if not count % _CHECK_EVERY:
            budget.tick()
        yield item
