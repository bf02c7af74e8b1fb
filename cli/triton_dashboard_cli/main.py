"""triton-dashboard: upload, deploy and wait, redeploy, promote, approve,
roll out step by step, move to another target, shift traffic, load test
and delete from a pipeline. Reads DASHBOARD_URL and DASHBOARD_TOKEN.

Exit codes: 0 done; 1 the deployment failed, was rejected or is not
healthy (after --wait on a redeploy or promotion, also: the change waited
for was rejected or expired), a rollout ended other than promoted (or has
not ended yet, without --wait), or the repository is invalid; 2 bad usage;
3 --wait timed out; 4 the dashboard refused the request or could not be
reached (with --json, its {"errors": [...]} is printed on stdout too).
"""

import json
import sys
import time
from pathlib import Path
from typing import NoReturn

import click

from triton_dashboard_cli import bodies
from triton_dashboard_cli.client import ApiFailure, Client

FAILED, TIMED_OUT, REFUSED = 1, 3, 4
# Polls in a row that may go unanswered while --wait waits.
_MISSES = 5
# While a deployment is in one of these, --wait keeps waiting.
UNDER_WAY = {"pending_approval", "queued", "deploying", "deleting"}
# Refusals that asking again with one more option answers (the API's codes);
# a command maps the error's path to that option.
ASK_AGAIN = {"ambiguous", "other_line", "not_healthy", "conflict"}


class Context:
    def __init__(self, url: str, token: str, as_json: bool):
        self.client = Client(url, token)
        self.as_json = as_json

    def call(self, operation: str, *, options: dict | None = None, **kwargs):
        return self.answer(operation, options=options, **kwargs)[1]

    def answer(self, operation: str, *, options: dict | None = None, **kwargs) -> tuple[int, dict | None]:
        """The status and body; a refusal exits 4. `options` maps the API's
        field names (an error's path) to this command's options."""
        try:
            return self.client.answer(operation, **kwargs)
        except ApiFailure as failure:
            self.refuse(failure, options or {})

    def refuse(self, failure: ApiFailure, options: dict) -> NoReturn:
        click.echo(f"error: {failure}", err=True)
        for line in _ask_again(failure.errors, options):
            click.echo(line, err=True)
        if self.as_json and failure.errors:
            # A pipeline reads the choices of an ambiguous answer from here.
            click.echo(json.dumps({"errors": failure.errors}, indent=2))
        sys.exit(REFUSED)

    def show(self, body, line: str) -> None:
        click.echo(json.dumps(body, indent=2) if self.as_json else line)


pass_context = click.make_pass_decorator(Context)


def _ask_again(errors: list, options: dict) -> list[str]:
    """How to ask again in this command's words: the API's messages name its
    fields (`send force true`, `name one in deployment`), not our options."""
    lines = []
    for error in errors:
        option = options.get(error.get("path", ""))
        if option is None or error.get("code") not in ASK_AGAIN:
            continue
        choices = error.get("choices") or []
        lines.append(f"  run again with {option}" + (", one of:" if choices else ""))
        lines += _table(choices)
    return lines


def _table(choices: list) -> list[str]:
    """id, name and description in columns, for a person to pick from."""
    id_width = max((len(str(c["id"])) for c in choices), default=0)
    name_width = max((len(c["name"]) for c in choices), default=0)
    return [
        f"    {c['id']:>{id_width}}  {c['name']:<{name_width}}  {c.get('description', '')}".rstrip() for c in choices
    ]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--url",
    envvar="DASHBOARD_URL",
    show_envvar=True,
    required=True,
    help="The dashboard, e.g. https://triton.example.com",
)
@click.option(
    "--token",
    envvar="DASHBOARD_TOKEN",
    show_envvar=True,
    required=True,
    help="An API token (deploy scope to change things)",
)
@click.option("--json", "as_json", is_flag=True, help="Machine output: the API's JSON")
@click.pass_context
def cli(ctx, url, token, as_json):
    """Triton Dashboard from the command line (DASHBOARD_URL, DASHBOARD_TOKEN)."""
    ctx.obj = Context(url, token, as_json)


def _summary(deployment: dict) -> str:
    reason = f" ({deployment['status_reason']})" if deployment.get("status_reason") else ""
    uri = (
        f" at {deployment['scoring_uri']}"
        if deployment.get("scoring_uri") and deployment["status"] != "deleted"
        else ""
    )
    where = f"deployment {deployment['id']} {deployment['name']} on {deployment['target']}"
    return f"{where}: {deployment['status']}{reason}{uri}"


def _revision(deployment: dict) -> str:
    repository = deployment["repository"]
    # An adopted deployment has no recorded revision.
    return f"{repository['name']} r{repository['revision']}" if repository.get("revision") else repository["name"]


