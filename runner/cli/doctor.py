"""`runner doctor`: engine, images and limits in a few readable lines."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from rich.markup import escape

from runner.config import Settings
from runner.errors import EngineUnavailableError


@dataclass
class Diagnosis:
    """Lines to print (rich markup; paths and messages escaped) and whether all is there."""

    lines: list[str] = field(default_factory=list)
    ok: bool = True


def diagnose(settings: Settings) -> Diagnosis:
    """Check the engine, the base image, the default limits and the state directory."""
    from runner.environments.images import base_tag, find_base_image
    from runner.sandbox.engine import connect

    report = Diagnosis()
    source = settings.source or "built-in defaults"
    report.lines.append(f"config   {escape(str(source))}")
    try:
        client = connect(settings.engine)
    except EngineUnavailableError as exc:
        report.lines.append(f"engine   [red]unreachable[/red]: {escape(str(exc))}")
        report.ok = False
        return report
    info = client.info()
    version = client.version()
    security = ",".join(
        opt.split(",")[0].removeprefix("name=") for opt in info.get("SecurityOptions", [])
    )
    report.lines.append(
        f"engine   Docker {version.get('Version')} (API {version.get('ApiVersion')}), "
        f"{info.get('Driver')}, cgroup v{info.get('CgroupVersion', '1')}, "
        f"security: {security or 'none'}, runtime: {settings.engine.runtime or 'runc'}"
    )
    image = find_base_image(client, settings.images)
    if image is None:
        report.lines.append(
            f"images   [yellow]missing[/yellow] {base_tag(settings.images)}: "
            "run `runner images build`"
        )
        report.ok = False
    else:
        report.lines.append(f"images   {image.tag} ({settings.images.recipe} recipe), present")
    lim = settings.sandbox
    report.lines.append(
        f"limits   {lim.cpus:g} CPU, {lim.memory_mb} MiB (no swap), {lim.pids} pids, "
        f"{lim.timeout_s:g}s wall, output {lim.output_bytes // 1000} kB, /tmp {lim.tmpfs_mb} MiB; "
        "network none, read-only root, all capabilities dropped, non-root "
        f"({settings.engine.sandbox_user})"
    )
    state = settings.paths.root
    try:
        state.mkdir(parents=True, exist_ok=True)
        writable = os.access(state, os.W_OK)
    except OSError:
        writable = False
    report.lines.append(
        f"state    {escape(str(state))} ({'writable' if writable else '[red]not writable[/red]'})"
    )
    report.ok = report.ok and writable
    return report
