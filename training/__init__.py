"""Training of eee-zoo checkpoints from recipes: ``python -m training.train --recipe training/recipes/<name>.yaml``.

A repository folder, not part of the installed package: ``eee-zoo train`` imports it from a source checkout.
"""