def _changed(deployment: dict) -> str:
    """After a redeploy or promotion: the summary, the revision the deployment
    names, and whether the change waits for approval. Until it is approved
    the deployment still names what runs, not what was asked for."""
    line = f"{_summary(deployment)}; revision {_revision(deployment)}"
    approval = deployment["approval"]
    if approval["status"] != "pending":
        return line
    request = approval["request"]
    count = f"{request['approvals']}/{request['approvals_required']}"
    if deployment["status"] == "pending_approval":
        return f"{line}, waiting for approval ({count})"
    return f"{line} runs until its {request['kind']} is approved ({count})"


def _asked(deployment: dict) -> int | None:
    """The approval request a change just made, if it waits for one."""
    approval = deployment["approval"]
    return approval["request"]["id"] if approval["status"] == "pending" else None


def _declined(deployment: dict, request_id: int | None) -> str:
    """Why the change waited for (approval request `request_id`) did not go
    through, or "". A rejected redeploy leaves the deployment healthy on
    what it ran: its status alone would say all went well."""
    request = deployment["approval"].get("request")
    if request_id is None or request is None or request["id"] != request_id or request["status"] == "approved":
        return ""
    return f"its {request['kind']} request {request_id} was {request['status']}; it runs {_revision(deployment)}"


def _deployment_id(ctx: Context, reference: str) -> int:
    """An id, or the name of a deployment that is not deleted (unique among those the token sees)."""
    if reference.isdigit():
        return int(reference)
    named = ctx.call("deployment_list", query={"name": reference})["results"]
    live = [d for d in named if d["status"] != "deleted"]
    if len(live) != 1:
        where = "; ".join(f"id {d['id']} on {d['target']}" for d in live)
        said = (
            f"{len(live)} live deployments are named {reference!r}: {where}" if live else f"none is named {reference!r}"
        )
        click.echo(f"error: {said}. Name it by its id (the Deployments page, or `status ID`).", err=True)
        sys.exit(REFUSED)
    return live[0]["id"]


def _follow(ctx: Context, operation: str, path: dict, *, progress, under_way, summary, timeout, interval) -> dict:
    """Read the object (`operation` at `path`) until `under_way` says it is
    no longer; a progress line on stderr each time `progress` reads
    differently. Exits 3 on timeout (after showing it with `summary`), 4 on
    a refusal or too many unanswered polls in a row."""
    started, said, misses = time.monotonic(), None, 0
    while True:
        try:
            found = ctx.client.call(operation, path=path)
            misses = 0
        except ApiFailure as failure:
            # A long wait outlives a dashboard restart or a proxy's 502: a few
            # misses in a row are waited out; a refusal (4xx) is final.
            misses += 1
            if (failure.status is not None and failure.status < 500 and failure.status != 429) or misses > _MISSES:
                click.echo(f"error: {failure}", err=True)
                sys.exit(REFUSED)
            click.echo(f"[{time.monotonic() - started:5.0f}s] no answer ({failure}); trying again", err=True)
            time.sleep(interval)
            continue
        line = progress(found)
        if line != said:
            click.echo(f"[{time.monotonic() - started:5.0f}s] {line}", err=True)
            said = line
        if not under_way(found):
            return found
        if time.monotonic() - started > timeout:
            click.echo(f"error: still {found['status']} after {timeout:.0f}s", err=True)
            ctx.show(found, summary(found))
            sys.exit(TIMED_OUT)
        time.sleep(interval)


def _progress(deployment: dict) -> str:
    step = ""
    if deployment["operations"] and deployment["operations"][0]["steps"]:
        step = deployment["operations"][0]["steps"][-1]["message"]
    line = f"{deployment['status']}" + (f": {step}" if step else "")
    if deployment["approval"]["status"] == "pending":
        request = deployment["approval"]["request"]
        count = f"{request['approvals']}/{request['approvals_required']}"
        line += f" (its {request['kind']} waits for approval: {count})"
    return line


def _under_way(deployment: dict) -> bool:
    # A change waiting for approval (a delete, where deletes need one) is under way too.
    return deployment["status"] in UNDER_WAY or deployment["approval"]["status"] == "pending"


def _wait(
    ctx: Context, deployment_id: int, *, until: str, timeout: float, interval: float, request_id: int | None = None
) -> dict:
    """Follow the deployment until nothing is under way. Exits 3 on timeout,
    1 if it ends other than `until` or the approval request `request_id` (a
    change's) was not approved."""
    deployment = _follow(
        ctx,
        "deployment_get",
        {"deployment_id": deployment_id},
        progress=_progress,
        under_way=_under_way,
        summary=_summary,
        timeout=timeout,
        interval=interval,
    )
    ctx.show(deployment, _summary(deployment))
    declined = _declined(deployment, request_id)
    if declined:
        click.echo(f"error: {declined}", err=True)
    if deployment["status"] != until or declined:
        sys.exit(FAILED)
    return deployment


def _wait_options(command):
    command = click.option("--interval", default=2.0, show_default=True, help="Seconds between polls")(command)
    command = click.option("--timeout", default=1800.0, show_default=True, help="Seconds --wait waits at most")(command)
    return click.option("--wait", is_flag=True, help="Follow to the end; non-zero unless it ends as asked")(command)


