"""One-shot (weight-sharing) architecture search: one supernet, one jitted step.

`amla_jax.oneshot.base` holds the `OneShotMethod` interface, `amla_jax.oneshot.supernet`
the supernets, `amla_jax.oneshot.darts` (and ``enas``) the methods and
`amla_jax.oneshot.loop` the epoch loop that drives any of them.
"""
