"""Work directories: checkpoints, mixtures' files and the writer's lock."""
