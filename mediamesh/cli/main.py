"""`mediamesh`: the command line. Each command group lives in its own module."""

from __future__ import annotations

import typer

from mediamesh.cli import calibrate, health, ingest, models, reembed, train_head, up

app = typer.Typer(help="mediamesh: a local model mesh for one small GPU.", no_args_is_help=True)
app.add_typer(models.app, name="models")
app.command()(up.up)
app.command()(health.health)
app.command()(ingest.ingest)
app.command()(ingest.search)
app.command()(reembed.reembed)
app.command()(calibrate.calibrate)
app.command("train-head")(train_head.train_head)
