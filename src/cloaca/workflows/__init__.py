"""Defining workflows: tasks, trigger rules, retry policies, the graph and the registry."""
