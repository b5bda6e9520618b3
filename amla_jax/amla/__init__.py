"""AMLA's formats, as pure Python (no JAX): its JSON networks and task configs
(`io`, `micro_dag`), its macro network lists (`layout`), the construction and
random-baseline rules (`envelope`, `random_networks`), the algorithm options of its task
configs (`options`), and the mapping of a task config onto our Hydra overrides
(`task_config`).

Synopsis::

    from amla_jax.amla import from_amla, load_spec, save_spec, to_amla
    spec = load_spec("config.run.json")       # an AMLA task config, or our own JSON
    save_spec(spec, "best_spec.json")         # AMLA's task-config form
    from amla_jax.amla.envelope import EnvelopeSettings, construct_amla, initial_envelopenet
    from amla_jax.amla.options import NacOptions, RandomOptions
    from amla_jax.amla.task_config import overrides_from_amla
"""

from amla_jax.amla.io import from_amla, load_spec, save_spec, spec_from_json, to_amla
from amla_jax.amla.micro_dag import from_amla_micro

__all__ = ["from_amla", "from_amla_micro", "load_spec", "save_spec", "spec_from_json", "to_amla"]
