"""AMLA's formats: its JSON networks and construction configs. Imports no JAX.

Synopsis::

    from amla_jax.amla import from_amla, load_spec, save_spec, to_amla
    spec = load_spec("config.run.json")       # an AMLA task config, or our own JSON
    save_spec(spec, "best_spec.json")         # AMLA's task-config form
"""

from amla_jax.amla.io import from_amla, load_spec, save_spec, spec_from_json, to_amla
from amla_jax.amla.micro_dag import from_amla_micro

__all__ = ["from_amla", "from_amla_micro", "load_spec", "save_spec", "spec_from_json", "to_amla"]
