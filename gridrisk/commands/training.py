"""CLI commands for the training stage: `gridrisk train`, `gridrisk backtest`, `gridrisk evaluate`,
`gridrisk promote`.

Heavy imports (pandas, LightGBM, MLflow) happen inside the commands so `gridrisk --help` stays fast.
"""

from __future__ import annotations

import getpass
import logging
import os
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from gridrisk.commands import tracking_server_or_exit

logger = logging.getLogger(__name__)

TASK_NAMES = ("arrears", "suspension", "theft")

# Rows of the closing table: (metric key, label shown).
TABLE_ROWS = (
    ("roc_auc", "ROC-AUC"),
    ("pr_auc", "PR-AUC"),
    ("ks", "KS"),
    ("brier", "Brier"),
    ("log_loss", "log loss"),
    ("ece", "ECE"),
    ("precision_at_1pct", "precision @ top 1 %"),
    ("precision_at_5pct", "precision @ top 5 %"),
    ("recall_at_5pct", "recall @ top 5 %"),
    ("amount_recall_at_5pct", "yuan recall @ top 5 %"),
    ("precision_at_station_capacity", "precision @ station capacity"),
    ("recall_at_station_capacity", "recall @ station capacity"),
    ("lift_top_decile", "lift, top decile"),
    ("true_roc_auc", "ROC-AUC vs true thieves"),
    ("true_precision_at_5pct", "precision @ 5 % vs true thieves"),
    ("true_recall_at_5pct", "recall @ 5 % vs true thieves"),
)
SCORER_COLUMNS = (
    ("model", "model"),
    ("logistic", "LR baseline"),
    ("rule", "rule baseline"),
    ("oracle", "oracle"),
)


CONFIG_ARGUMENT = typer.Argument(None, help="experiment TOML, e.g. experiments/configs/arrears.toml")
TASK_OPTION = typer.Option(None, "--task", help="arrears | suspension | theft | all (defaults, no file)")
WAREHOUSE_OPTION = typer.Option(None, "--warehouse", help="overrides the config's warehouse")
SAMPLE_OPTION = typer.Option(
    None,
    "--sample",
    help="learn from this share of the customers, e.g. 0.25 (the test dates keep all); overrides \\[sample]",
)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("backtest")(backtest)
    app.command("evaluate")(evaluate)
    app.command("promote")(promote)


# MLflow's REST client retries a lost server 7 times with a doubling back-off: 4.5 minutes before a training
# run failed. gridrisk's commands give up after about 10 s (a user's own settings are kept).
MLFLOW_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def _prepare_runtime(tracking_uri: str = "") -> None:
    """Environment for a training command, set before LightGBM, scikit-learn or MLflow load."""
    from urllib.parse import urlsplit

    # OpenMP threads that spin while they wait make LightGBM 5-10x slower whenever the cores are shared with
    # other work (measured: 110 s vs 14 s for one fit on a busy 2-core box); passive waiting costs little.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for key, value in MLFLOW_HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    # MLflow prints "View run … at: <tracking URI>/#/…" as each run ends, with the URI's user and password in
    # it; gridrisk prints the address itself ("Runs and models:"), without them.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    if tracking_uri.startswith(("http://", "https://")) and "@" in urlsplit(tracking_uri).netloc:
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    # The cloudpickle notice is expected: the pyfunc is our class (serving.model); we load only our models.
    logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)
    logging.getLogger("mlflow.models.model").setLevel(logging.ERROR)
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)


def _name(task: str) -> str:
    """The task's experiment and registered model (`gridrisk-<task>`, with GRIDRISK_MODEL_PREFIX inside)."""
    from training.registry import model_name

    return model_name(task)


def _server_or_exit(settings: Any) -> None:
    """Before any work: the runtime (MLflow's retry budget, no URLs with passwords printed), a tracking server
    that answers at all (`tracking_server_or_exit`), and one whose API takes this client (`_api_or_exit`)."""
    _prepare_runtime(settings.tracking_uri)  # the model prefix was checked by load_settings
    tracking_server_or_exit(settings)
    _api_or_exit(settings.tracking_uri)


