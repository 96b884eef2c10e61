"""A small report written both as Markdown and as self-contained HTML.

Blocks are headings, paragraphs, key/value tables and images; the same list
renders to ``report.md`` (images linked by relative path) and ``report.html``
(images embedded as base64, so the file can be mailed on its own).
"""
from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str


@dataclass
class Table:
    header: Sequence[str]
    rows: Sequence[Sequence[object]]


@dataclass
class Image:
    path: Path  # absolute, or relative to the report folder
    caption: str


Block = Union[Heading, Paragraph, Table, Image]


def fmt(value: object, spec: str = '.3f') -> str:
    """A number formatted with ``spec``; None (undefined) as 'n/a'."""
    if value is None:
        return 'n/a'
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def to_markdown(blocks: Sequence[Block], folder: Path) -> str:
    """Markdown text; image paths relative to ``folder``."""
    out = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f'{"#" * block.level} {block.text}')
        elif isinstance(block, Paragraph):
            out.append(block.text)
        elif isinstance(block, Table):
            out.append('| ' + ' | '.join(block.header) + ' |')
            out.append('|' + '---|' * len(block.header))
            out.extend('| ' + ' | '.join(str(c) for c in row) + ' |' for row in block.rows)
        elif isinstance(block, Image):
            out.append(f'![{block.caption}]({_relative(block.path, folder)})\n\n*{block.caption}*')
        out.append('')
    return '\n'.join(out)


def to_html(blocks: Sequence[Block], folder: Path, title: str) -> str:
    """A standalone HTML page with the images embedded."""
    body = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f'<h{block.level}>{html.escape(block.text)}</h{block.level}>')
        elif isinstance(block, Paragraph):
            body.append(f'<p>{html.escape(block.text)}</p>')
        elif isinstance(block, Table):
            head = ''.join(f'<th>{html.escape(h)}</th>' for h in block.header)
            rows = ''.join('<tr>' + ''.join(f'<td>{html.escape(str(c))}</td>' for c in row) + '</tr>'
                           for row in block.rows)
            body.append(f'<table><tr>{head}</tr>{rows}</table>')
        elif isinstance(block, Image):
            path = block.path if block.path.is_absolute() else folder / block.path
            data = base64.b64encode(path.read_bytes()).decode('ascii')
            mime = 'image/jpeg' if path.suffix.lower() in ('.jpg', '.jpeg') else 'image/png'
            body.append(f'<figure><img src="data:{mime};base64,{data}" '
                        f'alt="{html.escape(block.caption)}"><figcaption>'
                        f'{html.escape(block.caption)}</figcaption></figure>')
    style = ('body{font-family:sans-serif;max-width:960px;margin:2em auto}'
             'table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 8px}'
             'img{max-width:100%}')
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}'
            f'</title><style>{style}</style></head><body>{"".join(body)}</body></html>\n')


def write_report(folder: Path, blocks: Sequence[Block], title: str) -> tuple[Path, Path]:
    """Write ``folder/report.md`` and ``folder/report.html``; return both paths."""
    folder = Path(folder)
    md, page = folder / 'report.md', folder / 'report.html'
    md.write_text(to_markdown([Heading(title, 1), *blocks], folder))
    page.write_text(to_html([Heading(title, 1), *blocks], folder, title))
    return md, page


def _relative(path: Path, folder: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(folder).resolve()))
    except ValueError:
        return str(path)
