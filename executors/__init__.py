"""Executor factories (local, torchrun, slurm, docker, lepton), found through entry points."""
