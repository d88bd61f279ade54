"""What NeMo 2.0 keeps under `nemo.lightning.run`: nemo-run plugins for nemolite tasks (light to import)."""