def _api_or_exit(tracking_uri: str) -> None:
    """Exit 2, in one line, when the tracking server answers `/health` but refuses its API to this client:
    MLflow 3's host check (403 "Invalid Host header": the server was started without `--allowed-hosts`
    naming the address the analysts use), or credentials refused (401/403). `/health` is exempt from both,
    so the training set had been built first and the run ended in a 150-line traceback. Asked through
    MLflow's own client, so it sends what training will (user and password in the URI,
    MLFLOW_TRACKING_USERNAME/PASSWORD, a token). Anything else is left to the command."""
    import re
    from urllib.parse import urlsplit

    if not tracking_uri.startswith(("http://", "https://")):
        return
    from mlflow.exceptions import MlflowException

    from serving.settings import uri_without_credentials
    from training.registry import client_for

    try:
        client_for(tracking_uri).search_experiments(max_results=1)
        return
    except MlflowException as exc:
        message = str(exc.message)
        found = re.search(r"error code (\d{3})", message)
        status = int(found.group(1)) if found else exc.get_http_status_code()
        code = exc.error_code
        refused = code in ("UNAUTHENTICATED", "PERMISSION_DENIED")
    except Exception:  # a connection lost since the /health probe, TLS: the command reports it
        return
    shown = uri_without_credentials(tracking_uri)
    host = urlsplit(tracking_uri).netloc.rpartition("@")[2]
    if status == 403 and "Invalid Host header" in message:
        typer.echo(
            f"error: the MLflow tracking server {shown} (MLFLOW_TRACKING_URI) refuses the Host header {host} "
            "(403 Invalid Host header: MLflow 3 answers only to localhost and private addresses unless told "
            f"otherwise); start it with `mlflow server … --allowed-hosts {host}` (and --cors-allowed-origins "
            f"for the UI in a browser)",
            err=True,
        )
        raise typer.Exit(2)
    if status in (401, 403) or refused:
        given = (
            "the user and password in MLFLOW_TRACKING_URI"
            if "@" in urlsplit(tracking_uri).netloc
            else "MLFLOW_TRACKING_USERNAME/PASSWORD"
            if os.environ.get("MLFLOW_TRACKING_USERNAME")
            else "no credentials (none in MLFLOW_TRACKING_URI or MLFLOW_TRACKING_USERNAME/PASSWORD)"
        )
        typer.echo(
            f"error: the MLflow tracking server {shown} (MLFLOW_TRACKING_URI) refused the credentials "
            f"(HTTP {status or code}) given as {given}; set a user and password it accepts, "
            "as http://USER:PASSWORD@host:port or MLFLOW_TRACKING_USERNAME/PASSWORD",
            err=True,
        )
        raise typer.Exit(2)


def train(
    config: Path | None = CONFIG_ARGUMENT,
    task: str | None = TASK_OPTION,
    warehouse: Path | None = WAREHOUSE_OPTION,
    search: bool | None = typer.Option(None, "--search/--no-search", help="turn the Optuna search on or off"),
    trials: int | None = typer.Option(None, "--trials", min=1, help="Optuna trials (implies --search)"),
    sample: float | None = SAMPLE_OPTION,
) -> None:
    """Train, evaluate and register a task's model; the gate decides whether it becomes champion."""
    from rich.console import Console

    from gridrisk.settings import load_settings

    console = Console()
    settings = load_settings()
    _server_or_exit(settings)
    configs = _with_sample(_configs_or_exit(console, config, task, warehouse), sample)
    if search is not None or trials is not None:
        configs = [(_with_search(c, search, trials), text) for c, text in configs]

    failed = _each_task(
        console,
        configs,
        settings,
        lambda cfg, wh, text, progress: _train_one(cfg, wh, settings, progress, text),
        _print_report,
    )
    console.print(f"Runs and models: [bold]{escape(where_to_see_runs(settings.tracking_uri))}[/bold]")
    if failed:
        console.print(f"[red]not trained:[/red] {', '.join(failed)} (errors above)")
        raise typer.Exit(1)


def where_to_see_runs(tracking_uri: str) -> str:
    """A tracking server is opened in a browser; a local store through `mlflow ui` (which refuses an http URI
    as its backend store)."""
    from serving.settings import uri_without_credentials

    if tracking_uri.startswith(("http://", "https://")):
        return f"{uri_without_credentials(tracking_uri)} (the tracking server's own page)"
    return f"mlflow ui --backend-store-uri {tracking_uri}"


