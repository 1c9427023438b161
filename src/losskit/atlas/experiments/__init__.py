"""The evidence experiments of the atlas: each ``run(out, mode) -> StepResult`` is seeded and small
in ``quick`` mode, complete in ``full`` mode."""
