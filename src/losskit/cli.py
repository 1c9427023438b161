"""The ``losskit`` command: ``atlas``, ``plot``, ``guide``, ``list``, ``bench`` and ``demo``.

Built on typer and rich, which come with the ``atlas`` extra (``pip install 'losskit[atlas]'``); without
them the command says so and exits with status 1.
"""

# ruff: noqa: B008  (typer declares options as argument defaults; that is its documented idiom)

import subprocess
import sys
from pathlib import Path

# estimated (not run) from the quick run's CPU time per step and the size ratios of each step
FULL_RUNTIME = "an hour and a half"
EXTRA_HINT = (
    "losskit: the command line needs the 'atlas' extra: pip install 'losskit[atlas]' ({missing} is missing)"
)


def _parse_params(items: list[str]) -> list[dict]:
    """``["delta=0.5,1,2", "reduction=none"]`` -> one dict per combination of the listed values."""
    import itertools

    keys, values = [], []
    for item in items:
        if "=" not in item:
            raise ValueError(f"--param must be KEY=VALUE[,VALUE...]; got {item!r}")
        k, v = item.split("=", 1)
        keys.append(k.strip())
        values.append([_literal(x) for x in v.split(",")])
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)] or [{}]


def _literal(s: str):
    s = s.strip()
    for cast in (int, float):
        try:
            return cast(s)
        except ValueError:
            pass
    return {"none": None, "None": None, "true": True, "false": False}.get(s, s)