def _each_task(
    console: Any, configs: list[tuple[Any, str | None]], settings: Any, work: Any, show: Any
) -> list[str]:
    """Run `work(cfg, warehouse, toml_text, progress)` for each config under a progress bar and `show` its
    report; one task's failure (say, too little history for a 180-day label, or a defect) does not stop the
    others. Returns the tasks that failed."""
    from gridrisk.commands import data_errors
    from training.tasks import TrainingError

    warehouses = [Path(cfg.warehouse or settings.warehouse_path) for cfg, _ in configs]
    for (cfg, _), wh in zip(configs, warehouses, strict=True):
        _inputs_or_exit(console, cfg, wh)
    failed = []
    for (cfg, text), wh in zip(configs, warehouses, strict=True):
        try:
            report = _run_with_progress(
                console,
                cfg.task.value,
                lambda progress, cfg=cfg, wh=wh, text=text: work(cfg, wh, text, progress),
            )
        except (TrainingError, *data_errors()) as exc:
            console.print(f"[red]error ({cfg.task.value}):[/red] {escape(str(exc))}")
            failed.append(cfg.task.value)
            continue
        except Exception:  # not the data's fault: show where it broke, and still run the other tasks
            console.print(f"[red]unexpected error ({cfg.task.value}), a defect to report:[/red]")
            console.print_exception()
            failed.append(cfg.task.value)
            continue
        show(console, report)
    return failed


