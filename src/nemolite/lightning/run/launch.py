"""Fault tolerance in nemo-run launches: `run.FaultTolerance` runs as torchrun with `--max-restarts`.

nemo-run builds a `FaultTolerance` launcher's command with `ft_launcher`
(nemo_run/run/torchx_backend/components/ft_launcher.py), the torchrun wrapper of
nvidia-resiliency-ext, which is not installed with nemolite. Here such a launch becomes torchrun
itself, with the in-job restart bound that `nl.FaultTolerance.torchrun_args()` gives: when a rank
dies, torchrun stops all ranks and starts them again, and `AutoResume` resumes from the latest
complete checkpoint. The launcher's heartbeat timeouts reach the ranks' environment, where the
trainer's `HangDetection` ends a rank that stops making progress (which torchrun then restarts). Installed by nemolite's executors (`executor=torchrun`, `executor=slurm`) and by
`FaultTolerancePlugin`; delete it if nemolite ever ships ft_launcher.
"""

from __future__ import annotations

import functools
from typing import Any

from nemolite.lightning.fault_tolerance import FaultTolerance

# torchrun's c10d rendezvous shares its TCPStore with the workers across restarts
# (torch/distributed/elastic/rendezvous/dynamic_rendezvous.py, `use_agent_store`), and the workers'
# process groups write the same keys on every attempt: a restarted rank 0 then read the killed
# rank 1's gloo address and failed ("Connection refused") or hung. Without sharing, each attempt's
# rank 0 hosts a fresh store on a new port.
RESTART_ENV = {"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
_INSTALLED = False


def policy(launcher: Any) -> FaultTolerance | None:
    """The restart policy of a nemo-run `FaultTolerance` launcher (None for any other launcher).

    `max_restarts=None` (what `executor.launcher=ft` gives) takes `nl.FaultTolerance`'s default;
    `workload_check_interval` becomes torchrun's `--monitor-interval`.
    """
    from nemo_run.core.execution.launcher import FaultTolerance as NemoRunFT

    if not isinstance(launcher, NemoRunFT):
        return None
    ft = FaultTolerance()
    if launcher.max_restarts is not None:
        ft.max_restarts = launcher.max_restarts
    if launcher.workload_check_interval is not None:
        ft.monitor_interval = launcher.workload_check_interval
    ft.initial_rank_heartbeat_timeout = launcher.initial_rank_heartbeat_timeout
    ft.rank_heartbeat_timeout = launcher.rank_heartbeat_timeout
    ft.validate("executor.launcher")
    return ft


def _as_torchrun(launcher: Any) -> Any:
    from nemo_run.core.execution.launcher import Launcher, Torchrun

    shared = {name: getattr(launcher, name) for name in Launcher.__dataclass_fields__}
    return Torchrun(rdzv_backend=launcher.rdzv_backend, rdzv_port=launcher.rdzv_port,
                    rdzv_id=launcher.rdzv_id, **shared)


def install() -> None:
    """Patches nemo-run's packaging once (idempotent); other launchers are left as they are."""
    global _INSTALLED
    if _INSTALLED:
        return
    from nemo_run.run import job as nemo_job
    from nemo_run.run.torchx_backend import packaging

    original = packaging.package

    @functools.wraps(original)
    def package(name: str, fn_or_script: Any, executor: Any, *args: Any, **kwargs: Any) -> Any:
        ft = policy(executor.get_launcher())
        if ft is None:
            return original(name, fn_or_script, executor, *args, **kwargs)
        launcher = executor.launcher
        executor.launcher = _as_torchrun(launcher)
        try:
            app = original(name, fn_or_script, executor, *args, **kwargs)
        finally:
            executor.launcher = launcher
        for role in app.roles:
            if role.entrypoint == "torchrun":
                role.args = [*ft.torchrun_args(), *role.args]
                role.env = {**role.env, **RESTART_ENV, **ft.worker_env()}
        return app

    packaging.package = package
    nemo_job.package = package  # nemo_run/run/job.py imported the name
    _INSTALLED = True
