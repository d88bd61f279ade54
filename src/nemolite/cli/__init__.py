"""The `nemo llm ...` command line: nemo-run's CLI with nemolite's grammar, checks and dry runs."""
