"""Benchmarks (plain scripts); a package so `durable worker benchmarks.bench_core` imports."""