def _spec_options(command):
    command = click.option(
        "--auth/--no-auth", "auth_enabled", default=None, help="Keys on the scoring endpoint (default: on)"
    )(command)
    command = click.option("--worker-count", type=int)(command)
    return click.option("--mode", type=click.Choice(["triton", "entry_script"]))(command)


@cli.group()
def repo():
    """Model repositories."""


@repo.command("upload")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--name", default="", help="Defaults to the archive's or directory's name")
@pass_context
def repo_upload(ctx, path, name):
    """Record a model repository: a .zip / .tar.gz, or a directory (packed here)."""
    filename, content = bodies.archive(path)
    repository = ctx.call(
        "repository_create", files={"archive": (filename, content)}, data={"name": name} if name else {}
    )
    verb = "recorded" if repository["created"] else "already recorded as"
    # Each upload under a name is that line's next revision; identical content is the revision holding it.
    recorded = f"repository {repository['id']} ({repository['name']} r{repository['revision']})"
    ctx.show(repository, f"{verb} {recorded}: {repository['status']}")
    for finding in repository["findings"]:
        click.echo(f"  {finding['severity']}: {finding.get('file') or finding.get('model') or ''} {finding['message']}")
    if repository["status"] != "valid":
        sys.exit(FAILED)


@cli.command()
@click.option("--repository", required=True, help="Repository id or name")
@click.option("--target", required=True, help="Target id or name")
@click.option("--name", required=True, help="The deployment's name (lower-case, digits, hyphens)")
@_spec_options
@_wait_options
@pass_context
def deploy(ctx, repository, target, name, mode, worker_count, auth_enabled, wait, timeout, interval):
    """Deploy a repository to a target; with --wait, follow it to healthy
    (through any approval the environment asks for)."""
    body = bodies.deployment_body(
        name=name, repository=repository, target=target, mode=mode, worker_count=worker_count, auth_enabled=auth_enabled
    )
    deployment = ctx.call("deployment_create", json=body)
    if not wait:
        ctx.show(deployment, _summary(deployment))
        return
    _wait(ctx, deployment["id"], until="healthy", timeout=timeout, interval=interval)


# The API's fields a refusal names, as these commands' options.
REDEPLOY_OPTIONS = {"confirm_other_line": "--confirm-other-line"}
PROMOTE_OPTIONS = {"deployment": "--into ID", "target": "--target ID|NAME", "force": "--force", "name": "--name NAME"}


@cli.command()
@click.argument("deployment")
@click.option(
    "--repository",
    metavar="ID|LINE",
    help="A revision's id, or a line's name for its latest revision (default: the one it runs)",
)
@click.option("--confirm-other-line", is_flag=True, help="Allow a revision of another line (other models)")
@_spec_options
@_wait_options
@pass_context
def redeploy(
    ctx, deployment, repository, confirm_other_line, mode, worker_count, auth_enabled, wait, timeout, interval
):
    """Deploy DEPLOYMENT (id or live name) again: the same spec, or another
    revision (--repository) or spec fields. Where its environment asks for
    approvals, a changed spec waits for them while what runs keeps running.

    \b
    Exit codes:
      0  accepted, also when it waits for approval (--wait: healthy on it)
      1  --wait: it failed, or the change was rejected or expired
      2  bad usage
      3  --wait: --timeout reached
      4  refused, e.g. another line's revision without --confirm-other-line"""
    deployment_id = _deployment_id(ctx, deployment)
    body = bodies.redeploy_body(
        repository=repository,
        confirm_other_line=confirm_other_line,
        mode=mode,
        worker_count=worker_count,
        auth_enabled=auth_enabled,
    )
    found = ctx.call("deployment_redeploy", path={"deployment_id": deployment_id}, json=body, options=REDEPLOY_OPTIONS)
    if not wait:
        ctx.show(found, _changed(found))
        return
    _wait(ctx, deployment_id, until="healthy", timeout=timeout, interval=interval, request_id=_asked(found))


@cli.command()
@click.argument("deployment")
@click.option("--environment", required=True, metavar="ID|NAME", help="Where to promote it")
@click.option("--target", metavar="ID|NAME", help="Where a new deployment goes, when several targets could run it")
@click.option(
    "--into", type=int, metavar="ID", help="The deployment there to update, when several of its line run there"
)
@click.option("--name", default="", metavar="NAME", help="A new deployment's name (default: this one's)")
@click.option("--force", is_flag=True, help="Promote it although it is not healthy (kept in the audit log)")
@_wait_options
@pass_context
def promote(ctx, deployment, environment, target, into, name, force, wait, timeout, interval):
    """Copy exactly what DEPLOYMENT (id or live name) runs, its revision and
    spec, into another environment: into the deployment of the same line
    there (updated), or a new one (created); through that environment's
    approvals like any change.

    \b
    Exit codes:
      0  accepted, also when it waits for approval (--wait: healthy on it)
      1  --wait: it failed, or the change was rejected or expired
      2  bad usage
      3  --wait: --timeout reached
      4  refused: several deployments (or targets) there could take it,
         listed to run again with --into (or --target); it is not healthy
         (--force); its name there is another line's (--name); or no
         target there can run it"""
    body = bodies.promotion_body(environment=environment, target=target, into=into, name=name, force=force)
    source = _deployment_id(ctx, deployment)
    status, found = ctx.answer("deployment_promote", path={"deployment_id": source}, json=body, options=PROMOTE_OPTIONS)
    # 201: a new deployment there; 202: the line's deployment there, updated.
    verb = "created" if status == 201 else "updated"
    if not wait:
        ctx.show(found, f"{verb} {_changed(found)}")
        return
    click.echo(f"{verb} {_changed(found)}", err=True)
    _wait(ctx, found["id"], until="healthy", timeout=timeout, interval=interval, request_id=_asked(found))


