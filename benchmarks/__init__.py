"""Speed and memory of aunet's models next to MONAI's: `python -m benchmarks.benchmark --help` (docs/benchmarks.md)."""