def source_root() -> Path | None:
    """The repository root when losskit runs from a source checkout (benchmarks/run.py beside src/)."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "benchmarks" / "run.py").exists() else None


def build_app():
    import typer
    from rich.console import Console
    from rich.table import Table

    app = typer.Typer(
        name="losskit",
        help="losskit: see every loss, test every claim made about it, and choose.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    console = Console()

    def _atlas(out: Path, mode: str, only: str | None, threads: int = 1) -> int:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        from .atlas import run_atlas

        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:
            task = progress.add_task("atlas", total=None)

            def on_step(step, i, n):
                progress.update(task, total=n, completed=i, description=f"{step.title}")

            def on_done(step, result):
                progress.advance(task)

            result = run_atlas(out, mode=mode, only=only, on_step=on_step, on_done=on_done, threads=threads)
            progress.update(task, description="atlas done")
        table = Table(title=f"losskit atlas ({mode}, {result.seconds:.0f} s)")
        table.add_column("claim")
        table.add_column("verdict")
        table.add_column("effect [95% interval], seeds", overflow="fold")
        table.add_column("why", overflow="fold")
        colour = {"held": "green", "did not hold": "red", "inconclusive": "yellow"}
        for c in result.claims:
            table.add_row(c.statement, f"[{colour[c.verdict]}]{c.verdict}[/]", c.interval_text(), c.reason)
        console.print(table)
        for r in result.results:
            if r.status != "ok":
                style = "red" if r.status == "failed" else "yellow"
                console.print(
                    f"[{style}]{r.title}: {r.status}[/] — {r.note.splitlines()[0] if r.note else ''}"
                )
        console.print(
            f"Report: [bold]{result.index.resolve()}[/]  (claims: {(result.out / 'claims.json').resolve()})"
        )
        console.print(f"atlas ({mode}) took {result.seconds:.0f} s")
        return 1 if result.failed else 0

    @app.command()
    def atlas(
        out: Path = typer.Option(Path("atlas-out"), "--out", help="Folder for index.html and its images."),
        full: bool = typer.Option(
            False,
            "--full/--quick",
            help="--quick (default): at least 5 seeds per claim, under 5 minutes on 2 idle CPU cores. "
            "--full: at "
            "least 10 seeds and the complete experiments (the DIoU simulation at the paper's 1,715,000 "
            f"cases): about {FULL_RUNTIME} on 2 CPU cores.",
        ),
        only: str | None = typer.Option(
            None,
            "--only",
            help="Only one family: regression, imbalance, boxes, faces, contrastive or language.",
        ),
        threads: int = typer.Option(
            1, "--threads", min=1, help="torch threads during the run (1 is fastest for these small models)."
        ),
        tiny: bool = typer.Option(False, "--tiny", hidden=True, help="Smallest sizes, 2 seeds (tests)."),
    ):
        """Run the charts and the evidence experiments; write index.html and claims.json."""
        from .atlas import FAMILIES

        if only is not None and only not in FAMILIES:
            console.print(f"[red]losskit atlas: --only must be one of {', '.join(FAMILIES)}; got {only!r}[/]")
            raise typer.Exit(2)
        raise typer.Exit(_atlas(out, "tiny" if tiny else "full" if full else "quick", only, threads))

    @app.command()
    def demo(out: Path = typer.Option(Path("atlas-out"), "--out", help="Folder for the report.")):
        """The main job behind `make demo`: the atlas in --quick mode into ./atlas-out (prints its time)."""
        raise typer.Exit(_atlas(out, "quick", None))

    @app.command()
    def plot(
        loss: str = typer.Argument(..., help="A function name from `losskit list`, e.g. huber_loss."),
        param: list[str] = typer.Option([], "--param", help="KEY=V1[,V2...]; repeat for several keys."),
        out: Path = typer.Option(None, "--out", help="PNG file. Default: <loss>.png"),
    ):
        """Plot one loss and its gradient, several parameter values overlaid."""
        from .atlas import Unavailable
        from .atlas.curves import plot_loss

        try:
            variants = _parse_params(param)
            path = plot_loss(loss, variants, out or Path(f"{loss}.png"))
        except (KeyError, ValueError, TypeError, Unavailable) as err:
            console.print(f"[red]losskit plot: {err.args[0] if err.args else err}[/]")
            raise typer.Exit(2) from None
        console.print(f"Wrote {path}")

    @app.command()
    def guide(
        task: str = typer.Option(
            None, "--task", help="regression, classification, dense-detection, box-regression, face-metric"
        ),
        outliers: bool = typer.Option(None, "--outliers/--no-outliers", help="Targets contain gross errors."),
        imbalance: float = typer.Option(None, "--imbalance", help="Negatives per positive (1 = balanced)."),
        num_classes: int = typer.Option(None, "--num-classes", help="Number of classes or identities."),
        report: Path = typer.Option(
            Path("atlas-out"), "--report", help="An atlas output folder, for the evidence."
        ),
    ):
        """Recommend losses for a task; each reason shows the claim behind it, its verdict and interval."""
        from rich.prompt import Confirm, FloatPrompt, IntPrompt, Prompt

        from .atlas.guide import NOT_MEASURED, TASKS, recommend

        if task is None:
            task = Prompt.ask("Task", choices=list(TASKS), default="regression")
        if task not in TASKS:
            console.print(f"[red]losskit guide: --task must be one of {', '.join(TASKS)}; got {task!r}[/]")
            raise typer.Exit(2)
        if task == "regression" and outliers is None:
            outliers = Confirm.ask("Do the targets contain outliers?", default=False)
        if task in ("classification", "dense-detection") and imbalance is None:
            imbalance = FloatPrompt.ask("Negatives per positive", default=1.0)
        if task in ("classification", "face-metric") and num_classes is None:
            num_classes = IntPrompt.ask("Number of classes", default=2)
        try:
            recs = recommend(
                task,
                outliers=bool(outliers),
                imbalance=imbalance or 1.0,
                num_classes=num_classes or 2,
                report=report,
            )
        except ValueError as err:
            console.print(f"[red]losskit guide: {err}[/]")
            raise typer.Exit(2) from None
        index = report / "index.html"
        colour = {"held": "green", "did not hold": "red", "inconclusive": "yellow"}
        table = Table(title=f"Recommended for {task}")
        table.add_column("loss")
        table.add_column("why")
        table.add_column("evidence: claim, verdict, effect [95% interval], seeds", overflow="fold")
        for r, evidence in recs:
            lines = [
                f"{e.statement} [{colour.get(e.verdict, 'white')}]{e.verdict}[/]: "
                + ("n/a" if e.effect is None else f"{e.effect:+.3g}")
                + (f" [{e.low:+.3g}, {e.high:+.3g}]" if e.low is not None else " (no interval)")
                + f" {e.unit}, {e.seeds} seeds"
                for e in evidence
            ] or [NOT_MEASURED]
            table.add_row(r.function, r.reason, "\n".join([*lines, r.link(str(index))]))
        console.print(table)
        if not (report / "claims.json").exists():
            console.print(f"Run `losskit atlas --out {report}` to measure the evidence behind these reasons.")

    @app.command("list")
    def list_():
        """Every loss: family, paper, function and Module."""
        from . import functional, nn
        from .catalog import CATALOG

        table = Table(title="losskit losses")
        for col in ("family", "loss", "paper", "function", "Module"):
            table.add_column(col, overflow="fold")
        for i in CATALOG:
            ok_f = hasattr(functional, i.function)
            ok_m = hasattr(nn, i.module)
            table.add_row(
                i.family,
                i.title,
                i.paper,
                f"losskit.functional.{i.function}" + ("" if ok_f else " [yellow](not yet)[/]"),
                f"losskit.nn.{i.module}" + ("" if ok_m else " [yellow](not yet)[/]"),
            )
        console.print(table)

    @app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def bench(ctx: typer.Context):
        """Run the benchmarks (benchmarks/run.py; needs a source checkout). Extra arguments pass through."""
        root = source_root()
        if root is None:
            console.print(
                "[red]losskit bench: needs a source checkout of losskit (benchmarks/run.py); "
                "this is an installed copy.[/]"
            )
            raise typer.Exit(1)
        raise typer.Exit(
            subprocess.call([sys.executable, str(root / "benchmarks" / "run.py"), *ctx.args], cwd=root)
        )

    return app


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``losskit`` console script and of ``python -m losskit``."""
    try:
        import rich  # noqa: F401
        import typer  # noqa: F401
    except ModuleNotFoundError as err:
        print(EXTRA_HINT.format(missing=err.name), file=sys.stderr)
        raise SystemExit(1) from None
    app = build_app()
    app(args=argv, prog_name="losskit")