@cli.command()
@click.argument("deployment")
@_wait_options
@pass_context
def status(ctx, deployment, wait, timeout, interval):
    """A deployment's status; exits 1 unless it is healthy. With --wait,
    first waits until nothing is under way."""
    deployment_id = _deployment_id(ctx, deployment)
    if wait:
        _wait(ctx, deployment_id, until="healthy", timeout=timeout, interval=interval)
        return
    found = ctx.call("deployment_get", path={"deployment_id": deployment_id})
    ctx.show(found, _summary(found))
    if found["status"] != "healthy":
        sys.exit(FAILED)


@cli.command()
@click.argument("deployment")
@click.option("--tail", default=200, show_default=True, help="Lines of each log")
@pass_context
def logs(ctx, deployment, tail):
    """The server's log, then the operations' steps."""
    found = ctx.call("deployment_logs", path={"deployment_id": _deployment_id(ctx, deployment)}, query={"tail": tail})
    ctx.show(found, "\n".join([*found["lines"], *found["operations"]]))


def _decide(ctx, operation: str, deployment: str, comment: str) -> None:
    found = ctx.call(
        operation, path={"deployment_id": _deployment_id(ctx, deployment)}, json=bodies.comment_body(comment)
    )
    approval = found["approval"]
    ctx.show(found, f"{_summary(found)}; approval {approval['status']}")


@cli.command()
@click.argument("deployment")
@click.option("--comment", default="", help="Shown to the requester and kept in the audit log")
@pass_context
def approve(ctx, deployment, comment):
    """Approve the deployment's pending request (not your own)."""
    _decide(ctx, "deployment_approve", deployment, comment)


@cli.command()
@click.argument("deployment")
@click.option("--comment", required=True, help="Why: the requester reads it")
@pass_context
def reject(ctx, deployment, comment):
    """Reject the deployment's pending request."""
    _decide(ctx, "deployment_reject", deployment, comment)


@cli.command()
@click.argument("deployment")
@click.argument("shares", nargs=-1, required=True)
@pass_context
def traffic(ctx, deployment, shares):
    """Shift the endpoint's traffic: SHARES are NAME=PERCENT, adding up to 100."""
    try:
        body = bodies.traffic_body(shares)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="SHARES") from None
    found = ctx.call("deployment_traffic", path={"deployment_id": _deployment_id(ctx, deployment)}, json=body)
    ctx.show(found, _summary(found))


@cli.command()
@click.argument("deployment")
@click.option("--body", "body_file", type=click.File("r"), required=True, help="The request as JSON (- for stdin)")
@pass_context
def infer(ctx, deployment, body_file):
    """A test inference through the dashboard: the body is
    {"model", "inputs": [{"name", "datatype", "shape", "data"}], ...}."""
    try:
        body = json.load(body_file)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--body") from None
    result = ctx.call("deployment_infer", path={"deployment_id": _deployment_id(ctx, deployment)}, json=body)
    lines = [f"{o['name']} {o['datatype']} {o['shape']}: {json.dumps(o['data'])}" for o in result["outputs"]]
    ctx.show(result, "\n".join([f"{result['model_name']} v{result['model_version']}", *lines]))


@cli.command()
@click.argument("deployment")
@_wait_options
@pass_context
def delete(ctx, deployment, wait, timeout, interval):
    """Delete at the target (or request it, where deletes need approval)."""
    deployment_id = _deployment_id(ctx, deployment)
    found = ctx.call("deployment_delete", path={"deployment_id": deployment_id})
    if not wait:
        ctx.show(found, _summary(found))
        return
    _wait(ctx, deployment_id, until="deleted", timeout=timeout, interval=interval)


# --- rollouts ---------------------------------------------------------------------------
#
# `rollout DEPLOYMENT` starts one, like deploy, redeploy and promote act on a
# deployment; `rollout-status|pause|resume|promote|abort ROLLOUT` take the
# rollout's id. Not a `rollout` group: `rollout start add-sub` would be one word
# longer in every pipeline, and a group that also took a deployment could not
# tell a deployment named `status` from its subcommand.

