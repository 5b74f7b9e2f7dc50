"""Capacity planning over a simulated day: traffic patterns and billing (day), day simulation
(daysim), the ranking across providers and billing models (options), capacity search (capacity),
budget search (budget), deployment export (export), targets and workloads files (catalogs).
servesim.plan is the entry point."""
