"""Monitoring of served models (extra ``medai[monitor]``): data drift against the training reference each
artifact carries (``monitoring.json``), performance decay from outcomes that arrive late, alerts, Prometheus
metrics and a replay tool. The README's *Monitoring* section is the user's guide.

Modules: :mod:`.reference` (the reference and batch summaries), :mod:`.stats` (PSI, KS, chi-squared, BH, MMD),
:mod:`.store` (tables in the service's database), :mod:`.recorder` (the service's background writer),
:mod:`.analysis` (windows, drift, performance, alerts), :mod:`.plots`, :mod:`.simulate`, :mod:`.cli`.
"""