# While a rollout is in one of these, --wait keeps waiting (a paused one too: a
# person paused it to look, and resumes or aborts it).
ROLLOUT_UNDER_WAY = {"pending_approval", "running", "paused"}
ROLLOUT_OPTIONS = {"confirm_other_line": "--confirm-other-line"}
_CHECKS = {True: "passes", False: "fails", None: "undecided"}


def _step(rollout: dict) -> dict | None:
    """The step under way (the API counts from 1), or None before the first."""
    return rollout["steps"][rollout["step"] - 1] if rollout.get("step") else None


def _rollout_progress(rollout: dict) -> str:
    """Where it is, in one line that changes with the step, the phase and the
    gates' verdict (not with every figure)."""
    status, phase, reason = rollout["status"], rollout["phase"], rollout["reason"]
    if status == "pending_approval":
        return f"pending_approval: its request {rollout['approval_request']} waits for approval"
    if status not in ROLLOUT_UNDER_WAY:
        return f"{status}: {reason}" if reason else status
    line = f"{status}, {phase}"
    doing = _doing(rollout)
    if doing:
        line += f": {doing}"
    return line + (f" ({reason})" if reason else "")


def _doing(rollout: dict) -> str:
    phase, step = rollout["phase"], _step(rollout)
    if phase == "candidate":
        return f"deploying the candidate {rollout['candidate']['name']} at 0%"
    if phase == "finishing":
        return f"all traffic on the candidate, retiring the baseline {rollout['baseline']['name']}"
    if phase == "rolling_back":
        return f"traffic back to the baseline {rollout['baseline']['name']}"
    if phase == "cleaning_up":
        return f"removing the candidate {rollout['candidate']['name']}"
    if step is None:
        return ""
    where = f"step {step['index']}/{len(rollout['steps'])}"
    if phase == "shifting":
        return f"{where}, {step['traffic']}% of the traffic to the candidate"
    if phase != "baking":
        return where
    checks = step["verdict"].get("checks", [])
    verdict = "; " + ", ".join(f"{c['gate']} {_CHECKS[c['passed']]}" for c in checks) if checks else ""
    return f"{where} at {step['traffic']}% for {step['bake_seconds']} s{verdict}"


def _rollout_summary(rollout: dict) -> str:
    deployment = rollout["deployment"]
    return (
        f"rollout {rollout['id']} of deployment {deployment['id']} {deployment['name']}: {_rollout_progress(rollout)}"
    )


def _failed_gates(rollout: dict) -> list[str]:
    """Each failed check of the failed step, with the figures it was judged on."""
    lines = []
    # An aborted rollout's step is failed too, with every check passed or undecided.
    for step in (step for step in rollout["steps"] if step["status"] == "failed"):
        at = f"step {step['index']} ({step['traffic']}%)"
        failed = [check for check in step["verdict"].get("checks", []) if check["passed"] is False]
        for check in failed:
            baseline = f" against the baseline's {check['baseline']}" if check["baseline"] is not None else ""
            note = f": {check['note']}" if check.get("note") else ""
            line = f"  {check['gate']} at {at}: {check['candidate']}{baseline}, limit {check['limit']}"
            lines.append(f"{line} ({check['rule']}){note}")
        figures = step.get("figures") or {}
        counted = [f"{figures[side]['requests']} {side}" for side in ("candidate", "baseline") if figures.get(side)]
        if failed and counted:
            lines.append(f"  over {' and '.join(counted)} requests in its window")
    return lines


def _rollout_end(ctx: Context, rollout: dict) -> None:
    """Shows it; exits 1 unless it was promoted, saying why when it ended otherwise."""
    ctx.show(rollout, _rollout_summary(rollout))
    if rollout["status"] == "promoted":
        return
    if rollout["status"] not in ROLLOUT_UNDER_WAY:
        click.echo(
            f"error: rollout {rollout['id']} {rollout['status']}: {rollout['reason'] or 'no reason given'}", err=True
        )
        for line in _failed_gates(rollout):
            click.echo(line, err=True)
    sys.exit(FAILED)


def _wait_rollout(ctx: Context, rollout_id: int, *, timeout: float, interval: float) -> None:
    rollout = _follow(
        ctx,
        "rollout_detail",
        {"rollout_id": rollout_id},
        progress=_rollout_progress,
        under_way=lambda found: found["status"] in ROLLOUT_UNDER_WAY,
        summary=_rollout_summary,
        timeout=timeout,
        interval=interval,
    )
    _rollout_end(ctx, rollout)


def _json_file(file, option: str, *, kind: type):
    try:
        found = json.load(file)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint=option) from None
    if kind is list and isinstance(found, dict):
        found = [found]  # one golden request
    if not isinstance(found, kind):
        raise click.BadParameter(f"not a JSON {'object' if kind is dict else 'list'}", param_hint=option)
    return found


