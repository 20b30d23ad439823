"""``medai kb build CORPUS`` / ``medai kb query CONCEPT|TEXT``: a knowledge base of linked, negation-marked
mentions in the project's database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from medai.console import out, print_json

kb_app = typer.Typer(help="Knowledge base of entity mentions linked to concepts.", no_args_is_help=True)


@kb_app.command("build")
def kb_build(
    corpus: Annotated[Path, typer.Argument(metavar="CORPUS", help="BRAT folder, CoNLL or PubTator file, or a folder "
                                           "of .txt files (with --model).")],
    name: Annotated[str, typer.Option(help="Name of the knowledge base (rebuilt if it exists).")] = "default",
    model: Annotated[str | None, typer.Option(help="An entity model (directory or registered name) that finds the "
                                              "mentions (default: the corpus's own spans).")] = None,
    linker_data: Annotated[Path | None, typer.Option(help="A PubTator/BRAT corpus with concept ids to train the "
                                                     "linker (default: the corpus's own concept ids).")] = None,
    corpus_format: Annotated[str | None, typer.Option("--format", help="brat, conll or pubtator.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Find, link and negation-mark the mentions of a corpus and store them."""
    from medai.modalities.text.deid.detect import _load
    from medai.modalities.text.kb import build

    summary = build(corpus, name, model=_load(model) if model else None, linker_data=linker_data, fmt=corpus_format)
    if as_json:
        return print_json(summary)
    out.print(f"knowledge base {summary['kb']!r}: {summary['mentions']} mentions in {summary['documents']} documents, "
              f"{summary['linked']} linked, {summary['negated']} negated")


@kb_app.command("query")
def kb_query(
    term: Annotated[str, typer.Argument(metavar="CONCEPT|TEXT", help="A concept id (e.g. D003550) or words.")],
    name: Annotated[str | None, typer.Option(help="Only this knowledge base.")] = None,
    limit: int = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Mentions of a concept (or whose text contains the words)."""
    from medai.modalities.text.kb import query

    rows = query(term, name, limit)
    if as_json:
        return print_json(rows)
    table = Table(title=f"{len(rows)} mention(s) of {term!r}")
    for column in ("document", "span", "mention", "type", "concept", "negated"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["document"], f"{r['start']}-{r['end']}", r["mention"], r["type"], r["concept"] or "-",
                      "yes" if r["negated"] else "no")
    out.print(table)
