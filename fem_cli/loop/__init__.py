"""`fem loop`: the EM iterations as a resumable run folder (config, state, the runner)."""