@cli.command()
@click.argument("deployment")
@click.option(
    "--steps",
    required=True,
    metavar="TRAFFIC:SECONDS,...",
    help="The candidate's share of the traffic (%) and how long it bakes there, step by step up to 100,"
    " e.g. 10:300,50:300,100:300",
)
@click.option(
    "--repository",
    metavar="ID|LINE",
    help="The candidate's revision: an id, or a line's name for its latest (default: the one it runs)",
)
@click.option("--confirm-other-line", is_flag=True, help="Allow a revision of another line (other models)")
@_spec_options
@click.option(
    "--gates",
    "gates_file",
    type=click.File("r"),
    metavar="FILE.json",
    help='{"failure_rate": {"max_ratio": 2, "floor": 0.01}, "p95_ms": {...}, "min_requests": 20}'
    " (default: every gate the target can measure)",
)
@click.option(
    "--golden",
    "golden_file",
    type=click.File("r"),
    metavar="FILE.json",
    help="Golden requests sent to the candidate at every look: a list of"
    ' {"name", "model", "inputs", "expected": [{"name", "data"}], "tolerance"?}',
)
@click.option(
    "--on-rollback",
    type=click.Choice(["keep", "remove"]),
    help="A rolled-back candidate is kept at 0% to look at (default), or removed",
)
@_wait_options
@pass_context
def rollout(
    ctx,
    deployment,
    steps,
    repository,
    confirm_other_line,
    mode,
    worker_count,
    auth_enabled,
    gates_file,
    golden_file,
    on_rollback,
    wait,
    timeout,
    interval,
):
    """Roll a changed spec out on DEPLOYMENT (id or live name): the candidate
    (another revision, --repository, and/or spec fields) runs beside what
    serves now and takes each step's share of the traffic while the gates
    pass; a failed gate sends the traffic back. Where the environment asks
    for approvals, the plan waits for them first (`approve DEPLOYMENT`).
    Prints the rollout's id for rollout-status, -pause, -resume, -promote
    and -abort.

    \b
    Exit codes:
      0  started, also when it waits for approval (--wait: promoted)
      1  --wait: rolled back by a gate, aborted, or failed (the reason and
         the failed gate's figures are printed), or its approval was refused
      2  bad usage, e.g. --steps not TRAFFIC:SECONDS
      3  --wait: --timeout reached (it goes on: rollout-status ID)
      4  refused: a plan the dashboard does not take (its message names the
         field, e.g. [steps]), the spec running now, a rollout under way"""
    try:
        plan = bodies.steps_body(steps)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--steps") from None
    body = bodies.rollout_body(
        steps=plan,
        repository=repository,
        confirm_other_line=confirm_other_line,
        mode=mode,
        worker_count=worker_count,
        auth_enabled=auth_enabled,
        gates=_json_file(gates_file, "--gates", kind=dict) if gates_file else None,
        golden_requests=_json_file(golden_file, "--golden", kind=list) if golden_file else None,
        on_rollback=on_rollback,
    )
    deployment_id = _deployment_id(ctx, deployment)
    started = ctx.call("rollout_create", path={"deployment_id": deployment_id}, json=body, options=ROLLOUT_OPTIONS)
    if not wait:
        ctx.show(started, _rollout_summary(started))
        return
    click.echo(_rollout_summary(started), err=True)
    _wait_rollout(ctx, started["id"], timeout=timeout, interval=interval)


@cli.command("rollout-status")
@click.argument("rollout_id", metavar="ROLLOUT", type=int)
@_wait_options
@pass_context
def rollout_status(ctx, rollout_id, wait, timeout, interval):
    """A rollout's status (ROLLOUT is its id); exits 1 unless it was
    promoted, with the reason and the failed gate's figures when it ended
    otherwise. With --wait, first follows it until it ends."""
    if wait:
        _wait_rollout(ctx, rollout_id, timeout=timeout, interval=interval)
        return
    _rollout_end(ctx, ctx.call("rollout_detail", path={"rollout_id": rollout_id}))


def _steer(ctx: Context, operation: str, rollout_id: int, **kwargs) -> None:
    found = ctx.call(operation, path={"rollout_id": rollout_id}, **kwargs)
    ctx.show(found, _rollout_summary(found))


@cli.command("rollout-pause")
@click.argument("rollout_id", metavar="ROLLOUT", type=int)
@pass_context
def rollout_pause(ctx, rollout_id):
    """Hold the traffic where it is; nothing is judged until it resumes."""
    _steer(ctx, "rollout_pause", rollout_id)


@cli.command("rollout-resume")
@click.argument("rollout_id", metavar="ROLLOUT", type=int)
@pass_context
def rollout_resume(ctx, rollout_id):
    """Go on; the paused step bakes its whole time again."""
    _steer(ctx, "rollout_resume", rollout_id)


@cli.command("rollout-promote")
@click.argument("rollout_id", metavar="ROLLOUT", type=int)
@pass_context
def rollout_promote(ctx, rollout_id):
    """All traffic to the candidate now, without the remaining bakes (an
    approver's decision where the environment asks for approvals)."""
    _steer(ctx, "rollout_promote", rollout_id)


@cli.command("rollout-abort")
@click.argument("rollout_id", metavar="ROLLOUT", type=int)
@click.option("--reason", default="", help="Why: kept on the rollout and in the audit log")
@pass_context
def rollout_abort(ctx, rollout_id, reason):
    """Send all traffic back to the baseline (a plan waiting for approval is withdrawn)."""
    _steer(ctx, "rollout_abort", rollout_id, json=bodies.abort_body(reason))


