"""The config file: schema, loading and validation, and the frozen model it yields.

Import from the modules (`workerd.config.load`, `.model`, `.summary`, `.schema`):
this package imports nothing itself, so `python -m workerd.config.reference` runs
the renderer module once, and importing the model stays cheap.
"""
