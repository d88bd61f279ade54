"""Secrets: values a job needs (API keys, tokens) that must never be written down.

A secret reaches the job through the environment of the process that submits it, by name only:

- Slurm: `sbatch` hands the submitting environment to the job (its default `--export=ALL`), so
  `export WANDB_API_KEY=...` before `nemo llm pretrain ... executor=slurm` is all it takes;
  through an SSH tunnel the login node's environment is the submitting one.
- Docker: `docker run -e NAME` (no `=value`) copies NAME from the environment of `docker run`.
- Lepton: the job spec references a secret stored in the Lepton workspace (`value_from`).

So a secret's value is never in `executor.env_vars`, the sbatch script, the `docker run` line, the
job spec or a saved config; `check_env_vars` rejects one typed there, and `redact` replaces any
value that slipped into rendered text by `***`.

Which names are secrets: `WANDB_API_KEY`, `HF_TOKEN`, `HUGGING_FACE_HUB_TOKEN`, the names listed
under `secrets:` in the executor's profile, and those in `$NEMOLITE_SECRETS` (comma separated).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

from nemolite.errors import ClusterError

DEFAULT_SECRETS = ("WANDB_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
REDACTED = "***"

# Names that look like credentials count as secrets even if nobody marked them; whole words only,
# so that TOKENIZERS_PARALLELISM is not one.
_SECRET_LOOKING = re.compile(
    r"(^|_)(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|ACCESS_KEY|PRIVATE_KEY)($|_)", re.I
)
# Shorter values are too likely to occur by chance in a script (e.g. "1", "true").
_MIN_REDACTED_LEN = 6


def secret_names(marked: Iterable[str] = ()) -> list[str]:
    """The default secret names, plus `marked` (from a profile) and `$NEMOLITE_SECRETS`."""
    from_env = [n.strip() for n in os.environ.get("NEMOLITE_SECRETS", "").split(",") if n.strip()]
    names: list[str] = []
    for name in (*DEFAULT_SECRETS, *marked, *from_env):
        if name not in names:
            names.append(name)
    return names


def is_secret(name: str, names: Iterable[str]) -> bool:
    """Whether env var `name` is a secret: listed in `names` or named like a credential."""
    return name in set(names) or bool(_SECRET_LOOKING.search(name))


def check_env_vars(env_vars: Mapping[str, str], names: Iterable[str], field: str) -> None:
    """Rejects a secret whose value was typed into the executor's environment.

    Raises:
        ClusterError: naming `field.NAME`, with the value masked.
    """
    for key in env_vars:
        if is_secret(key, names):
            raise ClusterError(
                f"{field}.{key}",
                REDACTED,
                "a secret's value would be written in clear text into the job script and saved config",
                f"remove it from {field} and export {key} in the shell that submits "
                "(nemolite forwards it to the job by name)",
            )


def present(names: Iterable[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """The secret names that are set (non-empty) in `environ` (default: this process)."""
    env = os.environ if environ is None else environ
    return [n for n in names if env.get(n)]


def redact(text: str, names: Iterable[str], environ: Mapping[str, str] | None = None) -> str:
    """Replaces the values of secret env vars (and credential-looking ones) in `text` by `***`."""
    env = os.environ if environ is None else environ
    listed = list(names)
    values = {
        value
        for key, value in env.items()
        if is_secret(key, listed) and len(value) >= _MIN_REDACTED_LEN
    }
    # Longest first, so that a value containing another is replaced whole.
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text