# --- moving to another target -----------------------------------------------------------

# Until the new deployment runs; after that a person compares both sides and
# cuts over, once clients call the new address (the migration page says so).
MIGRATION_UNDER_WAY = {"deploying"}
MIGRATION_ENDED = {"failed", "abandoned"}


def _migration_progress(migration: dict) -> str:
    destination = migration["destination"]
    line = f"{migration['status']}: {destination['name']} on {destination['target']} is {destination['status']}"
    return line + (f" ({migration['reason']})" if migration["reason"] else "")


def _migration_summary(migration: dict) -> str:
    source, destination = migration["source"], migration["destination"]
    uri = f" at {destination['scoring_uri']}" if destination["scoring_uri"] else ""
    return (
        f"migration {migration['id']} of deployment {source['id']} {source['name']} on {source['target']}"
        f" to deployment {destination['id']}: {_migration_progress(migration)}{uri}"
    )


@cli.command()
@click.argument("deployment")
@click.option("--target", required=True, metavar="ID|NAME", help="An SDK v2 target of the same environment")
@click.option("--name", default="", metavar="NAME", help="The new deployment's name (default: the same)")
@click.option("--repository", metavar="ID|LINE", help="For an adopted service: the revision that holds its models")
@click.option(
    "--golden",
    "golden_file",
    type=click.File("r"),
    metavar="FILE.json",
    help="Golden requests the comparison sends to both sides, beside those saved for the deployment",
)
@_wait_options
@pass_context
def move(ctx, deployment, target, name, repository, golden_file, wait, timeout, interval):
    """Move DEPLOYMENT (id or live name), e.g. an SDK v1 webservice, to
    another target of its environment: the equivalent deployment is
    created there (through the environment's approvals). Comparing both
    sides and cutting over (deleting the original, once clients call the
    new address) are a person's, on the migration's page.

    \b
    Exit codes:
      0  started (--wait: the new deployment runs)
      1  --wait: the new deployment failed or was rejected
      2  bad usage
      3  --wait: --timeout reached
      4  refused, e.g. it cannot move there (the message says why)"""
    golden = _json_file(golden_file, "--golden", kind=list) if golden_file else None
    body = bodies.migration_body(target=target, name=name, repository=repository, golden_requests=golden)
    source = _deployment_id(ctx, deployment)
    started = ctx.call("migration_create", path={"deployment_id": source}, json=body)
    if not wait:
        ctx.show(started, _migration_summary(started))
        return
    click.echo(_migration_summary(started), err=True)
    migration = _follow(
        ctx,
        "migration_detail",
        {"migration_id": started["id"]},
        progress=_migration_progress,
        under_way=lambda found: found["status"] in MIGRATION_UNDER_WAY,
        summary=_migration_summary,
        timeout=timeout,
        interval=interval,
    )
    ctx.show(migration, _migration_summary(migration))
    if migration["status"] in MIGRATION_ENDED:
        click.echo(f"error: migration {migration['id']} {migration['status']}: {migration['reason']}", err=True)
        sys.exit(FAILED)


# --- load tests ----------------------------------------------------------------------------
#
# `loadtest DEPLOYMENT` sweeps it as the page does; --max-p95-ms and
# --min-throughput turn the result into a pipeline's pass or fail.

LOADTEST_UNDER_WAY = {"awaiting_approval", "queued", "running"}


def _loadtest_progress(test: dict) -> str:
    if test["status"] == "running" and test.get("progress"):
        where = test["progress"]
        return f"running: {where['concurrency']} clients, window {where['trial']}; {len(test['points'])} points done"
    return f"{test['status']}: {test['error']}" if test["error"] else test["status"]


def _loadtest_summary(test: dict) -> str:
    return f"load test {test['id']} of {test['deployment']['name']} ({test['model']}): {_loadtest_progress(test)}"


def _points_table(test: dict) -> str:
    lines = [f"{'clients':>7} {'infer/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'batch':>6}  stable"]
    for point in test["points"]:
        batch = point["server"].get("batch")
        lines.append(
            f"{point['concurrency']:>7} {point['throughput']:>9.1f} {point['p50_ms']:>8.2f} {point['p95_ms']:>8.2f}"
            f" {point['p99_ms']:>8.2f} {batch if batch is not None else '-':>6}  {'yes' if point['stable'] else 'no'}"
            + (f"  ({point['errors']} failed)" if point["errors"] else "")
        )
    return "\n".join(lines)