def _inputs_or_exit(console: Any, cfg: Any, warehouse: Path) -> None:
    """A missing warehouse, or a training_set that is no training set, is the user's to fix before any task
    runs: exit code 2, as for a bad config."""
    import pyarrow.parquet as pq

    from training.experiment import build_command, check_training_set_file, require_columns
    from training.tasks import TrainingError, task_spec

    if cfg.training_set is None:
        if not warehouse.is_dir():
            wh = escape(str(warehouse))
            here = escape(str(Path.cwd()))
            # Relative paths in a config are read from the current folder, as on the command line.
            where = (
                ""
                if warehouse.is_absolute()
                else f" (a relative path, read from the current folder {here}, not the config file's)"
            )
            console.print(
                f"[red]error:[/red] warehouse {wh}{where} does not exist: run `gridrisk ingest EXPORT "
                f"--warehouse {wh}` first, or pass --warehouse DIR (or set GRIDRISK_WAREHOUSE)"
            )
            raise typer.Exit(2)
        return
    path = Path(cfg.training_set)
    try:
        if not path.exists():
            raise TrainingError(
                f"training_set {path}{_resolved(path)} does not exist; build it with "
                f"{build_command(cfg.task.value)}, or fix "
                "the path in the config"
            )
        check_training_set_file(path, cfg.task.value)
        spec = task_spec(cfg.task.value)  # the command trains on the task's features
        require_columns(pq.read_schema(path).names, spec, spec.features)
    except TrainingError as exc:
        console.print(f"[red]error ({cfg.task.value}):[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc


def _resolved(path: Path) -> str:
    """How a relative path in a config is read: from the current folder, not the config's."""
    if path.is_absolute():
        return ""
    return f" (relative paths are read from the current folder, not the config file's: {path.resolve()})"


def _configs_or_exit(
    console: Any, config: Path | None, task: str | None, warehouse: Path | None
) -> list[tuple[Any, str | None]]:
    """(experiment config, its TOML text) for a config file, or for --task T|all with the task defaults; a
    bad file or bad arguments end the command with exit code 2."""
    from training.config import default_config, load_config, with_overrides
    from training.tasks import TrainingError

    try:
        if config is not None:
            if task is not None:
                raise TrainingError("give either a config file or --task, not both")
            written = load_config(config)
            return [(with_overrides(written, warehouse=warehouse), config.read_text(encoding="utf-8"))]
        if task is not None:
            names = TASK_NAMES if task == "all" else (task,)
            return [(with_overrides(default_config(name), warehouse=warehouse), None) for name in names]
        raise TrainingError("name a config file (experiments/configs/<task>.toml) or --task T|all")
    except TrainingError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc


def backtest(
    config: Path | None = CONFIG_ARGUMENT,
    task: str | None = TASK_OPTION,
    windows: int = typer.Option(4, "--windows", min=1, help="test windows, latest first"),
    warehouse: Path | None = WAREHOUSE_OPTION,
    sample: float | None = SAMPLE_OPTION,
) -> None:
    """Refit the experiment as of earlier test windows and compare the model with its baselines in each."""
    from rich.console import Console

    from gridrisk.settings import load_settings
    from training.backtest import backtest_task

    console = Console()
    settings = load_settings()
    _server_or_exit(settings)
    configs = _with_sample(_configs_or_exit(console, config, task, warehouse), sample)
    failed = _each_task(
        console,
        configs,
        settings,
        lambda cfg, wh, text, progress: backtest_task(
            cfg,
            warehouse=wh,
            windows=windows,
            tracking_uri=settings.tracking_uri,
            artifact_root=settings.artifact_root,
            progress=progress,
        ),
        _print_backtest,
    )
    if failed:
        console.print(f"[red]no backtest:[/red] {', '.join(failed)} (errors above)")
        raise typer.Exit(1)


def _print_backtest(console: Any, report: Any) -> None:
    from rich.table import Table

    primary = report.primary_metric
    title = f"{report.task}: backtest, {primary} and ROC-AUC by test window"
    table = Table(title=title, title_justify="left")
    for name in ("window", "test dates", "rows", "positives"):
        table.add_column(name, justify="right")
    frame = report.table()
    short = {"model": "model", "logistic": "LR", "rule": "rule", "oracle": "oracle"}
    keys = [key for key, _ in SCORER_COLUMNS if f"{key}_roc_auc" in frame]
    for metric in ("★", "AUC"):
        for key in keys:
            table.add_column(f"{short[key]} {metric}", justify="right")
    table.add_column("model ECE", justify="right")

    def cells(values: Any) -> list[str]:
        return [
            *(_cell(values.get(f"{key}_{primary}")) for key in keys),
            *(_cell(values.get(f"{key}_roc_auc")) for key in keys),
            _cell(values.get("model_ece")),
        ]

    for _, row in frame.iterrows():
        dates = f"{row['test_start']:%Y-%m}..{row['test_end']:%Y-%m}"
        table.add_row(str(row["window"]), dates, str(row["rows"]), str(row["positives"]), *cells(row))
    table.add_row("mean", "", "", "", *cells(report.means()), style="bold")
    console.print(table)
    console.print(f"  ★ = {primary}, the primary metric")
    for c in report.comparisons:
        how = f" ± {c.standard_error:.4f} (mean over windows ± its standard error)" if c.windows > 1 else ""
        console.print(
            f"  model − {c.baseline} on {primary}: {c.mean_difference:+.4f}{how}; "
            f"the model is ahead in {c.wins} of {c.windows} window{'s' if c.windows > 1 else ''}"
        )
    if report.stopped:
        done = f"{len(report.windows)} of {report.requested}"
        console.print(f"  [yellow]stopped after {done} windows:[/yellow] {escape(report.stopped)}")
    console.print(f"  run {report.run_id} in experiment {_name(report.task)}")


def _cell(value: Any) -> str:
    return "—" if value is None or value != value else f"{value:.4f}"


def _with_search(cfg: Any, search: bool | None, trials: int | None) -> Any:
    from training.config import with_overrides

    enabled = bool(search) if search is not None else True
    update: dict[str, Any] = {"enabled": enabled}
    if trials is not None:
        update["n_trials"] = trials
    # Validated by the config's own bounds, and recorded apart from the config as written.
    return with_overrides(cfg, search=update)


def _with_sample(configs: list[tuple[Any, str | None]], share: float | None) -> list[tuple[Any, str | None]]:
    """`--sample` in place of each config's `[sample] customers`, checked by the config's own bounds."""
    from training.config import with_overrides

    if share is None:
        return configs
    out = []
    for cfg, text in configs:
        try:
            type(cfg.sample).model_validate(cfg.sample.model_dump() | {"customers": share})
        except ValueError:
            raise typer.BadParameter(
                f"{share} is not a share in (0, 1]; e.g. 0.25 learns from a quarter of the customers",
                param_hint="--sample",
            ) from None
        out.append((with_overrides(cfg, sample={"customers": share}), text))
    return out


def _train_one(cfg: Any, warehouse: Path, settings: Any, progress: Any, text: str | None) -> Any:
    from training.experiment import train_task

    return train_task(
        cfg,
        warehouse=Path(warehouse),
        tracking_uri=settings.tracking_uri,
        artifact_root=settings.artifact_root,
        progress=progress,
        config_text=text,
        keep_dir=Path(settings.home) / "cache" / "training-sets",
    )


def _run_with_progress(console: Any, task: str, work: Any) -> Any:
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from training.experiment import STEPS

    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        handle = bar.add_task(f"{task}: starting", total=len(STEPS))

        def progress(step: str, fraction: float | None) -> None:
            index = STEPS.index(step) if step in STEPS else 0
            done = index + (min(max(fraction, 0.0), 1.0) if fraction is not None else 0.0)
            bar.update(handle, description=f"{task}: {step}", completed=done)

        result = work(progress)
        bar.update(handle, description=f"{task}: done", completed=len(STEPS))
    return result


def _metrics_table(title: str, metrics: dict[str, dict[str, float]], primary: str) -> Any:
    """The title on a line of its own above the table: as the table's title it wrapped at the table's width
    ("(★ = primary" / "metric)") on any terminal."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table()
    table.add_column("metric (test window)")
    columns = [(key, label) for key, label in SCORER_COLUMNS if key in metrics]
    for _, label in columns:
        table.add_column(label, justify="right")
    for key, label in TABLE_ROWS:
        if not any(key in metrics[scorer] for scorer, _ in columns):
            continue
        marker = " ★" if key == primary else ""
        table.add_row(label + marker, *[_cell(metrics[scorer].get(key)) for scorer, _ in columns])
    return Group(Text(title), table)


FEW_POSITIVES = 50  # below this a test window's ROC-AUC has a standard error of about 0.04 or more
# Above this the served probabilities are off the test window's own rate, whatever the ranking: said in the
# summary, since the gate judges ranking only (a model 0.10 low on a seasonal suspension window was promoted).
LOOSE_ECE = 0.05


def _logistic_beats(logistic: dict[str, float], model: dict[str, float], primary: str) -> str:
    """How the logistic baseline beats the model, or "": on the primary metric, or, tied on it (on a small
    utility both lists can hold no hit at all), on ROC-AUC."""
    ours, theirs = model.get(primary, float("-inf")), logistic.get(primary, float("-inf"))
    if theirs > ours:
        return f"beats the model on {primary} ({theirs:.4f} against {ours:.4f})"
    auc, their_auc = model.get("roc_auc", float("-inf")), logistic.get("roc_auc", float("-inf"))
    if theirs == ours and their_auc > auc:
        return (
            f"ties the model on {primary} ({ours:.4f}) and ranks the whole list better (ROC-AUC "
            f"{their_auc:.4f} against {auc:.4f})"
        )
    return ""


def _print_warnings(console: Any, metrics: dict[str, dict[str, float]], primary: str) -> None:
    """What the numbers of a model on its test window warn of, as `train` and `evaluate` print them: the
    ROC-AUC's standard error, a ranking worse than chance, the logistic baseline beating the model, few
    positives, probabilities off the window's rate."""
    from training.registry import CHANCE_AUC

    model = metrics["model"]
    se = model.get("roc_auc_se", float("nan"))
    if se == se:
        console.print(f"  model ROC-AUC standard error: {se:.4f} (Hanley–McNeil)")
    auc = model.get("roc_auc", float("nan"))
    if auc < CHANCE_AUC:
        # Not a weak model but a reversed one: its top of the list is where the customers least at risk are.
        console.print(
            f"  [red]the model ranks the test window worse than chance[/red] (ROC-AUC {auc:.4f} < "
            f"{CHANCE_AUC:g}): what it learned does not hold on the test dates (a season, too few training "
            "dates or positives); do not serve it, and see `gridrisk backtest`",
            highlight=False,
        )
    beaten = _logistic_beats(metrics.get("logistic", {}), model, primary)
    if beaten:
        # The gate holds a first model to the rule only: a booster that stopped early on a few training dates
        # was promoted beside a logistic baseline better on 11 of 13 metrics, without a word.
        console.print(
            f"  [yellow]the logistic baseline {beaten}[/yellow]: with few training dates the booster "
            "may stop early on too little; `gridrisk backtest` shows whether it holds over earlier windows",
            highlight=False,
        )
    if model["positives"] < FEW_POSITIVES:
        console.print(
            f"  [yellow]only {int(model['positives'])} positives in the test window:[/yellow] "
            "differences under two standard errors are noise; train on more customers or dates"
        )
    ece = model.get("ece", float("nan"))
    if ece > LOOSE_ECE:
        mean, rate = model["mean_probability"], model["label_rate"]
        why = (
            "The rate moved between the dates the model learned from and the test (a season, a downturn)"
            if abs(mean - rate) >= ece / 2
            else "The mean is right but the levels are too far apart or too close together (over- or "
            "under-confidence)"
        )
        console.print(
            f"  [yellow]calibration: test ECE {ece:.3f}[/yellow] — the served probabilities average "
            f"{mean:.3f} against a label rate of {rate:.3f} on the test window: rank by them, but do not "
            f"read them as rates. {why}; `gridrisk backtest` shows it window by window",
            highlight=False,
        )


def _print_report(console: Any, report: Any) -> None:
    model = report.metrics["model"]
    split = report.split.summary()
    title = (
        f"{report.task}: test {split['split_test']}, {int(model['rows'])} rows, "
        f"{int(model['positives'])} positives "
        f"(★ = primary metric)"
    )
    console.print(_metrics_table(title, report.metrics, report.primary_metric))
    if report.sample_customers < 1:
        console.print(
            f"  trained on {report.sample_customers:.0%} of the customers ([sample]): "
            f"{report.rows_train:,} training rows; the test window keeps all of them",
            markup=False,
        )
    _print_warnings(console, report.metrics, report.primary_metric)
    if report.unlearned:
        n = len(report.unlearned)
        has, does, them = ("1 feature has", "does", "it") if n == 1 else (f"{n} features have", "do", "them")
        console.print(
            f"  [yellow]{has} no value on any training date[/yellow] but {does} on the test dates, so the "
            f"model cannot use {them} yet: {', '.join(report.unlearned)} (say, daily "
            "readings that begin inside the last label window, or a year-on-year change that needs more "
            "months of bills than the training dates have; a later retrain learns them)",
            highlight=False,
        )
    extra = report.extra
    if "oracle_auc_ratio" in extra:
        console.print(f"  model / oracle ROC-AUC: {extra['oracle_auc_ratio']:.3f}")
    console.print(
        f"  explanation cost: {extra['explain_ms_single_row']:.3f} ms for one row, "
        f"{extra['explain_ms_per_row_batch']:.3f} ms per row in a batch (pred_contrib)"
    )
    timing = f"{report.seconds:.1f} s"
    if report.build_seconds:
        rest = report.seconds - report.build_seconds - report.training_seconds
        timing += (
            f" (training set {report.build_seconds:.1f} s, training_seconds {report.training_seconds:.1f}"
        )
        # The parts add up to the total only with the rest said (a tester found 20.9 s against 4.7 + 14.7).
        timing += f", {rest:.1f} s closing the run and freeing memory)"
    console.print(f"  run {report.run_id} in experiment {_name(report.task)}, {timing}")
    if report.gate is not None:
        verdict = (
            "[green]promoted to champion[/green]"
            if report.gate.promote
            else "[yellow]stays challenger[/yellow]"
        )
        console.print(f"  {_name(report.task)} version {report.version}: {verdict} — {report.gate.reason}")


def evaluate(
    task: str = typer.Option(..., "--task", help="arrears | suspension | theft"),
    version: str | None = typer.Option(None, "--version", help="model version (default: the --alias)"),
    alias: str = typer.Option("champion", "--alias", help="model alias when no --version"),
    config: Path | None = typer.Option(
        None,
        "--config",
        help="experiment TOML giving the data and test window (default: the version's own, as trained)",
    ),
    warehouse: Path | None = typer.Option(None, "--warehouse", help="overrides the config's warehouse"),
    sample: float | None = SAMPLE_OPTION,
) -> None:
    """Score a registered model on the test window beside the baselines and oracle; logs an evaluation run."""
    from rich.console import Console

    from gridrisk.commands import data_errors
    from gridrisk.settings import load_settings
    from serving.model import model_reference
    from training.config import default_config, load_config, with_overrides
    from training.experiment import evaluate_model, version_config
    from training.registry import client_for, registered_model_uri
    from training.tasks import TrainingError

    console = Console()
    settings = load_settings()
    _server_or_exit(settings)
    try:  # the config and the model are the user's to fix (exit 2), before any data is read
        default_config(task)  # an unknown task is named with the tasks there are
        if config is not None:
            cfg = with_overrides(load_config(config), warehouse=warehouse)
            if cfg.task.value != task:
                raise TrainingError(f"--task {task} but the config {config} is for {cfg.task.value}")
        uri = registered_model_uri(settings.tracking_uri, task, version, alias)
        _, held = model_reference(uri, client_for(settings.tracking_uri))
        if config is None:
            # The version's own config: its as-of months, day and gap, so it is scored on its own test window
            # (the task's defaults scored a day-10 model on month ends, on outcomes it had learned from).
            own = version_config(settings.tracking_uri, uri, warehouse=warehouse)
            if own is not None:
                cfg, said = own, f"v{held}'s own config (config/resolved.json of its training run)"
            else:
                cfg = with_overrides(default_config(task), warehouse=warehouse)
                said = f"the task's defaults (v{held}'s run logged no config/resolved.json)"
        else:
            said = str(config)
    except TrainingError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    shown = uri if version is not None else f"{uri} (version {held})"
    console.print(f"evaluating {escape(shown)} with {escape(said)}", highlight=False)
    ((cfg, _),) = _with_sample([(cfg, None)], sample)  # the logistic baseline learns as in training
    wh = Path(cfg.warehouse or settings.warehouse_path)
    _inputs_or_exit(console, cfg, wh)
    try:
        report = _run_with_progress(
            console,
            task,
            lambda progress: evaluate_model(
                cfg,
                model_uri=uri,
                warehouse=wh,
                tracking_uri=settings.tracking_uri,
                artifact_root=settings.artifact_root,
                progress=progress,
            ),
        )
    except (TrainingError, *data_errors()) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from exc
    except Exception as exc:  # MLflow's own errors: a registered version whose files cannot be loaded
        from mlflow.exceptions import MlflowException

        if not isinstance(exc, MlflowException):
            raise
        console.print(f"[red]error:[/red] cannot load {uri}: {exc.message}")
        raise typer.Exit(1) from exc
    split = report.split.summary()
    console.print(
        _metrics_table(
            f"{shown} on test {split['split_test']} (★ = primary metric)",
            report.metrics,
            report.primary_metric,
        )
    )
    _print_warnings(console, report.metrics, report.primary_metric)  # as `train` prints them
    for note in report.notes:
        console.print(f"  [yellow]note:[/yellow] {escape(note)}", highlight=False)
    console.print(f"  evaluation run {report.run_id} in experiment {_name(task)}")


def promote(
    task: str = typer.Option(..., "--task", help="arrears | suspension | theft"),
    version: str = typer.Option(..., "--version", help="the model version to make champion"),
    reason: str = typer.Option(..., "--reason", help="why the gate is overridden (logged)"),
) -> None:
    """Override the gate: make a version the champion; who, why and what it replaced are logged in MLflow."""
    from rich.console import Console

    from gridrisk.settings import load_settings
    from training.registry import promote as promote_version
    from training.tasks import TrainingError, task_spec

    console = Console()
    settings = load_settings()
    _server_or_exit(settings)
    try:
        task_spec(task)
        result = promote_version(settings.tracking_uri, task, version, reason, user=_user())
    except TrainingError as exc:  # an unknown task or version, or no reason: the user's to fix
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    console.print(
        f"{result['model']} version {result['version']} is now [bold]champion[/bold] "
        f"(was {result['previous_champion']}); logged as run {result['run_id']}: {result['reason']}"
    )


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""
