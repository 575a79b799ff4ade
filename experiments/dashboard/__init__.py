"""``volsuite dashboard``: a read-only Streamlit app over the results folder, the Optuna store,
the chain store and the paper sessions (``docs/dashboard.md``).

``app.py`` is the Streamlit entry (``streamlit run experiments/dashboard/app.py``; the CLI sets
the paths through ``VOLSUITE_*`` environment variables, :mod:`experiments.dashboard.common`),
``pages/`` the six pages, :mod:`experiments.dashboard.data` what they read (no Streamlit there;
``volsuite surface term|params`` share it) and :mod:`experiments.dashboard.charts` the plotly
figures. Nothing here is imported by ``import experiments.cli``.
"""
