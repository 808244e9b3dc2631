"""One verification: the runtime, the job folder, caches, phases and the pipeline."""
