"""``python -m amla_jax.report PATHS... [--out DIR]``: the same as ``amla report``."""

from amla_jax.report.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
