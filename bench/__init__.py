"""Benchmarks of the engine against the peers' HAT (spandrel); not part of the product or the test suite."""
