"""Synthetic acoustic scenes written in TAU layouts, so the harness runs end to end without TAU.

``sounds`` (how each scene event sounds), ``world`` (scenes, cities, locations and one clip of
them), ``writer`` (a dataset folder written all or nothing, once per cache key), ``tau2019`` and
``tau2022`` (the world as a 2019 development or a 2022 Mobile development folder) and ``plugin``
(the ``synthetic`` dataset plugin and its default dataset). Nothing is imported here, so the
TAU loaders can use the writer's marker without loading the generator.
"""
