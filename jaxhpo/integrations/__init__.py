"""Bridges to other tools; each module needs its optional extra (``jaxhpo.integrations.optuna``: ``optuna``)."""
