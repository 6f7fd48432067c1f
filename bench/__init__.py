"""`make bench`: the figures the issues ask for, written to BENCHMARKS.md (see bench.run)."""