def _loadtest_verdict(test: dict, max_p95_ms: float | None, min_throughput: float | None) -> list[str]:
    """Why the pipeline should stop: nothing when every point keeps within the limits."""
    problems = []
    if test["status"] != "succeeded":
        problems.append(f"load test {test['id']} {test['status']}: {test['error'] or 'no reason given'}")
    for point in test["points"]:
        if point["errors"]:
            problems.append(f"{point['errors']} requests failed at {point['concurrency']} clients")
        if max_p95_ms is not None and point["p95_ms"] > max_p95_ms:
            problems.append(f"p95 {point['p95_ms']:.2f} ms at {point['concurrency']} clients is over {max_p95_ms:g} ms")
    best = max((point["throughput"] for point in test["points"]), default=0.0)
    if min_throughput is not None and best < min_throughput:
        problems.append(f"the best throughput, {best:.1f}/s, is under {min_throughput:g}/s")
    return problems


def _loadtest_end(ctx: Context, test: dict, max_p95_ms, min_throughput) -> None:
    ctx.show(test, _loadtest_summary(test) + ("\n" + _points_table(test) if test["points"] else ""))
    problems = _loadtest_verdict(test, max_p95_ms, min_throughput)
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    if problems:
        sys.exit(FAILED)


def _limits(command):
    command = click.option(
        "--min-throughput", type=float, help="Exit 1 unless some point reaches this many inferences/s"
    )(command)
    return click.option("--max-p95-ms", type=float, help="Exit 1 if any point's p95 is above this")(command)


@cli.command()
@click.argument("deployment")
@click.option("--model", required=True, help="A model the deployment serves")
@click.option("--version", help="One of its versions (default: Triton's choice)")
@click.option("--concurrency", default="1,2,4,8", show_default=True, help="Clients at once for each point")
@click.option("--window-seconds", type=float, help="A measurement window (default 2)")
@click.option("--max-requests", type=int, help="The run's bound in requests")
@click.option("--max-seconds", type=int, help="The run's bound in seconds")
@click.option("--inputs", type=click.Choice(["random", "zeros"]), help="What each request carries (default random)")
@click.option("--label", default="", help="Tells runs apart in a comparison")
@_limits
@_wait_options
@pass_context
def loadtest(
    ctx,
    deployment,
    model,
    version,
    concurrency,
    window_seconds,
    max_requests,
    max_seconds,
    inputs,
    label,
    max_p95_ms,
    min_throughput,
    wait,
    timeout,
    interval,
):
    """Sweep closed-loop load over --concurrency against one model of
    DEPLOYMENT (id or live name), through its own endpoint, measured as
    perf_analyzer measures. Where the environment asks, it waits for an
    approver first.

    \b
    Exit codes:
      0  started (--wait: succeeded within the limits given)
      1  --wait: it failed, was cancelled, a request failed, or a limit
         (--max-p95-ms, --min-throughput) was not kept
      2  bad usage
      3  --wait: --timeout reached (it goes on: loadtest-status ID)
      4  refused, e.g. load tests are off in that environment"""
    try:
        points = bodies.counts(concurrency)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--concurrency") from None
    body = bodies.load_test_body(
        model=model,
        concurrency=points,
        version=version,
        window_seconds=window_seconds,
        max_requests=max_requests,
        max_seconds=max_seconds,
        inputs=inputs,
        label=label,
    )
    started = ctx.call("load_test_create", path={"deployment_id": _deployment_id(ctx, deployment)}, json=body)
    if not wait:
        ctx.show(started, _loadtest_summary(started))
        return
    click.echo(_loadtest_summary(started), err=True)
    _wait_loadtest(ctx, started["id"], max_p95_ms, min_throughput, timeout=timeout, interval=interval)


def _wait_loadtest(ctx: Context, test_id: int, max_p95_ms, min_throughput, *, timeout: float, interval: float):
    test = _follow(
        ctx,
        "load_test_detail",
        {"test_id": test_id},
        progress=_loadtest_progress,
        under_way=lambda found: found["status"] in LOADTEST_UNDER_WAY,
        summary=_loadtest_summary,
        timeout=timeout,
        interval=interval,
    )
    _loadtest_end(ctx, test, max_p95_ms, min_throughput)


@cli.command("loadtest-status")
@click.argument("test_id", metavar="LOADTEST", type=int)
@_limits
@_wait_options
@pass_context
def loadtest_status(ctx, test_id, max_p95_ms, min_throughput, wait, timeout, interval):
    """A load test's points (LOADTEST is its id); exits 1 unless it
    succeeded within the limits given. With --wait, follows it to its end."""
    if wait:
        _wait_loadtest(ctx, test_id, max_p95_ms, min_throughput, timeout=timeout, interval=interval)
        return
    test = ctx.call("load_test_detail", path={"test_id": test_id})
    if test["status"] in LOADTEST_UNDER_WAY:
        ctx.show(test, _loadtest_summary(test))
        sys.exit(FAILED)
    _loadtest_end(ctx, test, max_p95_ms, min_throughput)


@cli.command("loadtest-cancel")
@click.argument("test_id", metavar="LOADTEST", type=int)
@pass_context
def loadtest_cancel(ctx, test_id):
    """Stop a load test; a running one keeps the points it measured."""
    test = ctx.call("load_test_cancel", path={"test_id": test_id})
    ctx.show(test, _loadtest_summary(test))
