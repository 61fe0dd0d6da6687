"""Settings, the trainer, evaluation, tuning and data parallelism."""
