"""The fenced Python blocks of README.md, their ``readme-test`` directives, and how one is run.

Used by ``test_readme.py``, whose docstring describes the directives.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import inspect
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from types import CodeType
from typing import Any

import attrs

from pacspace_async import AsyncPacSpace
from pacspace_sync import PacSpace

README = Path(__file__).resolve().parent.parent / "README.md"

_FENCE_OPEN = re.compile(r"^```(?P<language>[\w+-]*)\s*$")
_FENCE_CLOSE = re.compile(r"^```\s*$")
_HEADING = re.compile(r"^#{1,6}\s+(?P<title>.+?)\s*$")
_DIRECTIVE = re.compile(r"^<!--\s*readme-test:\s*(?P<kind>[\w-]+)\s*(?P<rest>.*?)\s*-->\s*$")
DIRECTIVE_KINDS = ("skip", "context", "replace")


@attrs.frozen
class Replacement:
    """`literal` (as written in the block, quotes included) becomes the repr of value `name`."""

    literal: str
    name: str


@attrs.frozen
class Block:
    """One fenced block: `line` is the 1-based line of its opening fence."""

    line: int
    language: str
    code: str
    section: str
    skip: str | None = None
    contexts: tuple[str, ...] = ()
    replacements: tuple[Replacement, ...] = ()

    @property
    def id(self) -> str:
        return f"README.md:{self.line}"


def parse_blocks(text: str) -> list[Block]:
    """Every fenced block of `text` (any language), with the directives just above its fence."""
    lines = text.splitlines()
    blocks: list[Block] = []
    section = ""
    index = 0
    while index < len(lines):
        line = lines[index]
        heading = _HEADING.match(line)
        opening = _FENCE_OPEN.match(line)
        if heading:
            section = heading["title"]
        if not opening:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and not _FENCE_CLOSE.match(lines[end]):
            end += 1
        if end == len(lines):
            raise ValueError(f"README.md:{index + 1}: the code fence is never closed")
        directives = _directives_above(lines, index)
        blocks.append(_block(index + 1, opening["language"], "\n".join(lines[index + 1 : end]), section, directives))
        index = end + 1
    return blocks


def _directives_above(lines: list[str], fence: int) -> list[tuple[int, str, str]]:
    found: list[tuple[int, str, str]] = []
    above = fence - 1
    while above >= 0 and (match := _DIRECTIVE.match(lines[above])):
        found.append((above + 1, match["kind"], match["rest"]))
        above -= 1
    return found[::-1]


def _block(line: int, language: str, code: str, section: str, directives: list[tuple[int, str, str]]) -> Block:
    skip: str | None = None
    contexts: list[str] = []
    replacements: list[Replacement] = []
    for where, kind, rest in directives:
        if kind not in DIRECTIVE_KINDS:
            raise ValueError(f"README.md:{where}: unknown readme-test directive {kind!r}; known: {DIRECTIVE_KINDS}")
        if not rest:
            raise ValueError(f"README.md:{where}: readme-test {kind} needs an argument")
        if kind == "skip":
            skip = rest
        elif kind == "context":
            contexts.append(rest)
        else:
            parts = shlex.split(rest)
            if len(parts) != 2:
                raise ValueError(f'README.md:{where}: write readme-test replace "LITERAL" NAME')
            replacements.append(Replacement(f'"{parts[0]}"', parts[1]))
    return Block(line, language, code, section, skip, tuple(contexts), tuple(replacements))


def source_of(block: Block, values: Mapping[str, Any]) -> str:
    """The block's code with its placeholders replaced by real values."""
    code = block.code
    for replacement in block.replacements:
        if replacement.literal not in code:
            raise AssertionError(f"{block.id}: the placeholder {replacement.literal} is no longer in the block")
        code = code.replace(replacement.literal, repr(values[replacement.name]))
    return code


def compile_block(block: Block, source: str) -> CodeType:
    """Compiled with top-level ``await`` allowed; line numbers in tracebacks are README lines."""
    padded = "\n" * block.line + source
    code: CodeType = compile(padded, str(README), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    return code


def is_async(code: CodeType) -> bool:
    """True when the block has a top-level ``await`` / ``async for`` / ``async with``."""
    return bool(code.co_flags & inspect.CO_COROUTINE)


def is_fragment(source: str) -> bool:
    """A block that does not start with an import continues the prose around it.

    Such a block may use the names the README has imported by then (`asyncio`, `Decimal`,
    the SDK's classes...); a block that starts with imports is a whole program and must
    import everything it uses.
    """
    body = ast.parse(source).body
    return not body or not isinstance(body[0], (ast.Import, ast.ImportFrom))


def uses_without_creating(source: str, name: str) -> bool:
    """True when the block reads `name` (e.g. ``pac``) but never creates it."""
    nodes = list(ast.walk(ast.parse(source)))
    loaded = any(isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Load) for node in nodes)
    return loaded and not any(_binds(node, name) for node in nodes) and not hasattr(builtins, name)


def _binds(node: ast.AST, name: str) -> bool:
    if isinstance(node, ast.Name):
        return node.id == name and isinstance(node.ctx, ast.Store)
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name == name
    return isinstance(node, ast.alias) and (node.asname or node.name) == name


def run_block(code: CodeType, namespace: dict[str, Any]) -> None:
    """Run the block in `namespace`: an async one in a fresh event loop, as a user's script would.

    Then the clients left in the namespace (made by the block or given to it) are closed, in
    that same loop for an async block.
    """
    if not is_async(code):
        try:
            eval(code, namespace)
        finally:
            for client in _clients(namespace):
                if isinstance(client, AsyncPacSpace):
                    asyncio.run(client.aclose())
                else:
                    client.close()
        return

    async def main() -> None:
        try:
            await eval(code, namespace)
        finally:
            for client in _clients(namespace):
                await client.aclose() if isinstance(client, AsyncPacSpace) else client.close()

    asyncio.run(main())


def _clients(namespace: Mapping[str, Any]) -> list[AsyncPacSpace | PacSpace]:
    return [value for value in namespace.values() if isinstance(value, (AsyncPacSpace, PacSpace))]
