"""``medai stream``: replay stays hour by hour through a model (filled in below)."""

import typer

stream_app = typer.Typer(add_completion=False, no_args_is_help=True,
                         help="Score stays as their data arrives (replay, risk trajectories, alerts).")
