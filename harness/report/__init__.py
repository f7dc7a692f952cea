"""Reports from the results store: Tables 1-2 beside the paper, significance tests, figures.

``tables`` builds and renders the tables, ``stats`` the paired tests, ``figures`` and ``page``
the ``harness report`` page; ``paper`` holds the paper's own numbers and ``variants`` maps
Table 1's rows to run configurations.
"""
