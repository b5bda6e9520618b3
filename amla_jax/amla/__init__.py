"""AMLA's formats, as pure Python (no JAX): its macro network lists, the construction
and random-baseline rules, the algorithm options of its task configs, and the mapping of
a task config onto our Hydra overrides.

Synopsis::

    from amla_jax.amla.envelope import EnvelopeSettings, construct_amla, initial_envelopenet
    from amla_jax.amla.options import NacOptions, RandomOptions
    from amla_jax.amla.task_config import overrides_from_amla
"""
