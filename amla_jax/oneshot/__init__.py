"""One-shot (weight-sharing) architecture search: one supernet, one jitted step program
compiled once per search.

Synopsis::

    from amla_jax.oneshot.supernet import make_supernet
    net = make_supernet("nb201", {}, num_classes=10, channels=16, cells_per_stage=5)
    logits = net.model.apply(variables, images, net.weights_of_arch(arch), train=False)

Modules: `amla_jax.oneshot.supernet` (`Supernet`, `make_supernet`, the maps between
architectures and architecture weights; the Flax networks are in
`amla_jax.nn.supernet_nb201` and `amla_jax.nn.supernet_darts`), `amla_jax.oneshot.base`
(the `OneShotMethod` interface), the methods `amla_jax.oneshot.darts` and
`amla_jax.oneshot.enas`, `amla_jax.oneshot.loop` the epoch loop that drives any of them
and `amla_jax.oneshot.records` what it writes. This package's ``__init__`` imports
nothing, so importing it stays cheap.
"""
