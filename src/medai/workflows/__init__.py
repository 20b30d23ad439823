"""End-to-end workflows (train, evaluate, predict, explain) that the CLI and the service call.

This layer sits above data, tasks, models, evaluation, explain and registry, and below the CLI and the
service: both are thin shells over these functions.
"""
