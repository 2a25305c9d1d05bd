"""On-device inference: model bundles (bundle.py), the engine (engine.py, imports torch), the results cache.

Importing this package does not import torch: `index`, `render` and `demo-data` must start fast. Import
`medview.core.inference.engine` only where a model actually runs.
"""
